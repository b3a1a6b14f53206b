//! `SharedCell` across real processes: lost updates, torn reads, dead
//! writers, and the ring of slots behind it: large values under a writer
//! that never pauses, any slot count, and a `writing` word a peer scribbled
//! on.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use common::{
    Live, Pattern, SegGuard, Stamped, check_stamps_under_writer, child, child_args, key_arg,
    load_stamps_until_stopped, new_cell, report, report_of, store_stamps_until_stopped, unique_key,
};
use shmstore::{DEFAULT_CELL_SLOTS, Error, Key, Segment, SharedCell};

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
        // Store 4 KiB values until told to stop.
        "writer" => store_stamps_until_stopped::<511>(key_arg(&args, 1)),
        // Load them until told to stop.
        "reader" => load_stamps_until_stopped::<511>(key_arg(&args, 1), args[2] == "ro"),
        other => panic!("unknown role {other}"),
    }
    std::process::exit(0);
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
