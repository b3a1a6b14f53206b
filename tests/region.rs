//! `SharedRegion` across real processes: whole values under concurrent
//! publishing, pins of dead readers, killed writers, hostile bytes.

mod common;

use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{Live, SegGuard, child, child_args, key_arg, report, stop_on_stdin, unique_key};
use shmstore::{Error, Key, Segment, SharedRegion};

/// A configuration whose every field derives from `version`.
#[derive(rkyv::Archive, rkyv::Serialize, Debug, Clone, PartialEq)]
struct Config {
    version: u64,
    name: String,
    ports: Vec<u32>,
    limits: HashMap<String, u64>,
}

impl Config {
    fn of(version: u64) -> Config {
        let n = (version % 17) as usize + 1;
        Config {
            version,
            name: format!("config-{version}"),
            ports: (0..n as u32).map(|i| i * 1000 + version as u32).collect(),
            limits: (0..n)
                .map(|i| (format!("k{i}"), version * 10 + i as u64))
                .collect(),
        }
    }
}

/// Whether an archived config is whole: every field agrees with its version.
fn is_whole(c: &ArchivedConfig) -> bool {
    let v = c.version.to_native();
    let want = Config::of(v);
    c.name.as_str() == want.name
        && c.ports
            .iter()
            .map(|p| p.to_native())
            .eq(want.ports.iter().copied())
        && c.limits.len() == want.limits.len()
        && want
            .limits
            .iter()
            .all(|(k, val)| c.limits.get(k.as_str()).map(|x| x.to_native()) == Some(*val))
}

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
        "hold_guard" => {
            let r = SharedRegion::<Config>::open(key_arg(&args, 1)).unwrap();
            let g = r.read().unwrap();
            report("holding", g.version());
            std::thread::sleep(Duration::from_secs(60));
        }
        "publisher" => {
            let r = SharedRegion::<Config>::open(key_arg(&args, 1)).unwrap();
            report("ready", 1);
            loop {
                let v = r.version();
                r.publish(&Config::of(v + 1)).unwrap();
            }
        }
        other => panic!("unknown role {other}"),
    }
    std::process::exit(0);
}

fn new_region(capacity: usize) -> (SharedRegion<Config>, Key, SegGuard) {
    let key = unique_key();
    let region = SharedRegion::<Config>::create(key, capacity).unwrap();
    let guard = SegGuard(region.id());
    (region, key, guard)
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
