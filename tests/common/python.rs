//! Running the Python reader (`python/shmstore_reader/`) from the tests:
//! as the command a user runs on the package's directory, with a deadline,
//! and with what it printed parsed as the JSON lines it promises.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;
use shmstore::Key;

/// The package's directory, run as a command (`python3 DIR ...`).
pub const PACKAGE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/python/shmstore_reader");

/// The directory that holds the package, for `python3 -m` and imports.
pub const PYTHON_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/python");

/// How long one run of the Python reader may take before it is killed and
/// the test fails.
pub const PY_DEADLINE: Duration = Duration::from_secs(120);

/// Whether `python3` (3.8 or later) runs; prints why the test is skipped if
/// not.
pub fn python_or_skip(test: &str) -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import sys; sys.exit(sys.version_info < (3, 8))"])
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        println!("skipping {test}: python3 (3.8 or later) cannot be run");
    }
    ok
}

/// What a run of the reader printed, and how it ended.
pub struct Run {
    pub args: String,
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The JSON lines it printed.
    pub fn lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("{}: bad JSON line {l:?}: {e}", self.args))
            })
            .collect()
    }

    /// The one JSON value of a successful run.
    pub fn ok(&self) -> Value {
        assert_eq!(
            self.status, 0,
            "{} failed: {}{}",
            self.args, self.stdout, self.stderr
        );
        let mut lines = self.lines();
        assert_eq!(lines.len(), 1, "{}: {}", self.args, self.stdout);
        lines.remove(0)
    }

    /// The error kind of a failed run, which must have exit status 1.
    pub fn error(&self) -> String {
        assert_eq!(
            self.status, 1,
            "{} should fail with status 1: {}{}",
            self.args, self.stdout, self.stderr
        );
        let lines = self.lines();
        let kind = lines.last().and_then(|v| v["error"].as_str());
        kind.unwrap_or_else(|| panic!("{}: no error in {}", self.args, self.stdout))
            .to_owned()
    }
}

/// A running Python process: its standard input is a pipe the test may
/// write to, its standard error is read line by line, and it is killed if
/// it outlives [`PY_DEADLINE`].
pub struct PyRun {
    child: Child,
    stdin: Option<ChildStdin>,
    out: Option<JoinHandle<String>>,
    err: Receiver<String>,
    err_text: String,
    what: String,
    deadline: Instant,
}

impl PyRun {
    /// Start `cmd` (a `python3` command); `what` names it in failures.
    pub fn start(mut cmd: Command, what: String) -> PyRun {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run python3");
        let mut stdout = child.stdout.take().unwrap();
        let out = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stdout.read_to_string(&mut text);
            text
        });
        let stderr = child.stderr.take().unwrap();
        let (tx, err) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        PyRun {
            stdin: child.stdin.take(),
            child,
            out: Some(out),
            err,
            err_text: String::new(),
            what,
            deadline: Instant::now() + PY_DEADLINE,
        }
    }

    /// Write all of `input` to its standard input, then close it.
    pub fn feed(&mut self, input: &[u8]) {
        if let Some(mut stdin) = self.stdin.take() {
            let input = input.to_vec();
            std::thread::spawn(move || {
                let _ = stdin.write_all(&input);
            });
        }
    }

    /// Send one line to its standard input.
    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// Wait until it writes the line `want` to its standard error; fails
    /// if it ends first or does not write it within [`PY_DEADLINE`].
    pub fn expect_stderr(&mut self, want: &str) {
        loop {
            let left = self.deadline.saturating_duration_since(Instant::now());
            match self.err.recv_timeout(left) {
                Ok(line) => {
                    self.err_text.push_str(&line);
                    self.err_text.push('\n');
                    if line == want {
                        return;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    let _ = self.child.kill();
                    panic!("{} did not say {want:?} in time: killed it", self.what);
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let run = self.finish_now();
                    panic!(
                        "{} ended ({}) before saying {want:?}: {}{}",
                        run.args, run.status, run.stdout, run.stderr
                    );
                }
            }
        }
    }

    /// Whether it still runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Close its standard input, wait for it to end and say what it
    /// printed. It must never end in a Python traceback, and its exit
    /// status must be one the reader gives (0, 1 or 2).
    pub fn finish(mut self) -> Run {
        self.finish_now()
    }

    fn finish_now(&mut self) -> Run {
        self.stdin = None;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for python3") {
                break status;
            }
            if Instant::now() >= self.deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "{} did not finish within {PY_DEADLINE:?}: killed it",
                    self.what
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let mut stderr = std::mem::take(&mut self.err_text);
        for line in self.err.iter() {
            stderr.push_str(&line);
            stderr.push('\n');
        }
        let run = Run {
            args: self.what.clone(),
            status: status.code().unwrap_or(-1),
            stdout: self
                .out
                .take()
                .map(|t| t.join().unwrap())
                .unwrap_or_default(),
            stderr,
        };
        assert!(
            !run.stderr.contains("Traceback"),
            "{} crashed: {}",
            run.args,
            run.stderr
        );
        assert!(
            [0, 1, 2].contains(&run.status),
            "{} ended with {status}: {}",
            run.args,
            run.stderr
        );
        run
    }
}

impl Drop for PyRun {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The reader's command on the package's directory, with `args`.
pub fn reader_command(args: &[&str]) -> Command {
    let mut cmd = Command::new("python3");
    cmd.arg(PACKAGE).args(args);
    cmd
}

/// Run the reader with `args`, killing it if it outlives [`PY_DEADLINE`].
/// It must never end in a Python traceback.
pub fn py(args: &[&str]) -> Run {
    py_with_input(args, None)
}

/// As [`py`], with `input` on its standard input.
pub fn py_with_input(args: &[&str], input: Option<&[u8]>) -> Run {
    let what = format!("shmstore_reader {}", args.join(" "));
    let mut run = PyRun::start(reader_command(args), what);
    run.feed(input.unwrap_or_default());
    run.finish()
}

pub fn hex_key(key: Key) -> String {
    format!("{:#010x}", key.raw() as u32)
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A program that opens TARGET with the reader's API, says `waiting SINCE`
/// on standard error, calls `ShmObject.wait_for_change(SINCE, TIMEOUT)`
/// and prints `{"result": "ok" | "removed" | "timedout", "version",
/// "elapsed"}` (seconds, from before it said `waiting`): argv is the
/// reader's directory, TARGET, TIMEOUT (seconds, or `none`) and,
/// optionally, SINCE (else the version once opened). The errors must be
/// the reader's (a `Removed`, and a timeout that is both a `ReaderError`
/// and Python's `TimeoutError`).
const WAIT_FOR_CHANGE: &str = r#"
import json, sys, time
sys.path.insert(0, sys.argv[1])
import shmstore_reader as sr
target, timeout = sys.argv[2], sys.argv[3]
timeout = None if timeout == "none" else float(timeout)
with sr.ShmObject.open(target) as obj:
    since = obj.version() if len(sys.argv) < 5 else int(sys.argv[4])
    start = time.monotonic()
    sys.stderr.write(f"waiting {since}\n")
    sys.stderr.flush()
    version = None
    try:
        version = obj.wait_for_change(since, timeout)
        result = "ok"
    except sr.Removed as e:
        assert isinstance(e, sr.ReaderError) and e.kind == "removed", repr(e)
        result = "removed"
    except TimeoutError as e:
        assert isinstance(e, sr.ReaderError) and e.kind == "timeout", repr(e)
        result = "timedout"
    elapsed = time.monotonic() - start
print(json.dumps({"result": result, "version": version, "elapsed": elapsed}))
"#;

/// Start [`WAIT_FOR_CHANGE`] on `target` with `timeout` (seconds, or
/// `none`) and `since` (else the version once opened).
pub fn wait_for_change(target: &str, timeout: &str, since: Option<u64>) -> PyRun {
    let since = since.map(|s| s.to_string());
    let mut cmd = Command::new("python3");
    cmd.args(["-c", WAIT_FOR_CHANGE, PYTHON_PATH, target, timeout])
        .args(since.as_deref());
    PyRun::start(
        cmd,
        format!("wait_for_change({target}, {timeout}, since {since:?})"),
    )
}
