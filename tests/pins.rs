//! A region's pin slots across threads and processes: a killed reader's
//! pin is reclaimed, and readers that die in any way never use the slots
//! up; nested guards and many threads share the slots, which go back when
//! threads exit or sit idle; a guard kept in a thread-local destructor
//! keeps its value; a process is alive while any of its threads runs, and
//! is told from an earlier one of the same pid by its start time; a peer
//! scribbling on the control block never makes a writer write a pinned
//! buffer.

mod common;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Barrier, Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::values::{Config, Text, Words, describe_read, is_whole, new_region, text_of};
use common::{
    CHILD_WAIT, Kid, Live, SegGuard, child_args, key_arg, read_command, report, unique_key,
};
use shmstore::{Error, Key, RegionRef, Segment, SharedRegion};

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

#[test]
fn child_entry() {
    let Some(args) = child_args() else { return };
    let key = key_arg(&args, 1);
    match args[0].as_str() {
        // Hold as many guards at once as the table gives.
        "hold_all" => {
            let region = SharedRegion::<Words>::open(key).unwrap();
            let mut guards = Vec::new();
            let error = loop {
                match region.read() {
                    Ok(g) => guards.push(g),
                    Err(e) => break e,
                }
                if guards.len() == 128 {
                    break Error::NothingPublished;
                }
            };
            report("held", format!("{} ({error})", guards.len()));
        }
        // Pin the current value and keep it until asked to check it.
        "pin" => {
            let region = SharedRegion::<Words>::open(key).unwrap();
            let guard = region.read().unwrap();
            report("pinned", guard.version.to_native());
            while let Some(line) = read_command() {
                if line == "check" {
                    report("whole", is_whole(&guard));
                }
            }
        }
        "hold_guard" => {
            let r = SharedRegion::<Config>::open(key_arg(&args, 1)).unwrap();
            let g = r.read().unwrap();
            report("holding", g.version());
            std::thread::sleep(Duration::from_secs(60));
        }
        "dying_reader" => dying_reader(key_arg(&args, 1), &args[2]),
        "read_once" => {
            let region = SharedRegion::<Text>::open(key_arg(&args, 1)).unwrap();
            report("read", describe_read(&region));
        }
        "tls_guards" => tls_guards(key_arg(&args, 1), args[2].parse().unwrap()),
        "gc_x" => gc_x(key_arg(&args, 1)),
        "zombie_leader" => zombie_leader(key_arg(&args, 1)),
        other => panic!("unknown role {other}"),
    }
    std::process::exit(0);
}

/// The pin slots this process holds in the region at `key` (claimed, idle
/// or pinning), read from the control block as FORMAT.md lays it out.
fn slots_held(key: Key, pid: u32) -> usize {
    let seg = Segment::options().read_only(true).open(key).unwrap();
    (0..128)
        .filter(|p| {
            let mut w = [0u8; 8];
            seg.read_at(512 + 1088 + 64 * p, &mut w).unwrap();
            u64::from_le_bytes(w) & 0x3f_ffff == u64::from(pid)
        })
        .count()
}

#[test]
fn pin_of_a_killed_reader_is_reclaimed() {
    let key = unique_key();
    let region = SharedRegion::<Config>::options()
        .buffers(2)
        .publish_timeout(Duration::from_millis(300))
        .create(key, 4096)
        .unwrap();
    let _g = SegGuard(region.id());
    region.publish(&Config::of(1)).unwrap();
    let mut holder = Live::spawn(&["hold_guard", &key.raw().to_string()]);
    assert_eq!(holder.expect("holding"), "1");
    // Buffer 0 is pinned by a live reader and buffer 1 becomes current: the
    // next publish has no free buffer and names the reader.
    region.publish(&Config::of(2)).unwrap();
    match region.publish(&Config::of(3)) {
        Err(Error::ReadersBusy { pids, .. }) => assert_eq!(pids, vec![holder.child.id() as i32]),
        other => panic!("expected ReadersBusy, got {other:?}"),
    }
    assert_eq!(
        region.read().unwrap().version.to_native(),
        2,
        "the failed publish changed nothing"
    );
    holder.child.kill().unwrap();
    holder.child.wait().unwrap();
    assert_eq!(region.publish(&Config::of(3)).unwrap(), 3);
    assert!(is_whole(&region.read().unwrap()));
}

#[test]
fn nested_guards_and_many_threads_share_the_pin_slots() {
    let (region, key, _g) = new_region(4096);
    region.publish(&Config::of(1)).unwrap();
    // Two guards at once in one thread: the second gets a slot of its own.
    let a = region.read().unwrap();
    let b = region.read().unwrap();
    assert!(is_whole(&a) && is_whole(&b));
    drop((a, b));
    // Far more threads than pin slots, one after another: each exiting
    // thread gives its slot back to the handle.
    for _ in 0..300 {
        std::thread::scope(|s| {
            s.spawn(|| assert!(is_whole(&region.read().unwrap())));
        });
    }
    // Many threads at once, each holding a guard while another publishes.
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                for _ in 0..200 {
                    assert!(is_whole(&region.read().unwrap()));
                }
            });
        }
        for v in 2..50 {
            region.publish(&Config::of(v)).unwrap();
        }
    });
    // A dropped handle releases its slots: nothing stays pinned or claimed.
    let other = SharedRegion::<Config>::open(key).unwrap();
    drop(other.read().unwrap());
    drop(other);
    drop(region);
    let seg = Segment::options().open(key).unwrap();
    let d = shmstore::inspect::describe_segment(&seg).unwrap();
    assert_eq!(d.region.unwrap().pins, vec![], "no pins left");
    let mut word = [0u8; 4];
    let mut held = 0;
    for slot in 0..128 {
        // FORMAT.md: the low 22 bits of pins[p].word are the holder's pid.
        seg.read_at(512 + 1088 + 64 * slot, &mut word).unwrap();
        held += u32::from(u32::from_le_bytes(word) & 0x3f_ffff != 0);
    }
    assert_eq!(
        held, 0,
        "pin slots still claimed after every handle dropped"
    );
}

/// Threads that each read once and then sit idle (or exit), more than
/// there are pin slots, never leave other readers, in any process, with
/// `PinsExhausted`: exited threads give their slot back, and idle ones have
/// theirs revoked when another reader needs it.
#[test]
fn idle_and_exited_threads_never_exhaust_the_pins() {
    let key = unique_key();
    let region = Arc::new(SharedRegion::<Words>::create(key, 4096).unwrap());
    let _g = SegGuard(region.id());
    region.publish(&Words::of(1, 64)).unwrap();
    let me = std::process::id();

    // 1000 short-lived threads, one after another.
    for _ in 0..1000 {
        let region = region.clone();
        std::thread::spawn(move || assert!(is_whole(&region.read().unwrap())))
            .join()
            .unwrap();
    }
    assert!(
        slots_held(key, me) <= 1,
        "exited threads kept {} slots",
        slots_held(key, me)
    );

    // 200 threads at once, each reading once and then sitting idle.
    let idle = Arc::new(Barrier::new(201));
    let done = Arc::new(Barrier::new(201));
    let threads: Vec<_> = (0..200)
        .map(|_| {
            let (region, idle, done) = (region.clone(), idle.clone(), done.clone());
            std::thread::spawn(move || {
                let first = region.read().map(|g| is_whole(&g));
                idle.wait();
                done.wait();
                // Woken again: its slot may have been revoked meanwhile.
                let again = region.read().map(|g| is_whole(&g));
                (first.ok(), again.ok())
            })
        })
        .collect();
    idle.wait();
    let mut other = Kid::spawn(&["hold_all", &key.raw().to_string()]);
    let held = other.expect("held");
    assert!(other.wait().success());
    done.wait();
    let reads: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(
        held.starts_with("128 "),
        "another process, with idle threads here: {held}"
    );
    assert!(
        reads.iter().all(|r| *r == (Some(true), Some(true))),
        "threads of this process: {:?}",
        reads
            .iter()
            .filter(|r| **r != (Some(true), Some(true)))
            .count()
    );
    assert!(
        slots_held(key, me) <= 1,
        "{} slots kept",
        slots_held(key, me)
    );
    let mut again = Kid::spawn(&["hold_all", &key.raw().to_string()]);
    assert!(again.expect("held").starts_with("128 "));
}

/// A peer that zeroes `pin_high` (and the rest of the control block's
/// first line) never makes an honest writer overwrite a pinned, validated
/// buffer under a live guard: writers scan every slot, so the pinned
/// buffer is left alone (with two buffers, the second publish waits for it
/// and reports the pinning reader) and the guard's value stays whole.
#[test]
fn a_scribbled_control_block_never_moves_a_guard() {
    let key = unique_key();
    let region = SharedRegion::<Words>::options()
        .buffers(2)
        .publish_timeout(Duration::from_millis(200))
        .create(key, 4096)
        .unwrap();
    let _g = SegGuard(region.id());
    region.publish(&Words::of(1, 512)).unwrap();
    let mut reader = Kid::spawn(&["pin", &key.raw().to_string()]);
    assert_eq!(reader.expect("pinned"), "1");
    // A buggy peer zeroes the word after `current` (format 4's pin_high),
    // and every reserved byte of the control block's first line.
    let seg = Segment::options().open(key).unwrap();
    seg.write_at(512 + 8, &[0u8; 56]).unwrap();
    region.publish(&Words::of(2, 512)).unwrap();
    match region.publish(&Words::of(3, 512)) {
        Err(Error::ReadersBusy { pids, .. }) => {
            assert_eq!(pids, vec![reader.pid()]);
        }
        other => panic!("the pinned buffer was written: {other:?}"),
    }
    reader.send("check");
    assert_eq!(reader.expect("whole"), "true");
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
