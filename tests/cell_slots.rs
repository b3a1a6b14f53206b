//! The ring of slots behind `SharedCell`: large values under a writer that
//! never pauses, any slot count, and a `writing` word a peer scribbled on.

mod common;

use std::time::Duration;

use common::{
    SegGuard, Stamped, check_stamps_under_writer, child_args, key_arg, load_stamps_until_stopped,
    store_stamps_until_stopped, unique_key,
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
        "writer" => store_stamps_until_stopped::<511>(key_arg(&args, 1)),
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
