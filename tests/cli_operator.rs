//! The command as an operator scripts it: JSON, exit codes, no panics on
//! any argument, each removal reported, the kernel's fields as they were
//! before attaching, strict decoding of crafted segments, and no terminal
//! escape from a segment's bytes.

mod common;

use std::process::{Command, Output};

use common::{Kid, SegGuard, child_args, report, unique_key};
use serde_json::Value;
use shmstore::{Key, Segment, SharedCell, SharedRegion};

/// Held for reading while a command that attaches every segment (`list`,
/// `gc`) runs, for writing by a test that needs no attach but its own to
/// touch its segment: the tests of this file run in parallel.
static EVERY_SEGMENT: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// Whether the command `args` attaches every segment.
fn attaches_all(args: &[&str]) -> bool {
    (args.contains(&"list") && !args.contains(&"--no-attach")) || args.contains(&"gc")
}

/// The guard a command `args` runs under (see [`EVERY_SEGMENT`]).
fn every_segment(args: &[&str]) -> Option<std::sync::RwLockReadGuard<'static, ()>> {
    attaches_all(args).then(|| EVERY_SEGMENT.read().unwrap_or_else(|e| e.into_inner()))
}

fn cli(args: &[&str]) -> Output {
    let _every = every_segment(args);
    Command::new(env!("CARGO_BIN_EXE_shmstore"))
        .args(args)
        .output()
        .expect("run shmstore")
}

/// `cli`, killed after two seconds (a `watch` of a real segment waits).
fn cli_bounded(args: &[&str]) -> Output {
    let _every = every_segment(args);
    let mut child = Command::new(env!("CARGO_BIN_EXE_shmstore"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run shmstore");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let _ = child.kill();
    child.wait_with_output().unwrap()
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

fn json(out: &Output) -> Value {
    assert!(out.status.success(), "{}", text(out));
    serde_json::from_slice(&out.stdout).expect("one JSON value")
}

#[derive(rkyv::Archive, rkyv::Serialize)]
struct Note {
    text: String,
}

#[test]
fn child_entry() {
    let Some(args) = child_args() else { return };
    match args[0].as_str() {
        // Make a segment and detach: the kernel's last pid is this one.
        "make" => {
            let cell = SharedCell::<u64>::create(Key::PRIVATE, 1).unwrap();
            report("id", cell.id());
        }
        other => panic!("unknown role {other}"),
    }
    std::process::exit(0);
}

#[test]
fn version_and_help_for_every_subcommand() {
    let out = cli(&["--version"]);
    assert!(out.status.success() && text(&out).starts_with("shmstore "));
    for sub in ["list", "inspect", "watch", "remove", "gc"] {
        let out = cli(&[sub, "--help"]);
        assert!(out.status.success(), "{sub} --help: {}", text(&out));
        assert!(text(&out).contains("Usage: shmstore"), "{sub}");
    }
}

/// Bad values are usage errors (2) that name the flag; nothing panics.
#[test]
fn bad_values_name_their_flag_and_never_panic() {
    for (args, flag) in [
        (&["watch", "1", "--count", "abc"][..], "--count"),
        (&["watch", "1", "--timeout", "-1"], "--timeout"),
        (&["watch", "1", "--timeout", "nan"], "--timeout"),
        (&["watch", "1", "--timeout", "inf"], "--timeout"),
        (&["watch", "1", "--timeout", "1e30"], "--timeout"),
        (&["watch", "1", "--format", "u128"], "--format"),
        (&["remove", "1", "--expect-cpid", "x"], "--expect-cpid"),
        (&["list", "--frobnicate"], "--frobnicate"),
    ] {
        let out = cli(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(text(&out).contains(flag), "{args:?}: {}", text(&out));
    }
}

/// Arguments made up at random (words, flags, numbers, bytes) never make
/// the command panic (exit code 101) or print a panic.
#[test]
fn no_argument_panics_the_command() {
    let pieces = [
        "list",
        "inspect",
        "watch",
        "remove",
        "gc",
        "--json",
        "--no-attach",
        "--count",
        "--timeout",
        "--format",
        "--prefix",
        "--expect-key",
        "--expect-name",
        "--expect-cpid",
        "--expect-ctime",
        "--remove",
        "0",
        "-1",
        "1e300",
        "nan",
        "0x",
        "0xzz",
        "0xffffffff",
        "2147483648",
        "99999999999999999999",
        "",
        "a/b",
        "\u{1b}[2J",
        "é",
        "--",
        "-",
    ];
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..300 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let n = (rng % 5) as usize;
        let args: Vec<&str> = (0..n)
            .map(|i| pieces[((rng >> (8 * i)) % pieces.len() as u64) as usize])
            .collect();
        // Never remove anything of this machine's: no `remove`, no
        // `gc --remove`.
        if args.contains(&"remove") || (args.contains(&"gc") && args.contains(&"--remove")) {
            continue;
        }
        let out = cli_bounded(&args);
        assert_ne!(
            out.status.code(),
            Some(101),
            "{args:?} panicked: {}",
            text(&out)
        );
        assert!(!text(&out).contains("panicked"), "{args:?}: {}", text(&out));
        assert!(
            matches!(out.status.code(), Some(0..=2) | None),
            "{args:?}: {:?}",
            out.status
        );
    }
}

/// `remove` handles every argument and reports each; one bad argument does
/// not stop the others; the exit code says some failed.
#[test]
fn remove_goes_on_past_a_bad_argument() {
    let a = SharedCell::<u64>::create(Key::PRIVATE, 1).unwrap();
    let b = SharedCell::<u64>::create(Key::PRIVATE, 2).unwrap();
    let (_ga, _gb) = (SegGuard(a.id()), SegGuard(b.id()));
    let out = cli(&[
        "remove",
        "--json",
        "999999999",
        &a.id().to_string(),
        "0x7ffffffe",
        &b.id().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
    let removed: Vec<bool> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["removed"].as_bool().unwrap())
        .collect();
    assert_eq!(removed, [false, true, false, true]);
    assert!(a.is_removed().unwrap() && b.is_removed().unwrap());
}

/// `remove` re-checks what the operator expects just before removing: an
/// id seen earlier that now names another segment is left alone.
#[test]
fn remove_checks_what_it_expects() {
    let key = unique_key();
    let cell = SharedCell::<u64>::create(key, 1).unwrap();
    let _g = SegGuard(cell.id());
    let id = cell.id().to_string();
    let out = cli(&["remove", &id, "--expect-key", "0x00000001"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("not removed"), "{}", text(&out));
    assert!(!cell.is_removed().unwrap());
    let info = cell.info().unwrap();
    let ctime = info
        .ctime
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let out = cli(&[
        "remove",
        &id,
        "--expect-key",
        &key.to_string(),
        "--expect-cpid",
        &info.cpid.to_string(),
        "--expect-ctime",
        &ctime.to_string(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("segment {id} (key {key}")),
        "shows what it removed: {}",
        text(&out)
    );
    assert!(cell.is_removed().unwrap());
}

/// The kernel's fields are those before the command attached: the last pid
/// is the creator child's, not the inspector's; --no-attach changes
/// nothing.
#[test]
fn kernel_fields_are_read_before_attaching() {
    // No `list` of another test attaches the segment meanwhile.
    let only = EVERY_SEGMENT.write().unwrap_or_else(|e| e.into_inner());
    let mut maker = Kid::spawn(&["make"]);
    let id: i32 = maker.expect("id").parse().unwrap();
    let maker_pid = maker.pid();
    maker.wait();
    let _g = SegGuard(id);
    for _ in 0..2 {
        let v = json(&cli(&["inspect", &id.to_string(), "--json", "--no-attach"]));
        assert_eq!(v["kernel"]["lpid"].as_i64(), Some(i64::from(maker_pid)));
        assert!(v["object"].is_null());
    }
    let v = json(&cli(&["inspect", &id.to_string(), "--json"]));
    assert_eq!(v["kernel"]["lpid"].as_i64(), Some(i64::from(maker_pid)));
    assert_eq!(
        v["object"]["holds"].as_str().map(|h| h.contains("u64")),
        Some(true)
    );
    assert_eq!(v["liveness"]["creator"]["running"], Value::Bool(false));
    drop(only);
    let list = json(&cli(&["list", "--json"]));
    let row = list
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kernel"]["id"].as_i64() == Some(i64::from(id)))
        .expect("listed");
    assert_eq!(row["object"]["version"].as_u64(), Some(0));
}

/// A key written in decimal is named as such.
#[test]
fn a_decimal_key_gets_a_hint() {
    let key = unique_key();
    let cell = SharedCell::<u64>::create(key, 1).unwrap();
    let _g = SegGuard(cell.id());
    let decimal = key.raw().to_string();
    let out = cli(&["inspect", &decimal]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("give keys in hex"), "{}", text(&out));
}

/// Craft a cell, let `f` scribble on its segment, and return what
/// `inspect --json` says of it.
fn inspect_crafted(f: impl FnOnce(&Segment)) -> Value {
    let cell = SharedCell::<u64>::options()
        .type_name("acme.Counter")
        .create(Key::PRIVATE, 1)
        .unwrap();
    let _g = SegGuard(cell.id());
    let seg = Segment::options().attach_id(cell.id()).unwrap();
    f(&seg);
    json(&cli(&["inspect", &cell.id().to_string(), "--json"]))
}

fn warnings(v: &Value) -> String {
    v["object"]["warnings"].to_string()
}

#[test]
fn strict_decoding_flags_what_does_not_fit() {
    // FORMAT.md: type_name at 128, type_hash at 56, name_len at 112 and
    // name at 384, state at 16, writing at 280.
    let v = inspect_crafted(|seg| seg.write_at(128, b"b").unwrap());
    assert!(
        warnings(&v).contains("fingerprint"),
        "changed type name: {v}"
    );
    let v = inspect_crafted(|seg| seg.write_at(56, &[0x55]).unwrap());
    assert!(
        warnings(&v).contains("fingerprint"),
        "flipped type_hash: {v}"
    );
    let v = inspect_crafted(|seg| {
        seg.write_at(112, &3u32.to_le_bytes()).unwrap();
        seg.write_at(384, &[0xff, b'a', 0xfe]).unwrap();
    });
    assert!(warnings(&v).contains("not UTF-8"), "{v}");
    assert_eq!(v["object"]["name"], Value::from("\\xffa\\xfe"));
    let v = inspect_crafted(|seg| seg.write_at(280, &77u64.to_le_bytes()).unwrap());
    assert!(warnings(&v).contains("writing"), "{v}");

    // A region with rkyv's format word cleared and impossible control
    // values: buffer index 200, a length of 2^40, a version from the future.
    let region = SharedRegion::<Note>::create(Key::PRIVATE, 1024).unwrap();
    let _g = SegGuard(region.id());
    region.publish(&Note { text: "x".into() }).unwrap();
    let seg = Segment::options().attach_id(region.id()).unwrap();
    seg.write_at(64, &0u64.to_le_bytes()).unwrap(); // type_extra
    seg.write_at(512, &((1u64 << 8) | 200).to_le_bytes())
        .unwrap(); // current
    seg.write_at(512 + 64, &(1u64 << 40).to_le_bytes()).unwrap(); // buffers[0].len
    seg.write_at(512 + 72, &83264u64.to_le_bytes()).unwrap(); // buffers[0].version
    let v = json(&cli(&["inspect", &region.id().to_string(), "--json"]));
    let w = warnings(&v);
    for expected in ["format word", "current buffer 200", "2^40", "83264"] {
        let found = match expected {
            "2^40" => w.contains(&(1u64 << 40).to_string()),
            other => w.contains(other),
        };
        assert!(found, "{expected} not flagged: {w}");
    }
}

#[test]
fn unfinished_segments_are_described_as_such() {
    let zero = Segment::options()
        .size(4096)
        .create(true)
        .open(Key::PRIVATE)
        .unwrap();
    let _g = SegGuard(zero.id());
    let v = json(&cli(&["inspect", &zero.id().to_string(), "--json"]));
    assert!(
        v["object"]["problem"]
            .as_str()
            .unwrap()
            .contains("all zeros"),
        "{v}"
    );
    // State 1 with the magic: a creator at work (this process, alive).
    let busy = Segment::options()
        .size(4096)
        .create(true)
        .open(Key::PRIVATE)
        .unwrap();
    let _g2 = SegGuard(busy.id());
    busy.write_at(0, b"shmstore").unwrap();
    busy.write_at(8, &shmstore::FORMAT_VERSION.to_le_bytes())
        .unwrap();
    busy.write_at(16, &1u32.to_le_bytes()).unwrap();
    let v = json(&cli(&["inspect", &busy.id().to_string(), "--json"]));
    assert!(
        v["object"]["problem"]
            .as_str()
            .unwrap()
            .contains("being initialised"),
        "{v}"
    );
}

/// A type name holding terminal escapes (a forged line, an OSC 2 title)
/// reaches no terminal: every subcommand escapes it.
#[test]
fn escapes_in_a_segment_never_reach_the_terminal() {
    let cell = SharedCell::<u64>::create(Key::PRIVATE, 1).unwrap();
    let _g = SegGuard(cell.id());
    let seg = Segment::options().attach_id(cell.id()).unwrap();
    let evil = b"\r\x1b[2K\x1b[Akernel: 1 bytes, owner 0:0, creator 0:0\x1b]2;owned\x07\xc2\x9b2J";
    seg.write_at(128, evil).unwrap();
    seg.write_at(72, &(evil.len() as u32).to_le_bytes())
        .unwrap();
    let id = cell.id().to_string();
    for args in [
        &["list"][..],
        &["list", "--json"],
        &["inspect", &id],
        &["inspect", &id, "--json"],
        &["watch", &id, "--count", "1"],
        &["watch", &id, "--count", "1", "--json"],
    ] {
        let out = cli(args);
        let all = [out.stdout.as_slice(), out.stderr.as_slice()].concat();
        for bad in [0x1b_u8, b'\r', 0x07] {
            assert!(
                !all.contains(&bad),
                "{args:?} printed byte {bad:#x}: {}",
                text(&out)
            );
        }
        assert!(
            !String::from_utf8_lossy(&all).contains('\u{9b}'),
            "{args:?} printed a C1 CSI"
        );
    }
}

/// Which of the command's outputs is a pipe nobody reads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Gone {
    Stdout,
    Stderr,
}

/// A pipe whose reading end is already closed: every write to the other
/// end fails with `EPIPE`, as when `| head -1` has exited.
fn closed_pipe() -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: pipe2 made both descriptors; each is owned once, here.
    let (read, write) = unsafe {
        (
            std::os::fd::OwnedFd::from_raw_fd(fds[0]),
            std::os::fd::OwnedFd::from_raw_fd(fds[1]),
        )
    };
    drop(read);
    write
}

/// The command with `gone` a pipe whose reader has gone, killed after five
/// seconds; the other output captured.
fn cli_unread(args: &[&str], gone: Gone) -> Output {
    let _every = every_segment(args);
    use std::process::Stdio;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shmstore"));
    cmd.args(args);
    match gone {
        Gone::Stdout => cmd.stdout(closed_pipe()).stderr(Stdio::piped()),
        Gone::Stderr => cmd.stdout(Stdio::piped()).stderr(closed_pipe()),
    };
    let mut child = cmd.spawn().expect("run shmstore");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let _ = child.kill();
    child.wait_with_output().unwrap()
}

/// A reader that stops reading (`shmstore list | head -1`) ends every
/// subcommand quietly, with exit code 0: no panic, nothing on stderr.
#[test]
fn a_closed_stdout_ends_every_subcommand_quietly() {
    let key = unique_key();
    let cell = SharedCell::<u64>::create(key, 1).unwrap();
    let _g = SegGuard(cell.id());
    let id = cell.id().to_string();
    let key = key.to_string();
    for args in [
        &["list"][..],
        &["list", "--json"],
        &["list", "--no-attach"],
        &["inspect", &id],
        &["inspect", &id, "--json"],
        &["inspect", &key, "--no-attach"],
        &["watch", &id],
        &["watch", &id, "--json"],
        &["watch", &id, "--format", "u64"],
        &["get", &id, "--format", "u64"],
        &["get", &id, "--format", "hex", "--json"],
        &["gc"],
        &["gc", "--json"],
        &["--help"],
        &["list", "--help"],
        &["--version"],
    ] {
        let out = cli_unread(args, Gone::Stdout);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out));
        assert!(out.stderr.is_empty(), "{args:?}: {}", text(&out));
    }
}

/// `remove` with nobody reading still removes every target it was given
/// (what was asked is done; only the report is lost), quietly.
#[test]
fn a_closed_stdout_does_not_stop_a_removal() {
    let a = SharedCell::<u64>::create(Key::PRIVATE, 1).unwrap();
    let _ga = SegGuard(a.id());
    let b = SharedCell::<u64>::create(Key::PRIVATE, 2).unwrap();
    let _gb = SegGuard(b.id());
    let c = SharedCell::<u64>::create(Key::PRIVATE, 3).unwrap();
    let _gc = SegGuard(c.id());
    let d = SharedCell::<u64>::create(Key::PRIVATE, 4).unwrap();
    let _gd = SegGuard(d.id());
    for (args, cells) in [
        (vec!["remove", "--json"], [&a, &b]),
        (vec!["remove"], [&c, &d]),
    ] {
        let ids: Vec<String> = cells.iter().map(|c| c.id().to_string()).collect();
        let all: Vec<&str> = args
            .iter()
            .copied()
            .chain(ids.iter().map(String::as_str))
            .collect();
        let out = cli_unread(&all, Gone::Stdout);
        assert_eq!(out.status.code(), Some(0), "{all:?}: {}", text(&out));
        assert!(out.stderr.is_empty(), "{all:?}: {}", text(&out));
        for cell in cells {
            assert!(cell.info().unwrap().marked_for_removal, "{all:?}");
        }
    }
}

/// `watch` ends (exit 0, quietly) once its reader has gone, without
/// waiting for a new version to write.
#[test]
fn watch_ends_when_its_reader_goes() {
    use std::io::BufRead;
    let cell = SharedCell::<u64>::create(Key::PRIVATE, 1).unwrap();
    let _g = SegGuard(cell.id());
    let mut child = Command::new(env!("CARGO_BIN_EXE_shmstore"))
        .args(["watch", &cell.id().to_string()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(!first.is_empty());
    // The reader is dropped here: the pipe has no reader any more.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let ended = child.try_wait().unwrap();
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        ended.and_then(|s| s.code()),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stderr.is_empty(), "{}", text(&out));
}

/// A failure reported on a stderr nobody reads is still a failure (exit
/// code 1), not a panic.
#[test]
fn a_closed_stderr_panics_nothing() {
    for args in [
        &["inspect", "no/such-object"][..],
        &["inspect", "0x7ffffe01"],
        &["remove", "0x7ffffe01"],
        &["watch", "2147483647"],
    ] {
        let out = cli_unread(args, Gone::Stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
    }
    let out = cli_unread(&["list", "--frobnicate"], Gone::Stderr);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

/// The header's state is printed by name in JSON.
#[test]
fn states_are_named() {
    let cell = SharedCell::<u64>::create(Key::PRIVATE, 1).unwrap();
    let _g = SegGuard(cell.id());
    let v = json(&cli(&["inspect", &cell.id().to_string(), "--json"]));
    assert_eq!(v["object"]["state"], "ready", "{v}");
    let raw = |state: Option<u32>| {
        let seg = Segment::options()
            .size(4096)
            .create(true)
            .open(Key::PRIVATE)
            .unwrap();
        if let Some(state) = state {
            seg.write_at(0, b"shmstore").unwrap();
            seg.write_at(8, &shmstore::FORMAT_VERSION.to_le_bytes())
                .unwrap();
            seg.write_at(16, &state.to_le_bytes()).unwrap();
        }
        seg
    };
    for (state, name) in [
        (None, "fresh"),
        (Some(1), "initializing"),
        (Some(7), "unknown(7)"),
    ] {
        let seg = raw(state);
        let _g = SegGuard(seg.id());
        let v = json(&cli(&["inspect", &seg.id().to_string(), "--json"]));
        assert_eq!(v["object"]["state"], name, "{v}");
        let rows = json(&cli(&["list", "--json"]));
        let row = rows
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["kernel"]["id"] == seg.id())
            .expect("listed");
        assert_eq!(row["object"]["state"], name, "{row}");
    }
}

/// `list` (and `inspect`) mark a segment whose owner or creator the
/// library would not trust, in text and JSON; `--trust-user` trusts it.
#[test]
fn list_marks_segments_it_would_not_trust() {
    let ours = SharedCell::<u64>::create(Key::PRIVATE, 1).unwrap();
    let _g = SegGuard(ours.id());
    let row_of = |rows: &Value, id: i32| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["kernel"]["id"] == id)
            .expect("listed")
            .clone()
    };
    let line_of = |out: &Output, id: i32| {
        text(out)
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(&id.to_string()))
            .expect("listed")
            .to_owned()
    };
    let rows = json(&cli(&["list", "--json"]));
    assert_eq!(row_of(&rows, ours.id())["trusted"], true);
    assert!(!line_of(&cli(&["list"]), ours.id()).contains("trusted"));
    if !common::root_or_skip("giving a segment to another user") {
        return;
    }
    let theirs = SharedCell::<u64>::create(Key::PRIVATE, 2).unwrap();
    let _g2 = SegGuard(theirs.id());
    theirs.set_owner(43_004, 43_004).unwrap();
    let rows = json(&cli(&["list", "--json"]));
    assert_eq!(row_of(&rows, theirs.id())["trusted"], false);
    assert_eq!(row_of(&rows, ours.id())["trusted"], true);
    let line = line_of(&cli(&["list"]), theirs.id());
    assert!(
        line.contains("[not trusted: owner uid 43004, creator uid 0]"),
        "{line}"
    );
    let v = json(&cli(&["inspect", &theirs.id().to_string(), "--json"]));
    assert_eq!(v["trusted"], false, "{v}");
    let out = cli(&["inspect", &theirs.id().to_string()]);
    assert!(text(&out).contains("not trusted"), "{}", text(&out));
    for trust in [&["--trust-user", "43004"][..], &["--allow-foreign-owner"]] {
        let args: Vec<&str> = trust.iter().copied().chain(["list", "--json"]).collect();
        let rows = json(&cli(&args));
        assert_eq!(row_of(&rows, theirs.id())["trusted"], true, "{trust:?}");
        let args: Vec<&str> = trust.iter().copied().chain(["list"]).collect();
        assert!(!line_of(&cli(&args), theirs.id()).contains("trusted"));
    }
}

/// Whether `s` is an RFC 3339 time in UTC: `YYYY-MM-DDTHH:MM:SS`, then
/// `.mmm` if `millis`, then `Z`.
fn is_rfc3339(s: &str, millis: bool) -> bool {
    let shape = if millis {
        "dddd-dd-ddTdd:dd:dd.dddZ"
    } else {
        "dddd-dd-ddTdd:dd:ddZ"
    };
    s.len() == shape.len()
        && s.bytes().zip(shape.bytes()).all(|(c, want)| match want {
            b'd' => c.is_ascii_digit(),
            _ => c == want,
        })
}

/// Times are printed in UTC, RFC 3339, in text; JSON keeps the seconds
/// since the epoch and gives the readable time beside them.
#[test]
fn times_are_printed_readable() {
    use std::time::{Duration, UNIX_EPOCH};
    let cell = SharedCell::<u64>::create(Key::PRIVATE, 1).unwrap();
    let _g = SegGuard(cell.id());
    let id = cell.id().to_string();
    let v = json(&cli(&["inspect", &id, "--json"]));
    let k = &v["kernel"];
    let ctime = k["ctime"].as_u64().expect("a change time");
    let readable = shmstore::inspect::rfc3339(UNIX_EPOCH + Duration::from_secs(ctime));
    assert_eq!(k["ctime_rfc3339"], readable.as_str(), "{v}");
    for field in ["atime", "dtime"] {
        match k[field].as_u64() {
            Some(t) => assert_eq!(
                k[format!("{field}_rfc3339")],
                shmstore::inspect::rfc3339(UNIX_EPOCH + Duration::from_secs(t)).as_str(),
                "{v}"
            ),
            None => assert!(k[format!("{field}_rfc3339")].is_null(), "{v}"),
        }
    }
    let rows = json(&cli(&["list", "--json"]));
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kernel"]["id"] == cell.id())
        .unwrap();
    assert_eq!(row["kernel"]["ctime_rfc3339"], readable.as_str(), "{row}");

    let out = text(&cli(&["inspect", &id]));
    assert!(out.contains(&format!("changed at {readable}")), "{out}");
    assert!(!out.contains(&ctime.to_string()), "{out}");
    let attach = k["atime_rfc3339"].as_str().unwrap_or("never");
    assert!(out.contains(&format!("last attach {attach}")), "{out}");

    let out = text(&cli(&["watch", &id, "--count", "1"]));
    let time = out.split_whitespace().next().unwrap_or_default();
    assert!(is_rfc3339(time, true), "{out}");
    let line = cli(&["watch", &id, "--count", "1", "--json"]);
    let v: Value = serde_json::from_slice(&line.stdout).unwrap();
    assert!(v["time"].as_f64().unwrap() > 1e9, "{v}");
    assert!(is_rfc3339(v["time_rfc3339"].as_str().unwrap(), true), "{v}");

    // A mismatched --expect-ctime names both times, readable.
    let out = cli(&["remove", &id, "--expect-ctime", "951782400"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains(&format!(
            "{ctime} ({readable}), not 951782400 (2000-02-29T00:00:00Z)"
        )),
        "{}",
        text(&out)
    );
}
