//! Objects reached by name (`Key::named`), across processes: the key
//! derivation of FORMAT.md, colliding names and keys taken by others never
//! opening each other's object, names refused, and the command's names (in
//! a private namespace too).

mod common;

use common::names::{NameGuard, Namespace, documented_key, fresh_name, set_mode};
use common::{Kid, SegGuard, child_args, report};
use shmstore::{Error, Key, NAME_PROBES, Segment, SharedCell};

#[test]
fn child_entry() {
    let Some(args) = child_args() else { return };
    match args[0].as_str() {
        "read_named" => {
            let cell = SharedCell::<u64>::open(Key::named(&args[1]).unwrap()).unwrap();
            report("value", cell.load());
            cell.store(cell.load() + 1).unwrap();
        }
        other => panic!("unknown role {other}"),
    }
    std::process::exit(0);
}

#[test]
fn named_keys_follow_the_documented_derivation() {
    let name = fresh_name("derivation");
    let key = Key::named(&name).unwrap();
    assert_eq!(key.raw(), documented_key(&name, 0));
    assert_eq!(key.name(), Some(name.as_str()));
    assert!(key.to_string().contains(&name));
}

#[test]
fn another_process_opens_by_name() {
    let name = fresh_name("across");
    let _g = NameGuard::of(&name);
    let cell = SharedCell::<u64>::create(Key::named(&name).unwrap(), 41).unwrap();
    let mut kid = Kid::spawn(&["read_named", &name]);
    assert_eq!(kid.expect("value"), "41");
    assert!(kid.wait().success());
    assert_eq!(cell.load(), 42);
    assert!(matches!(
        SharedCell::<u64>::create(Key::named(&name).unwrap(), 0),
        Err(Error::AlreadyExists { .. })
    ));
}

/// Two names whose keys collide: each gets its own object, and neither
/// opens the other's, also after the first one is removed.
#[test]
fn colliding_names_never_open_each_others_object() {
    let prefix = fresh_name("collide");
    let mut seen = std::collections::HashMap::new();
    let (a, b) = (0u32..)
        .find_map(|i| {
            let name = format!("{prefix}/{i}");
            let key = documented_key(&name, 0);
            seen.insert(key, name.clone()).map(|other| (other, name))
        })
        .unwrap();
    let (_ga, _gb) = (NameGuard::of(&a), NameGuard::of(&b));
    let (ka, kb) = (Key::named(&a).unwrap(), Key::named(&b).unwrap());
    assert_eq!(ka.raw(), kb.raw(), "{a} and {b} collide");
    let cell_a = SharedCell::<u64>::create(ka, 1).unwrap();
    let cell_b = SharedCell::<u64>::create(kb, 2).unwrap();
    assert_ne!(cell_a.id(), cell_b.id());
    assert_eq!(SharedCell::<u64>::open(ka).unwrap().load(), 1);
    assert_eq!(SharedCell::<u64>::open(kb).unwrap().load(), 2);
    cell_a.remove().unwrap();
    assert!(matches!(
        SharedCell::<u64>::open(ka),
        Err(Error::NotFound { .. })
    ));
    assert_eq!(
        SharedCell::<u64>::open(kb).unwrap().load(),
        2,
        "found past the hole"
    );
    let again = SharedCell::<u64>::open_or_create(ka, 3).unwrap();
    assert_eq!(again.load(), 3);
    assert_eq!(SharedCell::<u64>::open(kb).unwrap().load(), 2);
}

/// A plain key's object, or another program's segment, at a name's key is
/// never opened through the name: the name's object goes to the next key.
#[test]
fn a_names_key_taken_by_others_is_skipped() {
    let name = fresh_name("taken");
    let _g = NameGuard::of(&name);
    let plain_key = Key::new(documented_key(&name, 0)).unwrap();
    let plain = SharedCell::<u64>::create(plain_key, 7).unwrap();
    let _gp = SegGuard(plain.id());
    let named = Key::named(&name).unwrap();
    assert!(matches!(
        SharedCell::<u64>::open(named),
        Err(Error::NotFound { .. })
    ));
    let cell = SharedCell::<u64>::open_or_create(named, 8).unwrap();
    assert_ne!(cell.id(), plain.id());
    assert_eq!(SharedCell::<u64>::open(named).unwrap().load(), 8);
    assert_eq!(SharedCell::<u64>::open(plain_key).unwrap().load(), 7);

    // Every key of another name taken by foreign segments: NameTaken.
    let full = fresh_name("full");
    let _gf = NameGuard::of(&full);
    let foreign: Vec<Segment> = (0..NAME_PROBES)
        .map(|i| {
            Segment::options()
                .size(4096)
                .create(true)
                .exclusive(true)
                .open(Key::new(documented_key(&full, i)).unwrap())
                .unwrap()
        })
        .collect();
    match SharedCell::<u64>::create(Key::named(&full).unwrap(), 0) {
        Err(Error::NameTaken { keys, owners, .. }) => {
            assert_eq!(keys.len(), NAME_PROBES as usize);
            // SAFETY: geteuid has no preconditions and cannot fail.
            let me = unsafe { libc::geteuid() };
            assert_eq!(owners, vec![Some(me); NAME_PROBES as usize]);
        }
        other => panic!("{:?}", other.map(|c| c.id())),
    }
    drop(foreign);
}

#[test]
fn names_and_type_names_with_control_characters_are_refused() {
    for bad in [
        "",
        "with\nnewline",
        "esc\u{1b}[2K",
        "nul\0",
        &"n".repeat(129),
    ] {
        assert!(
            matches!(Key::named(bad), Err(Error::InvalidName { .. })),
            "{bad:?}"
        );
    }
    let err = SharedCell::<u64>::options()
        .type_name("evil\r\u{1b}[2Kkernel: owner 0:0")
        .create(Key::PRIVATE, 0)
        .unwrap_err();
    assert!(matches!(err, Error::InvalidName { .. }), "{err}");
}

fn shmstore(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_shmstore"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// The command lists, inspects and removes objects by name, and removes
/// every object under a prefix, leaving the others.
#[test]
fn the_command_knows_names() {
    let prefix = fresh_name("cli");
    let names: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|n| format!("{prefix}/{n}"))
        .collect();
    let other = fresh_name("cli-other");
    let _guards: Vec<NameGuard> = names
        .iter()
        .chain([&other])
        .map(|n| NameGuard::of(n))
        .collect();
    let cells: Vec<SharedCell<u64>> = names
        .iter()
        .chain([&other])
        .map(|n| SharedCell::create(Key::named(n).unwrap(), 5).unwrap())
        .collect();
    let (ok, out) = shmstore(&["list"]);
    assert!(ok, "{out}");
    for n in names.iter().chain([&other]) {
        assert!(out.contains(n.as_str()), "list does not show {n}:\n{out}");
    }
    let (ok, out) = shmstore(&["inspect", &names[0]]);
    assert!(
        ok && out.contains(&format!("name:        {}", names[0])),
        "{out}"
    );
    let (ok, out) = shmstore(&["remove", &names[0]]);
    assert!(ok, "{out}");
    assert!(cells[0].is_removed().unwrap());
    let (ok, out) = shmstore(&["remove", "--prefix", &format!("{prefix}/")]);
    assert!(ok, "{out}");
    assert!(cells[1].is_removed().unwrap() && cells[2].is_removed().unwrap());
    assert!(!cells[3].is_removed().unwrap(), "outside the prefix");
    // A removed object is no longer reached by its name (as by the
    // library), only by its id while attached.
    let (ok, out) = shmstore(&["inspect", &names[1]]);
    assert!(!ok && out.contains("no object is named"), "{out}");
    let (ok, out) = shmstore(&["inspect", &cells[1].id().to_string()]);
    assert!(ok && out.contains("marked for removal"), "{out}");
    let (ok, out) = shmstore(&["inspect", "no/such/name"]);
    assert!(!ok && out.contains("no object is named"), "{out}");
}

/// With `--namespace DIR`, a TARGET that is a name is found in that private
/// namespace: inspect, watch and remove reach the object made there, and a
/// refusal lists who holds the name at its keys there; without the flag the
/// same name is not found. A namespace others could write is refused, and
/// one with no secret yet is left without one.
#[test]
fn the_command_finds_names_in_a_private_namespace() {
    let ns = Namespace::new(0o700);
    let secret = ns.secret();
    let name = fresh_name("cli-namespace");
    let _guard = NameGuard::in_namespace(&secret, &name);
    let cell = SharedCell::<u64>::create(Key::named_in(ns.path(), &name).unwrap(), 5).unwrap();
    let _seg = SegGuard(cell.id());
    let (ok, out) = shmstore(&["--namespace", ns.arg(), "inspect", &name]);
    assert!(ok && out.contains(&format!("name:        {name}")), "{out}");
    let (ok, out) = shmstore(&["inspect", &name, "--namespace", ns.arg(), "--json"]);
    assert!(ok, "{out}");
    let inspected: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(inspected["kernel"]["id"], cell.id());
    let (ok, out) = shmstore(&[
        "watch",
        &name,
        "--namespace",
        ns.arg(),
        "--count",
        "1",
        "--format",
        "u64",
    ]);
    assert!(ok && out.contains('5'), "{out}");

    for args in [&["inspect", &name][..], &["remove", &name]] {
        let (ok, out) = shmstore(args);
        assert!(!ok && out.contains("no object is named"), "{args:?}: {out}");
    }
    assert!(!cell.is_removed().unwrap());
    let (ok, out) = shmstore(&["--namespace", ns.arg(), "remove", &name]);
    assert!(ok, "{out}");
    assert!(cell.is_removed().unwrap());
    let (ok, out) = shmstore(&["--namespace", ns.arg(), "inspect", &name]);
    assert!(
        !ok && out.contains("no object is named") && out.contains(ns.arg()),
        "{out}"
    );

    if common::is_root() {
        // Another user's object of the name in the namespace: not opened,
        // but named in the refusal.
        let theirs =
            SharedCell::<u64>::create(Key::named_in(ns.path(), &name).unwrap(), 6).unwrap();
        let _theirs = SegGuard(theirs.id());
        theirs.set_owner(43_003, 43_999).unwrap();
        let (ok, out) = shmstore(&["--namespace", ns.arg(), "inspect", &name]);
        assert!(!ok, "{out}");
        assert!(
            out.contains(&format!("segment {}", theirs.id())) && out.contains("uid 43003"),
            "{out}"
        );
    }

    set_mode(ns.path(), 0o777);
    let (ok, out) = shmstore(&["--namespace", ns.arg(), "inspect", &name]);
    assert!(!ok && out.contains("chmod go-w"), "{out}");

    let unused = Namespace::new(0o700);
    let (ok, out) = shmstore(&["--namespace", unused.arg(), "inspect", &name]);
    assert!(!ok && out.contains("no secret yet"), "{out}");
    assert!(!unused.secret_path().exists(), "the command made a secret");
}
