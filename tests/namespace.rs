//! Private namespaces of names (`Key::named_in`): names no other local user
//! can take, because their keys come from a secret only the service's
//! users can read.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::names::{NameGuard, Namespace, documented_key, fresh_name};
use common::{Kid, child_args, drop_to, report, root_or_skip};
use shmstore::{Error, Key, NAME_PROBES, SECRET_FILE, Segment, SharedCell};

#[test]
fn child_entry() {
    let Some(args) = child_args() else { return };
    match args[0].as_str() {
        // As another user: take every key of a name, with one-byte
        // segments that stay after this process exits.
        "squat" => {
            drop_to(65534, 65534);
            let mut taken = 0;
            for i in 0..NAME_PROBES {
                let key = Key::new(documented_key(&args[1], i)).unwrap();
                if Segment::options()
                    .size(1)
                    .create(true)
                    .exclusive(true)
                    .open(key)
                    .is_ok()
                {
                    taken += 1;
                }
            }
            report("taken", taken);
            let private = Key::named_in(&args[2], &args[1]);
            report("private", matches!(private, Err(Error::Namespace { .. })));
        }
        "read" => {
            let key = Key::named_in(&args[2], &args[1]).unwrap();
            report("value", SharedCell::<u64>::open(key).unwrap().load());
        }
        other => panic!("unknown role {other}"),
    }
    std::process::exit(0);
}

/// Any local user can make a name unusable for good with eight one-byte
/// segments at its keys, but not in a private namespace: a name's keys
/// there are not known to that user, who cannot read the namespace's
/// secret, so the same name there is made and opened whatever it squatted.
#[test]
fn a_user_who_takes_a_names_keys_cannot_take_them_in_a_private_namespace() {
    if !root_or_skip("acting as another user") {
        return;
    }
    let name = fresh_name("squatted");
    let _names = NameGuard::of(&name);
    let dir = Namespace::new(0o700);
    let mut squatter = Kid::spawn(&["squat", &name, dir.path().to_str().unwrap()]);
    assert_eq!(squatter.expect("taken"), NAME_PROBES.to_string());
    assert_eq!(
        squatter.expect("private"),
        "true",
        "the squatter read the namespace"
    );
    assert!(squatter.wait().success());
    match SharedCell::<u64>::create(Key::named(&name).unwrap(), 1) {
        Err(Error::NameTaken { owners, .. }) => {
            assert_eq!(owners, vec![Some(65534); NAME_PROBES as usize]);
        }
        other => panic!("{:?}", other.map(|c| c.id())),
    }
    let key = Key::named_in(dir.path(), &name).unwrap();
    let cell = SharedCell::<u64>::create(key, 5).unwrap();
    let _g = common::SegGuard(cell.id());
    let mut reader = Kid::spawn(&["read", &name, dir.path().to_str().unwrap()]);
    assert_eq!(reader.expect("value"), "5");
    assert!(reader.wait().success());
}

/// Processes that use a namespace for the first time at once agree on its
/// secret, and so on every name's keys.
#[test]
fn first_users_agree_on_the_secret() {
    let dir = Namespace::new(0o700);
    let name = fresh_name("agree");
    let path = dir.path().to_path_buf();
    let keys: Vec<Vec<i32>> = (0..4)
        .map(|_| {
            let (path, name) = (path.clone(), name.clone());
            std::thread::spawn(move || Key::named_in(&path, &name).unwrap())
        })
        .map(|t| t.join().unwrap().raw())
        .map(|k| vec![k])
        .collect();
    assert!(keys.windows(2).all(|w| w[0] == w[1]), "{keys:?}");
    let secret = std::fs::metadata(dir.path().join(SECRET_FILE)).unwrap();
    assert_eq!(secret.len(), 16);
    assert_eq!(secret.permissions().mode() & 0o777, 0o600);
    assert_ne!(keys[0][0], Key::named(&name).unwrap().raw());
}

/// A namespace other users could write, or whose secret they could read,
/// is refused, with the reason and the remedy.
#[test]
fn a_namespace_others_could_read_or_replace_is_refused() {
    let open = Namespace::new(0o777);
    match Key::named_in(open.path(), "a") {
        Err(e @ Error::Namespace { .. }) => assert!(e.to_string().contains("chmod go-w"), "{e}"),
        other => panic!("{other:?}"),
    }
    let dir = Namespace::new(0o700);
    Key::named_in(dir.path(), "a").unwrap();
    let secret = dir.path().join(SECRET_FILE);
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    match Key::named_in(dir.path(), "a") {
        Err(e @ Error::Namespace { .. }) => assert!(e.to_string().contains("o-rwx"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        Key::named_in(dir.path().join("none"), "a"),
        Err(Error::Namespace { .. })
    ));
}
