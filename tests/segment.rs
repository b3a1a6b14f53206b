//! The System V segment layer, across real processes.

mod common;

use std::os::unix::process::ExitStatusExt;

use common::{Live, SegGuard, child, child_args, drop_to_nobody, report, report_of, unique_key};
use shmstore::{Error, Key, Segment};

/// Dispatches the roles a test gives its child processes.
#[test]
fn child_entry() {
    let Some(args) = child_args() else { return };
    let arg = |i: usize| args[i].as_str();
    let num = |i: usize| args[i].parse::<i32>().unwrap();
    match arg(0) {
        // Attach by id read-only, report the first byte, then write: must fault.
        "ro_write" => {
            let seg = Segment::options()
                .read_only(true)
                .attach_id(num(1))
                .unwrap();
            let mut b = [0u8; 1];
            seg.read_at(0, &mut b).unwrap();
            report("read", b[0]);
            assert!(matches!(seg.write_at(0, &[1]), Err(Error::ReadOnly { .. })));
            report("about_to_write", 1);
            // SAFETY: deliberately writes through a read-only mapping so that
            // the kernel kills this child with SIGSEGV.
            unsafe { seg.as_ptr().write_volatile(1) };
            report("wrote", 1);
        }
        // Attach by id, report, detach on command, report, wait for EOF.
        "attach_wait" => {
            let seg = Segment::attach_id(num(1)).unwrap();
            report("attached", std::process::id());
            assert_eq!(common::read_command().as_deref(), Some("detach"));
            seg.detach().unwrap();
            report("detached", std::process::id());
            while common::read_command().is_some() {}
        }
        // Open by key, write a pattern, report, then on command read it back.
        "open_write_wait_read" => {
            let key = Key::new(num(1)).unwrap();
            let seg = Segment::options().open(key).unwrap();
            seg.write_at(0, b"still here").unwrap();
            report("written", seg.id());
            assert_eq!(common::read_command().as_deref(), Some("read"));
            let mut buf = [0u8; 10];
            seg.read_at(0, &mut buf).unwrap();
            report("read", String::from_utf8_lossy(&buf));
            while common::read_command().is_some() {}
        }
        "open_or_create" => {
            let key = Key::new(num(1)).unwrap();
            let seg = Segment::options()
                .size(4096)
                .create(true)
                .open(key)
                .unwrap();
            report("id", seg.id());
            report("cpid", seg.info().unwrap().cpid);
        }
        // As uid 65534, open a key read-only; report the outcome.
        "nobody_read" => {
            drop_to_nobody();
            let key = Key::new(num(1)).unwrap();
            match Segment::options().read_only(true).open(key) {
                Ok(seg) => {
                    let mut buf = [0u8; 4];
                    seg.read_at(0, &mut buf).unwrap();
                    report("ok", String::from_utf8_lossy(&buf));
                }
                Err(Error::PermissionDenied { .. }) => report("denied", 1),
                Err(e) => report("other", e),
            }
        }
        // As uid 65534, create a world-accessible segment at a key; report its id.
        "nobody_create" => {
            drop_to_nobody();
            let key = Key::new(num(1)).unwrap();
            let seg = Segment::options()
                .size(4096)
                .create(true)
                .exclusive(true)
                .mode(0o666)
                .open(key)
                .unwrap();
            report("id", seg.id());
        }
        other => panic!("unknown role {other}"),
    }
    std::process::exit(0);
}

fn create(key: Key, size: usize) -> (Segment, SegGuard) {
    let seg = Segment::options()
        .size(size)
        .create(true)
        .exclusive(true)
        .open(key)
        .unwrap();
    let guard = SegGuard(seg.id());
    (seg, guard)
}

#[test]
fn create_4k_segment() {
    let key = unique_key();
    let (seg, _g) = create(key, 4096);
    assert_eq!(seg.len(), 4096);
    assert_eq!(seg.key(), key);
    let info = seg.info().unwrap();
    assert_eq!(info.size, 4096);
    assert_eq!(info.key, key);
    assert_eq!(info.mode, 0o600);
    assert_eq!(info.nattch, 1);
    assert_eq!(info.cpid, std::process::id() as i32);
    assert!(!info.marked_for_removal);
    // Fresh segments are zero-filled by the kernel.
    let mut buf = [0xffu8; 4096];
    seg.read_at(0, &mut buf).unwrap();
    assert!(buf.iter().all(|&b| b == 0));
    assert!(matches!(
        seg.read_at(4095, &mut [0, 0]),
        Err(Error::OutOfBounds { .. })
    ));
}

#[test]
fn exclusive_create_of_existing_key_fails() {
    let key = unique_key();
    let (_seg, _g) = create(key, 4096);
    let err = Segment::options()
        .size(4096)
        .create(true)
        .exclusive(true)
        .open(key)
        .unwrap_err();
    assert!(
        matches!(err, Error::AlreadyExists { key: k } if k == key),
        "{err}"
    );
    assert!(err.to_string().contains(&key.to_string()));
}

#[test]
fn open_existing_with_size_zero_or_smaller() {
    let key = unique_key();
    let (seg, _g) = create(key, 8192);
    seg.write_at(100, b"x").unwrap();
    for size in [0, 100] {
        let other = Segment::options().size(size).open(key).unwrap();
        assert_eq!(other.id(), seg.id());
        assert_eq!(
            other.len(),
            8192,
            "the kernel's size, not the requested one"
        );
        let mut b = [0u8];
        other.read_at(100, &mut b).unwrap();
        assert_eq!(&b, b"x");
    }
}

#[test]
fn open_larger_than_existing_is_size_mismatch() {
    let key = unique_key();
    let (seg, _g) = create(key, 4096);
    let err = Segment::options().size(8192).open(key).unwrap_err();
    assert!(
        matches!(
            err,
            Error::SizeMismatch {
                requested: 8192,
                actual: 4096
            }
        ),
        "{err}"
    );
    let err = Segment::options()
        .size(4097)
        .attach_id(seg.id())
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::SizeMismatch {
                requested: 4097,
                actual: 4096
            }
        ),
        "{err}"
    );
}

#[test]
fn open_absent_key_is_not_found() {
    let key = unique_key();
    let err = Segment::options().open(key).unwrap_err();
    assert!(
        matches!(err, Error::NotFound { key: k } if k == key),
        "{err}"
    );
    let err = Segment::options().create(true).open(key).unwrap_err();
    assert!(matches!(err, Error::ZeroSize { .. }), "{err}");
}

#[test]
fn open_or_create_across_processes() {
    let key = unique_key();
    let raw = key.raw().to_string();
    let first = child(&["open_or_create", &raw]).output().unwrap();
    assert!(first.status.success());
    let id: i32 = report_of(&first.stdout, "id").unwrap().parse().unwrap();
    let _g = SegGuard(id);
    let cpid: i32 = report_of(&first.stdout, "cpid").unwrap().parse().unwrap();
    let second = child(&["open_or_create", &raw]).output().unwrap();
    assert!(second.status.success());
    assert_eq!(report_of(&second.stdout, "id").unwrap(), id.to_string());
    assert_eq!(report_of(&second.stdout, "cpid").unwrap(), cpid.to_string());
    let here = Segment::options()
        .size(4096)
        .create(true)
        .open(key)
        .unwrap();
    assert_eq!(here.id(), id);
    assert_ne!(
        cpid,
        std::process::id() as i32,
        "created by the first child"
    );
}

#[test]
fn read_only_attach_reads_and_faults_on_write() {
    let (seg, _g) = create(Key::PRIVATE, 4096);
    seg.write_at(0, &[0x5a]).unwrap();
    let out = child(&["ro_write", &seg.id().to_string()])
        .output()
        .unwrap();
    assert_eq!(report_of(&out.stdout, "read").as_deref(), Some("90"));
    assert_eq!(
        report_of(&out.stdout, "about_to_write").as_deref(),
        Some("1")
    );
    assert_eq!(report_of(&out.stdout, "wrote"), None);
    assert_eq!(out.status.signal(), Some(libc::SIGSEGV), "{:?}", out.status);
    let mut b = [0u8];
    seg.read_at(0, &mut b).unwrap();
    assert_eq!(b[0], 0x5a);
}

#[test]
fn nattch_and_pids_follow_other_processes() {
    let (seg, _g) = create(Key::PRIVATE, 4096);
    let me = std::process::id() as i32;
    let id = seg.id().to_string();
    assert_eq!(seg.info().unwrap().nattch, 1);
    let mut a = Live::spawn(&["attach_wait", &id]);
    let a_pid: i32 = a.expect("attached").parse().unwrap();
    let mut b = Live::spawn(&["attach_wait", &id]);
    let b_pid: i32 = b.expect("attached").parse().unwrap();
    let info = seg.info().unwrap();
    assert_eq!(info.nattch, 3);
    assert_eq!(info.cpid, me);
    assert_eq!(info.lpid, b_pid, "the last shmat was b's");
    assert!(info.atime.is_some());

    a.send("detach");
    a.expect("detached");
    let info = seg.info().unwrap();
    assert_eq!(info.nattch, 2);
    assert_eq!(info.lpid, a_pid, "the last shmdt was a's");
    assert!(info.dtime.is_some());

    b.send("detach");
    b.expect("detached");
    let info = seg.info().unwrap();
    assert_eq!(info.nattch, 1);
    assert_eq!(info.lpid, b_pid);
    assert_eq!(info.cpid, me);
    a.finish();
    b.finish();
}

#[test]
fn remove_while_attached_frees_key_keeps_memory() {
    let key = unique_key();
    let (seg, _g) = create(key, 4096);
    let id = seg.id();
    let mut other = Live::spawn(&["open_write_wait_read", &key.raw().to_string()]);
    assert_eq!(other.expect("written"), id.to_string());

    seg.remove().unwrap();
    let info = seg.info().unwrap();
    assert!(info.marked_for_removal);
    assert_eq!(info.nattch, 2);
    assert!(matches!(
        Segment::options().open(key),
        Err(Error::NotFound { .. })
    ));
    // The key is free at once: a new segment can take it.
    let (fresh, _g2) = create(key, 4096);
    assert_ne!(fresh.id(), id);
    drop(fresh);

    // Both attached processes still read the memory.
    let mut buf = [0u8; 10];
    seg.read_at(0, &mut buf).unwrap();
    assert_eq!(&buf, b"still here");
    other.send("read");
    assert_eq!(other.expect("read"), "still here");
    other.finish();
    assert_eq!(seg.info().unwrap().nattch, 1);

    seg.detach().unwrap();
    assert!(matches!(Segment::info_by_id(id), Err(Error::IdNotFound { id: i }) if i == id));
}

#[test]
fn set_mode_is_visible_to_ipcs() {
    let (seg, _g) = create(Key::PRIVATE, 4096);
    let perms = || {
        let out = std::process::Command::new("ipcs")
            .args(["-m", "-i", &seg.id().to_string()])
            .output()
            .expect("ipcs runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.split_whitespace()
            .find_map(|w| w.strip_prefix("access_perms="))
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no access_perms in ipcs output: {text}"))
    };
    assert_eq!(perms(), "0600");
    seg.set_mode(0o644).unwrap();
    assert_eq!(perms(), "0644");
    assert_eq!(seg.info().unwrap().mode, 0o644);
}

#[test]
fn other_user_needs_read_permission() {
    let key = unique_key();
    let (seg, _g) = create(key, 4096);
    seg.write_at(0, b"open").unwrap();
    let raw = key.raw().to_string();
    let out = child(&["nobody_read", &raw]).output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        report_of(&out.stdout, "denied").as_deref(),
        Some("1"),
        "{:?}",
        common::reports(&out.stdout)
    );

    seg.set_mode(0o644).unwrap();
    let out = child(&["nobody_read", &raw]).output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        report_of(&out.stdout, "ok").as_deref(),
        Some("open"),
        "{:?}",
        common::reports(&out.stdout)
    );
}

#[test]
fn foreign_owner_is_refused_by_default() {
    let key = unique_key();
    let out = child(&["nobody_create", &key.raw().to_string()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let id: i32 = report_of(&out.stdout, "id").unwrap().parse().unwrap();
    let _g = SegGuard(id);
    let err = Segment::options().open(key).unwrap_err();
    assert!(
        matches!(
            err,
            Error::ForeignOwner {
                uid: 65534,
                cuid: 65534,
                ..
            }
        ),
        "{err}"
    );
    assert!(matches!(
        Segment::attach_id(id),
        Err(Error::ForeignOwner { .. })
    ));
    let seg = Segment::options()
        .allow_foreign_owner(true)
        .open(key)
        .unwrap();
    assert_eq!(seg.id(), id);
    assert_eq!(seg.info().unwrap().uid, 65534);
}

#[test]
fn set_owner_changes_uid_and_gid() {
    let (seg, _g) = create(Key::PRIVATE, 4096);
    seg.set_owner(65534, 65534).unwrap();
    let info = seg.info().unwrap();
    assert_eq!((info.uid, info.gid), (65534, 65534));
    assert_eq!(info.cuid, 0, "the creator stays");
    assert!(matches!(
        Segment::attach_id(seg.id()),
        Err(Error::ForeignOwner { uid: 65534, .. })
    ));
}

#[test]
fn huge_pages_without_reservation_say_so() {
    let reserved = std::fs::read_to_string("/proc/sys/vm/nr_hugepages")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let result = Segment::options()
        .size(2 << 20)
        .create(true)
        .huge_pages(true)
        .open(Key::PRIVATE);
    match result {
        Ok(seg) => {
            let _g = SegGuard(seg.id());
            assert!(reserved > 0, "huge pages worked with none reserved");
        }
        Err(err) => {
            assert_eq!(reserved, 0, "huge pages failed although reserved: {err}");
            assert!(matches!(err, Error::NoHugePages { .. }), "{err}");
            assert!(err.to_string().contains("nr_hugepages"));
        }
    }
}

#[test]
fn no_reserve_creates() {
    let seg = Segment::options()
        .size(1 << 20)
        .create(true)
        .no_reserve(true)
        .open(Key::PRIVATE)
        .unwrap();
    let _g = SegGuard(seg.id());
    assert_eq!(seg.len(), 1 << 20);
}

#[test]
fn oversized_create_names_shmmax() {
    let max: u64 = std::fs::read_to_string("/proc/sys/kernel/shmmax")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    if max >= usize::MAX as u64 {
        return; // no size can exceed it on this system
    }
    let err = Segment::options()
        .size(max as usize + 1)
        .create(true)
        .open(Key::PRIVATE)
        .unwrap_err();
    assert!(matches!(err, Error::LimitReached { .. }), "{err}");
}
