//! `SharedRegion` across real processes: reads in place, and copying reads
//! (read-only handles) that keep up with a writer that never pauses; whole
//! values while a writer publishes, killed writers, capacities too small
//! for a value or too large for a segment, hostile bytes, and archives of
//! no size or aligned past a buffer's usual 64 bytes.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::values::{ArchivedConfig, Config, Text, Words, is_whole, new_region};
use common::{Kid, Live, SegGuard, child, child_args, key_arg, report, stop_on_stdin, unique_key};
use shmstore::{Error, Key, Segment, SharedRegion};

#[test]
fn child_entry() {
    let Some(args) = child_args() else { return };
    match args[0].as_str() {
        "reader" => {
            let key = key_arg(&args, 1);
            let ro = args[2] == "ro";
            let stop = stop_on_stdin();
            let (mut reads, mut bad, mut backwards, mut last) = (0u64, 0u64, 0u64, 0u64);
            let mut check = |c: &ArchivedConfig, version: u64| {
                reads += 1;
                bad += u64::from(!is_whole(c) || c.version.to_native() != version);
                backwards += u64::from(version < last);
                last = last.max(version);
            };
            if ro {
                let r = SharedRegion::<Config>::open_read_only(key).unwrap();
                report("ready", 1);
                while !stop.load(Ordering::Relaxed) {
                    match r.read() {
                        Ok(g) => check(&g, g.version()),
                        Err(Error::NothingPublished) => {}
                        Err(e) => panic!("{e}"),
                    }
                }
            } else {
                let r = SharedRegion::<Config>::open(key).unwrap();
                report("ready", 1);
                while !stop.load(Ordering::Relaxed) {
                    match r.read() {
                        Ok(g) => check(&g, g.version()),
                        Err(Error::NothingPublished) => {}
                        Err(e) => panic!("{e}"),
                    }
                }
            }
            report("reads", reads);
            report("bad", bad);
            report("backwards", backwards);
            report("last", last);
        }
        "publisher" => {
            let r = SharedRegion::<Config>::open(key_arg(&args, 1)).unwrap();
            report("ready", 1);
            loop {
                let v = r.version();
                r.publish(&Config::of(v + 1)).unwrap();
            }
        }
        // Publish nonstop until stdin closes.
        "publish" => {
            let key = key_arg(&args, 1);
            let size: usize = args[2].parse().unwrap();
            let grace = Duration::from_millis(args[3].parse().unwrap());
            let region = SharedRegion::<Words>::opener()
                .reuse_grace(grace)
                .open(key)
                .unwrap();
            let stop = common::stop_on_stdin();
            report("publishing", 1);
            // Eight values made beforehand, published in turn: the writer
            // does nothing but publish.
            let values: Vec<Words> = (0..8).map(|i| Words::of(i, size)).collect();
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                region.publish(&values[n % 8]).unwrap();
                n += 1;
            }
            report("published", n);
        }
        other => panic!("unknown role {other}"),
    }
    std::process::exit(0);
}

#[test]
fn publish_and_read_in_place() {
    let (region, _key, _g) = new_region(4096);
    assert!(matches!(region.read(), Err(Error::NothingPublished)));
    assert_eq!(region.version(), 0);
    assert_eq!(region.publish(&Config::of(1)).unwrap(), 1);
    let g = region.read().unwrap();
    assert!(is_whole(&g));
    assert_eq!(g.version(), 1);
    drop(g);
    for v in 2..=20 {
        assert_eq!(region.publish(&Config::of(v)).unwrap(), v);
        assert_eq!(region.read().unwrap().version.to_native(), v);
    }
}

#[test]
fn readers_see_whole_values_while_a_writer_publishes() {
    let (region, key, _g) = new_region(4096);
    region.publish(&Config::of(1)).unwrap();
    let raw = key.raw().to_string();
    let mut readers: Vec<Live> = ["rw", "rw", "ro"]
        .iter()
        .map(|mode| Live::spawn(&["reader", &raw, mode]))
        .collect();
    for r in &mut readers {
        r.expect("ready");
    }
    for v in 2..=10_000 {
        region.publish(&Config::of(v)).unwrap();
    }
    for mut r in readers {
        r.send("stop");
        let reads: u64 = r.expect("reads").parse().unwrap();
        assert_eq!(r.expect("bad"), "0", "invalid values in {reads} reads");
        assert_eq!(r.expect("backwards"), "0");
        let last: u64 = r.expect("last").parse().unwrap();
        assert!(reads > 0 && last <= 10_000);
        r.finish();
    }
}

#[test]
fn writers_killed_mid_publish_leave_the_last_value() {
    let (region, key, _g) = new_region(8192);
    region.publish(&Config::of(1)).unwrap();
    let raw = key.raw().to_string();
    let mut reader = Live::spawn(&["reader", &raw, "rw"]);
    reader.expect("ready");
    let mut rng = std::process::id() as u64 | 1;
    for round in 0..200 {
        let mut w = child(&["publisher", &raw]).spawn().unwrap();
        let before = region.version();
        let start = Instant::now();
        while region.version() == before && start.elapsed() < Duration::from_secs(10) {
            std::hint::spin_loop();
        }
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_micros(rng % 1000));
        w.kill().unwrap();
        assert_eq!(w.wait().unwrap().signal(), Some(libc::SIGKILL));
        let g = region.read().unwrap();
        assert!(is_whole(&g), "round {round}");
        assert_eq!(g.version.to_native(), region.version(), "round {round}");
    }
    reader.send("stop");
    let reads: u64 = reader.expect("reads").parse().unwrap();
    assert_eq!(reader.expect("bad"), "0", "after {reads} reads");
    assert_eq!(reader.expect("backwards"), "0");
    reader.finish();
    let v = region.version();
    assert_eq!(region.publish(&Config::of(v + 1)).unwrap(), v + 1);
}

#[test]
fn capacity_exceeded_leaves_the_current_value() {
    let (region, _key, _g) = new_region(256);
    region.publish(&Config::of(1)).unwrap();
    let mut big = Config::of(2);
    big.name = "x".repeat(10_000);
    match region.publish(&big) {
        Err(Error::CapacityExceeded {
            needed: Some(n),
            capacity: 256,
        }) => assert!(n > 10_000),
        other => panic!("expected CapacityExceeded, got {other:?}"),
    }
    assert_eq!(region.version(), 1);
    assert!(is_whole(&region.read().unwrap()));
}

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

#[test]
fn garbage_in_the_current_buffer_is_corrupt() {
    let (region, key, _g) = new_region(4096);
    region.publish(&Config::of(1)).unwrap();
    let seg = Segment::options().open(key).unwrap();
    // FORMAT.md: data_offset at 80, slot_stride at 88, and the current
    // buffer in the low byte of the region's `current` word at 512.
    let word = |offset| {
        let mut b = [0u8; 8];
        seg.read_at(offset, &mut b).unwrap();
        u64::from_le_bytes(b) as usize
    };
    let data = word(80) + word(88) * (word(512) & 0xff);
    let reader = SharedRegion::<Config>::open(key).unwrap();
    let noise: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8)
        .collect();
    seg.write_at(data, &noise).unwrap();
    match reader.read() {
        Err(Error::Corrupt { reason }) => assert!(reason.contains("validate"), "{reason}"),
        Ok(_) => panic!("garbage validated"),
        Err(e) => panic!("expected Corrupt, got {e}"),
    }
    let ro = SharedRegion::<Config>::open_read_only(key).unwrap();
    assert!(matches!(ro.read(), Err(Error::Corrupt { .. })));
    // A publish replaces the garbage.
    region.publish(&Config::of(2)).unwrap();
    assert!(is_whole(&reader.read().unwrap()));
}

/// A `current` word naming a buffer past the region's count (a peer with
/// write access may write any byte) is refused or replaced by a writer
/// that keeps a reuse grace, never a panic.
#[test]
fn a_current_word_past_the_buffers_never_panics_a_writer() {
    let (region, key, _g) = new_region(4096);
    region.publish(&Config::of(1)).unwrap();
    let writer = SharedRegion::<Config>::opener()
        .reuse_grace(Duration::from_millis(5))
        .open(key)
        .unwrap();
    writer.publish(&Config::of(2)).unwrap();
    let seg = Segment::options().open(key).unwrap();
    // FORMAT.md: the region's `current` word at 512, its buffer in the
    // low byte.
    let mut word = [0u8; 8];
    seg.read_at(512, &mut word).unwrap();
    let version = u64::from_le_bytes(word) >> 8;
    for buffer in [0xfe_u64, 0xff] {
        seg.write_at(512, &(((version + 1) << 8) | buffer).to_le_bytes())
            .unwrap();
        let published = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            writer.publish(&Config::of(3))
        }));
        match published {
            Ok(Ok(_)) | Ok(Err(Error::Corrupt { .. })) => {}
            Ok(Err(e)) => panic!("buffer {buffer:#x}: expected Corrupt or a publish, got {e}"),
            Err(_) => panic!("buffer {buffer:#x}: the publish panicked"),
        }
    }
}

#[test]
fn publish_bytes_validates_first() {
    let (region, _key, _g) = new_region(4096);
    let good = rkyv::to_bytes::<rkyv::rancor::Error>(&Config::of(5)).unwrap();
    assert_eq!(region.publish_bytes(&good).unwrap(), 1);
    assert_eq!(region.read().unwrap().version.to_native(), 5);
    let mut bad = good.to_vec();
    let n = bad.len();
    bad[n - 8..].copy_from_slice(&[0xff; 8]);
    assert!(matches!(
        region.publish_bytes(&bad),
        Err(Error::Corrupt { .. })
    ));
    assert_eq!(region.version(), 1);
}

#[test]
fn read_only_reader_copies_validated_values() {
    let (region, key, _g) = new_region(4096);
    let ro = SharedRegion::<Config>::open_read_only(key).unwrap();
    assert!(matches!(ro.read(), Err(Error::NothingPublished)));
    region.publish(&Config::of(3)).unwrap();
    let a = ro.read().unwrap();
    assert!(is_whole(&a));
    region.publish(&Config::of(4)).unwrap();
    let b = ro.read().unwrap();
    assert_eq!(a.version.to_native(), 3, "an earlier guard keeps its copy");
    assert_eq!(b.version.to_native(), 4);
}

#[test]
fn a_value_taken_out_of_a_guard_outlives_it_and_crosses_threads() {
    let (region, key, _g) = new_region(4096);
    let ro = SharedRegion::<Config>::open_read_only(key).unwrap();
    region.publish(&Config::of(7)).unwrap();
    for (owned, bytes) in [
        {
            let g = region.read().unwrap();
            (g.deserialize().unwrap(), g.archive().to_vec())
        },
        {
            let g = ro.read().unwrap();
            (g.deserialize().unwrap(), g.archive().to_vec())
        },
    ] {
        region.publish(&Config::of(8)).unwrap();
        let owned = std::thread::spawn(move || owned).join().unwrap();
        assert_eq!(owned, Config::of(7), "the owned value is the one read");
        let again = rkyv::from_bytes::<Config, rkyv::rancor::Error>(&bytes).unwrap();
        assert_eq!(again, Config::of(7), "the archive's bytes are the value's");
    }
    let expected = rkyv::to_bytes::<rkyv::rancor::Error>(&Config::of(9)).unwrap();
    region.publish_bytes(&expected).unwrap();
    assert_eq!(ro.read().unwrap().archive(), &expected[..]);
    assert_eq!(region.read().unwrap().archive(), &expected[..]);
}

/// A read-only reader copying while a writer in another process publishes
/// nonstop, for `secs`: how many copies it made, and how many it had to
/// make again.
fn copies_against_a_nonstop_writer(size: usize, secs: f64, grace: Duration) -> (u64, u64) {
    let key = unique_key();
    let region = SharedRegion::<Words>::create(key, size * 2 + 4096).unwrap();
    let _g = SegGuard(region.id());
    region.publish(&Words::of(1, size)).unwrap();
    let mut writer = Kid::spawn(&[
        "publish",
        &key.raw().to_string(),
        &size.to_string(),
        &grace.as_millis().to_string(),
    ]);
    writer.expect("publishing");
    let reader = SharedRegion::<Words>::open_read_only(key).unwrap();
    let start = Instant::now();
    let mut copies = 0;
    let mut last = 0;
    while start.elapsed().as_secs_f64() < secs {
        let value = reader.read().unwrap();
        assert!(is_whole(&value), "a torn copy");
        if value.version() != last {
            copies += 1;
            last = value.version();
        }
    }
    writer.send("stop");
    let published = writer.expect("published");
    eprintln!("{size} bytes: the writer published {published} times");
    (copies, reader.retries())
}

/// A copying reader against a nonstop writer does not start its copy
/// again whenever `current` moves: a copy is made again only when its own
/// buffer is rewritten during it,
/// which with four buffers takes two publishes during one copy: it happens
/// when the copier is descheduled in the middle of a copy (none in the
/// runs measured; the test allows one in a thousand copies).
#[test]
fn copying_readers_keep_up_with_a_nonstop_writer() {
    for size in [1 << 10, 1 << 20] {
        let (copies, retries) = copies_against_a_nonstop_writer(size, 2.0, Duration::ZERO);
        eprintln!("{size} bytes: {copies} copies, {retries} made again");
        assert!(copies > 10, "{size} bytes: only {copies} copies");
        assert!(
            retries * 1000 <= copies,
            "{size} bytes: {retries} of {copies} copies made again"
        );
    }
}

/// With a reuse grace longer than a copy (descheduling included), no copy
/// is ever made again: the writer leaves a buffer alone that long after it
/// stopped being current.
#[test]
fn a_reuse_grace_lets_every_copy_finish() {
    let (copies, retries) =
        copies_against_a_nonstop_writer(1 << 10, 1.0, Duration::from_millis(20));
    eprintln!("with a 20 ms grace: {copies} copies, {retries} made again");
    assert!(copies > 10, "only {copies} copies");
    assert_eq!(retries, 0);
}

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

/// A value whose archived form is aligned to 128 bytes, more than a
/// buffer's usual 64.
#[derive(rkyv::Archive, rkyv::Serialize, Debug, Clone, PartialEq)]
#[rkyv(attr(repr(align(128))))]
struct Wide {
    id: u64,
    label: String,
}

#[test]
fn an_over_aligned_root_is_laid_out_for_its_alignment() {
    assert_eq!(std::mem::align_of::<ArchivedWide>(), 128);
    let region = SharedRegion::<Wide>::create(Key::PRIVATE, 4096).unwrap();
    let _guard = SegGuard(region.id());
    let value = Wide {
        id: 7,
        label: "wide".into(),
    };
    region.publish(&value).unwrap();
    let read = region.read().unwrap();
    assert_eq!(read.id.to_native(), 7);
    assert_eq!(read.label.as_str(), "wide");
    assert_eq!((&*read as *const ArchivedWide as usize) % 128, 0);
    drop(read);
    // Another handle opens what this one created: the layout passes
    // validation, and the archive is read aligned.
    let other = SharedRegion::<Wide>::opener()
        .open(shmstore::Target::Id(region.id()))
        .unwrap();
    assert_eq!(other.read().unwrap().label.as_str(), "wide");
    let copy = shmstore::RegionReader::<Wide>::opener()
        .open(shmstore::Target::Id(region.id()))
        .unwrap();
    assert_eq!(copy.read().unwrap().id.to_native(), 7);
}
