//! `Key`: raw values, `IPC_PRIVATE` and `ftok` against glibc's.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;

use shmstore::{Error, Key};

fn glibc_ftok(path: &std::path::Path, proj_id: u8) -> i32 {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    unsafe { libc::ftok(c.as_ptr(), i32::from(proj_id)) }
}

#[test]
fn ftok_equals_glibc() {
    let dir = std::env::temp_dir().join(format!("shmstore-ftok-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut paths = vec![
        dir.clone(),
        "/".into(),
        "/tmp".into(),
        std::env::current_exe().unwrap(),
    ];
    for i in 0..20 {
        let p = dir.join(format!("f{i}"));
        std::fs::write(&p, b"x").unwrap();
        paths.push(p);
    }
    for path in &paths {
        for proj in [1u8, b'A', 0x7f, 0x80, 0xff] {
            let ours = Key::ftok(path, proj).unwrap();
            assert_eq!(
                ours.raw(),
                glibc_ftok(path, proj),
                "{} {proj}",
                path.display()
            );
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn ftok_of_missing_path_fails_like_glibc() {
    let path = std::path::Path::new("/nonexistent/shmstore/path");
    assert_eq!(glibc_ftok(path, b'A'), -1);
    assert_eq!(
        std::io::Error::last_os_error().raw_os_error(),
        Some(libc::ENOENT)
    );
    match Key::ftok(path, b'A') {
        Err(Error::KeyPath { path: p, source }) => {
            assert_eq!(p, path);
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected KeyPath, got {other:?}"),
    }
}

#[test]
fn new_rejects_ipc_private() {
    assert!(matches!(Key::new(0), Err(Error::InvalidKey { raw: 0, .. })));
    assert_eq!(Key::new(-5).unwrap().raw(), -5);
    assert!(Key::PRIVATE.is_private());
    assert_eq!(Key::PRIVATE.raw(), libc::IPC_PRIVATE);
}
