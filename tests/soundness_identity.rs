//! Who a process is and what a handle may touch: a descendant that gets an
//! ancestor's pid back, a process whose main thread exited before the
//! others, a header that changes between two reads of an open, a segment
//! that is not shmstore's at the key, a forked child's copy of a handle,
//! and a zero timeout. Each test asserts what README.md promises.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::{Kid, SegGuard, child_args, key_arg, report, unique_key};
use shmstore::{Error, Key, Segment, SharedCell, SharedRegion};

#[derive(rkyv::Archive, rkyv::Serialize, Debug, Clone, PartialEq)]
struct Text {
    version: u64,
    text: String,
}

impl Text {
    fn of(version: u64) -> Text {
        Text {
            version,
            text: format!("value-{version:08}-{}", "abcdefgh".repeat(4)),
        }
    }
}

fn text_of(t: &ArchivedText) -> (u64, String) {
    (t.version.to_native(), t.text.as_str().to_owned())
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

#[test]
fn child_entry() {
    let Some(args) = child_args() else { return };
    match args[0].as_str() {
        "gc_x" => gc_x(key_arg(&args, 1)),
        "zombie_leader" => zombie_leader(key_arg(&args, 1)),
        "plain_segment" => {
            let seg = Segment::options()
                .size(8192)
                .create(true)
                .exclusive(true)
                .open(key_arg(&args, 1))
                .unwrap();
            seg.write_at(4096, b"precious data of another program")
                .unwrap();
            report("id", seg.id());
        }
        "fork_remove_on_drop" => fork_remove_on_drop(key_arg(&args, 1)),
        "toctou_reader" => toctou_reader(key_arg(&args, 1)),
        other => panic!("unknown role {other}"),
    }
    std::process::exit(0);
}

// ---------------------------------------------------------------------------
// A descendant that inherits a cache of (pid, start time) and gets its
// ancestor's pid back must claim pins with its own start time, or a
// reclaimer judges it dead while it reads.

/// X: read once (caches own pid + start time), fork Y, exit.
fn gc_x(key: Key) {
    let region = SharedRegion::<Text>::open(key).unwrap();
    drop(region.read().unwrap());
    let x = std::process::id() as i32;
    report("x", x);
    // SAFETY: test scaffolding; Y only uses fs, fork, waitpid and _exit.
    let y = unsafe { libc::fork() };
    assert!(y >= 0);
    if y == 0 {
        gc_y(key, x);
    }
}

/// Y: wait until X is reaped, then fork until a child (Z) gets X's pid.
fn gc_y(key: Key, x: i32) -> ! {
    let start = Instant::now();
    // SAFETY: kill with signal 0 sends nothing.
    while unsafe { libc::kill(x, 0) } == 0 || errno() != libc::ESRCH {
        if start.elapsed() > Duration::from_secs(20) {
            report("z", "x-never-reaped");
            // SAFETY: ends this process.
            unsafe { libc::_exit(2) };
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    // Let the clock move on: Z must start in a later tick than X did.
    std::thread::sleep(Duration::from_millis(200));
    for _ in 0..200 {
        let _ = std::fs::write("/proc/sys/kernel/ns_last_pid", format!("{}", x - 1));
        // SAFETY: test scaffolding.
        let z = unsafe { libc::fork() };
        if z == 0 {
            // SAFETY: getpid has no preconditions.
            if unsafe { libc::getpid() } != x {
                // SAFETY: ends this process.
                unsafe { libc::_exit(3) };
            }
            gc_z(key);
            // SAFETY: ends this process.
            unsafe { libc::_exit(0) };
        }
        let mut status = 0;
        if z == x {
            // SAFETY: our own child.
            unsafe { libc::waitpid(z, &mut status, 0) };
            // SAFETY: ends this process.
            unsafe { libc::_exit(0) };
        }
        // SAFETY: our own child.
        unsafe { libc::waitpid(z, &mut status, 0) };
    }
    report("z", "no-pid-reuse");
    // SAFETY: ends this process.
    unsafe { libc::_exit(4) };
}

/// Z (pid == X's pid): open, hold a guard, and watch it.
fn gc_z(key: Key) {
    let region = SharedRegion::<Text>::open(key).unwrap();
    let g = region.read().unwrap();
    let seen = text_of(&g);
    let me = std::process::id();
    let real = std::fs::read_to_string("/proc/self/stat").unwrap();
    let real: String = real
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .nth(19)
        .unwrap()
        .into();
    let seg = Segment::options().open(key).unwrap();
    let mut pins = Vec::new();
    for p in 0..8 {
        let mut w = [0u8; 16];
        seg.read_at(512 + 1088 + 64 * p, &mut w).unwrap();
        let word = u64::from_le_bytes(w[..8].try_into().unwrap());
        let st = u64::from_le_bytes(w[8..].try_into().unwrap());
        if word & 0x3f_ffff == me as u64 {
            pins.push(format!("slot {p}: start_time {st}"));
        }
    }
    eprintln!("Z: pid {me}, real start time {real}, its pins: {pins:?}");
    report("z", format!("{} {}", me, seen.0));
    let deadline = Instant::now() + Duration::from_secs(10);
    while region.version() < seen.0 + 2 && Instant::now() < deadline {
        let _ = region.wait_for_change(region.version(), Some(Duration::from_millis(100)));
    }
    std::thread::sleep(Duration::from_millis(50));
    report("z_guard", format!("{:?} -> {:?}", seen, text_of(&g)));
}

#[test]
fn a_descendant_with_an_ancestors_pid_keeps_its_pins() {
    if !common::root_or_skip("setting ns_last_pid") {
        return;
    }
    let key = unique_key();
    let region = SharedRegion::<Text>::options()
        .buffers(2)
        .publish_timeout(Duration::from_millis(300))
        .create(key, 4096)
        .unwrap();
    let _g = SegGuard(region.id());
    region.publish(&Text::of(1)).unwrap();
    let mut x = Kid::spawn(&["gc_x", &key.raw().to_string()]);
    let xpid = x.expect("x");
    let status = x.child.wait().unwrap(); // reap X so that its pid is free
    assert!(status.success());
    let z = x.expect("z");
    eprintln!("X was {xpid}; Z reports {z}");
    let Some((zpid, v)) = z.split_once(' ') else {
        eprintln!("skipped: could not get pid {xpid} again ({z})");
        return;
    };
    assert_eq!(zpid, xpid, "Z has X's pid");
    assert_eq!(v, "1");
    let v2 = region.publish(&Text::of(2));
    let v3 = region.publish(&Text::of(3));
    let guard = x.expect("z_guard");
    eprintln!("publish 2: {v2:?}; publish 3: {v3:?}; Z's guard: {guard}");
    assert!(
        matches!(v3, Err(Error::ReadersBusy { .. })),
        "a live reader's pin was reclaimed: publish 3 gave {v3:?}, Z's guard {guard}"
    );
}

// ---------------------------------------------------------------------------
// A process whose main thread has exited shows "Z" in /proc/PID/stat
// while its other threads still run: it is alive.

fn zombie_leader(key: Key) {
    // SAFETY: test scaffolding: L runs one thread, then makes one more.
    let l = unsafe { libc::fork() };
    assert!(l >= 0);
    if l != 0 {
        report("leader", l);
        let mut status = 0;
        // SAFETY: our own child.
        unsafe { libc::waitpid(l, &mut status, 0) };
        report("leader_status", status);
        return;
    }
    // L: its only thread is the thread group leader.
    std::thread::spawn(move || {
        let region = SharedRegion::<Text>::open(key).unwrap();
        let g = region.read().unwrap();
        let seen = text_of(&g);
        std::thread::sleep(Duration::from_millis(100)); // the leader is gone by now
        let state = std::fs::read_to_string("/proc/self/stat").unwrap();
        let state = state
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned();
        report("pinned", format!("{} state={state}", seen.0));
        let deadline = Instant::now() + Duration::from_secs(10);
        while region.version() < seen.0 + 2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(50));
        report("guard", format!("{:?} -> {:?}", seen, text_of(&g)));
        // SAFETY: ends the whole process.
        unsafe { libc::_exit(0) };
    });
    // The leader thread exits alone (SYS_exit, not exit_group), unwinding
    // nothing; the process lives on in the spawned thread.
    // SAFETY: ends this thread only.
    unsafe { libc::syscall(libc::SYS_exit, 0) };
}

#[test]
fn a_process_whose_main_thread_exited_keeps_its_pins() {
    let key = unique_key();
    let region = SharedRegion::<Text>::options()
        .buffers(2)
        .publish_timeout(Duration::from_millis(300))
        .create(key, 4096)
        .unwrap();
    let _g = SegGuard(region.id());
    region.publish(&Text::of(1)).unwrap();
    let mut k = Kid::spawn(&["zombie_leader", &key.raw().to_string()]);
    let leader = k.expect("leader");
    let pinned = k.expect("pinned");
    let v2 = region.publish(&Text::of(2));
    let v3 = region.publish(&Text::of(3));
    let guard = k.expect("guard");
    let _ = k.expect("leader_status");
    eprintln!("L={leader} pinned {pinned}; publish 2 {v2:?}, 3 {v3:?}; guard {guard}");
    assert!(
        matches!(v3, Err(Error::ReadersBusy { .. })),
        "a live reader's pin was reclaimed: publish 3 gave {v3:?}, its guard {guard}"
    );
}

// ---------------------------------------------------------------------------
// A segment that is not shmstore's, whose first bytes are zero and whose
// creator has exited, is another program's: open_or_create leaves it.

#[test]
fn open_or_create_leaves_a_foreign_segment() {
    let key = unique_key();
    let mut k = Kid::spawn(&["plain_segment", &key.raw().to_string()]);
    let id: i32 = k.expect("id").parse().unwrap();
    let _g = SegGuard(id);
    assert!(k.wait().success());
    let cell = SharedCell::<u64>::open_or_create(key, 7);
    let _g2 = cell.as_ref().ok().map(|c| SegGuard(c.id()));
    let old = Segment::info_by_id(id);
    eprintln!(
        "open_or_create: {:?}; the foreign segment {id}: {:?}",
        cell.as_ref().map(|c| c.id()),
        old.as_ref().map(|i| i.size)
    );
    assert!(
        old.is_ok(),
        "open_or_create removed segment {id}, which shmstore never made"
    );
}

// ---------------------------------------------------------------------------
// wait_for_change with a zero (or tiny) timeout looks at the version once.

#[test]
fn a_zero_timeout_sees_a_change() {
    let cell = SharedCell::<u64>::options()
        .remove_on_drop(true)
        .create(Key::PRIVATE, 0)
        .unwrap();
    cell.store(1).unwrap();
    assert_eq!(cell.version(), 1);
    let got = cell.wait_for_change(0, Some(Duration::ZERO)).unwrap();
    let got_1ns = cell
        .wait_for_change(0, Some(Duration::from_nanos(1)))
        .unwrap();
    eprintln!("version 1; wait_for_change(0, 0) = {got}, (0, 1ns) = {got_1ns}");
    assert_eq!(got, 1, "the version had changed already");
}

// ---------------------------------------------------------------------------
// A forked child dropping an inherited remove_on_drop handle removes
// nothing: the handle was armed by its parent.

fn fork_remove_on_drop(key: Key) {
    let cell = SharedCell::<u64>::options()
        .remove_on_drop(true)
        .create(key, 1)
        .unwrap();
    report("id", cell.id());
    // SAFETY: the grandchild drops the handle (shmctl, shmdt) and _exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        drop(cell);
        // SAFETY: ends the grandchild.
        unsafe { libc::_exit(0) };
    }
    let mut status = 0;
    // SAFETY: our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    let reopen = SharedCell::<u64>::open(key).map(|c| c.id());
    report("reopen", format!("{reopen:?}"));
    drop(cell);
}

#[test]
fn a_forked_child_dropping_a_handle_removes_nothing() {
    let key = unique_key();
    let mut k = Kid::spawn(&["fork_remove_on_drop", &key.raw().to_string()]);
    let id: i32 = k.expect("id").parse().unwrap();
    let _g = SegGuard(id);
    let reopen = k.expect("reopen");
    assert!(k.wait().success());
    eprintln!("the parent reopening its own key after its child exited: {reopen}");
    assert!(reopen.starts_with("Ok("), "{reopen}");
}

// ---------------------------------------------------------------------------
// An open checks the layout (value_size <= stride) and the type
// (value_size == size_of::<T>()) on one read of value_size: a peer
// flipping that word between two reads must not make a read-only open keep
// a stride of 8 for a 4096-byte T (load() would read past the mapping).

type Big = [u64; 512];

/// The type fingerprint of FORMAT.md: FNV-1a over kind, name length, name,
/// size, alignment, schema version and extra facts.
fn fingerprint(kind: u32, name: &str, size: u32, align: u32, schema: u32, extra: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    eat(&kind.to_le_bytes());
    eat(&(name.len() as u64).to_le_bytes());
    eat(name.as_bytes());
    eat(&size.to_le_bytes());
    eat(&align.to_le_bytes());
    eat(&schema.to_le_bytes());
    eat(&extra.to_le_bytes());
    h
}

fn toctou_reader(key: Key) {
    let deadline = Instant::now() + Duration::from_secs(4);
    let mut opens = 0u64;
    while Instant::now() < deadline {
        match shmstore::CellReader::<Big>::opener()
            .type_name("Big")
            .open(key)
        {
            Ok(r) => {
                report("opened_after", opens);
                let v = r.load(); // reads 4096 bytes from a slot of 8
                report("loaded", v[0]);
                return;
            }
            Err(_) => opens += 1,
        }
    }
    report("opened_after", format!("never ({opens} tries)"));
}

#[test]
fn an_open_checks_the_type_it_validated() {
    let key = unique_key();
    let cell = SharedCell::<u64>::options()
        .type_name("Big")
        .slots(2)
        .create(key, 0)
        .unwrap();
    let _g = SegGuard(cell.id());
    let seg = Segment::options().open(key).unwrap();
    assert_eq!(seg.len(), 512 + 16);
    seg.write_at(56, &fingerprint(1, "Big", 4096, 8, 0, 0).to_le_bytes())
        .unwrap();
    // A faulty peer flipping value_size (offset 44) between 8 and 4096.
    let stop = Arc::new(AtomicBool::new(false));
    let base = seg.as_ptr() as usize;
    let flipper = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            // SAFETY: offset 44 of the live mapping `seg`, aligned to 4;
            // the main thread keeps `seg` attached until this thread ends.
            let w = unsafe { AtomicU32::from_ptr((base + 44) as *mut u32) };
            while !stop.load(Ordering::Relaxed) {
                w.store(8, Ordering::Relaxed);
                for _ in 0..50 {
                    std::hint::spin_loop();
                }
                w.store(4096, Ordering::Relaxed);
                for _ in 0..50 {
                    std::hint::spin_loop();
                }
            }
        })
    };
    let mut k = Kid::spawn(&["toctou_reader", &key.raw().to_string()]);
    let opened = k.expect("opened_after");
    let status = k.wait();
    stop.store(true, Ordering::Relaxed);
    flipper.join().unwrap();
    eprintln!(
        "read-only open succeeded after {opened} failed tries; the reader ended by {status} (signal {:?})",
        status.signal()
    );
    assert!(
        status.signal().is_none(),
        "a read-only reader crashed ({status}) on a peer's scribble"
    );
}

// ---------------------------------------------------------------------------
// What an open validated it keeps: a peer scribbling on the header's layout
// fields, or on a region's control block, after the open cannot move a
// handle's reads (FORMAT.md: slot_count at 76, data_offset at 80,
// slot_stride at 88, used_len at 96; a region's control block at 512, its
// buffers' lengths at 512 + 64 + 16 * b).

#[test]
fn handles_keep_the_layout_they_validated() {
    let key = unique_key();
    let cell = SharedCell::<[u64; 4]>::create(key, [1, 2, 3, 4]).unwrap();
    let _g = SegGuard(cell.id());
    cell.store([5, 6, 7, 8]).unwrap();
    let reader = SharedCell::<[u64; 4]>::open_read_only(key).unwrap();
    let seg = Segment::options().open(key).unwrap();
    seg.write_at(76, &64u32.to_le_bytes()).unwrap();
    seg.write_at(80, &(1u64 << 40).to_le_bytes()).unwrap();
    seg.write_at(88, &8u64.to_le_bytes()).unwrap();
    seg.write_at(96, &u64::MAX.to_le_bytes()).unwrap();
    assert_eq!(reader.load(), [5, 6, 7, 8]);
    assert_eq!(cell.load(), [5, 6, 7, 8]);
    cell.store([9, 10, 11, 12]).unwrap();
    assert_eq!(reader.load(), [9, 10, 11, 12]);
    assert!(matches!(
        SharedCell::<[u64; 4]>::open(key),
        Err(Error::Corrupt { .. })
    ));
}

#[test]
fn a_region_handle_keeps_the_length_it_validated() {
    let key = unique_key();
    let region = SharedRegion::<Text>::create(key, 4096).unwrap();
    let _g = SegGuard(region.id());
    region.publish(&Text::of(1)).unwrap();
    let reader = SharedRegion::<Text>::open(key).unwrap();
    let seen = text_of(&reader.read().unwrap());
    let seg = Segment::options().open(key).unwrap();
    let mut current = [0u8; 8];
    seg.read_at(512, &mut current).unwrap();
    let buffer = (u64::from_le_bytes(current) & 0xff) as usize;
    for len in [0u64, 1, 24, 4096] {
        seg.write_at(512 + 64 + 16 * buffer, &len.to_le_bytes())
            .unwrap();
        // The same archive, at the length this handle validated.
        assert_eq!(text_of(&reader.read().unwrap()), seen, "len = {len}");
        std::thread::scope(|s| {
            s.spawn(|| assert_eq!(text_of(&reader.read().unwrap()), seen, "len = {len}"));
        });
    }
}
