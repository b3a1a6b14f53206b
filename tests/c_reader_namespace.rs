//! C programs built on `include/shmstore.h` find names in a private
//! namespace (FORMAT.md, "Names in a private namespace") as Rust's
//! `Key::named_in` makes them: the header's SipHash-2-4 gives the reference
//! vectors, its keys of a name are Rust's and FORMAT.md's, it opens a cell
//! Rust made in a namespace (past another program's segment at the name's
//! first key), and it refuses a namespace whose directory others could
//! write or whose secret others could read, as Rust does, and never makes
//! the secret. Compiled with gcc (a test that finds no gcc says so and
//! passes).

mod common;

use std::path::Path;

use common::names::{
    NameGuard, Namespace, documented_key, documented_key_in, fresh_name, set_mode, siphash24, squat,
};
use common::programs::{Programs, compile, read_cell, run, stdout_of};
use shmstore::{Error, Key, NAME_PROBES, SharedCell};

type Words = [u64; 4];

/// SipHash-2-4's reference vectors: key 00..0f, message 00..(n - 1).
const VECTORS: [(usize, u64); 5] = [
    (0, 0x726f_db47_dd0e_0e31),
    (1, 0x74f8_39c5_93dc_67fd),
    (8, 0x93f5_f579_9a93_2462),
    (15, 0xa129_ca61_49be_45e5),
    (63, 0x958a_324c_eb06_4572),
];

#[test]
fn the_header_computes_siphash_as_its_reference_vectors_say() {
    let key: [u8; 16] = std::array::from_fn(|i| i as u8);
    let message: Vec<u8> = (0..64).collect();
    for (n, want) in VECTORS {
        assert_eq!(
            siphash24(&key, &message[..n]),
            want,
            "the tests' own, n={n}"
        );
    }
    let Some(programs) = compile("siphash", &["siphash"]) else {
        return;
    };
    let out = stdout_of("siphash", run(&programs, "siphash", &[]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 64, "{out}");
    for (n, line) in lines.iter().enumerate() {
        let want = format!("{n} {:#018x}", siphash24(&key, &message[..n]));
        assert_eq!(*line, want);
    }
    for (n, want) in VECTORS {
        assert_eq!(lines[n], format!("{n} {want:#018x}"));
    }
}

/// The keys `name_keys` prints for `name` (in the namespace `dir`, if
/// given).
fn c_keys(programs: &Programs, dir: Option<&str>, name: &str) -> Vec<i32> {
    let mut args: Vec<&str> = dir.map_or(vec![], |d| vec!["--namespace", d]);
    args.push(name);
    let out = stdout_of("name_keys", run(programs, "name_keys", &args));
    out.lines()
        .map(|l| u32::from_str_radix(l.trim_start_matches("0x"), 16).unwrap() as i32)
        .collect()
}

/// The header's keys of a name in a namespace are FORMAT.md's (computed
/// here with the tests' own SipHash) and Rust's, for every probe, and none
/// is the name's key outside the namespace.
#[test]
fn the_header_derives_a_names_keys_in_a_namespace_as_rust_does() {
    let Some(programs) = compile("namespace-keys", &["name_keys"]) else {
        return;
    };
    let ns = Namespace::new(0o700);
    let secret = ns.secret();
    let long = "n".repeat(128);
    for name in ["acme/config", "a", "caf\u{e9}/\u{1f980}", long.as_str()] {
        let keys = c_keys(&programs, Some(ns.arg()), name);
        let documented: Vec<i32> = (0..NAME_PROBES)
            .map(|i| documented_key_in(&secret, name, i))
            .collect();
        assert_eq!(keys, documented, "{name}");
        assert_eq!(keys[0], Key::named_in(ns.path(), name).unwrap().raw());
        let plain = c_keys(&programs, None, name);
        assert_eq!(plain[0], documented_key(name, 0));
        assert!(keys.iter().all(|k| !plain.contains(k)), "{name}");
        assert!(keys.iter().all(|&k| k < 0), "top bit set: {keys:x?}");
    }
}

/// A cell Rust made in a namespace, past another program's segment at the
/// name's first key there: the C reader opens it by name in the namespace,
/// also with the directory and the secret shared with a group; without the
/// namespace the name is not found.
#[test]
fn the_c_reader_opens_a_name_in_a_private_namespace() {
    let Some(programs) = compile("namespace-open", &["read_cell"]) else {
        return;
    };
    let ns = Namespace::new(0o700);
    let secret = ns.secret();
    let name = fresh_name("c-namespace");
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
    let target = ["--namespace", ns.arg(), "--name", &name];
    let reads = read_cell(&programs, &target, 1);
    assert_eq!((reads[0].version, reads[0].words), (0, [5, 6, 7, 8]));
    cell.store([9, 9, 9, 9]).expect("store");

    set_mode(ns.path(), 0o750);
    set_mode(&ns.secret_path(), 0o640);
    let reads = read_cell(&programs, &target, 1);
    assert_eq!((reads[0].version, reads[0].words), (1, [9, 9, 9, 9]));

    let out = run(&programs, "read_cell", &["--name", &name]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no object has this name"),
        "{out:?}"
    );
    drop(squatted);
}

/// Run `read_cell` and `name_keys` on `name` in the namespace `dir`: both
/// must refuse it (exit status 3) saying `why`, as Rust does.
fn refused(programs: &Programs, dir: &Path, name: &str, why: &str) {
    let arg = dir.to_str().unwrap();
    for (program, args) in [
        ("read_cell", vec!["--namespace", arg, "--name", name]),
        ("name_keys", vec!["--namespace", arg, name]),
    ] {
        let out = run(programs, program, &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{program}: {out:?}");
        assert!(stderr.contains(why), "{program}: want {why:?}: {stderr}");
    }
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
fn the_c_reader_refuses_a_namespace_others_could_write_or_read() {
    let Some(programs) = compile("namespace-refused", &["read_cell", "name_keys"]) else {
        return;
    };
    let name = "acme/config";
    let ns = Namespace::new(0o700);
    for (program, args) in [
        ("read_cell", vec!["--namespace", ns.arg(), "--name", name]),
        ("name_keys", vec!["--namespace", ns.arg(), name]),
    ] {
        let out = run(&programs, program, &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{program}: {out:?}");
        assert!(stderr.contains("no secret yet"), "{program}: {stderr}");
    }
    assert!(!ns.secret_path().exists(), "a reader made the secret");

    ns.secret();
    set_mode(ns.path(), 0o777);
    refused(&programs, ns.path(), name, "chmod go-w");
    set_mode(ns.path(), 0o700);
    for mode in [0o644, 0o601] {
        set_mode(&ns.secret_path(), mode);
        refused(&programs, ns.path(), name, "chmod o-rwx");
    }
    set_mode(&ns.secret_path(), 0o600);
    std::fs::write(ns.secret_path(), [7u8; 15]).unwrap();
    refused(&programs, ns.path(), name, "not 16 bytes (found 15)");
    std::fs::write(ns.secret_path(), [7u8; 17]).unwrap();
    refused(&programs, ns.path(), name, "not 16 bytes");

    let file = ns.path().join("a-file");
    std::fs::write(&file, [0u8; 16]).unwrap();
    refused(&programs, &file, name, "not a directory");
    refused(
        &programs,
        &ns.path().join("none"),
        name,
        "No such file or directory",
    );
}

/// A directory or a secret of another user (not root) is refused, as Rust
/// refuses it: that user could change the secret.
#[test]
fn the_c_reader_refuses_a_namespace_of_another_user() {
    if !common::root_or_skip("giving a file to another user") {
        return;
    }
    let Some(programs) = compile("namespace-owner", &["read_cell", "name_keys"]) else {
        return;
    };
    let ns = Namespace::new(0o700);
    ns.secret();
    std::os::unix::fs::chown(ns.secret_path(), Some(65534), None).unwrap();
    refused(&programs, ns.path(), "a", "belongs to another user");
    std::os::unix::fs::chown(ns.secret_path(), Some(0), None).unwrap();
    std::os::unix::fs::chown(ns.path(), Some(65534), None).unwrap();
    refused(&programs, ns.path(), "a", "belongs to another user");
}
