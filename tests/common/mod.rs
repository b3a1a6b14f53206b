//! Helpers shared by the integration tests: child processes of the test
//! binary itself, segment guards and unique keys, cells of values whose
//! words derive from one number; `names` has names and their keys, `values`
//! the values regions hold, `python` runs the Python reader.
#![allow(dead_code)]

pub mod names;
pub mod python;
pub mod schemas;
pub mod values;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use shmstore::{Error, Key, Segment};

pub mod programs;

const ARGS_ENV: &str = "SHMSTORE_TEST_CHILD";
const SEP: char = '\u{1f}';

/// The arguments of this process if it was started by [`child`], else `None`.
///
/// Each test file has one `#[test] fn child_entry()` that returns at once in
/// the harness and dispatches on these arguments in a child.
pub fn child_args() -> Option<Vec<String>> {
    let raw = std::env::var(ARGS_ENV).ok()?;
    Some(raw.split(SEP).map(str::to_owned).collect())
}

/// A command that runs this test binary's `child_entry` with `args`.
pub fn child(args: &[&str]) -> Command {
    let exe = std::env::current_exe().expect("path of the test binary");
    let mut cmd = Command::new(exe);
    cmd.args([
        "child_entry",
        "--exact",
        "--nocapture",
        "--test-threads=1",
        "-q",
    ])
    .env(ARGS_ENV, args.join(&SEP.to_string()))
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    cmd
}

/// Print a `@name=value` line for the parent to read.
pub fn report(name: &str, value: impl std::fmt::Display) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "@{name}={value}").unwrap();
    out.flush().unwrap();
}

/// The `@name=value` reports in a finished child's output.
pub fn reports(stdout: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|l| l.strip_prefix('@'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// The value of report `name` in a finished child's output.
pub fn report_of(stdout: &[u8], name: &str) -> Option<String> {
    reports(stdout)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// A child that runs while the test talks to it line by line.
pub struct Live {
    pub child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Live {
    /// Start `child(args)` with piped stdin and stdout.
    pub fn spawn(args: &[&str]) -> Live {
        let mut child = child(args)
            .stdin(Stdio::piped())
            .spawn()
            .expect("spawn child");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Live {
            child,
            stdin,
            stdout,
        }
    }

    /// Wait for report `name` and return its value.
    pub fn expect(&mut self, name: &str) -> String {
        let mut line = String::new();
        loop {
            line.clear();
            let n = self.stdout.read_line(&mut line).expect("read child output");
            assert!(n > 0, "child ended before reporting {name}");
            if let Some((k, v)) = line
                .trim_end()
                .strip_prefix('@')
                .and_then(|l| l.split_once('='))
            {
                if k == name {
                    return v.to_owned();
                }
                panic!("child reported {k}={v} while {name} was expected");
            }
        }
    }

    /// Send one line to the child.
    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// Close stdin and wait for the child to exit successfully.
    pub fn finish(mut self) {
        self.stdin = None;
        let status = self.child.wait().unwrap();
        assert!(status.success(), "child failed: {status}");
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The steps of the life of an object (src/store/life/), as the library
/// names them (`create.*`, `replace.*`, `remove.*`, `gc.*`): each killed and
/// stopped at by `tests/life.rs`.
pub fn life_steps() -> impl Iterator<Item = &'static str> {
    shmstore::crash::STEPS.iter().copied().filter(|step| {
        ["create.", "replace.", "remove.", "gc."]
            .iter()
            .any(|p| step.starts_with(p))
    })
}

/// How long a child gets to make each report or to exit.
pub const CHILD_WAIT: Duration = Duration::from_secs(30);

/// Children are spawned under the read side; a test that needs the next
/// pid to go to its own child spawns under the write side.
pub static SPAWNING: RwLock<()> = RwLock::new(());

/// A child process of this binary (see [`common::child`]) whose reports
/// are read with a deadline: a child that does not report in time is
/// killed and the test fails, instead of hanging.
pub struct Kid {
    pub child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    what: String,
}

impl Kid {
    pub fn spawn(args: &[&str]) -> Kid {
        let _spawning = SPAWNING.read().unwrap_or_else(|e| e.into_inner());
        Kid::spawn_unlocked(args)
    }

    pub fn spawn_unlocked(args: &[&str]) -> Kid {
        Kid::start(child(args))
    }

    /// Start `cmd` (a [`child`] command, perhaps with more settings).
    pub fn start(mut cmd: Command) -> Kid {
        let what = format!("{cmd:?}");
        let mut child = cmd.stdin(Stdio::piped()).spawn().expect("spawn child");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Kid {
            child,
            stdin,
            lines,
            what,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Wait for report `name` and return its value.
    pub fn expect(&mut self, name: &str) -> String {
        let deadline = Instant::now() + CHILD_WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let Some((k, v)) = line.strip_prefix('@').and_then(|l| l.split_once('='))
                    else {
                        continue;
                    };
                    if k == name {
                        return v.to_owned();
                    }
                    panic!(
                        "child `{}` reported {k}={v} while {name} was expected",
                        self.what
                    );
                }
                Err(RecvTimeoutError::Timeout) => {
                    self.kill();
                    panic!(
                        "child `{}` did not report {name} within {CHILD_WAIT:?}: killed it",
                        self.what
                    );
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.wait();
                    panic!(
                        "child `{}` ended ({status}) before reporting {name}",
                        self.what
                    );
                }
            }
        }
    }

    /// Close the child's stdin and wait for it to exit.
    pub fn wait(&mut self) -> ExitStatus {
        self.stdin = None;
        let deadline = Instant::now() + CHILD_WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for child") {
                return status;
            }
            if Instant::now() >= deadline {
                self.kill();
                panic!(
                    "child `{}` did not exit within {CHILD_WAIT:?}: killed it",
                    self.what
                );
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// SIGKILL the child and reap it.
    pub fn kill(&mut self) -> ExitStatus {
        let _ = self.child.kill();
        self.child.wait().expect("reap child")
    }

    /// Send one line to the child.
    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// The next report `name` if the child makes it within `wait`, `None`
    /// if it does not (the child lives on).
    pub fn report_within(&mut self, name: &str, wait: Duration) -> Option<String> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some((k, v)) = line.strip_prefix('@').and_then(|l| l.split_once('=')) {
                        assert_eq!(k, name, "child `{}` reported {k}={v}", self.what);
                        return Some(v.to_owned());
                    }
                }
                Err(RecvTimeoutError::Timeout) => return None,
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("child `{}` ended before reporting {name}", self.what)
                }
            }
        }
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Read one line from stdin (in a child), without the newline; `None` at EOF.
pub fn read_command() -> Option<String> {
    let mut line = String::new();
    match std::io::stdin().read_line(&mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line.trim_end().to_owned()),
    }
}

/// Removes the segment with this id when dropped, also when a test fails.
pub struct SegGuard(pub i32);

impl Drop for SegGuard {
    fn drop(&mut self) {
        match Segment::remove_by_id(self.0) {
            Ok(()) | Err(Error::IdNotFound { .. }) => {}
            Err(e) => eprintln!("could not remove segment {}: {e}", self.0),
        }
    }
}

/// A key that no segment uses now, distinct for every call in this process
/// and unlikely to be used by another.
pub fn unique_key() -> Key {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let mixed = (std::process::id().wrapping_mul(0x9e37_79b9) ^ n.wrapping_mul(0x85eb_ca6b))
            & 0x00ff_ffff;
        let key = Key::new((0x53 << 24 | mixed) as i32).unwrap();
        if matches!(Segment::options().open(key), Err(Error::NotFound { .. })) {
            return key;
        }
    }
}

/// Whether this process runs as root. Tests that need root (to act as
/// another user, or to give a segment away) call [`root_or_skip`].
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// `true` when running as root; otherwise prints why the calling test is
/// skipped and returns `false`.
pub fn root_or_skip(why: &str) -> bool {
    if !is_root() {
        eprintln!("skipped: {why} needs root");
    }
    is_root()
}

/// Become user `uid` with primary group `gid` and no other group (in a
/// child, which must be root), for permission tests.
pub fn drop_to(uid: u32, gid: u32) {
    // SAFETY: plain system calls on this process's credentials, made in a
    // child before any other thread that cares about them runs.
    unsafe {
        assert_eq!(libc::setgroups(0, std::ptr::null()), 0, "setgroups");
        assert_eq!(libc::setgid(gid), 0, "setgid");
        assert_eq!(libc::setuid(uid), 0, "setuid");
    }
}

/// Drop this process to uid and gid 65534 (`nobody`), for permission tests.
pub fn drop_to_nobody() {
    // SAFETY: plain system calls on this process's credentials, made in a
    // child before any other thread that cares about them runs.
    unsafe {
        assert_eq!(libc::setgroups(0, std::ptr::null()), 0, "setgroups");
        assert_eq!(libc::setgid(65534), 0, "setgid");
        assert_eq!(libc::setuid(65534), 0, "setuid");
    }
}

/// Argument `i` of a child's arguments as a key.
pub fn key_arg(args: &[String], i: usize) -> Key {
    Key::new(args[i].parse().unwrap()).unwrap()
}

/// A flag set (from a thread) once the parent sends a line or closes stdin.
pub fn stop_on_stdin() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    std::thread::spawn(move || {
        let _ = read_command();
        flag.store(true, Ordering::SeqCst);
    });
    stop
}

/// A value of `1 + W` words that all derive from `seq`: a torn copy shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct Stamped<const W: usize> {
    pub seq: u64,
    pub words: [u64; W],
}

// SAFETY: repr(C) of u64s only: no padding, and every bit pattern is valid.
unsafe impl<const W: usize> bytemuck::Zeroable for Stamped<W> {}
// SAFETY: as above; the type is Copy and 'static.
unsafe impl<const W: usize> bytemuck::Pod for Stamped<W> {}

impl<const W: usize> Stamped<W> {
    pub fn of(seq: u64) -> Self {
        let mut words = [0; W];
        for (i, w) in words.iter_mut().enumerate() {
            *w = seq.wrapping_mul(0x9e37_79b9_7f4a_7c15)
                ^ (i as u64).wrapping_mul(0xff51_afd7_ed55_8ccd);
        }
        Stamped { seq, words }
    }

    pub fn is_whole(&self) -> bool {
        *self == Self::of(self.seq)
    }
}

/// A 64-byte value whose words all derive from `seq`: a torn copy shows.
pub type Pattern = Stamped<7>;

/// A cell holding `initial` at a fresh key, and the guard that removes it.
pub fn new_cell<T: bytemuck::Pod>(initial: T) -> (shmstore::SharedCell<T>, Key, SegGuard) {
    let key = unique_key();
    let cell = shmstore::SharedCell::create(key, initial).unwrap();
    let guard = SegGuard(cell.id());
    (cell, key, guard)
}

/// Child role: store `Stamped::of(1)`, `of(2)`, ... into the cell at `key`,
/// without pausing, until the parent sends a line. Reports `ready`, then
/// `stores`.
pub fn store_stamps_until_stopped<const W: usize>(key: Key) {
    let cell = shmstore::SharedCell::<Stamped<W>>::open(key).unwrap();
    let stop = stop_on_stdin();
    report("ready", 1);
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        cell.store(Stamped::of(n)).unwrap();
    }
    report("stores", n);
}

/// Child role: load the cell at `key` (through a read-only attachment if
/// `read_only`) until the parent sends a line, by `load` and `load_into` in
/// turn. Reports `ready`, `warm` after 1000 loads, then `loads`, `torn`,
/// `backwards` (loads older than one seen before) and `max_seq`.
pub fn load_stamps_until_stopped<const W: usize>(key: Key, read_only: bool) {
    type Load<const W: usize> = Box<dyn Fn(&mut Stamped<W>, bool)>;
    let load: Load<W> = if read_only {
        let r = shmstore::SharedCell::<Stamped<W>>::open_read_only(key).unwrap();
        Box::new(move |out, into| {
            if into {
                r.load_into(out)
            } else {
                *out = r.load()
            }
        })
    } else {
        let c = shmstore::SharedCell::<Stamped<W>>::open(key).unwrap();
        Box::new(move |out, into| {
            if into {
                c.load_into(out)
            } else {
                *out = c.load()
            }
        })
    };
    let stop = stop_on_stdin();
    report("ready", 1);
    let (mut loads, mut torn, mut backwards, mut last) = (0u64, 0u64, 0u64, 0u64);
    let mut v = Stamped::of(0);
    while !stop.load(Ordering::Relaxed) {
        load(&mut v, loads % 2 == 1);
        loads += 1;
        torn += u64::from(!v.is_whole());
        backwards += u64::from(v.seq < last);
        last = last.max(v.seq);
        if loads == 1000 {
            report("warm", 1);
        }
    }
    report("loads", loads);
    report("torn", torn);
    report("backwards", backwards);
    report("max_seq", last);
}

/// Start the children `readers` (roles of [`load_stamps_until_stopped`]),
/// then `writer` (a role of [`store_stamps_until_stopped`]); once every
/// reader made 1000 loads, let them all run for `run`, then stop them.
/// Fails if a reader saw a torn value or went backwards, or saw a version
/// the writer never stored. Returns the number of stores.
pub fn check_stamps_under_writer(
    readers: &[&[&str]],
    writer: &[&str],
    run: std::time::Duration,
    what: &str,
) -> u64 {
    let mut readers: Vec<Live> = readers.iter().map(|args| Live::spawn(args)).collect();
    for r in &mut readers {
        r.expect("ready");
    }
    let mut writer = Live::spawn(writer);
    writer.expect("ready");
    for r in &mut readers {
        r.expect("warm");
    }
    std::thread::sleep(run);
    writer.send("stop");
    let stores: u64 = writer.expect("stores").parse().unwrap();
    writer.finish();
    for mut r in readers {
        r.send("stop");
        let loads: u64 = r.expect("loads").parse().unwrap();
        assert_eq!(
            r.expect("torn"),
            "0",
            "{what}: torn values in {loads} loads"
        );
        assert_eq!(r.expect("backwards"), "0", "{what}: went backwards");
        let max: u64 = r.expect("max_seq").parse().unwrap();
        assert!(max <= stores, "{what}: saw {max} of {stores} stores");
        r.finish();
    }
    assert!(
        stores > 100,
        "{what}: the writer stored only {stores} values"
    );
    stores
}

/// The header inputs of the fuzz corpus and seeds (`fuzz/corpus/header/`,
/// `fuzz/seeds/header/`), sorted, each named by its path; and, for each
/// that starts with shmstore's magic and holds another format version, a
/// copy whose `format_version` is this format's, named `PATH as format N`:
/// the corpus was grown on an older format, whose images every reader
/// refuses at the version check, so the copies are what reaches the checks
/// after it.
pub fn header_images() -> Vec<(String, Vec<u8>)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["corpus", "seeds"] {
        let dir = root.join("fuzz").join(dir).join("header");
        let mut found: Vec<std::path::PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("a directory entry").path())
            .filter(|p| p.is_file())
            .collect();
        found.sort();
        files.extend(found);
    }
    let version = shmstore::FORMAT_VERSION.to_le_bytes();
    let mut images = Vec::new();
    for path in files {
        let bytes = std::fs::read(&path).expect("read a fuzz input");
        let name = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .display()
            .to_string();
        if bytes.len() >= 12 && &bytes[..8] == b"shmstore" && bytes[8..12] != version {
            let mut current = bytes.clone();
            current[8..12].copy_from_slice(&version);
            images.push((
                format!("{name} as format {}", shmstore::FORMAT_VERSION),
                current,
            ));
        }
        images.push((name, bytes));
    }
    images
}

/// Start `cmd` (a [`child`] command) so that it stops itself (`SIGSTOP`) at
/// the named step `step` (`src/crash.rs`), and wait until it has.
pub fn start_stopped(mut cmd: Command, step: &str) -> Kid {
    let what = format!("{cmd:?}");
    cmd.env("SHMSTORE_CRASH_AT", format!("{step}:stop"));
    let kid = Kid::start(cmd);
    let start = Instant::now();
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", kid.pid())).unwrap();
        let state = stat.rsplit_once(')').unwrap().1.split_whitespace().next();
        if state == Some("T") {
            return kid;
        }
        assert!(
            start.elapsed() < CHILD_WAIT,
            "{what} never stopped at {step}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Let a child stopped by [`start_stopped`] go on.
pub fn resume(kid: &Kid) {
    // SAFETY: a signal to a child of this process; no memory is involved.
    assert_eq!(unsafe { libc::kill(kid.pid(), libc::SIGCONT) }, 0);
}
