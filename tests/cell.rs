//! `SharedCell` across real processes: lost updates, torn reads, dead writers,
//! notification, and segments that are not what they claim; and the ring of
//! slots behind it: large values under a writer that never pauses, any slot
//! count, and a `writing` word a peer scribbled on.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use bytemuck::{Pod, Zeroable};
use common::{
    Live, SegGuard, Stamped, check_stamps_under_writer, child, child_args, key_arg,
    load_stamps_until_stopped, report, report_of, store_stamps_until_stopped, unique_key,
};
use shmstore::{DEFAULT_CELL_SLOTS, Error, Key, Segment, SharedCell};

/// A 64-byte value whose words all derive from `seq`: a torn copy shows.
type Pattern = Stamped<7>;

/// Offsets in the header (FORMAT.md).
const SLOT_COUNT_AT: usize = 76;
const DATA_OFFSET_AT: usize = 80;
const SLOT_STRIDE_AT: usize = 88;
const USED_LEN_AT: usize = 96;
const SEQ_AT: usize = 256;
const WRITING_AT: usize = 280;

/// A 4 KiB value whose words all derive from `seq`: a torn copy shows, and
/// copying one takes long enough for a nonstop writer to commit meanwhile.
type Big = Stamped<511>;

#[test]
fn child_entry() {
    let Some(args) = child_args() else { return };
    match args[0].as_str() {
        "increment_id" => {
            let id: i32 = args[1].parse().unwrap();
            let cell = SharedCell::<u64>::opener()
                .open(shmstore::Target::Id(id))
                .unwrap();
            cell.update(|v| *v += 1).unwrap();
            let reader = shmstore::CellReader::<u64>::opener()
                .open(shmstore::Target::Id(id))
                .unwrap();
            report("seen", reader.load());
        }
        "increment" => {
            let cell = SharedCell::<u64>::open(key_arg(&args, 1)).unwrap();
            let n: u64 = args[2].parse().unwrap();
            for _ in 0..n {
                cell.update(|v| *v += 1).unwrap();
            }
        }
        // Store patterns until told to stop.
        "pattern_writer" => store_stamps_until_stopped::<7>(key_arg(&args, 1)),
        // Load until told to stop; report loads and torn values.
        "pattern_reader" => load_stamps_until_stopped::<7>(key_arg(&args, 1), args[2] == "ro"),
        // Take the lock and hold it until killed.
        "hold_lock" => {
            let cell = SharedCell::<Pattern>::open(key_arg(&args, 1)).unwrap();
            cell.update(|v| {
                *v = Pattern::of(999_999);
                report("locked", 1);
                std::thread::sleep(Duration::from_secs(60));
            })
            .unwrap();
        }
        // Increment a sequence forever, each value derived from the last.
        "chain_writer" => {
            let cell = SharedCell::<Pattern>::open(key_arg(&args, 1)).unwrap();
            report("ready", 1);
            loop {
                cell.update(|v| *v = Pattern::of(v.seq + 1)).unwrap();
            }
        }
        "wait" => {
            let cell = SharedCell::<u64>::open(key_arg(&args, 1)).unwrap();
            let timeout_ms: u64 = args[2].parse().unwrap();
            let since = cell.version();
            report("waiting", since);
            let start = Instant::now();
            let now = cell
                .wait_for_change(since, Some(Duration::from_millis(timeout_ms)))
                .unwrap();
            report("woke", now);
            report("elapsed_ms", start.elapsed().as_millis());
            report("value", cell.load());
        }
        "wait_ro" => {
            let cell = SharedCell::<u64>::open_read_only(key_arg(&args, 1)).unwrap();
            let since = cell.version();
            report("waiting", since);
            let now = cell
                .wait_for_change(since, Some(Duration::from_secs(10)))
                .unwrap();
            report("woke", now);
            report("value", cell.load());
        }
        "open_or_create" => {
            let key = key_arg(&args, 1);
            let me = std::process::id() as u64;
            let cell = SharedCell::<[u64; 2]>::open_or_create(key, [me, 7]).unwrap();
            let v = cell.load();
            report("id", cell.id());
            report("initial_pid", v[0]);
            report("cpid", cell.info().unwrap().cpid);
        }
        // Create a segment at the key, start a header, and die before READY.
        // The size is what a SharedCell<u64> of 4 slots needs (FORMAT.md:
        // 512 + 4 * 8), so that open_or_create takes it for its own.
        "die_initialising" => {
            let seg = Segment::options()
                .size(544)
                .create(true)
                .exclusive(true)
                .open(key_arg(&args, 1))
                .unwrap();
            report("id", seg.id());
            seg.write_at(16, &1u32.to_le_bytes()).unwrap(); // state = INITIALIZING
            seg.write_at(0, b"shmstore").unwrap();
            if args[2] == "die" {
                // SAFETY: raising SIGKILL on ourselves has no memory effects.
                unsafe { libc::raise(libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_secs(60));
        }
        // Store 4 KiB values until told to stop.
        "writer" => store_stamps_until_stopped::<511>(key_arg(&args, 1)),
        // Load them until told to stop.
        "reader" => load_stamps_until_stopped::<511>(key_arg(&args, 1), args[2] == "ro"),
        other => panic!("unknown role {other}"),
    }
    std::process::exit(0);
}

fn new_cell<T: Pod>(initial: T) -> (SharedCell<T>, Key, SegGuard) {
    let key = unique_key();
    let cell = SharedCell::create(key, initial).unwrap();
    let guard = SegGuard(cell.id());
    (cell, key, guard)
}

fn header_u64(seg: &Segment, at: usize) -> u64 {
    let mut b = [0u8; 8];
    seg.read_at(at, &mut b).unwrap();
    u64::from_le_bytes(b)
}

#[test]
fn no_lost_update_across_four_processes() {
    let (cell, key, _g) = new_cell(0u64);
    let raw = key.raw().to_string();
    let children: Vec<_> = (0..4)
        .map(|_| child(&["increment", &raw, "10000"]).spawn().unwrap())
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    assert_eq!(cell.load(), 40_000);
    assert_eq!(cell.version(), 40_000);
    assert_eq!(cell.recoveries(), 0);
}

#[test]
fn readers_never_see_torn_values() {
    let (cell, key, _g) = new_cell(Pattern::of(0));
    let raw = key.raw().to_string();
    let stores = check_stamps_under_writer(
        &[
            &["pattern_reader", &raw, "rw"],
            &["pattern_reader", &raw, "ro"],
        ],
        &["pattern_writer", &raw],
        Duration::from_millis(500),
        "64-byte cell",
    );
    assert_eq!(cell.load(), Pattern::of(stores));
}

#[test]
fn writer_killed_holding_lock_is_recovered() {
    let (cell, key, _g) = new_cell(Pattern::of(0));
    cell.store(Pattern::of(41)).unwrap();
    let mut holder = Live::spawn(&["hold_lock", &key.raw().to_string()]);
    holder.expect("locked");
    holder.child.kill().unwrap();
    let status = holder.child.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    // The dead writer's value never reached its commit point.
    assert_eq!(cell.load(), Pattern::of(41));
    assert_eq!(cell.recoveries(), 0);
    cell.store(Pattern::of(42)).unwrap();
    assert_eq!(cell.load(), Pattern::of(42));
    assert_eq!(cell.recoveries(), 1);
    assert_eq!(cell.version(), 2);
    cell.store(Pattern::of(43)).unwrap();
    assert_eq!(cell.recoveries(), 1, "recovered once only");
}

#[test]
fn writers_killed_at_random_moments_lose_nothing() {
    let (cell, key, _g) = new_cell(Pattern::of(0));
    let raw = key.raw().to_string();
    let mut reader = Live::spawn(&["pattern_reader", &raw, "rw"]);
    reader.expect("ready");
    reader.expect("warm");
    // A cheap xorshift, seeded per run, picks the moments.
    let mut rng = std::process::id() as u64 | 1;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for round in 0..200 {
        let mut w = child(&["chain_writer", &raw]).spawn().unwrap();
        // Wait until it runs, then kill it a random number of microseconds later.
        let before = cell.version();
        let start = Instant::now();
        while cell.version() == before && start.elapsed() < Duration::from_secs(10) {
            std::hint::spin_loop();
        }
        std::thread::sleep(Duration::from_micros(next() % 2000));
        w.kill().unwrap();
        assert_eq!(
            w.wait().unwrap().signal(),
            Some(libc::SIGKILL),
            "round {round}"
        );
        let v = cell.load();
        assert!(v.is_whole(), "round {round}: torn {v:?}");
        assert_eq!(
            v.seq,
            cell.version(),
            "round {round}: a commit was lost or doubled"
        );
    }
    reader.send("stop");
    let loads: u64 = reader.expect("loads").parse().unwrap();
    assert_eq!(reader.expect("torn"), "0", "after {loads} loads");
    assert_eq!(reader.expect("backwards"), "0");
    reader.finish();
    let recovered = cell.recoveries();
    // The next write works whatever state the last writer died in.
    let before = cell.load();
    cell.update(|v| *v = Pattern::of(v.seq + 1)).unwrap();
    assert_eq!(cell.load(), Pattern::of(before.seq + 1));
    assert_eq!(cell.version(), before.seq + 1);
    eprintln!(
        "200 writers killed, {recovered} died holding the lock, {} commits",
        before.seq
    );
}

#[test]
fn wait_for_change_wakes_another_process() {
    let (cell, key, _g) = new_cell(0u64);
    let mut waiter = Live::spawn(&["wait", &key.raw().to_string(), "10000"]);
    assert_eq!(waiter.expect("waiting"), "0");
    std::thread::sleep(Duration::from_millis(50));
    cell.store(7).unwrap();
    assert_eq!(waiter.expect("woke"), "1");
    let elapsed: u64 = waiter.expect("elapsed_ms").parse().unwrap();
    assert!(elapsed < 10_000, "woke only at the timeout");
    assert_eq!(waiter.expect("value"), "7");
    waiter.finish();
}

#[test]
fn wait_for_change_times_out_cleanly() {
    let (_cell, key, _g) = new_cell(0u64);
    let out = child(&["wait", &key.raw().to_string(), "150"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(report_of(&out.stdout, "woke").as_deref(), Some("0"));
    let elapsed: u64 = report_of(&out.stdout, "elapsed_ms")
        .unwrap()
        .parse()
        .unwrap();
    assert!(elapsed >= 150, "returned after {elapsed} ms");
}

#[test]
fn read_only_waiter_wakes_too() {
    let (cell, key, _g) = new_cell(0u64);
    let mut waiter = Live::spawn(&["wait_ro", &key.raw().to_string()]);
    waiter.expect("waiting");
    cell.store(3).unwrap();
    assert_eq!(waiter.expect("woke"), "1");
    assert_eq!(waiter.expect("value"), "3");
    waiter.finish();
}

#[test]
fn waiter_killed_while_waiting_breaks_nothing() {
    let (cell, key, _g) = new_cell(0u64);
    let raw = key.raw().to_string();
    let seg = Segment::options().open(key).unwrap();
    // FORMAT.md: bit 0 (WAITING) of the `notify` word at 264.
    let waiters = || {
        let mut b = [0u8; 4];
        seg.read_at(264, &mut b).unwrap();
        u32::from_le_bytes(b) & 1
    };
    let mut doomed = Live::spawn(&["wait", &raw, "60000"]);
    doomed.expect("waiting");
    let start = Instant::now();
    while waiters() == 0 && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(20)); // let it fall asleep
    doomed.child.kill().unwrap();
    doomed.child.wait().unwrap();
    assert_eq!(waiters(), 1, "the dead waiter's announcement stays");
    cell.store(1).unwrap();
    assert_eq!(
        waiters(),
        0,
        "the store cleared the dead waiter's announcement"
    );
    let mut waiter = Live::spawn(&["wait", &raw, "10000"]);
    assert_eq!(waiter.expect("waiting"), "1");
    cell.store(2).unwrap();
    assert_eq!(waiter.expect("woke"), "2");
    waiter.finish();
    assert_eq!(cell.load(), 2);
}

#[test]
fn concurrent_open_or_create_has_one_creator() {
    let key = unique_key();
    let raw = key.raw().to_string();
    let children: Vec<_> = (0..6)
        .map(|_| child(&["open_or_create", &raw]).spawn().unwrap())
        .collect();
    let outs: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let id: i32 = report_of(&outs[0].stdout, "id").unwrap().parse().unwrap();
    let _g = SegGuard(id);
    let creator = report_of(&outs[0].stdout, "cpid").unwrap();
    for out in &outs {
        assert!(out.status.success());
        assert_eq!(report_of(&out.stdout, "id").unwrap(), id.to_string());
        assert_eq!(report_of(&out.stdout, "cpid").unwrap(), creator);
        // Everyone sees the initial value of the one process that created it.
        assert_eq!(report_of(&out.stdout, "initial_pid").unwrap(), creator);
    }
}

#[test]
fn wrong_type_size_or_schema_is_type_mismatch() {
    let (_cell, key, _g) = new_cell(5u64);
    let err = SharedCell::<i64>::open(key).unwrap_err();
    assert!(matches!(err, Error::TypeMismatch { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("u64") && text.contains("i64"), "{text}");
    let err = SharedCell::<[u8; 16]>::open(key).unwrap_err();
    assert!(matches!(err, Error::TypeMismatch { .. }), "{err}");
    let err = SharedCell::<u64>::opener()
        .schema_version(1)
        .open(key)
        .unwrap_err();
    assert!(matches!(err, Error::TypeMismatch { .. }), "{err}");
    let err = SharedCell::<u64>::opener()
        .type_name("acme.Counter")
        .open(key)
        .unwrap_err();
    assert!(matches!(err, Error::TypeMismatch { .. }), "{err}");
    assert_eq!(SharedCell::<u64>::open(key).unwrap().load(), 5);
}

#[test]
fn type_name_override_lets_types_move() {
    let key = unique_key();
    let cell = SharedCell::<u64>::options()
        .type_name("acme.Counter")
        .schema_version(3)
        .create(key, 11)
        .unwrap();
    let _g = SegGuard(cell.id());
    #[derive(Clone, Copy, Pod, Zeroable)]
    #[repr(transparent)]
    struct Counter(u64);
    let other = SharedCell::<Counter>::opener()
        .type_name("acme.Counter")
        .schema_version(3)
        .open(key)
        .unwrap();
    assert_eq!(other.load().0, 11);
}

#[test]
fn foreign_or_truncated_segments_are_typed_errors() {
    // Random bytes at the key.
    let key = unique_key();
    let seg = Segment::options()
        .size(4096)
        .create(true)
        .open(key)
        .unwrap();
    let _g = SegGuard(seg.id());
    let noise: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    seg.write_at(0, &noise).unwrap();
    let err = SharedCell::<u64>::open(key).unwrap_err();
    assert!(matches!(err, Error::NotShmstore { .. }), "{err}");
    assert!(matches!(
        SharedCell::<u64>::open_or_create(key, 0),
        Err(Error::NotShmstore { .. })
    ));

    // Too small for a header.
    let small_key = unique_key();
    let small = Segment::options()
        .size(100)
        .create(true)
        .open(small_key)
        .unwrap();
    let _g2 = SegGuard(small.id());
    let err = SharedCell::<u64>::open(small_key).unwrap_err();
    assert!(matches!(err, Error::NotShmstore { .. }), "{err}");

    // A real header whose slots lie beyond the segment's end.
    let (_cell, cell_key, _g3) = new_cell(Pattern::of(1));
    let full = Segment::options().open(cell_key).unwrap();
    let mut header = vec![0u8; 512];
    full.read_at(0, &mut header).unwrap();
    let cut_key = unique_key();
    let cut = Segment::options()
        .size(520)
        .create(true)
        .open(cut_key)
        .unwrap();
    let _g4 = SegGuard(cut.id());
    cut.write_at(0, &header).unwrap();
    let err = SharedCell::<Pattern>::open(cut_key).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");

    // Another format version.
    full.write_at(8, &9u32.to_le_bytes()).unwrap();
    let err = SharedCell::<Pattern>::open(cell_key).unwrap_err();
    assert!(
        matches!(
            err,
            Error::IncompatibleFormat {
                found: 9,
                supported: shmstore::FORMAT_VERSION
            }
        ),
        "{err}"
    );
}

#[test]
fn creator_dead_before_ready_does_not_hang_openers() {
    let key = unique_key();
    let raw = key.raw().to_string();
    let out = child(&["die_initialising", &raw, "die"]).output().unwrap();
    assert_eq!(out.status.signal(), Some(libc::SIGKILL));
    let id: i32 = report_of(&out.stdout, "id").unwrap().parse().unwrap();
    let _g = SegGuard(id);

    let start = Instant::now();
    let err = SharedCell::<u64>::open(key).unwrap_err();
    assert!(
        matches!(err, Error::CreatorDied { id: i, .. } if i == id),
        "{err}"
    );
    assert!(start.elapsed() < Duration::from_secs(2));

    // open_or_create takes over: it removes the dead segment and creates anew.
    let cell = SharedCell::<u64>::open_or_create(key, 9).unwrap();
    let _g2 = SegGuard(cell.id());
    assert_ne!(cell.id(), id);
    assert_eq!(cell.load(), 9);
    assert!(matches!(
        Segment::info_by_id(id),
        Err(Error::IdNotFound { .. })
    ));
}

#[test]
fn creator_stuck_before_ready_times_out() {
    let key = unique_key();
    let mut stuck = Live::spawn(&["die_initialising", &key.raw().to_string(), "stay"]);
    let id: i32 = stuck.expect("id").parse().unwrap();
    let _g = SegGuard(id);
    let start = Instant::now();
    let err = SharedCell::<u64>::opener()
        .init_timeout(Duration::from_millis(200))
        .open(key)
        .unwrap_err();
    assert!(matches!(err, Error::InitTimeout { .. }), "{err}");
    assert!(start.elapsed() >= Duration::from_millis(200));
    assert!(start.elapsed() < Duration::from_secs(5));
    stuck.child.kill().unwrap();
}

#[test]
fn read_only_handle_reads_and_cannot_lock() {
    let (cell, key, _g) = new_cell(Pattern::of(5));
    let reader = SharedCell::<Pattern>::open_read_only(key).unwrap();
    assert_eq!(reader.load(), Pattern::of(5));
    cell.store(Pattern::of(6)).unwrap();
    assert_eq!(reader.load(), Pattern::of(6));
    let mut out = Pattern::of(0);
    reader.load_into(&mut out);
    assert_eq!(out, Pattern::of(6));
    cell.load_into(&mut out);
    assert_eq!(out, Pattern::of(6));
    assert_eq!(reader.version(), 1);
    assert_eq!(reader.info().unwrap().nattch, 2);
}

#[test]
fn remove_on_drop_and_remove() {
    let key = unique_key();
    let cell = SharedCell::<u32>::options()
        .remove_on_drop(true)
        .create(key, 1)
        .unwrap();
    let id = cell.id();
    let _g = SegGuard(id);
    let other = SharedCell::<u32>::open(key).unwrap();
    drop(cell);
    assert!(matches!(
        SharedCell::<u32>::open(key),
        Err(Error::NotFound { .. })
    ));
    other.store(2).unwrap();
    assert_eq!(other.load(), 2);
    drop(other);
    assert!(matches!(
        Segment::info_by_id(id),
        Err(Error::IdNotFound { .. })
    ));
}

#[test]
fn update_inside_update_is_an_error_not_a_deadlock() {
    let (cell, _key, _g) = new_cell(0u32);
    let inner = cell.update(|_| cell.store(5)).unwrap();
    assert!(matches!(inner, Err(Error::Lock { .. })), "{inner:?}");
}

#[test]
fn private_cell_is_reached_by_id() {
    let cell = SharedCell::create(Key::PRIVATE, 41u64).unwrap();
    let _g = SegGuard(cell.id());
    let out = child(&["increment_id", &cell.id().to_string()])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(report_of(&out.stdout, "seen").as_deref(), Some("42"));
    assert_eq!(cell.load(), 42);
    let err = SharedCell::<u32>::opener()
        .open(shmstore::Target::Id(cell.id()))
        .unwrap_err();
    assert!(matches!(err, Error::TypeMismatch { .. }), "{err}");
}

#[test]
fn large_values_are_never_torn_whatever_the_slot_count() {
    for slots in [2, 4, 16] {
        let key = unique_key();
        let cell = SharedCell::<Big>::options()
            .slots(slots)
            .create(key, Big::of(0))
            .unwrap();
        let _g = SegGuard(cell.id());
        let raw = key.raw().to_string();
        let stores = check_stamps_under_writer(
            &[&["reader", &raw, "rw"], &["reader", &raw, "ro"]],
            &["writer", &raw],
            Duration::from_millis(400),
            &format!("4 KiB cell, {slots} slots"),
        );
        assert_eq!(cell.load(), Big::of(stores));
        assert_eq!(cell.version(), stores);
    }
}

#[test]
fn slot_count_is_chosen_at_creation_and_kept() {
    for bad in [0, 1, 3, 6, 128] {
        match SharedCell::<u64>::options()
            .slots(bad)
            .create(Key::PRIVATE, 0)
        {
            Err(Error::InvalidLayout { .. }) => {}
            other => panic!("{bad} slots: {:?}", other.map(|c| c.id())),
        }
    }

    let key = unique_key();
    let cell = SharedCell::<[u64; 3]>::options()
        .slots(8)
        .create(key, [0; 3])
        .unwrap();
    let _g = SegGuard(cell.id());
    let seg = Segment::options().open(key).unwrap();
    assert_eq!(header_u64(&seg, SLOT_COUNT_AT) as u32, 8);
    // Another handle takes the count from the segment and follows every
    // version around the ring, twice.
    let other = SharedCell::<[u64; 3]>::open(key).unwrap();
    for v in 1..=20u64 {
        cell.store([v, v * 2, v * 3]).unwrap();
        assert_eq!(other.load(), [v, v * 2, v * 3]);
        assert_eq!(other.version(), v);
    }
    other.update(|x| x[0] = 100).unwrap();
    assert_eq!(cell.load(), [100, 40, 60]);
    assert_eq!(header_u64(&seg, WRITING_AT), 21);

    // The default.
    let plain = SharedCell::<u64>::options()
        .remove_on_drop(true)
        .create(Key::PRIVATE, 0)
        .unwrap();
    let plain_seg = Segment::options().attach_id(plain.id()).unwrap();
    assert_eq!(
        header_u64(&plain_seg, SLOT_COUNT_AT) as u32 as usize,
        DEFAULT_CELL_SLOTS
    );
}

#[test]
fn a_slot_count_that_is_not_a_power_of_two_is_corrupt() {
    let key = unique_key();
    let cell = SharedCell::<u64>::create(key, 1).unwrap();
    let _g = SegGuard(cell.id());
    let seg = Segment::options().open(key).unwrap();
    let data_offset = header_u64(&seg, DATA_OFFSET_AT);
    let stride = header_u64(&seg, SLOT_STRIDE_AT);
    // Three slots, consistently described: only the count is wrong.
    seg.write_at(SLOT_COUNT_AT, &3u32.to_le_bytes()).unwrap();
    seg.write_at(USED_LEN_AT, &(data_offset + 3 * stride).to_le_bytes())
        .unwrap();
    match SharedCell::<u64>::open(key) {
        Err(Error::Corrupt { reason }) => assert!(reason.contains("power of two"), "{reason}"),
        other => panic!("{:?}", other.map(|c| c.id())),
    }
}

#[test]
fn a_scribbled_writing_word_does_not_hang_readers() {
    let key = unique_key();
    let cell = SharedCell::<u64>::create(key, 0).unwrap();
    let _g = SegGuard(cell.id());
    for v in 1..=5 {
        cell.store(v * 10).unwrap();
    }
    let seg = Segment::options().open(key).unwrap();
    assert_eq!(header_u64(&seg, SEQ_AT), 5);
    for garbage in [u64::MAX, 0, 4, 5 + 4, 1 << 40] {
        seg.write_at(WRITING_AT, &garbage.to_le_bytes()).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let reader = SharedCell::<u64>::open_read_only(key).unwrap();
            let _ = tx.send(reader.load());
        });
        let got = rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("load hung with writing = {garbage}"));
        assert_eq!(got, 50, "writing = {garbage}");
    }
    // The next writer sets the word right again.
    cell.store(60).unwrap();
    assert_eq!(header_u64(&seg, WRITING_AT), 6);
    assert_eq!(cell.load(), 60);
}
