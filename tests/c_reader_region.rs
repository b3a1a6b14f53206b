//! C programs built on `include/shmstore.h` copy the archives of the
//! regions Rust publishes (`tests/c/read_region.c`), while a Rust writer in
//! another process never pauses, and find objects of both kinds by name as
//! FORMAT.md says: at any of the name's keys, past claims, segments without
//! a magic and other users' segments, waiting for a live or stopped
//! creator's claim, reporting another user's object of the name; and they
//! honour the `life` word of an object being removed or collected. They
//! wait for a region's version to change (`tests/c/wait_change.c`) while a
//! Rust publisher in another process publishes, removes or leaves it alone.
//! Compiled with gcc (a test that finds no gcc says so and passes).

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::names::{
    NameGuard, cell_image, claim_name, crowded, dead_pid, documented_key, fresh_name, life_word,
    make_ready, own_start_time, plant, set_life, squat,
};
use common::programs::{compile, key_hex, read_cell, run, spawn, stdout_of};
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

/// The stamped words of version `v` (as `tests/c/copy_region.c` checks
/// them) into `words`: word 0 is `v`, word `i` derives from `v` and `i`.
fn stamp(words: &mut [u64], v: u64) {
    words[0] = v;
    for (i, w) in words.iter_mut().enumerate().skip(1) {
        *w = v.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (i as u64).wrapping_mul(0xff51_afd7_ed55_8ccd);
    }
}

/// Child role: publish the stamped words of version `v` (a `Vec<u64>` of
/// `words` words) as version `v` to the region at `key`, without pausing,
/// until the parent sends a line. Reports `ready`, then `published` (the
/// last version).
fn publish_stamps(key: Key, words: usize) {
    let region = SharedRegion::<Vec<u64>>::open(key).expect("open the region");
    let stop = common::stop_on_stdin();
    common::report("ready", 1);
    let mut value = vec![0u64; words];
    let mut last = region.version();
    while !stop.load(Ordering::Relaxed) {
        stamp(&mut value, last + 1);
        last = region.publish(&value).expect("publish");
    }
    common::report("published", last);
}

/// Child role: create the cell named `name` holding [9, 9, 9, 9] (as user
/// 65534, mode 0644, holding [3, 1, 4, 1] if `as_nobody`), report
/// `created`, and leave it when it exits.
fn create_named(name: &str, as_nobody: bool) {
    let mut options = SharedCell::<Words>::options();
    let value = if as_nobody {
        common::drop_to_nobody();
        options.mode(0o644);
        [3, 1, 4, 1]
    } else {
        [9, 9, 9, 9]
    };
    let cell = options
        .create(Key::named(name).unwrap(), value)
        .expect("create the named cell");
    common::report("created", cell.id());
}

#[test]
fn child_entry() {
    let Some(args) = common::child_args() else {
        return;
    };
    match args[0].as_str() {
        "publish" => publish_until_stopped(common::key_arg(&args, 1)),
        "publish_stamps" => publish_stamps(common::key_arg(&args, 1), args[2].parse().unwrap()),
        "create_named" => create_named(&args[1], false),
        "create_as_nobody" => create_named(&args[1], true),
        "publish_on_command" => publish_on_command(common::key_arg(&args, 1)),
        "remove" => {
            let cell = SharedCell::<Words>::open(Key::named(&args[1]).unwrap()).expect("open");
            cell.remove().expect("remove");
            common::report("removed", cell.id());
        }
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
        if let Some(other) = seen.insert(documented_key(&name, 0), name.clone()) {
            return Some((other, name));
        }
    }
    None
}

#[test]
fn c_reader_opens_by_name_past_other_segments() {
    let Some(programs) = compile("named", &["read_cell", "read_region"]) else {
        return;
    };
    let prefix = format!("shmstore-test/c-reader-{}/", std::process::id());
    assert_eq!(
        Key::named(&format!("{prefix}check")).unwrap().raw(),
        documented_key(&format!("{prefix}check"), 0),
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
        .create(Key::new(documented_key(&second, 1)).unwrap(), [2, 2, 2, 2])
        .expect("create a cell at a plain key");
    let _g2 = SegGuard(plain.id());
    let _squatter = squat(documented_key(&second, 2));
    let second_cell = SharedCell::<Words>::options()
        .remove_on_drop(true)
        .create(Key::named(&second).unwrap(), [3, 3, 3, 3])
        .expect("create the second named cell");
    let _g3 = SegGuard(second_cell.id());
    let at_fourth = Segment::options()
        .open(Key::new(documented_key(&second, 3)).unwrap())
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
        .map(|i| squat(documented_key(&taken, i)))
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
    // A plain object at the name's first key, then ours (at the second),
    // then the first made to claim the name and given to another user: as
    // another user would plant it once the name's object exists (one
    // planted before would stop the creation: its name is held).
    let planted = SharedCell::<Words>::options()
        .remove_on_drop(true)
        .create(Key::new(documented_key(&name, 0)).unwrap(), [6, 6, 6, 6])
        .expect("create the object to plant");
    let _g1 = SegGuard(planted.id());
    let ours = SharedCell::<Words>::options()
        .remove_on_drop(true)
        .create(Key::named(&name).unwrap(), [7, 7, 7, 7])
        .expect("create the object past the planted one");
    let _g2 = SegGuard(ours.id());
    claim_name(planted.id(), &name);
    planted
        .set_owner(OUTSIDER.0, OUTSIDER.1)
        .expect("give it to another user");
    let at_second = Segment::options()
        .open(Key::new(documented_key(&name, 1)).unwrap())
        .expect("the crate put the object at the name's second key");
    assert_eq!(at_second.id(), ours.id());
    drop(at_second);

    let reads = read_cell(&programs, &["--name", &name], 1);
    assert_eq!((reads[0].version, reads[0].words), (0, [7, 7, 7, 7]));
    for target in [
        vec![planted.id().to_string()],
        vec![
            "--key".to_owned(),
            format!("{:#x}", documented_key(&name, 0) as u32),
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

/// FORMAT.md's keys of a name are the header's: the byte `i` first, then
/// "shmstore:" and the name.
#[test]
fn c_reader_derives_a_names_keys_as_format_md_says() {
    let Some(programs) = compile("name-keys", &["name_keys"]) else {
        return;
    };
    let out = stdout_of("name_keys", run(&programs, "name_keys", &["acme/config"]));
    let keys: Vec<&str> = out.lines().collect();
    assert_eq!(keys[..2], ["0x8bcb4d9b", "0x886faa70"], "{out}");
    let documented: Vec<String> = (0..shmstore::NAME_PROBES)
        .map(|i| format!("{:#010x}", documented_key("acme/config", i) as u32))
        .collect();
    assert_eq!(keys, documented);
    assert_eq!(
        Key::named("acme/config").unwrap().raw(),
        documented_key("acme/config", 0)
    );
}

/// The object of a name at its last key, past a live creator's claim, a
/// segment whose state shows but not its magic, a dead creator's claim and
/// other programs' segments: the reader opens it at once, waiting neither
/// for the claim (an object exists) nor for the segment without a magic
/// (not a claim: no time window makes it one).
#[test]
fn c_reader_finds_a_named_object_at_any_key() {
    let Some(programs) = compile("any-key", &["read_cell"]) else {
        return;
    };
    let name = fresh_name("c-any-key");
    let crowd = crowded(&name, [1, 2, 3, 4]);
    let start = Instant::now();
    let reads = read_cell(&programs, &["--name", &name], 1);
    let took = start.elapsed();
    assert_eq!((reads[0].version, reads[0].words), (0, [1, 2, 3, 4]));
    assert!(took < Duration::from_secs(2), "took {took:?}");
    drop(crowd);
}

/// A claim of a name (magic and name, not READY) whose creator (this
/// process) lives, and no object: the reader waits, and opens it once it
/// is READY. A segment whose state shows but not its magic is no claim:
/// without an object, the name is not found, at once.
#[test]
fn c_reader_waits_for_a_live_claim_and_skips_a_segment_without_magic() {
    let Some(programs) = compile("claim", &["read_cell"]) else {
        return;
    };
    for state in [0u32, 1] {
        let name = fresh_name("c-claim");
        let _names = NameGuard::of(&name);
        let image = cell_image(&name, [5, 6, 7, 8]);
        let (seg, _guard) = plant(documented_key(&name, 0), &image, true, state);
        std::thread::scope(|s| {
            let reader = s.spawn(|| read_cell(&programs, &["--name", &name], 1));
            std::thread::sleep(Duration::from_millis(300));
            assert!(
                !reader.is_finished(),
                "state {state}: the reader did not wait"
            );
            make_ready(&seg);
            let reads = reader.join().expect("the reader");
            assert_eq!(
                (reads[0].version, reads[0].words),
                (0, [5, 6, 7, 8]),
                "state {state}"
            );
        });
    }
    for state in [1u32, 2] {
        let name = fresh_name("c-no-magic");
        let _names = NameGuard::of(&name);
        let image = cell_image(&name, [5, 6, 7, 8]);
        let (_seg, _guard) = plant(documented_key(&name, 0), &image, false, state);
        let start = Instant::now();
        let out = run(&programs, "read_cell", &["--name", &name]);
        let took = start.elapsed();
        assert_eq!(out.status.code(), Some(3), "state {state}: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("no such object"),
            "state {state}: {out:?}"
        );
        assert!(
            took < Duration::from_secs(2),
            "state {state}: took {took:?}"
        );
    }
}

/// A creator stopped (SIGSTOP) right after its claim, for longer than any
/// old time window: the reader keeps waiting for it and, at the timeout its
/// options give (2.5 s, where the default is 5 s), says the object is
/// still being made by that creator, never that the name is not found;
/// once the creator goes on, the reader opens the object.
#[test]
fn c_reader_waits_for_a_stopped_creator() {
    let Some(programs) = compile("stopped-creator", &["read_cell"]) else {
        return;
    };
    let name = fresh_name("c-stopped");
    let _names = NameGuard::of(&name);
    let mut creator = common::start_stopped(
        common::child(&["create_named", &name]),
        "create.after_claim",
    );
    let start = Instant::now();
    let out = run(
        &programs,
        "read_cell",
        &["--init-timeout-ms", "2500", "--name", &name],
    );
    let took = start.elapsed();
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(
        said.contains("still being initialised") && said.contains(&creator.pid().to_string()),
        "{said}"
    );
    assert!(
        took >= Duration::from_millis(2500) && took < Duration::from_millis(5000),
        "the reader gave up after {took:?}, not at its options' 2.5 s"
    );
    std::thread::scope(|s| {
        let reader = s.spawn(|| read_cell(&programs, &["--name", &name], 1));
        std::thread::sleep(Duration::from_millis(300));
        common::resume(&creator);
        let reads = reader.join().expect("the reader");
        assert_eq!((reads[0].version, reads[0].words), (0, [9, 9, 9, 9]));
    });
    creator.expect("created");
    assert!(creator.wait().success());
}

/// Another user's (65534) object of the name, alone at its keys, which
/// `shmstore list` shows: the reader does not say "no such object" but
/// whose it is and how to trust that user, and opens it when told to trust
/// that user.
#[test]
fn c_reader_reports_another_users_object_of_a_name() {
    if !common::root_or_skip("acting as user 65534") {
        return;
    }
    let Some(programs) = compile("foreign-name", &["read_cell"]) else {
        return;
    };
    let name = fresh_name("c-foreign");
    let _names = NameGuard::of(&name);
    let mut kid = Kid::spawn(&["create_as_nobody", &name]);
    kid.expect("created");
    assert!(kid.wait().success());
    let out = run(&programs, "read_cell", &["--name", &name]);
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    for want in [
        "another user",
        "owner uid 65534",
        "creator uid 65534",
        "--trust-user 65534",
        "--trust-group 65534",
    ] {
        assert!(said.contains(want), "{want:?} not in {said}");
    }
    let reads = read_cell(&programs, &["--trust-user", "65534", "--name", &name], 1);
    assert_eq!((reads[0].version, reads[0].words), (0, [3, 1, 4, 1]));
}

/// An object whose `life` word says it is being removed or collected
/// (FORMAT.md, "Removal"): REMOVING by a dead remover is removed (not
/// found, and left for shmstore to finish: a reader removes nothing);
/// REMOVING or COLLECTING by a live process is waited for (busy at the
/// timeout); COLLECTING by a dead collector is ignored. By id, the object
/// opens whatever the word says but a live collector's mark, which is
/// waited for as by key.
#[test]
fn c_reader_honours_the_life_word() {
    let Some(programs) = compile("life", &["read_cell"]) else {
        return;
    };
    let name = fresh_name("c-life");
    let _names = NameGuard::of(&name);
    let cell = SharedCell::<Words>::options()
        .remove_on_drop(true)
        .create(Key::named(&name).unwrap(), [2, 7, 1, 8])
        .expect("create the cell");
    let seg = Segment::options().attach_id(cell.id()).expect("attach it");
    let key = key_hex(Key::new(documented_key(&name, 0)).unwrap());
    let (me, start, dead) = (std::process::id() as i32, own_start_time(), dead_pid());
    let cases = [
        (life_word(2, dead, 1), "removed"),
        (life_word(2, me, start), "busy"),
        (life_word(1, me, start), "busy"),
        (life_word(1, dead, 1), "opened"),
        (0, "opened"),
    ];
    for (word, want) in cases {
        set_life(&seg, word);
        for target in [vec!["--name", name.as_str()], vec!["--key", key.as_str()]] {
            let args = [&["--init-timeout-ms", "500"][..], &target].concat();
            let out = run(&programs, "read_cell", &args);
            let said = String::from_utf8_lossy(&out.stderr).into_owned();
            let what = format!("life {word:#x}, {target:?}: {said}");
            match want {
                "opened" => assert!(out.status.success(), "{what}"),
                "removed" => {
                    assert_eq!(out.status.code(), Some(3), "{what}");
                    assert!(said.contains("no such object"), "{what}");
                }
                _ => {
                    assert_eq!(out.status.code(), Some(3), "{what}");
                    assert!(said.contains("being removed or collected"), "{what}");
                    assert!(said.contains(&format!("(found {me})")), "{what}");
                }
            }
        }
        // By id, as the library opens by id: only a live collector is
        // waited for (it may be about to remove the object).
        let id = cell.id().to_string();
        let by_id = run(&programs, "read_cell", &["--init-timeout-ms", "500", &id]);
        if word == life_word(1, me, start) {
            let said = String::from_utf8_lossy(&by_id.stderr);
            assert_eq!(by_id.status.code(), Some(3), "life {word:#x} by id: {said}");
            assert!(said.contains("being removed or collected"), "by id: {said}");
        } else {
            assert!(by_id.status.success(), "life {word:#x} by id: {by_id:?}");
        }
    }
    set_life(&seg, life_word(2, dead, 1));
    run(&programs, "read_cell", &["--name", &name]);
    assert!(!cell.is_removed().unwrap(), "a reader removed the object");
}

/// A remover stopped between its mark and its `IPC_RMID`: the reader
/// waits for it, and once it goes on, finds the name's object gone.
#[test]
fn c_reader_finds_an_object_removed_meanwhile_gone() {
    let Some(programs) = compile("removed", &["read_cell"]) else {
        return;
    };
    let name = fresh_name("c-removed");
    let _names = NameGuard::of(&name);
    let cell = SharedCell::<Words>::create(Key::named(&name).unwrap(), [1, 1, 2, 3])
        .expect("create the cell");
    let _guard = SegGuard(cell.id());
    let mut remover = common::start_stopped(common::child(&["remove", &name]), "remove.after_mark");
    std::thread::scope(|s| {
        let reader = s.spawn(|| run(&programs, "read_cell", &["--name", &name]));
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            !reader.is_finished(),
            "the reader did not wait for the remover"
        );
        common::resume(&remover);
        let out = reader.join().expect("the reader");
        assert_eq!(out.status.code(), Some(3), "{out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("no such object"),
            "{out:?}"
        );
    });
    assert_eq!(remover.expect("removed"), cell.id().to_string());
    assert!(remover.wait().success());
}

/// How long each run of `c_region_copies_keep_up_with_a_nonstop_publisher`
/// copies, in milliseconds: `SHMSTORE_TEST_KEEP_UP_MS`, 2500 by default.
fn keep_up_ms() -> String {
    std::env::var("SHMSTORE_TEST_KEEP_UP_MS").unwrap_or_else(|_| "2500".to_owned())
}

/// A copy is thrown away only when its own buffer is rewritten, and the
/// publisher reuses the buffer whose version is oldest, so that with 4
/// buffers a copy outlives 2 publishes made while it runs (FORMAT.md says
/// 2; the choice rule gives 3), however often `current` moves. Against a Rust
/// publisher that never pauses (4 buffers, no reuse grace), the C reader
/// copying 1 KiB and 1 MiB archives throws away no copy made by a call
/// shorter than one publish (what remains comes from this process being
/// descheduled for several publishes, which only a reuse grace bounds),
/// and every copy it keeps is whole.
#[test]
fn c_region_copies_keep_up_with_a_nonstop_publisher() {
    let Some(programs) = compile("keep-up", &["copy_region"]) else {
        return;
    };
    for (what, words) in [("1 KiB", 127usize), ("1 MiB", (1 << 17) - 1)] {
        let key = common::unique_key();
        let region = SharedRegion::<Vec<u64>>::options()
            .remove_on_drop(true)
            .create(key, words * 8 + 8)
            .expect("create the region");
        let _guard = SegGuard(region.id());
        let mut writer =
            Kid::spawn(&["publish_stamps", &key.raw().to_string(), &words.to_string()]);
        writer.expect("ready");
        let deadline = Instant::now() + Duration::from_secs(30);
        while region.version() < 10 {
            assert!(Instant::now() < deadline, "the writer does not publish");
            std::thread::sleep(Duration::from_millis(1));
        }
        // How long one publish takes, on average.
        let (v0, t0) = (region.version(), Instant::now());
        std::thread::sleep(Duration::from_millis(200));
        let publish = t0.elapsed() / (region.version() - v0).max(1) as u32;
        let out = run(
            &programs,
            "copy_region",
            &[
                "--key",
                &key_hex(key),
                &keep_up_ms(),
                &publish.as_nanos().to_string(),
            ],
        );
        writer.send("stop");
        let published: u64 = writer.expect("published").parse().unwrap();
        assert!(writer.wait().success(), "the writer failed");
        let line = stdout_of("copy_region", out);
        let field = |name: &str| -> u64 {
            line.split_whitespace()
                .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no {name} in {line:?}"))
        };
        println!(
            "{what}: {} ({published} published, {publish:?} a publish)",
            line.trim()
        );
        assert_eq!(field("len"), words as u64 * 8 + 8, "{what}: {line}");
        assert_eq!(field("torn"), 0, "{what}: torn copies: {line}");
        assert!(
            field("versions") > 1,
            "{what}: the writer never published meanwhile: {line}"
        );
        assert!(
            field("last") <= published,
            "{what}: a version never published: {line}"
        );
        assert_eq!(
            field("quick_retries"),
            0,
            "{what}: copies thrown away by calls shorter than a publish ({publish:?}): {line}"
        );
    }
}

/// Child role: open the region of snapshots at `key`, report `ready`, then
/// for each line the parent sends: `publish` the next version (reporting
/// `published`, its version) or `remove` the region (reporting `removed`);
/// exit at the end of input.
fn publish_on_command(key: Key) {
    let region = SharedRegion::<Snapshot>::open(key).expect("open the region");
    common::report("ready", 1);
    while let Some(command) = common::read_command() {
        match command.as_str() {
            "publish" => {
                let v = region.version() + 1;
                let published = region.publish(&Snapshot::of(v)).expect("publish");
                common::report("published", published);
            }
            "remove" => {
                region.remove().expect("remove");
                common::report("removed", region.id());
            }
            other => panic!("unknown command {other}"),
        }
    }
}

/// How long a waiter is watched not to return before the change it waits
/// for is made.
const STILL_WAITING: Duration = Duration::from_millis(300);

/// `shmstore_wait_for_change` on a region sleeps until a Rust publisher in
/// another process publishes: the first version (waiting from 0, nothing
/// published) and the next ones; with nothing published, it times out at
/// its deadline with the version it waited on.
#[test]
fn c_waiter_wakes_when_a_rust_publisher_publishes() {
    let Some(programs) = compile("region-wait", &["wait_change"]) else {
        return;
    };
    let key = common::unique_key();
    let (region, _guard) = new_region(key, 4096);
    let id = region.id().to_string();
    let out = run(&programs, "wait_change", &[&id, "200"]);
    let said = |name| common::report_of(&out.stdout, name);
    assert_eq!(said("result").as_deref(), Some("timedout"), "{out:?}");
    assert_eq!(said("version").as_deref(), Some("0"), "{out:?}");
    let elapsed: u64 = said("elapsed_us").unwrap().parse().unwrap();
    assert!(elapsed >= 200_000, "timed out after {elapsed} µs");

    let mut publisher = Kid::spawn(&["publish_on_command", &key.raw().to_string()]);
    publisher.expect("ready");
    for (since, timeout) in [(0, "forever"), (1, "20000"), (2, "forever")] {
        let mut waiter = spawn(&programs, "wait_change", &["--key", &key_hex(key), timeout]);
        assert_eq!(waiter.expect("waiting"), since.to_string());
        assert!(
            waiter.report_within("result", STILL_WAITING).is_none(),
            "since {since}: the wait ended before anything was published"
        );
        publisher.send("publish");
        let published = publisher.expect("published");
        assert_eq!(published, (since + 1).to_string());
        assert_eq!(waiter.expect("result"), "ok", "since {since}");
        assert_eq!(waiter.expect("version"), published, "since {since}");
        assert!(waiter.wait().success(), "since {since}");
    }
    assert!(publisher.wait().success(), "the publisher failed");
}

/// A wait on a region ends with `SHMSTORE_EREMOVED` when it is removed: by
/// a Rust process's `remove()`, by `IPC_RMID` alone (as `ipcrm` does), and
/// by the `life` mark alone.
#[test]
fn c_waiter_ends_when_the_region_is_removed() {
    let Some(programs) = compile("region-wait-removed", &["wait_change"]) else {
        return;
    };
    for how in ["remove", "ipcrm", "mark"] {
        let key = common::unique_key();
        let (region, _guard) = new_region(key, 4096);
        region.publish(&Snapshot::of(1)).expect("publish");
        let mut publisher = Kid::spawn(&["publish_on_command", &key.raw().to_string()]);
        publisher.expect("ready");
        let mut waiter = spawn(
            &programs,
            "wait_change",
            &[&region.id().to_string(), "forever"],
        );
        assert_eq!(waiter.expect("waiting"), "1");
        assert!(
            waiter.report_within("result", STILL_WAITING).is_none(),
            "{how}: the wait ended before the removal"
        );
        match how {
            "remove" => {
                publisher.send("remove");
                publisher.expect("removed");
            }
            "ipcrm" => Segment::remove_by_id(region.id()).expect("IPC_RMID"),
            _ => {
                let seg = Segment::options().attach_id(region.id()).expect("attach");
                let me = std::process::id() as i32;
                set_life(&seg, life_word(2, me, own_start_time()));
            }
        }
        assert_eq!(waiter.expect("result"), "removed", "{how}");
        assert_eq!(waiter.expect("version"), "1", "{how}");
        assert!(waiter.wait().success(), "{how}");
        assert!(publisher.wait().success(), "{how}: the publisher failed");
    }
}
