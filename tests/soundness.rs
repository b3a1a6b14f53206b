//! Regression tests for soundness bugs: pin slots of dead readers, guards
//! copied into a forked child, guards and reads in thread-local destructors,
//! failed opens that remove what they failed to open, a creator's pid taken
//! by another process, huge timeouts and capacities, zero-size archives.
//!
//! Every check is on behaviour a caller sees (reads succeed, a guard's value
//! stays whole and unchanged, segments stay or go, errors are typed), never
//! on the layout of the pin slots. Multi-process checks run in child
//! processes of this binary, each with a bounded wait: a child that hangs is
//! killed and the test fails.

mod common;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::{CHILD_WAIT, Kid, SPAWNING, SegGuard, child_args, key_arg, report, unique_key};
use shmstore::{Error, Key, RegionRef, Segment, SharedCell, SharedRegion};

/// A value whose every archive has the same layout (the text has the same
/// length for every version below 10^8), so a guard whose buffer is
/// overwritten by another version reads other bytes at the same places
/// instead of following pointers out of its buffer.
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

/// What an archived `Text` says: its version field and its text.
fn text_of(t: &ArchivedText) -> (u64, String) {
    (t.version.to_native(), t.text.as_str().to_owned())
}

/// Whether an archived `Text` is whole: its text agrees with its version.
fn is_whole(t: &ArchivedText) -> bool {
    t.version.to_native() < 100_000_000 && t.text.as_str() == Text::of(t.version.to_native()).text
}

#[test]
fn child_entry() {
    let Some(args) = child_args() else { return };
    match args[0].as_str() {
        "dying_reader" => dying_reader(key_arg(&args, 1), &args[2]),
        "read_once" => {
            let region = SharedRegion::<Text>::open(key_arg(&args, 1)).unwrap();
            report("read", describe_read(&region));
        }
        "fork_with_guard" => fork_with_guard(key_arg(&args, 1), &args[2]),
        "tls_guards" => tls_guards(key_arg(&args, 1), args[2].parse().unwrap()),
        // Create a segment at the key, start a header, and die before READY.
        // The size is what a SharedCell<[u64; 2]> of 4 slots needs
        // (FORMAT.md: 512 + 4 * 16), so that open_or_create takes it for
        // its own.
        "die_initialising" => {
            let seg = Segment::options()
                .size(576)
                .create(true)
                .exclusive(true)
                .open(key_arg(&args, 1))
                .unwrap();
            report("id", seg.id());
            seg.write_at(16, &1u32.to_le_bytes()).unwrap(); // FORMAT.md: state = INITIALIZING
            seg.write_at(0, b"shmstore").unwrap(); // FORMAT.md: magic
            // SAFETY: raising SIGKILL on ourselves has no memory effects.
            unsafe { libc::raise(libc::SIGKILL) };
        }
        // Live, doing nothing, until stdin closes.
        "squat" => {
            report("squatting", std::process::id());
            let _ = common::read_command();
        }
        "wait_huge" => wait_huge(key_arg(&args, 1), &args[2], &args[3]),
        other => panic!("unknown role {other}"),
    }
    std::process::exit(0);
}

/// `read()` of `region`, as `ok` or the error (or what is wrong with the value).
fn describe_read(region: &SharedRegion<Text>) -> String {
    match region.read() {
        Ok(g) if is_whole(&g) && g.version.to_native() == g.version() => "ok".into(),
        Ok(g) => format!(
            "a broken value at version {}: {:?}",
            g.version(),
            text_of(&g)
        ),
        Err(e) => format!("{e} ({e:?})"),
    }
}

// ---------------------------------------------------------------------------
// Pin slots of dead readers.

/// How each dying reader ends after its read, in turn: `exit` is
/// `process::exit` (no destructor runs), `abort` is `process::abort`, `kill`
/// is SIGKILL from the test; `dropped` means the guard was dropped first
/// (the handle never is), `holding` that the guard is alive too.
const DEATHS: [&str; 9] = [
    "exit_dropped",
    "kill_dropped",
    "exit_dropped",
    "kill_dropped",
    "abort_dropped",
    "exit_dropped",
    "kill_dropped",
    "exit_holding",
    "kill_holding",
];

/// Child role: read the region and end as `how` says (see [`DEATHS`]),
/// never dropping the handle. Reports `read` (`ok` or the error) just before
/// it ends or waits to be killed.
fn dying_reader(key: Key, how: &str) {
    let region = SharedRegion::<Text>::open(key).unwrap();
    let guard = match region.read() {
        Ok(g) if is_whole(&g) => g,
        Ok(g) => {
            report("read", format!("a broken value: {:?}", text_of(&g)));
            std::process::exit(0);
        }
        Err(e) => {
            report("read", format!("{e} ({e:?})"));
            std::process::exit(0);
        }
    };
    let (end, keep) = how.split_once('_').expect("END_GUARD");
    if keep == "dropped" {
        drop(guard);
        report("read", "ok");
    } else {
        report("read", "ok");
        std::mem::forget(guard);
    }
    match end {
        "exit" => std::process::exit(0),
        "abort" => {
            let none = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: a plain system call on this process's limits, so the
            // abort leaves no core file behind.
            unsafe { libc::setrlimit(libc::RLIMIT_CORE, &none) };
            std::process::abort();
        }
        "kill" => std::thread::sleep(Duration::from_secs(120)),
        other => panic!("unknown end {other}"),
    }
    std::process::exit(0);
}

/// Far more than the 128 pin slots of reader processes read a region and
/// die without dropping their handle: by `process::exit`, `abort` or
/// SIGKILL, after dropping their guard or while holding it. Every one of
/// them, then a fresh handle here, a fresh process and the creator's handle
/// can still read, and `publish` still works.
#[test]
fn pins_of_dead_readers_do_not_run_out() {
    const READERS: usize = 180;
    const AT_ONCE: usize = 12;
    let key = unique_key();
    let region = SharedRegion::<Text>::create(key, 4096).unwrap();
    let _g = SegGuard(region.id());
    region.publish(&Text::of(1)).unwrap();
    let raw = key.raw().to_string();

    let plan: Vec<(usize, &str)> = (0..READERS)
        .map(|n| (n, DEATHS[n % DEATHS.len()]))
        .collect();
    let mut failed = Vec::new();
    for batch in plan.chunks(AT_ONCE) {
        let mut kids: Vec<(usize, &str, Kid)> = batch
            .iter()
            .map(|&(n, how)| (n, how, Kid::spawn(&["dying_reader", &raw, how])))
            .collect();
        let reads: Vec<String> = kids.iter_mut().map(|(_, _, k)| k.expect("read")).collect();
        for ((n, how, mut kid), read) in kids.into_iter().zip(reads) {
            if read != "ok" {
                failed.push(format!("reader {n} ({how}): {read}"));
                kid.wait();
                continue;
            }
            let status = if how.starts_with("kill") {
                kid.kill()
            } else {
                kid.wait()
            };
            let as_planned = match how.split_once('_').unwrap().0 {
                "exit" => status.code() == Some(0),
                "abort" => status.signal() == Some(libc::SIGABRT),
                _ => status.signal() == Some(libc::SIGKILL),
            };
            assert!(as_planned, "reader {n} ({how}) ended by {status}");
        }
    }

    let fresh = SharedRegion::<Text>::open(key).unwrap();
    let fresh_read = describe_read(&fresh);
    let creator_read = describe_read(&region);
    let mut kid = Kid::spawn(&["read_once", &raw]);
    let child_read = kid.expect("read");
    assert!(kid.wait().success());
    let published = region.publish(&Text::of(2));
    let after = describe_read(&fresh);
    assert!(
        failed.is_empty()
            && fresh_read == "ok"
            && creator_read == "ok"
            && child_read == "ok"
            && published.is_ok()
            && after == "ok",
        "after {READERS} reader processes died holding their handles: {} of them could not \
         read (first: {:?}); a fresh handle here read {fresh_read:?}, the creator's handle \
         {creator_read:?}, a fresh process {child_read:?}; publish gave {published:?}, and \
         the read after it {after:?}",
        failed.len(),
        failed.first(),
    );
}

// ---------------------------------------------------------------------------
// fork.

/// The number of threads of this process.
fn thread_count() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:").map(|n| n.trim().to_owned()))
        })
        .unwrap_or_else(|| "?".into())
}

fn describe_publish(published: shmstore::Result<u64>) -> String {
    match published {
        Ok(v) => format!("Ok({v})"),
        Err(Error::ReadersBusy { .. }) => "ReadersBusy".into(),
        Err(e) => format!("Err({e:?})"),
    }
}

/// Child role (P): publish version 1, take a guard of it, fork; the
/// grandchild does `what` with its copies of the handle and the guard and
/// `_exit`s; then P publishes versions 2 and 3 and reports what its guard
/// shows. With 2 buffers and version 1 pinned by P's guard, version 3 has
/// no buffer to go to unless P's pin was lost.
fn fork_with_guard(key: Key, what: &str) {
    let region = SharedRegion::<Text>::opener()
        .publish_timeout(Duration::from_millis(300))
        .open(key)
        .unwrap();
    region.publish(&Text::of(1)).unwrap();
    let guard = region.read().unwrap();
    let seen = text_of(&guard);
    assert!(is_whole(&guard) && seen.0 == 1, "{seen:?}");
    // libtest's main thread waits for this one, holding no lock; this test
    // started no thread of its own.
    report("threads", thread_count());
    // SAFETY: the grandchild runs only this thread: it drops or forgets
    // values (atomic stores, shmdt, free) and pins through its own slot,
    // then _exits without running any destructor or atexit handler.
    // The grandchild runs only this thread: it drops or forgets values
    // (atomic stores, shmdt, free) and pins through its own slot, then
    // _exits without running any destructor or atexit handler.
    // `raw_drop_guard`: the fork system call itself, which runs no
    // pthread_atfork handler (the C library's fork does).
    let pid = if what.starts_with("raw_") {
        // SAFETY: the grandchild only drops the guard (atomic loads and
        // stores, a getpid) and _exits.
        unsafe { libc::syscall(libc::SYS_fork) as libc::pid_t }
    } else {
        // SAFETY: see above.
        unsafe { libc::fork() }
    };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let ok = match what {
            "drop_guard" | "raw_drop_guard" => {
                drop(guard);
                true
            }
            // The guard stays alive (it is never dropped: _exit).
            "own_read" => region.read().is_ok_and(|g| is_whole(&g)),
            "drop_handle" => {
                std::mem::forget(guard);
                drop(region);
                true
            }
            "everything" => {
                let ok = region.read().is_ok_and(|g| is_whole(&g));
                drop(guard);
                drop(region);
                ok
            }
            _ => false,
        };
        // SAFETY: ends the grandchild at once; nothing of the parent's is run.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) }
    }
    let mut status = 0;
    // SAFETY: waits for our own child; status is a valid out pointer.
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(waited, pid, "waitpid: {}", std::io::Error::last_os_error());
    let grandchild = if libc::WIFEXITED(status) {
        format!("exit {}", libc::WEXITSTATUS(status))
    } else {
        format!("signal {}", libc::WTERMSIG(status))
    };
    report("grandchild", grandchild);
    report("v2", describe_publish(region.publish(&Text::of(2))));
    report("v3", describe_publish(region.publish(&Text::of(3))));
    let now = text_of(&guard);
    report("guard_then", format!("{seen:?}"));
    report("guard_now", format!("{now:?}"));
    drop(guard);
    // With the guard gone, version 3 has a buffer.
    let v = region.version();
    report("after", describe_publish(region.publish(&Text::of(v + 1))));
}

/// A process holding a guard forks; whatever the child does with its
/// copies of the handle and the guard (drop the guard, read through the
/// handle, drop the handle, all of it), the parent's guard keeps its
/// buffer: with 2 buffers, publishing twice more either fails with
/// `ReadersBusy` or leaves the guard's value as it was.
#[test]
fn a_forked_child_does_not_unpin_the_parents_guard() {
    let mut failures = Vec::new();
    for what in [
        "drop_guard",
        "raw_drop_guard",
        "own_read",
        "drop_handle",
        "everything",
    ] {
        let key = unique_key();
        let region = SharedRegion::<Text>::options()
            .buffers(2)
            .create(key, 4096)
            .unwrap();
        let _g = SegGuard(region.id());
        let mut p = Kid::spawn(&["fork_with_guard", &key.raw().to_string(), what]);
        let threads = p.expect("threads");
        let grandchild = p.expect("grandchild");
        let v2 = p.expect("v2");
        let v3 = p.expect("v3");
        let then = p.expect("guard_then");
        let now = p.expect("guard_now");
        let after = p.expect("after");
        let status = p.wait();
        eprintln!(
            "{what}: P had {threads} threads at the fork; grandchild {grandchild}; \
             v2 {v2}, v3 {v3}; guard {then} -> {now}; then {after}"
        );
        assert!(status.success(), "{what}: P ended by {status}");
        assert_eq!(grandchild, "exit 0", "{what}: the grandchild failed");
        assert_eq!(v2, "Ok(2)", "{what}: publish of version 2");
        if now != then || !(v3 == "Ok(3)" || v3 == "ReadersBusy") || !after.starts_with("Ok(") {
            failures.push(format!(
                "{what}: P's guard of version 1 showed {then} before the fork and {now} after \
                 the grandchild ended and versions 2 and 3 were published (publish of 3: {v3}; \
                 the publish after dropping the guard: {after})"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------
// Guards and reads in thread-local destructors.

static TLS_REGION: OnceLock<SharedRegion<Text>> = OnceLock::new();
/// Guards checked, reads that failed, guards whose value changed.
static TLS_CHECKED: AtomicU64 = AtomicU64::new(0);
static TLS_FAILED: AtomicU64 = AtomicU64::new(0);
static TLS_CHANGED: AtomicU64 = AtomicU64::new(0);
/// Reads made in thread-local destructors.
static TLS_EXIT_READS: AtomicU64 = AtomicU64::new(0);
static TLS_FIRST_PROBLEM: Mutex<Option<String>> = Mutex::new(None);
/// Changed guards, by where they were taken.
static TLS_CHANGED_BY: Mutex<BTreeMap<&str, u64>> = Mutex::new(BTreeMap::new());
/// Set to end a round: the destructor's reads and the other readers stop.
static TLS_ROUND_OVER: AtomicBool = AtomicBool::new(false);

fn tls_region() -> &'static SharedRegion<Text> {
    TLS_REGION.get().expect("the region is opened first")
}

fn tls_problem(what: String) {
    let mut first = TLS_FIRST_PROBLEM.lock().unwrap();
    if first.is_none() {
        *first = Some(what);
    }
}

/// A cheap xorshift, per thread, for hold times.
fn tls_random() -> u64 {
    thread_local!(static STATE: Cell<u64> = const { Cell::new(0) });
    STATE
        .try_with(|s| {
            let mut x = s.get();
            if x == 0 {
                x = std::process::id() as u64 ^ (s as *const _ as u64) | 1;
            }
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            s.set(x);
            x
        })
        .unwrap_or(12345)
}

/// Busy-wait about `micros` microseconds.
fn hold_for(micros: u64) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_micros(micros) {
        std::hint::spin_loop();
    }
}

/// Check that a guard still shows what it showed when taken.
fn tls_check(guard: &RegionRef<'_, Text>, seen: &(u64, String), context: &'static str) {
    TLS_CHECKED.fetch_add(1, Ordering::Relaxed);
    let now = text_of(guard);
    let whole = is_whole(guard);
    if now != *seen || !whole || seen.0 != guard.version() {
        TLS_CHANGED.fetch_add(1, Ordering::Relaxed);
        *TLS_CHANGED_BY.lock().unwrap().entry(context).or_default() += 1;
        tls_problem(format!(
            "{context}: a guard of version {} showed {seen:?}, then {now:?}{}",
            guard.version(),
            if whole { "" } else { ", then a torn value" },
        ));
    }
}

/// Take a guard, hold it up to `max_hold` µs, and check it did not change.
fn tls_read_and_hold(max_hold: u64, context: &'static str) {
    match tls_region().read() {
        Ok(guard) => {
            let seen = text_of(&guard);
            hold_for(tls_random() % (max_hold + 1));
            tls_check(&guard, &seen, context);
        }
        Err(e) => {
            TLS_FAILED.fetch_add(1, Ordering::Relaxed);
            tls_problem(format!("{context}: read failed: {e}"));
        }
    }
}

/// A guard and what it showed when taken.
type Held = (RegionRef<'static, Text>, (u64, String));

/// A thread-local value whose destructor runs after the crate's own
/// thread-locals of the same thread were destroyed (it is registered
/// before them, and destructors run in the reverse order). It holds a
/// guard taken while the thread lived, and reads again when destroyed.
struct AtExit {
    held: RefCell<Option<Held>>,
    exiting: RefCell<Option<Sender<()>>>,
}

impl Drop for AtExit {
    fn drop(&mut self) {
        let held = self.held.borrow_mut().take();
        if let Some(tx) = self.exiting.borrow_mut().take() {
            let _ = tx.send(());
        }
        if let Some((guard, seen)) = held {
            // Other threads start reading meanwhile; the writer publishes.
            hold_for(2000);
            tls_check(&guard, &seen, "the guard a thread kept in a thread-local");
        }
        while !TLS_ROUND_OVER.load(Ordering::Relaxed) {
            TLS_EXIT_READS.fetch_add(1, Ordering::Relaxed);
            tls_read_and_hold(40, "a read in a thread-local destructor");
        }
    }
}

thread_local! {
    static AT_EXIT: AtExit = const {
        AtExit {
            held: RefCell::new(None),
            exiting: RefCell::new(None),
        }
    };
}

/// Child role: `rounds` times, a thread keeps a guard in a thread-local
/// whose destructor runs after the crate's thread-locals are gone; the
/// destructor checks the guard, then reads in a loop, while fresh threads
/// (which the exiting thread's pin slot is handed to) read and a writer
/// publishes into 2 buffers. Reports the guards checked, failed reads and
/// changed guards.
fn tls_guards(key: Key, rounds: u32) {
    TLS_REGION
        .set(SharedRegion::open(key).unwrap())
        .ok()
        .expect("set once");
    let stop = Arc::new(AtomicBool::new(false));
    let published = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, published) = (stop.clone(), published.clone());
        std::thread::spawn(move || {
            let w = SharedRegion::<Text>::opener()
                .publish_timeout(Duration::ZERO)
                .open(key)
                .unwrap();
            let mut v = w.version();
            while !stop.load(Ordering::Relaxed) {
                match w.publish(&Text::of(v + 1)) {
                    Ok(n) => {
                        v = n;
                        published.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(Error::ReadersBusy { .. }) => std::thread::yield_now(),
                    Err(e) => panic!("publish: {e}"),
                }
            }
        })
    };
    for _ in 0..rounds {
        TLS_ROUND_OVER.store(false, Ordering::SeqCst);
        let (tx, exiting) = mpsc::channel();
        let t = std::thread::spawn(move || {
            // First touch registers AtExit's destructor before the crate's.
            AT_EXIT.with(|a| *a.exiting.borrow_mut() = Some(tx));
            let guard = tls_region().read().unwrap();
            let seen = text_of(&guard);
            AT_EXIT.with(|a| *a.held.borrow_mut() = Some((guard, seen)));
        });
        exiting
            .recv_timeout(CHILD_WAIT)
            .expect("the thread's destructor runs");
        // Fresh threads: the first read of each is lent a slot, the exiting
        // thread's among them.
        let start_reads = TLS_EXIT_READS.load(Ordering::Relaxed);
        let start_published = published.load(Ordering::Relaxed);
        let readers: Vec<_> = (0..2)
            .map(|_| {
                std::thread::spawn(|| {
                    let mut n = 0u64;
                    while !TLS_ROUND_OVER.load(Ordering::Relaxed) {
                        tls_read_and_hold(2, "a read in another thread");
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        // Until the destructor read many times across many publishes, or
        // for at most 1 s (a writer starved by the readers' pins is fine).
        let deadline = Instant::now() + Duration::from_secs(1);
        while (TLS_EXIT_READS.load(Ordering::Relaxed) - start_reads < 10_000
            || published.load(Ordering::Relaxed) - start_published < 200)
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        TLS_ROUND_OVER.store(true, Ordering::SeqCst);
        t.join().expect("the exiting thread");
        for r in readers {
            r.join().expect("a reader thread");
        }
    }
    stop.store(true, Ordering::SeqCst);
    writer.join().expect("the writer");
    report("checked", TLS_CHECKED.load(Ordering::SeqCst));
    report("exit_reads", TLS_EXIT_READS.load(Ordering::SeqCst));
    report("published", published.load(Ordering::SeqCst));
    report("failed", TLS_FAILED.load(Ordering::SeqCst));
    report("changed", TLS_CHANGED.load(Ordering::SeqCst));
    report(
        "changed_by",
        format!("{:?}", TLS_CHANGED_BY.lock().unwrap()),
    );
    report(
        "first_problem",
        TLS_FIRST_PROBLEM
            .lock()
            .unwrap()
            .clone()
            .unwrap_or_else(|| "none".into()),
    );
}

/// A thread keeps a guard (of a region in a `static`) in a thread-local
/// whose destructor runs after the crate's own thread-locals were
/// destroyed, and reads again from that destructor, while other threads
/// read and a writer publishes into 2 buffers: every guard keeps the value
/// it showed when taken, and every read succeeds.
#[test]
fn guards_in_thread_local_destructors_keep_their_value() {
    let key = unique_key();
    let region = SharedRegion::<Text>::options()
        .buffers(2)
        .create(key, 4096)
        .unwrap();
    let _g = SegGuard(region.id());
    region.publish(&Text::of(1)).unwrap();
    let mut kid = Kid::spawn(&["tls_guards", &key.raw().to_string(), "6"]);
    let checked: u64 = kid.expect("checked").parse().unwrap();
    let exit_reads = kid.expect("exit_reads");
    let published = kid.expect("published");
    let failed = kid.expect("failed");
    let changed = kid.expect("changed");
    let changed_by = kid.expect("changed_by");
    let first = kid.expect("first_problem");
    let status = kid.wait();
    eprintln!(
        "{checked} guards checked ({exit_reads} reads in destructors), {published} versions \
         published, {failed} failed reads, {changed} changed guards"
    );
    assert!(status.success(), "the child ended by {status}");
    assert!(
        failed == "0" && changed == "0",
        "{failed} reads failed and {changed} of {checked} guards changed under their \
         holder ({changed_by}); the first: {first}"
    );
    assert!(checked > 0);
}

// ---------------------------------------------------------------------------
// A failed open with remove_on_drop.

/// What sits at the key before the failed open.
#[derive(Clone, Copy, Debug)]
enum Occupant {
    /// A `SharedCell<u64>` holding 5.
    Cell,
    /// A `SharedRegion<Text>` holding version 1.
    Region,
    /// A plain segment of 4096 zero bytes.
    Zeros,
    /// A plain segment of 4096 bytes of noise.
    Noise,
    /// A plain segment of 100 bytes, too small for a header.
    Small,
}

fn noise(len: usize) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

/// Put `occupant` at a fresh key; returns the key, the segment's id and a
/// handle that keeps the segment attached (so a removal shows as
/// `marked_for_removal`), and the guard that removes it.
fn occupy(occupant: Occupant) -> (Key, i32, Box<dyn std::any::Any>, SegGuard) {
    let key = unique_key();
    let (id, keep): (i32, Box<dyn std::any::Any>) = match occupant {
        Occupant::Cell => {
            let cell = SharedCell::<u64>::create(key, 5).unwrap();
            (cell.id(), Box::new(cell))
        }
        Occupant::Region => {
            let region = SharedRegion::<Text>::create(key, 4096).unwrap();
            region.publish(&Text::of(1)).unwrap();
            (region.id(), Box::new(region))
        }
        Occupant::Zeros | Occupant::Noise | Occupant::Small => {
            let size = if matches!(occupant, Occupant::Small) {
                100
            } else {
                4096
            };
            let seg = Segment::options()
                .size(size)
                .create(true)
                .exclusive(true)
                .open(key)
                .unwrap();
            if matches!(occupant, Occupant::Noise) {
                seg.write_at(0, &noise(size)).unwrap();
            }
            (seg.id(), Box::new(seg))
        }
    };
    let guard = SegGuard(id);
    (key, id, keep, guard)
}

/// What is wrong with the occupant after the failed open, if anything.
fn occupant_damage(occupant: Occupant, key: Key, id: i32) -> Option<String> {
    match Segment::info_by_id(id) {
        Ok(info) if info.marked_for_removal => {
            return Some(format!("segment {id} is marked for removal"));
        }
        Ok(_) => {}
        Err(e) => return Some(format!("segment {id} is gone: {e}")),
    }
    match Segment::options().open(key) {
        Ok(seg) if seg.id() == id => {}
        Ok(seg) => return Some(format!("the key now names segment {}", seg.id())),
        Err(e) => return Some(format!("the key no longer finds it: {e}")),
    }
    match occupant {
        Occupant::Cell => match SharedCell::<u64>::open(key).map(|c| c.load()) {
            Ok(5) => None,
            other => Some(format!("the cell now opens as {other:?}")),
        },
        Occupant::Region => {
            let region = SharedRegion::<Text>::open(key);
            match region.as_ref().map(describe_read) {
                Ok(read) if read == "ok" => None,
                Ok(read) => Some(format!("the region now reads {read}")),
                Err(e) => Some(format!("the region now opens as {e:?}")),
            }
        }
        Occupant::Zeros | Occupant::Noise | Occupant::Small => {
            let seg = Segment::attach_id(id).unwrap();
            let mut bytes = vec![0; seg.len()];
            seg.read_at(0, &mut bytes).unwrap();
            let want = if matches!(occupant, Occupant::Noise) {
                noise(bytes.len())
            } else {
                vec![0; bytes.len()]
            };
            (bytes != want).then(|| "its bytes changed".to_owned())
        }
    }
}

type Attempt = fn(Key, i32) -> Option<Error>;

/// Opens that must fail, each with remove_on_drop (which only read-write
/// builders have); `None` if it opened.
fn failing_opens() -> Vec<(&'static str, Attempt)> {
    vec![
        ("SharedCell::<u32> open", |key, _| {
            SharedCell::<u32>::opener()
                .remove_on_drop(true)
                .init_timeout(Duration::from_millis(100))
                .open(key)
                .err()
        }),
        ("SharedCell::<u32> open_or_create", |key, _| {
            SharedCell::<u32>::options()
                .remove_on_drop(true)
                .init_timeout(Duration::from_millis(100))
                .open_or_create(key, 0)
                .err()
        }),
        ("SharedCell::<u32> open by id", |_, id| {
            SharedCell::<u32>::opener()
                .remove_on_drop(true)
                .init_timeout(Duration::from_millis(100))
                .open(shmstore::Target::Id(id))
                .err()
        }),
        ("SharedRegion::<String> open", |key, _| {
            SharedRegion::<String>::opener()
                .remove_on_drop(true)
                .init_timeout(Duration::from_millis(100))
                .open(key)
                .err()
        }),
        ("SharedRegion::<String> open_or_create", |key, _| {
            SharedRegion::<String>::options()
                .remove_on_drop(true)
                .init_timeout(Duration::from_millis(100))
                .open_or_create(key, 4096)
                .err()
        }),
        ("SharedRegion::<String> open by id", |_, id| {
            SharedRegion::<String>::opener()
                .remove_on_drop(true)
                .init_timeout(Duration::from_millis(100))
                .open(shmstore::Target::Id(id))
                .err()
        }),
    ]
}

/// An open with `remove_on_drop(true)` that fails (another type at the key,
/// or not a shmstore segment) leaves the segment as it was: not marked for
/// removal, still at its key, its contents unchanged.
#[test]
fn a_failed_open_with_remove_on_drop_leaves_the_segment() {
    let mut damage = Vec::new();
    for occupant in [
        Occupant::Cell,
        Occupant::Region,
        Occupant::Zeros,
        Occupant::Noise,
        Occupant::Small,
    ] {
        for (what, attempt) in failing_opens() {
            let (key, id, keep, _g) = occupy(occupant);
            let Some(err) = attempt(key, id) else {
                damage.push(format!("{what} on a {occupant:?} segment opened it"));
                continue;
            };
            if let Some(wrong) = occupant_damage(occupant, key, id) {
                damage.push(format!(
                    "{what} on a {occupant:?} segment failed ({err:?}) and {wrong}"
                ));
            }
            drop(keep);
        }
    }
    assert!(damage.is_empty(), "{}", damage.join("\n"));
}

// ---------------------------------------------------------------------------
// A dead creator's pid taken by another process.

const NS_LAST_PID: &str = "/proc/sys/kernel/ns_last_pid";

/// A `squat` child whose pid is `pid`, made by setting the pid namespace's
/// last pid just before spawning; `None` if other processes kept taking it.
fn squat_on_pid(pid: i32) -> Result<Kid, String> {
    for attempt in 0..40 {
        let kid = {
            let _alone = SPAWNING.write().unwrap_or_else(|e| e.into_inner());
            std::fs::write(NS_LAST_PID, (pid - 1).to_string())
                .map_err(|e| format!("cannot write {NS_LAST_PID}: {e}"))?;
            Kid::spawn_unlocked(&["squat"])
        };
        if kid.pid() == pid {
            return Ok(kid);
        }
        drop(kid);
        std::thread::sleep(Duration::from_millis(5 * attempt));
    }
    Err(format!("other processes took pid {pid} 40 times"))
}

/// A creator that died before READY is taken over by `open_or_create` (and
/// reported as dead by `open`) even when its pid now belongs to another,
/// live process. Needs root (to steer pids through `ns_last_pid`); skipped
/// otherwise.
#[test]
fn a_creators_reused_pid_does_not_block_recovery() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: steering the next pid through {NS_LAST_PID} needs root");
        return;
    }
    if let Err(e) = std::fs::OpenOptions::new().write(true).open(NS_LAST_PID) {
        eprintln!("skipped: cannot open {NS_LAST_PID} for writing: {e}");
        return;
    }
    let key = unique_key();
    let mut dying = Kid::spawn(&["die_initialising", &key.raw().to_string()]);
    let id: i32 = dying.expect("id").parse().unwrap();
    let _g = SegGuard(id);
    let status = dying.wait();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status}");
    let info = Segment::info_by_id(id).unwrap();
    let creator = info.cpid;
    assert_eq!(creator, dying.pid());
    // The squatter starts well after the segment was made (its change time
    // has whole seconds), as a reused pid would: the library may tell the
    // two processes apart by when they started.
    if let Some(made) = info.ctime {
        let later = made + Duration::from_secs(3);
        while let Ok(left) = later.duration_since(std::time::SystemTime::now()) {
            std::thread::sleep(left);
        }
    }

    let squatter = match squat_on_pid(creator) {
        Ok(kid) => kid,
        Err(why) => {
            eprintln!("skipped: could not start a process with pid {creator}: {why}");
            return;
        }
    };
    let short = Duration::from_millis(300);
    let opened = SharedCell::<[u64; 2]>::opener()
        .init_timeout(short)
        .open(key)
        .map(|c| c.id());
    let taken = SharedCell::<[u64; 2]>::options()
        .init_timeout(short)
        .open_or_create(key, [1, 2]);
    let _g2 = taken.as_ref().ok().map(|c| SegGuard(c.id()));
    drop(squatter);
    assert!(
        matches!(opened, Err(Error::CreatorDied { id: i, .. }) if i == id),
        "open of a segment whose creator (pid {creator}) died before READY, while pid \
         {creator} belongs to another live process: expected CreatorDied, got {opened:?}"
    );
    match taken {
        Ok(cell) => assert_eq!(cell.load(), [1, 2]),
        Err(e) => panic!(
            "open_or_create did not take over the segment of the dead creator (pid {creator}, \
             now another live process's): {e:?}"
        ),
    }
}

// ---------------------------------------------------------------------------
// Huge timeouts.

/// Child role: open the cell (`SharedCell<u64>`) or region at `key` as
/// `what` says and wait for a change with a huge timeout. Reports
/// `waiting` (the version), then `woke` (the version then, or the error).
fn wait_huge(key: Key, what: &str, timeout: &str) {
    let timeout = match timeout {
        "max" => Duration::MAX,
        "half" => Duration::from_secs(u64::MAX / 2),
        other => panic!("unknown timeout {other}"),
    };
    type Wait = Box<dyn Fn(u64) -> shmstore::Result<u64>>;
    let (since, wait): (u64, Wait) = match what {
        "cell" => {
            let c = SharedCell::<u64>::open(key).unwrap();
            (
                c.version(),
                Box::new(move |s| c.wait_for_change(s, Some(timeout))),
            )
        }
        "cell_ro" => {
            let c = SharedCell::<u64>::open_read_only(key).unwrap();
            (
                c.version(),
                Box::new(move |s| c.wait_for_change(s, Some(timeout))),
            )
        }
        "region" => {
            let r = SharedRegion::<Text>::open(key).unwrap();
            (
                r.version(),
                Box::new(move |s| r.wait_for_change(s, Some(timeout))),
            )
        }
        "region_ro" => {
            let r = SharedRegion::<Text>::open_read_only(key).unwrap();
            (
                r.version(),
                Box::new(move |s| r.wait_for_change(s, Some(timeout))),
            )
        }
        other => panic!("unknown store {other}"),
    };
    report("waiting", since);
    let woke = wait(since);
    report(
        "woke",
        woke.map_or_else(|e| format!("error {e:?}"), |v| v.to_string()),
    );
}

/// `wait_for_change` with a timeout too large for a deadline
/// (`Duration::MAX`) waits without one: it returns the new version once
/// another process writes, about 100 ms later.
#[test]
fn a_huge_timeout_means_no_timeout() {
    enum Store {
        Cell(SharedCell<u64>),
        Region(SharedRegion<Text>),
    }
    let cases = [
        ("cell", "max"),
        ("cell", "half"),
        ("cell_ro", "max"),
        ("region", "max"),
        ("region_ro", "max"),
    ];
    let mut waiting = Vec::new();
    for (what, timeout) in cases {
        let key = unique_key();
        let (store, guard) = if what.starts_with("cell") {
            let c = SharedCell::<u64>::create(key, 0).unwrap();
            let g = SegGuard(c.id());
            (Store::Cell(c), g)
        } else {
            let r = SharedRegion::<Text>::create(key, 4096).unwrap();
            r.publish(&Text::of(1)).unwrap();
            let g = SegGuard(r.id());
            (Store::Region(r), g)
        };
        let mut kid = Kid::spawn(&["wait_huge", &key.raw().to_string(), what, timeout]);
        let since: u64 = kid.expect("waiting").parse().unwrap();
        waiting.push((what, timeout, store, guard, kid, since));
    }
    std::thread::sleep(Duration::from_millis(100));
    let mut failures = Vec::new();
    for (what, timeout, store, _guard, mut kid, since) in waiting {
        match &store {
            Store::Cell(c) => c.store(7).unwrap(),
            Store::Region(r) => {
                r.publish(&Text::of(2)).unwrap();
            }
        }
        let woke = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let woke = kid.expect("woke");
            (woke, kid.wait())
        })) {
            Ok((woke, status)) if status.success() => woke,
            Ok((woke, status)) => format!("{woke}, then the child ended by {status}"),
            Err(panic) => panic
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_else(|| "a panic".into()),
        };
        if woke != (since + 1).to_string() {
            failures.push(format!(
                "{what}.wait_for_change({since}, Some({timeout} duration)): expected {}, got: {woke}",
                since + 1
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------
// Huge capacities.

/// A region capacity too large for a segment is a typed error: no panic,
/// no region with smaller buffers than asked for, nothing left at the key.
#[test]
fn a_huge_region_capacity_is_a_typed_error() {
    let capacities = [
        usize::MAX,
        usize::MAX - 1,
        usize::MAX - 62,
        usize::MAX - 63,
        usize::MAX - 64,
        usize::MAX / 2,
        usize::MAX / 2 + 1,
        usize::MAX / 4 + 1,
    ];
    let mut failures = Vec::new();
    for capacity in capacities {
        for buffers in [2, 4] {
            for how in ["create", "open_or_create"] {
                let key = unique_key();
                let made = std::panic::catch_unwind(|| {
                    let mut options = SharedRegion::<Text>::options();
                    options.buffers(buffers);
                    if how == "create" {
                        options.create(key, capacity)
                    } else {
                        options.open_or_create(key, capacity)
                    }
                });
                let case = format!("{how}(key, {capacity:#x}) with {buffers} buffers");
                match made {
                    Err(panic) => failures.push(format!(
                        "{case} panicked: {}",
                        panic
                            .downcast_ref::<String>()
                            .map(String::as_str)
                            .or_else(|| panic.downcast_ref::<&str>().copied())
                            .unwrap_or("?")
                    )),
                    Ok(Ok(region)) => {
                        let _g = SegGuard(region.id());
                        failures.push(format!(
                            "{case} made a region with buffers of {} bytes",
                            region.capacity()
                        ));
                    }
                    Ok(Err(e)) => eprintln!("{case}: {e:?}"),
                }
                if let Ok(seg) = Segment::options().open(key) {
                    let _g = SegGuard(seg.id());
                    failures.push(format!("{case} left segment {} at the key", seg.id()));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------
// Zero-size archives.

#[derive(rkyv::Archive, rkyv::Serialize)]
struct Empty;

/// Read `region` (a fresh handle of it, and a read-only attachment) after
/// publishing `value` twice; the failures.
fn zero_size_round_trip<T>(name: &str, value: &T) -> Vec<String>
where
    T: rkyv::Archive + shmstore::Publishable + shmstore::Readable,
{
    let key = unique_key();
    let region = SharedRegion::<T>::create(key, 64).unwrap();
    let _g = SegGuard(region.id());
    let mut failures = Vec::new();
    let check = |what: &str, read: shmstore::Result<u64>, want: u64| match read {
        Ok(v) if v == want => None,
        other => Some(format!("{name}: {what} after publish {want}: {other:?}")),
    };
    for want in 1..=2 {
        match region.publish(value) {
            Ok(v) => assert_eq!(v, want),
            Err(e) => {
                failures.push(format!("{name}: publish {want}: {e:?}"));
                continue;
            }
        }
        let other = SharedRegion::<T>::open(key).unwrap();
        let ro = SharedRegion::<T>::open_read_only(key).unwrap();
        failures.extend(
            [
                check("read", region.read().map(|g| g.version()), want),
                check(
                    "read of another handle",
                    other.read().map(|g| g.version()),
                    want,
                ),
                check(
                    "read of a read-only handle",
                    ro.read().map(|g| g.version()),
                    want,
                ),
            ]
            .into_iter()
            .flatten(),
        );
    }
    failures
}

/// A value whose archive is empty (a unit struct, `()`) publishes and
/// reads back, through read-write and read-only handles.
#[test]
fn zero_size_values_read_back() {
    let mut failures = zero_size_round_trip("Empty", &Empty);
    failures.extend(zero_size_round_trip("()", &()));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
