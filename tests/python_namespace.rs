//! The Python reader (`python/shmstore_reader/`) finds names in a private
//! namespace (FORMAT.md, "Names in a private namespace") as Rust's
//! `Key::named_in` makes them: its SipHash-2-4 gives the reference vectors,
//! its keys of a name are Rust's and FORMAT.md's, it reads a cell Rust made
//! in a namespace (past another program's segment at the name's first key)
//! from its command line (`--namespace DIR`) and as a package
//! (`ShmObject.named_in`), and it refuses a namespace whose directory others
//! could write or whose secret others could read, as Rust does, and never
//! makes the secret.
//!
//! Each test is skipped, saying why, when `python3` cannot be run.

mod common;

use std::path::Path;
use std::process::Command;

use common::names::{
    NameGuard, Namespace, documented_key, documented_key_in, fresh_name, set_mode, siphash24, squat,
};
use common::python::{PYTHON_PATH, PyRun, Run, py, python_or_skip};
use serde_json::json;
use shmstore::{Error, Key, NAME_PROBES, SharedCell};

type Words = [u64; 4];

/// Run `script` with the package importable as `sr` and `args` as
/// `sys.argv[1:]`; it prints one JSON value.
fn package(script: &str, args: &[&str]) -> Run {
    let mut cmd = Command::new("python3");
    cmd.env("PYTHONPATH", PYTHON_PATH)
        .args([
            "-c",
            &format!("import sys, json, shmstore_reader as sr\n{script}"),
        ])
        .args(args);
    PyRun::start(cmd, format!("python3 -c {script:?}")).finish()
}

/// SipHash-2-4's reference vectors: key 00..0f, message 00..(n - 1).
const VECTORS: [(usize, u64); 5] = [
    (0, 0x726f_db47_dd0e_0e31),
    (1, 0x74f8_39c5_93dc_67fd),
    (8, 0x93f5_f579_9a93_2462),
    (15, 0xa129_ca61_49be_45e5),
    (63, 0x958a_324c_eb06_4572),
];

#[test]
fn siphash_gives_the_reference_vectors() {
    if !python_or_skip("siphash_gives_the_reference_vectors") {
        return;
    }
    let key: [u8; 16] = std::array::from_fn(|i| i as u8);
    let message: Vec<u8> = (0..64).collect();
    for (n, want) in VECTORS {
        assert_eq!(
            siphash24(&key, &message[..n]),
            want,
            "the tests' own, n={n}"
        );
    }
    let got = package(
        "print(json.dumps([sr.siphash24(bytes(range(16)), bytes(range(n))) for n in range(64)]))",
        &[],
    )
    .ok();
    let want: Vec<u64> = (0..64).map(|n| siphash24(&key, &message[..n])).collect();
    assert_eq!(got, json!(want));
    for (n, want) in VECTORS {
        assert_eq!(got[n], want, "n={n}");
    }
}

/// The reader's keys of a name in a namespace are FORMAT.md's (computed
/// here with the tests' own SipHash) and Rust's, for every probe, and none
/// is the name's key outside the namespace.
#[test]
fn derives_a_names_keys_in_a_namespace_as_rust_does() {
    if !python_or_skip("derives_a_names_keys_in_a_namespace_as_rust_does") {
        return;
    }
    let ns = Namespace::new(0o700);
    let secret = ns.secret();
    let long = "n".repeat(128);
    let names = ["acme/config", "a", "caf\u{e9}/\u{1f980}", long.as_str()];
    let args: Vec<&str> = [ns.arg()].into_iter().chain(names).collect();
    let got = package(
        "secret = sr.namespace_secret(sys.argv[1])\n\
         print(json.dumps([[sr.name_keys_in(sys.argv[1], n), \
         [sr.name_key_in(secret, n.encode(), i) for i in range(8)], sr.name_keys(n)] \
         for n in sys.argv[2:]]))",
        &args,
    )
    .ok();
    for (name, got) in names.iter().zip(got.as_array().unwrap()) {
        let documented: Vec<u32> = (0..NAME_PROBES)
            .map(|i| documented_key_in(&secret, name, i) as u32)
            .collect();
        assert_eq!(got[0], json!(documented), "{name}");
        assert_eq!(got[1], json!(documented), "{name}");
        let rust = Key::named_in(ns.path(), name).unwrap().raw() as u32;
        assert_eq!(got[0][0], rust, "{name}");
        assert_eq!(got[2][0], documented_key(name, 0) as u32, "{name}");
        let plain = got[2].as_array().unwrap();
        assert!(documented.iter().all(|k| !plain.contains(&json!(k))));
    }
}

/// A cell Rust made in a namespace, past another program's segment at the
/// name's first key there: the reader's command reads it by name with
/// `--namespace`, also with the directory and the secret shared with a
/// group, and the package with `ShmObject.named_in`; without the namespace
/// the name is not found.
#[test]
fn reads_a_name_in_a_private_namespace() {
    if !python_or_skip("reads_a_name_in_a_private_namespace") {
        return;
    }
    let ns = Namespace::new(0o700);
    let secret = ns.secret();
    let name = fresh_name("py-namespace");
    let _guard = NameGuard::in_namespace(&secret, &name);
    let _plain = NameGuard::of(&name);
    let squatted = squat(documented_key_in(&secret, &name, 0));
    let cell = SharedCell::<Words>::options()
        .remove_on_drop(true)
        .create(Key::named_in(ns.path(), &name).unwrap(), [5, 6, 7, 8])
        .expect("create the cell in the namespace");
    assert_eq!(
        cell.info().unwrap().key.raw(),
        documented_key_in(&secret, &name, 1),
        "past the other program's segment"
    );
    let args = ["cell", &name, "--namespace", ns.arg(), "--struct", "<4Q"];
    let read = py(&args).ok();
    assert_eq!(
        (&read["version"], &read["value"]),
        (&json!(0), &json!([5, 6, 7, 8]))
    );
    let info = py(&["info", &name, "--namespace", ns.arg()]).ok();
    assert_eq!(info["name"], name.as_str());
    assert_eq!(info["segment"]["id"], cell.id());

    cell.store([9, 9, 9, 9]).expect("store");
    set_mode(ns.path(), 0o750);
    set_mode(&ns.secret_path(), 0o640);
    let read = py(&args).ok();
    assert_eq!(
        (&read["version"], &read["value"]),
        (&json!(1), &json!([9, 9, 9, 9]))
    );
    let got = package(
        "with sr.ShmObject.named_in(sys.argv[1], sys.argv[2]) as obj:\n\
         \x20   version, value = obj.read_cell('<4Q')\n\
         print(json.dumps([version, list(value), obj.id]))",
        &[ns.arg(), &name],
    )
    .ok();
    assert_eq!(got, json!([1, [9, 9, 9, 9], cell.id()]));

    let plain = py(&["cell", &name]);
    assert_eq!(plain.error(), "not_found", "{}", plain.stdout);
    drop(squatted);
}

/// Run the reader's command and `name_keys_in` on `name` in the namespace
/// `dir`: both must refuse it (error kind `namespace`) saying `why`, as
/// Rust does.
fn refused(dir: &Path, name: &str, why: &str) {
    let arg = dir.to_str().unwrap();
    let run = py(&["cell", name, "--namespace", arg]);
    assert_eq!(run.error(), "namespace", "{}", run.stdout);
    assert!(run.stderr.contains(why), "want {why:?}: {}", run.stderr);
    let run = package(
        "try:\n\
         \x20   sr.name_keys_in(sys.argv[1], sys.argv[2])\n\
         except sr.NamespaceRefused as e:\n\
         \x20   print(json.dumps(e.message))",
        &[arg, name],
    );
    let message = run.ok();
    assert!(
        message.as_str().is_some_and(|m| m.contains(why)),
        "want {why:?}: {message}"
    );
    assert!(
        matches!(Key::named_in(dir, name), Err(Error::Namespace { .. })),
        "Rust refuses it too"
    );
}

/// A directory others could write, a secret others could read (or use at
/// all), a secret of another length: each refused, naming the remedy. A
/// namespace with no secret yet holds no object, and the reader does not
/// make the secret.
#[test]
fn refuses_a_namespace_others_could_write_or_read() {
    if !python_or_skip("refuses_a_namespace_others_could_write_or_read") {
        return;
    }
    let name = "acme/config";
    let ns = Namespace::new(0o700);
    let run = py(&["cell", name, "--namespace", ns.arg()]);
    assert_eq!(run.error(), "not_found", "{}", run.stdout);
    assert!(run.stderr.contains("no secret yet"), "{}", run.stderr);
    assert!(!ns.secret_path().exists(), "the reader made the secret");

    ns.secret();
    set_mode(ns.path(), 0o777);
    refused(ns.path(), name, "chmod go-w");
    set_mode(ns.path(), 0o700);
    for mode in [0o644, 0o601] {
        set_mode(&ns.secret_path(), mode);
        refused(ns.path(), name, "chmod o-rwx");
    }
    set_mode(&ns.secret_path(), 0o600);
    std::fs::write(ns.secret_path(), [7u8; 15]).unwrap();
    refused(ns.path(), name, "has 15 bytes, not 16");
    std::fs::write(ns.secret_path(), [7u8; 17]).unwrap();
    refused(ns.path(), name, "not 16");

    let file = ns.path().join("a-file");
    std::fs::write(&file, [0u8; 16]).unwrap();
    refused(&file, name, "not a directory");
    refused(&ns.path().join("none"), name, "No such file or directory");

    // An id or a key is not a name: the namespace does not apply.
    let ours = SharedCell::<u64>::create(Key::PRIVATE, 3).unwrap();
    let _g = common::SegGuard(ours.id());
    let run = py(&["cell", &ours.id().to_string(), "--namespace", ns.arg()]);
    assert_eq!(run.ok()["version"], json!(0));
}

/// A directory or a secret of another user (not root) is refused, as Rust
/// refuses it: that user could change the secret.
#[test]
fn refuses_a_namespace_of_another_user() {
    if !python_or_skip("refuses_a_namespace_of_another_user")
        || !common::root_or_skip("giving a file to another user")
    {
        return;
    }
    let ns = Namespace::new(0o700);
    ns.secret();
    std::os::unix::fs::chown(ns.secret_path(), Some(65534), None).unwrap();
    refused(ns.path(), "a", "belongs to uid 65534");
    std::os::unix::fs::chown(ns.secret_path(), Some(0), None).unwrap();
    std::os::unix::fs::chown(ns.path(), Some(65534), None).unwrap();
    refused(ns.path(), "a", "belongs to uid 65534");
}
