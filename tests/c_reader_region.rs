//! C programs built on `include/shmstore.h` copy the archives of the
//! regions Rust publishes (`tests/c/read_region.c`), while a Rust writer in
//! another process never pauses, and find objects of both kinds by name past
//! other segments at their keys. Compiled with gcc (a test that finds no gcc
//! says so and passes).

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::programs::{compile, key_hex, read_cell, run, stdout_of};
use common::{Kid, SegGuard};
use rkyv::rancor;
use rkyv::util::AlignedVec;
use shmstore::{Error, Key, Segment, SharedCell, SharedRegion};

type Words = [u64; 4];

/// Runs of the reader in the concurrent tests before they give up on seeing
/// a publish.
const ATTEMPTS: usize = 20;

/// and its archive's length changes with `v`, so a copy mixing two
/// versions' bytes fails validation or the comparison.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug, PartialEq)]
struct Snapshot {
    version: u64,
    label: String,
    items: Vec<u64>,
}

impl Snapshot {
    fn of(v: u64) -> Snapshot {
        Snapshot {
            version: v,
            label: format!("snapshot {v} {}", "#".repeat((v % 23) as usize)),
            items: (0..v % 257)
                .map(|i| v.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ i)
                .collect(),
        }
    }
}

/// One line of `read_region`'s output.
#[derive(Debug)]
struct Copy {
    version: u64,
    archive: AlignedVec<16>,
}

fn parse_copies(stdout: &str) -> Vec<Copy> {
    stdout
        .lines()
        .map(|line| {
            let parsed = (|| {
                let rest = line.strip_prefix("version=")?;
                let (version, rest) = rest.split_once(" len=")?;
                let (len, hex) = rest.split_once(" archive=")?;
                let len: usize = len.parse().ok()?;
                if hex.len() != 2 * len {
                    return None;
                }
                let mut archive = AlignedVec::<16>::with_capacity(len);
                for i in 0..len {
                    archive.push(u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?);
                }
                Some(Copy {
                    version: version.parse().ok()?,
                    archive,
                })
            })();
            parsed.unwrap_or_else(|| panic!("unexpected line from read_region: {line:.200}"))
        })
        .collect()
}

/// The copy is a whole archive of `Snapshot::of(version)`.
fn check_archive(copy: &Copy) {
    let archived = rkyv::access::<ArchivedSnapshot, rancor::Error>(&copy.archive)
        .unwrap_or_else(|e| panic!("version {}: not a valid archive: {e}", copy.version));
    let value: Snapshot =
        rkyv::deserialize::<Snapshot, rancor::Error>(archived).expect("deserialise");
    assert_eq!(
        value,
        Snapshot::of(copy.version),
        "version {}: the archive is not that version's",
        copy.version
    );
}

/// A region of snapshots at `key`, removed by the guard (and on drop).
fn new_region(key: Key, capacity: usize) -> (SharedRegion<Snapshot>, SegGuard) {
    let region = SharedRegion::<Snapshot>::options()
        .remove_on_drop(true)
        .create(key, capacity)
        .expect("create the region");
    let guard = SegGuard(region.id());
    (region, guard)
}

#[test]
fn c_region_reader_copies_what_rust_published() {
    let Some(programs) = compile("region", &["read_region"]) else {
        return;
    };
    let key = common::unique_key();
    let (region, _guard) = new_region(key, 4096);
    let id = region.id().to_string();
    let out = run(&programs, "read_region", &[&id]);
    assert_eq!(out.status.code(), Some(5), "nothing published: {out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing has been published"));
    for v in 1..=5 {
        assert_eq!(region.publish(&Snapshot::of(v)).expect("publish"), v);
        for target in [vec![id.as_str()], vec!["--key", &key_hex(key)]] {
            let copies = parse_copies(&stdout_of(
                "read_region",
                run(&programs, "read_region", &target),
            ));
            assert_eq!(copies.len(), 1);
            assert_eq!(copies[0].version, v);
            check_archive(&copies[0]);
        }
    }
}

/// Child role: publish `Snapshot::of(v)` as version `v` to the region at
/// `key`, without pausing, until the parent sends a line. Reports `ready`,
/// then `published` (the last version).
fn publish_until_stopped(key: Key) {
    let region = SharedRegion::<Snapshot>::open(key).expect("open the region");
    let stop = common::stop_on_stdin();
    common::report("ready", 1);
    let mut last = region.version();
    while !stop.load(Ordering::Relaxed) {
        let next = last + 1;
        last = region.publish(&Snapshot::of(next)).expect("publish");
        assert_eq!(last, next, "another writer published");
    }
    common::report("published", last);
}

#[test]
fn child_entry() {
    let Some(args) = common::child_args() else {
        return;
    };
    match args[0].as_str() {
        "publish" => publish_until_stopped(common::key_arg(&args, 1)),
        role => panic!("unknown child role {role}"),
    }
}

#[test]
fn c_region_reader_copies_whole_archives_while_rust_publishes() {
    let Some(programs) = compile("region-concurrent", &["read_region"]) else {
        return;
    };
    let key = common::unique_key();
    let (region, _guard) = new_region(key, 4096);
    let id = region.id().to_string();
    let mut writer = Kid::spawn(&["publish", &key.raw().to_string()]);
    writer.expect("ready");
    let deadline = Instant::now() + Duration::from_secs(30);
    while region.version() < 100 {
        assert!(Instant::now() < deadline, "the writer does not publish");
        std::thread::sleep(Duration::from_millis(1));
    }
    // Each run prints every copy that differs from the one before it, torn
    // ones included. Runs are repeated until one saw the writer publish and
    // 3,000 copies were printed (on a loaded machine a run may see few
    // versions).
    let mut runs = Vec::new();
    let mut overlapped = false;
    for _ in 0..ATTEMPTS {
        let copies = parse_copies(&stdout_of(
            "read_region",
            run(&programs, "read_region", &[&id, "50000"]),
        ));
        overlapped |= copies.first().map(|c| c.version) != copies.last().map(|c| c.version);
        runs.push(copies);
        if overlapped && runs.iter().map(Vec::len).sum::<usize>() >= 3000 {
            break;
        }
    }
    writer.send("stop");
    let published: u64 = writer.expect("published").parse().unwrap();
    assert!(writer.wait().success(), "the writer failed");

    let mut last = 0;
    let mut copies = 0;
    for copy in runs.iter().flatten() {
        check_archive(copy);
        assert!(copy.version >= last, "version went back: {}", copy.version);
        assert!(
            copy.version <= published,
            "version {} never published",
            copy.version
        );
        last = copy.version;
        copies += 1;
    }
    assert!(
        overlapped,
        "in {ATTEMPTS} runs the C reader never saw the writer publish"
    );
    println!(
        "{} runs, {copies} archives checked, versions {} to {last} of {published}",
        runs.len(),
        runs[0][0].version
    );
}

/// Key `i` of a name's sequence, as FORMAT.md ("Names") says, written
/// again here so that the crate's derivation is checked too.
fn name_key(name: &str, i: u8) -> i32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in b"shmstore:".iter().chain(name.as_bytes()).chain([i].iter()) {
        h = (h ^ u32::from(*b)).wrapping_mul(0x0100_0193);
    }
    (h | 0x8000_0000) as i32
}

/// Two distinct names, both starting with `prefix`, whose first keys are
/// equal: the second name's object must be found past the first's. The
/// names end in well-mixed hexadecimal digits (names that differ in a few
/// positions only hardly ever collide under FNV-1a), so a pair turns up
/// after some 60,000 names on average.
fn colliding_names(prefix: &str) -> Option<(String, String)> {
    fn mix(mut x: u64) -> u64 {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^ (x >> 31)
    }
    let mut seen = std::collections::HashMap::new();
    for i in 0..1_000_000u64 {
        let name = format!("{prefix}{:016x}", mix(i));
        if let Some(other) = seen.insert(name_key(&name, 0), name.clone()) {
            return Some((other, name));
        }
    }
    None
}

/// A segment at `key` that is not shmstore's: 4096 bytes that start with
/// text.
fn squat(key: i32) -> (Segment, SegGuard) {
    let seg = Segment::options()
        .size(4096)
        .create(true)
        .exclusive(true)
        .open(Key::new(key).unwrap())
        .expect("create a foreign segment");
    let guard = SegGuard(seg.id());
    seg.write_at(0, b"another program's segment")
        .expect("write it");
    (seg, guard)
}

#[test]
fn c_reader_opens_by_name_past_other_segments() {
    let Some(programs) = compile("named", &["read_cell", "read_region"]) else {
        return;
    };
    let prefix = format!("shmstore-test/c-reader-{}/", std::process::id());
    assert_eq!(
        Key::named(&format!("{prefix}check")).unwrap().raw(),
        name_key(&format!("{prefix}check"), 0),
        "FORMAT.md's key derivation is the crate's"
    );

    // `first` and `second` share their first key. The sequence of `second`
    // then holds, in order: the object named `first`, a plain key's cell,
    // another program's segment; its own object goes to the fourth key.
    let (first, second) = colliding_names(&prefix).expect("two names with the same first key");
    let first_cell = SharedCell::<Words>::options()
        .remove_on_drop(true)
        .create(Key::named(&first).unwrap(), [1, 1, 1, 1])
        .expect("create the first named cell");
    let _g1 = SegGuard(first_cell.id());
    let plain = SharedCell::<Words>::options()
        .remove_on_drop(true)
        .create(Key::new(name_key(&second, 1)).unwrap(), [2, 2, 2, 2])
        .expect("create a cell at a plain key");
    let _g2 = SegGuard(plain.id());
    let _squatter = squat(name_key(&second, 2));
    let second_cell = SharedCell::<Words>::options()
        .remove_on_drop(true)
        .create(Key::named(&second).unwrap(), [3, 3, 3, 3])
        .expect("create the second named cell");
    let _g3 = SegGuard(second_cell.id());
    let at_fourth = Segment::options()
        .open(Key::new(name_key(&second, 3)).unwrap())
        .expect("the second name's object is at its fourth key");
    assert_eq!(at_fourth.id(), second_cell.id());
    drop(at_fourth);
    second_cell.store([4, 5, 6, 7]).expect("store");

    let reads = read_cell(&programs, &["--name", &second], 1);
    assert_eq!((reads[0].version, reads[0].words), (1, [4, 5, 6, 7]));
    let reads = read_cell(&programs, &["--name", &first], 1);
    assert_eq!((reads[0].version, reads[0].words), (0, [1, 1, 1, 1]));

    // A region by name.
    let region_name = format!("{prefix}region");
    let (region, _g4) = new_region(Key::named(&region_name).unwrap(), 2048);
    region.publish(&Snapshot::of(1)).expect("publish");
    let out = stdout_of(
        "read_region",
        run(&programs, "read_region", &["--name", &region_name]),
    );
    let copies = parse_copies(&out);
    assert_eq!(copies.len(), 1, "{out}");
    check_archive(&copies[0]);

    // A name nobody used, one that cannot be a name, and one whose every
    // key another program holds.
    let out = run(
        &programs,
        "read_cell",
        &["--name", &format!("{prefix}none")],
    );
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such object"));
    let out = run(&programs, "read_cell", &["--name", "bad\u{7}name"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid argument"));
    let taken = format!("{prefix}taken");
    let _squatters: Vec<_> = (0..shmstore::NAME_PROBES)
        .map(|i| squat(name_key(&taken, i)))
        .collect();
    assert!(matches!(
        SharedCell::<Words>::create(Key::named(&taken).unwrap(), [0; 4]),
        Err(Error::NameTaken { .. })
    ));
    let out = run(&programs, "read_cell", &["--name", &taken]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("every key of the name"));
}

/// A user who is not this one and not root.
const OUTSIDER: (u32, u32) = (43_003, 43_999);

/// Another user's segment at a name's first key, holding an object of that
/// very name: the C reader skips it and finds the object past it (as the
/// crate does), and refuses it when given its id or key, since another user
/// could have put anything there.
#[test]
fn c_reader_skips_and_refuses_another_users_segments() {
    if !common::root_or_skip("giving a segment to another user") {
        return;
    }
    let Some(programs) = compile("foreign", &["read_cell"]) else {
        return;
    };
    let name = format!("shmstore-test/c-reader-{}/foreign", std::process::id());
    let planted = SharedCell::<Words>::options()
        .remove_on_drop(true)
        .create(Key::named(&name).unwrap(), [6, 6, 6, 6])
        .expect("create the object to plant");
    let _g1 = SegGuard(planted.id());
    planted
        .set_owner(OUTSIDER.0, OUTSIDER.1)
        .expect("give it to another user");
    let ours = SharedCell::<Words>::options()
        .remove_on_drop(true)
        .create(Key::named(&name).unwrap(), [7, 7, 7, 7])
        .expect("create the object past the planted one");
    let _g2 = SegGuard(ours.id());
    let at_second = Segment::options()
        .open(Key::new(name_key(&name, 1)).unwrap())
        .expect("the crate put the object at the name's second key");
    assert_eq!(at_second.id(), ours.id());
    drop(at_second);

    let reads = read_cell(&programs, &["--name", &name], 1);
    assert_eq!((reads[0].version, reads[0].words), (0, [7, 7, 7, 7]));
    for target in [
        vec![planted.id().to_string()],
        vec![
            "--key".to_owned(),
            format!("{:#x}", name_key(&name, 0) as u32),
        ],
    ] {
        let args: Vec<&str> = target.iter().map(String::as_str).collect();
        let out = run(&programs, "read_cell", &args);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("owned by another user (found 43003)"),
            "{args:?}: {out:?}"
        );
    }
}
