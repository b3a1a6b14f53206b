//! What an open checks before it gives a handle: that the segment is
//! shmstore's and of this format, and that it holds this type (its name,
//! size and schema version; for a region, also the rkyv format this process
//! was built with), checked on the very fields it validated; and that a
//! handle keeps what it validated, whatever a peer writes to the header or
//! to a region's control block afterwards.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use bytemuck::{Pod, Zeroable};
use common::values::{Config, Text, new_region, text_of};
use common::{Kid, Pattern, SegGuard, child_args, key_arg, new_cell, report, unique_key};
use shmstore::{Error, Key, Segment, SharedCell, SharedRegion};

#[test]
fn child_entry() {
    let Some(args) = child_args() else { return };
    match args[0].as_str() {
        "toctou_reader" => toctou_reader(key_arg(&args, 1)),
        other => panic!("unknown role {other}"),
    }
    std::process::exit(0);
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
fn type_and_format_mismatch_are_typed_errors() {
    let (_region, key, _g) = new_region(4096);
    #[derive(rkyv::Archive, rkyv::Serialize)]
    struct Other {
        a: u64,
    }
    let err = SharedRegion::<Other>::open(key).err().unwrap();
    assert!(matches!(err, Error::TypeMismatch { .. }), "{err}");
    let err = shmstore::SharedCell::<u64>::open(key).unwrap_err();
    assert!(matches!(err, Error::TypeMismatch { .. }), "{err}");
    // A process built with other rkyv format features: simulated by editing
    // the format word (FORMAT.md: type_extra at 64).
    let seg = Segment::options().open(key).unwrap();
    seg.write_at(64, &0x7201_0402u64.to_le_bytes()).unwrap();
    let err = SharedRegion::<Config>::open(key).err().unwrap();
    assert!(matches!(err, Error::TypeMismatch { .. }), "{err}");
    assert!(err.to_string().contains("format"), "{err}");
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
