//! The System V segment layer, across real processes.

mod common;

use std::os::unix::process::ExitStatusExt;

use common::{
    Live, SegGuard, child, child_args, drop_to_nobody, report, report_of, reports, unique_key,
};
use shmstore::{Error, Key, Segment, SegmentOptions};

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
        // Under an address-space limit too small for a 1 GiB segment, create
        // one at each key in turn, exclusively and not, then a private one;
        // report each outcome and whether the segment was left behind.
        "create_unmappable" => {
            let size = UNMAPPABLE_SIZE;
            if let Some(reason) = cannot_create(size) {
                report("skip", reason);
                std::process::exit(0);
            }
            limit_address_space(256 << 20);
            let keys = [common::key_arg(&args, 1), common::key_arg(&args, 2)];
            for (name, value) in failing_creates(keys, size, |o| {
                o.no_reserve(true);
            }) {
                report(&name, value);
            }
        }
        // As uid 65534, create segments of mode 0o000: each create gives
        // its creator an attachment, and another attach is refused.
        "nobody_create_mode_000" => {
            drop_to_nobody();
            let keys = [common::key_arg(&args, 1), common::key_arg(&args, 2)];
            for (name, key, exclusive) in [
                ("exclusive", keys[0], true),
                ("create", keys[1], false),
                ("private", Key::PRIVATE, false),
            ] {
                let seg = Segment::options()
                    .size(MODE_000_SIZE)
                    .create(true)
                    .exclusive(exclusive)
                    .mode(0o000)
                    .open(key)
                    .unwrap();
                // (IPC_STAT needs read permission: the kernel's list tells.)
                let listed = shmstore::list_segments().unwrap();
                let mode = listed.iter().find(|s| s.id == seg.id()).unwrap().mode;
                report(&format!("{name}_mode"), mode);
                match Segment::options().attach_id(seg.id()) {
                    Ok(_) => report(&format!("{name}_again"), "attached"),
                    Err(e) => report(&format!("{name}_again"), e),
                }
                seg.remove().unwrap();
            }
        }
        // As uid 65534, open-or-create a key where root's 0o600 segment is.
        "nobody_open_or_create" => {
            drop_to_nobody();
            let key = Key::new(num(1)).unwrap();
            match Segment::options().size(4096).create(true).open(key) {
                Ok(seg) => report("id", seg.id()),
                Err(e) => report("error", e),
            }
        }
        other => panic!("unknown role {other}"),
    }
    std::process::exit(0);
}

/// A size that the kernel's segment limits allow but that `create_unmappable`
/// keeps out of the child's address space.
const UNMAPPABLE_SIZE: usize = 1 << 30;

/// An odd size, to tell this test's private segments from the others'.
const MODE_000_SIZE: usize = 12_345;

/// Why a segment of `size` bytes cannot be created here, if it cannot.
fn cannot_create(size: usize) -> Option<String> {
    let proc_u64 = |path: &str| -> u64 {
        std::fs::read_to_string(path)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let shmmax = proc_u64("/proc/sys/kernel/shmmax");
    // SAFETY: sysconf takes an integer and touches no memory of ours.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
    let shmall_bytes = proc_u64("/proc/sys/kernel/shmall").saturating_mul(page);
    if (size as u64) > shmmax {
        Some(format!("shmmax is {shmmax}, below {size}"))
    } else if (size as u64) > shmall_bytes {
        Some(format!("shmall allows {shmall_bytes} bytes, below {size}"))
    } else {
        None
    }
}

/// Lower this process's address-space limit (`RLIMIT_AS`, `ulimit -v`) to
/// what it uses now plus `headroom` bytes.
fn limit_address_space(headroom: u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let used_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmSize:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .expect("VmSize in /proc/self/status");
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `rl` is a valid rlimit for getrlimit to fill.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut rl) }, 0);
    rl.rlim_cur = (used_kb * 1024 + headroom).min(rl.rlim_max);
    // SAFETY: `rl` is a valid rlimit; lowering the soft limit is always allowed.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &rl) }, 0);
}

/// Create a segment of `size` bytes, set up by `configure`, at `keys[0]`
/// exclusively, at `keys[1]` not exclusively, and at `Key::PRIVATE`.
/// Returns reports: `NAME_id` if the create succeeded (the segment is left,
/// detached); else `NAME_error` (its text), `NAME_errno` (its OS error, or
/// -1) and `NAME_left` (how many segments it left behind).
fn failing_creates(
    keys: [Key; 2],
    size: usize,
    configure: impl Fn(&mut SegmentOptions),
) -> Vec<(String, String)> {
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    for (name, key, exclusive) in [
        ("exclusive", keys[0], true),
        ("create", keys[1], false),
        ("private", Key::PRIVATE, false),
    ] {
        let mut opts = Segment::options();
        opts.size(size).create(true).exclusive(exclusive);
        configure(&mut opts);
        match opts.open(key) {
            Ok(seg) => out.push((format!("{name}_id"), seg.id().to_string())),
            Err(e) => {
                let errno = std::error::Error::source(&e)
                    .and_then(|s| s.downcast_ref::<std::io::Error>())
                    .and_then(std::io::Error::raw_os_error)
                    .unwrap_or(-1);
                out.push((format!("{name}_error"), e.to_string()));
                out.push((format!("{name}_errno"), errno.to_string()));
                let left = leftovers(key, size, me).len();
                out.push((format!("{name}_left"), left.to_string()));
            }
        }
    }
    out
}

/// The segments at `key`, or for `Key::PRIVATE` the private ones of `size`
/// bytes that process `cpid` created.
fn leftovers(key: Key, size: usize, cpid: i32) -> Vec<shmstore::SegmentInfo> {
    shmstore::list_segments()
        .unwrap()
        .into_iter()
        .filter(|s| {
            if key.is_private() {
                s.key.is_private() && s.cpid == cpid && s.size == size
            } else {
                s.key == key
            }
        })
        .collect()
}

/// Guards for every segment that process `pid` created.
fn guard_created_by(pid: u32) -> Vec<SegGuard> {
    shmstore::list_segments()
        .unwrap()
        .into_iter()
        .filter(|s| s.cpid == pid as i32)
        .map(|s| SegGuard(s.id))
        .collect()
}

/// Run `child(args)` to the end; guard whatever segments it created.
fn run_child(args: &[&str]) -> (std::process::Output, Vec<SegGuard>) {
    let proc = child(args).spawn().unwrap();
    let pid = proc.id();
    let out = proc.wait_with_output().unwrap();
    (out, guard_created_by(pid))
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
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
    if !common::root_or_skip("opening a segment as uid 65534") {
        return;
    }
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
    if !common::root_or_skip("creating a segment as uid 65534") {
        return;
    }
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
    if !common::root_or_skip("giving a segment to uid 65534") {
        return;
    }
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
        // Without CAP_IPC_LOCK (or the hugetlb group) the kernel refuses
        // before it looks for pages.
        Err(err @ Error::PermissionDenied { .. }) if !common::is_root() => {
            assert!(err.to_string().contains("CAP_IPC_LOCK"), "{err}");
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

#[test]
fn create_that_shmat_cannot_map_removes_the_segment_and_says_why() {
    let keys = [unique_key(), unique_key()];
    let (k0, k1) = (keys[0].raw().to_string(), keys[1].raw().to_string());
    let (out, guards) = run_child(&["create_unmappable", &k0, &k1]);
    let got = reports(&out.stdout);
    assert!(out.status.success(), "{:?} {got:?}", out.status);
    if let Some(reason) = report_of(&out.stdout, "skip") {
        eprintln!("skipped: a {UNMAPPABLE_SIZE}-byte segment cannot be created here: {reason}");
        return;
    }
    for name in ["exclusive", "create", "private"] {
        let value = |what: &str| report_of(&out.stdout, &format!("{name}_{what}"));
        let error = value("error").unwrap_or_else(|| panic!("{name}: no error: {got:?}"));
        assert_eq!(
            value("errno").as_deref(),
            Some(libc::ENOMEM.to_string().as_str()),
            "{name}: {error}"
        );
        assert!(
            error.contains("shmat")
                && error.contains("address space")
                && error.contains(&UNMAPPABLE_SIZE.to_string())
                && !error.contains("could not allocate"),
            "{name}: the error does not say that shmat could not map the segment: {error}"
        );
        assert_eq!(
            value("left").as_deref(),
            Some("0"),
            "{name}: the segment this call created was left behind"
        );
    }
    assert_eq!(guards.len(), 0, "the child left segments behind");
}

#[test]
fn create_of_unmappable_size_leaves_no_segment() {
    for no_reserve in [false, true] {
        let key = unique_key();
        let result = Segment::options()
            .size(1 << 50)
            .create(true)
            .no_reserve(no_reserve)
            .open(key);
        match result {
            Ok(seg) => {
                let _g = SegGuard(seg.id());
                eprintln!("skipped: this system maps a segment of 1 PiB");
            }
            Err(err) => {
                let left = leftovers(key, 0, 0);
                let _g: Vec<SegGuard> = left.iter().map(|s| SegGuard(s.id)).collect();
                assert!(
                    left.is_empty(),
                    "no_reserve {no_reserve}: the failed create ({err}) left the segment behind"
                );
            }
        }
    }
}

#[test]
fn create_of_mode_000_gives_the_creator_its_attachment() {
    // The creator attaches what it made whatever the mode asked for (it
    // creates with its own read and write, attaches, then sets the mode),
    // so a create never fails, and never leaves a segment behind, for the
    // mode; other processes get the mode.
    let seg = Segment::options()
        .size(MODE_000_SIZE)
        .create(true)
        .mode(0o000)
        .open(unique_key())
        .unwrap();
    let _g = SegGuard(seg.id());
    // (IPC_STAT needs read permission, which the mode denies to all but
    // root: the kernel's list tells.)
    let listed = shmstore::list_segments().unwrap();
    assert_eq!(
        listed.iter().find(|s| s.id == seg.id()).unwrap().mode,
        0o000
    );
    seg.write_at(0, b"mine").unwrap();
    if !is_root() {
        eprintln!("skipped: the ordinary user's side needs root to become one");
        return;
    }
    let keys = [unique_key(), unique_key()];
    let (k0, k1) = (keys[0].raw().to_string(), keys[1].raw().to_string());
    let (out, guards) = run_child(&["nobody_create_mode_000", &k0, &k1]);
    let got = reports(&out.stdout);
    assert!(out.status.success(), "{:?} {got:?}", out.status);
    let value = |name: &str| got.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    for name in ["exclusive", "create", "private"] {
        assert_eq!(value(&format!("{name}_mode")), Some("0"), "{name}: {got:?}");
        let again = value(&format!("{name}_again")).unwrap_or_default();
        assert!(
            again.contains("refused"),
            "{name}: a second attach of mode 0o000: {again}"
        );
    }
    assert_eq!(guards.len(), 0, "uid 65534 left segments behind: {got:?}");
}

#[test]
fn failed_open_of_an_existing_segment_keeps_it() {
    let key = unique_key();
    let (seg, _g) = create(key, 4096);
    // SAFETY: geteuid and getegid have no preconditions and cannot fail.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    // Give the segment away (its creator may still stat and remove it).
    let other = if uid == 65534 { 65533 } else { 65534 };
    seg.set_owner(other, other).unwrap();
    let err = Segment::options()
        .size(4096)
        .create(true)
        .open(key)
        .unwrap_err();
    assert!(matches!(err, Error::ForeignOwner { .. }), "{err}");
    let info = seg.info().unwrap();
    assert!(!info.marked_for_removal, "a segment found was removed");
    assert_eq!(info.key, key);

    if !is_root() {
        eprintln!("skipped the part as uid 65534: not root");
        return;
    }
    seg.set_owner(uid, gid).unwrap();
    let out = child(&["nobody_open_or_create", &key.raw().to_string()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let got = reports(&out.stdout);
    assert!(
        report_of(&out.stdout, "error").is_some_and(|e| e.contains("refused")),
        "{got:?}"
    );
    let info = seg.info().unwrap();
    assert!(
        !info.marked_for_removal,
        "another user's failed open removed the segment: {got:?}"
    );
    assert_eq!(info.key, key);
}

#[test]
fn racing_creators_share_one_segment() {
    for _ in 0..20 {
        let key = unique_key();
        let barrier = std::sync::Barrier::new(4);
        let ids: Vec<Result<i32, String>> = std::thread::scope(|s| {
            let threads: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        Segment::options()
                            .size(4096)
                            .create(true)
                            .open(key)
                            .map(|seg| seg.id())
                            .map_err(|e| e.to_string())
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        let _guards: Vec<SegGuard> = leftovers(key, 0, 0)
            .iter()
            .map(|s| SegGuard(s.id))
            .collect();
        let first = ids[0].clone().unwrap();
        assert!(ids.iter().all(|id| id == &Ok(first)), "{ids:?}");
    }
}

#[test]
fn attach_id_refuses_options_only_a_create_uses() {
    let (seg, _g) = create(Key::PRIVATE, 4096);
    let id = seg.id();
    let refused: [(&str, SegmentOptions); 5] = [
        ("create", Segment::options().create(true).clone()),
        ("exclusive", Segment::options().exclusive(true).clone()),
        ("mode", Segment::options().mode(0o644).clone()),
        ("huge_pages", Segment::options().huge_pages(true).clone()),
        ("no_reserve", Segment::options().no_reserve(true).clone()),
    ];
    for (option, options) in refused {
        match options.attach_id(id) {
            Err(Error::InvalidOptions { reason }) => assert!(reason.contains(option), "{reason}"),
            other => panic!("{option}: {:?}", other.map(|s| s.id())),
        }
    }
    let ro = Segment::options()
        .read_only(true)
        .size(4096)
        .attach_id(id)
        .unwrap();
    assert!(ro.is_read_only());
}
