//! C programs built on `include/shmstore.h` (the format of `FORMAT.md` as a
//! C header) read what Rust writes: `tests/c/read_cell.c` reads a
//! `SharedCell`, `tests/c/read_region.c` copies a `SharedRegion`'s archive,
//! and `tests/c/validate.c` checks a header as a reader does. They are
//! compiled with gcc (a test that finds no gcc says so and passes) and run
//! against live Rust objects, and the validator against the fuzz corpus.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Kid, SegGuard};
use rkyv::rancor;
use rkyv::util::AlignedVec;
use shmstore::{Error, Key, Segment, SharedCell, SharedRegion};

type Words = [u64; 4];

/// The C programs of `tests/c/`, compiled into a temporary directory that
/// is removed on drop.
struct Programs {
    dir: PathBuf,
}

impl Programs {
    fn exe(&self, program: &str) -> PathBuf {
        self.dir.join(program)
    }
}

impl Drop for Programs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Compile `tests/c/PROGRAM.c` for each of `programs` with gcc into a
/// fresh temporary directory, or print why the test is skipped and return
/// `None` when there is no gcc.
fn compile(test: &str, programs: &[&str]) -> Option<Programs> {
    let has_gcc = Command::new("gcc")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_gcc {
        println!("skipping {test}: gcc not found");
        return None;
    }
    let dir = std::env::temp_dir().join(format!("shmstore-c-reader-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the temporary directory");
    let built = Programs { dir };
    for program in programs {
        let source = root().join("tests/c").join(format!("{program}.c"));
        let out = Command::new("gcc")
            .arg("-I")
            .arg(root().join("include"))
            .args([
                "-std=c11",
                "-O2",
                "-Wall",
                "-Wextra",
                "-Werror",
                "-pedantic",
                "-o",
            ])
            .arg(built.exe(program))
            .arg(&source)
            .output()
            .expect("run gcc");
        assert!(
            out.status.success(),
            "gcc failed on {}:\n{}",
            source.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Some(built)
}

/// How long a C program may run before it is killed and the test fails.
const PROGRAM_WAIT: Duration = Duration::from_secs(60);

/// Run `program` with `args` and return what it did; one that runs longer
/// than [`PROGRAM_WAIT`] is killed and the test fails, instead of hanging.
fn run(programs: &Programs, program: &str, args: &[&str]) -> Output {
    let mut child = Command::new(programs.exe(program))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    fn drain(mut pipe: impl std::io::Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    }
    let stdout = drain(child.stdout.take().expect("piped stdout"));
    let stderr = drain(child.stderr.take().expect("piped stderr"));
    let deadline = Instant::now() + PROGRAM_WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the program") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{program} {args:?} ran for more than {PROGRAM_WAIT:?}: killed it");
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    Output {
        status,
        stdout: stdout.join().expect("read the program's output"),
        stderr: stderr.join().expect("read the program's errors"),
    }
}

/// The standard output of a run that must have succeeded.
fn stdout_of(program: &str, out: Output) -> String {
    assert!(
        out.status.success(),
        "{program} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("the programs print UTF-8")
}

/// A key as `--key` takes it (as `ipcs` prints it).
fn key_arg(key: Key) -> String {
    format!("{:#x}", key.raw() as u32)
}

/// One line of `read_cell`'s output.
#[derive(Debug, PartialEq, Eq)]
struct Read {
    version: u64,
    words: Words,
    hash: String,
    name: String,
}

fn parse_read(line: &str) -> Read {
    fn field<'a>(rest: &'a str, key: &str) -> Option<(&'a str, &'a str)> {
        rest.strip_prefix(key)?.strip_prefix('=')?.split_once(' ')
    }
    let parsed = (|| {
        let (version, rest) = field(line, "version")?;
        let (words, rest) = field(rest, "words")?;
        let (hash, rest) = field(rest, "hash")?;
        let name = rest.strip_prefix("name=")?;
        let words: Vec<u64> = words
            .split(',')
            .map(|w| w.parse().ok())
            .collect::<Option<_>>()?;
        Some(Read {
            version: version.parse().ok()?,
            words: words.try_into().ok()?,
            hash: hash.to_owned(),
            name: name.to_owned(),
        })
    })();
    parsed.unwrap_or_else(|| panic!("unexpected line from read_cell: {line:?}"))
}

/// Run `read_cell` on `target` (a segment id, or `--key K` / `--name N`)
/// for `reads` reads and parse its lines.
fn read_cell(programs: &Programs, target: &[&str], reads: u32) -> Vec<Read> {
    let reads = reads.to_string();
    let args: Vec<&str> = target.iter().copied().chain([reads.as_str()]).collect();
    let stdout = stdout_of("read_cell", run(programs, "read_cell", &args));
    let lines: Vec<Read> = stdout.lines().map(parse_read).collect();
    assert!(!lines.is_empty(), "read_cell printed nothing");
    lines
}

#[test]
fn c_reader_reads_what_rust_stored() {
    let Some(programs) = compile("stored", &["read_cell"]) else {
        return;
    };
    let key = common::unique_key();
    let cell = SharedCell::<Words>::options()
        .remove_on_drop(true)
        .create(key, [1, 2, 3, 4])
        .expect("create the cell");
    let _guard = SegGuard(cell.id());
    let values: [Words; 3] = [
        [10, 20, 30, 40],
        [u64::MAX, 0, 0x0123_4567_89ab_cdef, 1 << 63],
        [7, 0xdead_beef_0000_0001, 42, u64::MAX - 1],
    ];
    let id = cell.id().to_string();
    let key = key_arg(key);
    for (i, value) in values.iter().enumerate() {
        cell.store(*value).expect("store");
        let expected = [Read {
            version: i as u64 + 1,
            words: *value,
            hash: "ok".to_owned(),
            name: std::any::type_name::<Words>().to_owned(),
        }];
        assert_eq!(read_cell(&programs, &[&id], 1), expected, "by id");
        assert_eq!(
            read_cell(&programs, &["--key", &key], 1),
            expected,
            "by key"
        );
    }
    assert_eq!(cell.load(), values[2], "the C reader changed the cell");

    // A region is not a cell of [u64; 4], and a key with no segment is no
    // cell at all.
    let region = SharedRegion::<Snapshot>::options()
        .remove_on_drop(true)
        .create(Key::PRIVATE, 1024)
        .expect("create a region");
    let _region_guard = SegGuard(region.id());
    let out = run(&programs, "read_cell", &[&region.id().to_string()]);
    assert_eq!(out.status.code(), Some(3), "read_cell on a region: {out:?}");
    let absent = common::unique_key();
    let out = run(&programs, "read_cell", &["--key", &key_arg(absent)]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "read_cell at a free key: {out:?}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no such object"),
        "{out:?}"
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
    let region = SharedRegion::<Snapshot>::options()
        .remove_on_drop(true)
        .create(Key::named(&region_name).unwrap(), 2048)
        .expect("create the named region");
    let _g4 = SegGuard(region.id());
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

/// Runs of the reader in the concurrent tests before they give up on seeing
/// a commit.
const ATTEMPTS: usize = 20;

/// The value the writer below commits as version `v`.
fn value_for(v: u64) -> Words {
    [
        v,
        !v,
        v.wrapping_mul(0x9e37_79b9_7f4a_7c15),
        v ^ 0x5555_aaaa_5555_aaaa,
    ]
}

#[test]
fn c_reader_never_sees_a_torn_value_while_rust_writes() {
    let Some(programs) = compile("concurrent", &["read_cell"]) else {
        return;
    };
    let name = "acme.Zähler";
    let cell = SharedCell::<Words>::options()
        .remove_on_drop(true)
        .type_name(name)
        .schema_version(7)
        .create(Key::PRIVATE, value_for(0))
        .expect("create the cell");
    let _guard = SegGuard(cell.id());
    let id = cell.id().to_string();
    let stop = AtomicBool::new(false);
    // The reader prints every read that differs from the one before, so the
    // lines show each value it saw. Runs are repeated until one overlapped
    // the writer's commits (on a loaded machine a run may not).
    let runs = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                cell.update(|v| *v = value_for(v[0] + 1)).expect("update");
            }
        });
        // Stops the writer also when a run panics, so the scope can end.
        struct StopOnDrop<'a>(&'a AtomicBool);
        impl Drop for StopOnDrop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let _stop_writer = StopOnDrop(&stop);
        while cell.version() < 100 {
            std::thread::yield_now();
        }
        let mut runs = Vec::new();
        for _ in 0..ATTEMPTS {
            let reads = read_cell(&programs, &[&id], 1_000_000);
            let overlapped = reads.first().map(|r| r.version) != reads.last().map(|r| r.version);
            runs.push(reads);
            if overlapped {
                break;
            }
        }
        stop.store(true, Ordering::Relaxed);
        writer.join().expect("the writer thread");
        runs
    });
    for reads in &runs {
        let mut last = 0;
        for read in reads {
            assert_eq!(
                read.words,
                value_for(read.version),
                "torn or stale: {read:?}"
            );
            assert_eq!((read.hash.as_str(), read.name.as_str()), ("ok", name));
            assert!(read.version >= last, "version went back: {read:?}");
            last = read.version;
        }
    }
    let reads = runs.last().expect("at least one run");
    let (first, last) = (reads[0].version, reads[reads.len() - 1].version);
    assert!(
        first != last,
        "in {ATTEMPTS} runs the C reader never saw the writer commit"
    );
    println!(
        "run {}: {} lines, versions {first} to {last}",
        runs.len(),
        reads.len()
    );
}

/// The value a region holds at version `v`: every field derives from `v`,
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

#[test]
fn c_region_reader_copies_what_rust_published() {
    let Some(programs) = compile("region", &["read_region"]) else {
        return;
    };
    let key = common::unique_key();
    let region = SharedRegion::<Snapshot>::options()
        .remove_on_drop(true)
        .create(key, 4096)
        .expect("create the region");
    let _guard = SegGuard(region.id());
    let id = region.id().to_string();
    let out = run(&programs, "read_region", &[&id]);
    assert_eq!(out.status.code(), Some(5), "nothing published: {out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing has been published"));
    for v in 1..=5 {
        assert_eq!(region.publish(&Snapshot::of(v)).expect("publish"), v);
        for target in [vec![id.as_str()], vec!["--key", &key_arg(key)]] {
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
    let region = SharedRegion::<Snapshot>::options()
        .remove_on_drop(true)
        .create(key, 4096)
        .expect("create the region");
    let _guard = SegGuard(region.id());
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

/// The files of `fuzz/DIR/header/`, sorted.
fn header_inputs(dir: &str) -> Vec<PathBuf> {
    let dir = root().join("fuzz").join(dir).join("header");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Run `validate` on a new private segment holding `bytes` (at least one
/// byte: an empty input becomes one zero byte). Returns the exit code
/// (`None` if it died of a signal) and its output, and Rust's verdict on
/// the same bytes (`None`: no problem).
fn validate_bytes(programs: &Programs, bytes: &[u8]) -> (Option<i32>, String, Option<String>) {
    let mut bytes = bytes.to_vec();
    if bytes.is_empty() {
        bytes.push(0);
    }
    let seg = Segment::options()
        .size(bytes.len())
        .create(true)
        .open(Key::PRIVATE)
        .expect("create a private segment");
    let _guard = SegGuard(seg.id());
    seg.write_at(0, &bytes).expect("write the input");
    let out = run(programs, "validate", &[&seg.id().to_string()]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let rust = shmstore::inspect::describe(&bytes, bytes.len()).problem;
    (out.status.code(), said, rust)
}

#[test]
fn c_validator_refuses_corrupt_and_foreign_segments() {
    let Some(programs) = compile("validate", &["validate"]) else {
        return;
    };
    // Live objects are valid.
    for (what, id, guard) in [
        {
            let c = SharedCell::<Words>::create(Key::PRIVATE, [0; 4]).expect("create a cell");
            ("cell", c.id(), SegGuard(c.id()))
        },
        {
            let r = SharedRegion::<Snapshot>::create(Key::PRIVATE, 1024).expect("create a region");
            ("region", r.id(), SegGuard(r.id()))
        },
    ] {
        let out = run(&programs, "validate", &[&id.to_string()]);
        let said = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success() && said.starts_with("valid "),
            "a live {what} refused: {said}"
        );
        drop(guard);
    }

    let mut inputs = header_inputs("corpus");
    inputs.extend(header_inputs("seeds"));
    let (mut accepted, mut refused, mut stricter) = (0, 0, Vec::new());
    let mut failures = Vec::new();
    for path in &inputs {
        let bytes = std::fs::read(path).expect("read the input");
        let (code, said, rust) = validate_bytes(&programs, &bytes);
        let name = path.strip_prefix(root()).unwrap_or(path).display();
        match code {
            Some(0) if rust.is_none() => accepted += 1,
            Some(0) => failures.push(format!(
                "{name}: C accepted what Rust refuses ({}): {said}",
                rust.unwrap_or_default()
            )),
            Some(3) if said.starts_with("refused ") => {
                refused += 1;
                if rust.is_none() {
                    stricter.push(format!("{name}: {said}"));
                }
            }
            Some(code) => failures.push(format!("{name}: exit status {code}: {said}")),
            None => failures.push(format!("{name}: the validator crashed: {said}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        stricter.is_empty(),
        "C refused what Rust accepts:\n{}",
        stricter.join("\n")
    );
    assert!(
        accepted > 0,
        "no input was valid: the seeds hold valid headers"
    );
    println!(
        "{} inputs: {accepted} valid, {refused} refused, as Rust judges them",
        inputs.len()
    );
}
