//! C programs of `tests/c/`, built on `include/shmstore.h`, compiled and
//! run by the tests with a time limit.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use shmstore::Key;

use super::Kid;

/// The C programs of `tests/c/`, compiled into a temporary directory that
/// is removed on drop.
pub struct Programs {
    dir: PathBuf,
}

impl Programs {
    pub fn exe(&self, program: &str) -> PathBuf {
        self.dir.join(program)
    }
}

impl Drop for Programs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Whether gcc runs; if not, print that `test` is skipped.
fn has_gcc(test: &str) -> bool {
    let has_gcc = Command::new("gcc")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_gcc {
        println!("skipping {test}: gcc not found");
    }
    has_gcc
}

/// A fresh temporary directory for what `test` compiles, removed on drop,
/// or `None` (the test skipped) when there is no gcc.
pub fn scratch(test: &str) -> Option<Programs> {
    if !has_gcc(test) {
        return None;
    }
    let dir = std::env::temp_dir().join(format!("shmstore-c-reader-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the temporary directory");
    Some(Programs { dir })
}

/// Compile `tests/c/PROGRAM.c` for each of `programs` with gcc into a
/// fresh temporary directory, or print why the test is skipped and return
/// `None` when there is no gcc. Each program compiles the header's
/// implementation itself (`SHMSTORE_IMPLEMENTATION`) and takes the options
/// of its open as arguments (`tests/c/target.h`).
pub fn compile(test: &str, programs: &[&str]) -> Option<Programs> {
    let built = scratch(test)?;
    for program in programs {
        let source = root().join("tests/c").join(format!("{program}.c"));
        let out = Command::new("gcc")
            .arg("-I")
            .arg(root().join("include"))
            .args([
                "-std=c11",
                "-D_POSIX_C_SOURCE=200809L",
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
pub const PROGRAM_WAIT: Duration = Duration::from_secs(60);

/// Run `program` with `args` and return what it did; one that runs longer
/// than [`PROGRAM_WAIT`] is killed and the test fails, instead of hanging.
pub fn run(programs: &Programs, program: &str, args: &[&str]) -> Output {
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
    // Looks from 1 ms apart up to 20 ms apart: few wake-ups of this
    // process while a long run (a reader that must keep up) uses the CPUs.
    let mut pause = Duration::from_millis(1);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the program") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{program} {args:?} ran for more than {PROGRAM_WAIT:?}: killed it");
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: stdout.join().expect("read the program's output"),
        stderr: stderr.join().expect("read the program's errors"),
    }
}

/// Start `program` with `args`, its `@name=value` lines read as a child's
/// reports are (within [`super::CHILD_WAIT`] each, or it is killed and the
/// test fails).
pub fn spawn(programs: &Programs, program: &str, args: &[&str]) -> Kid {
    let mut cmd = Command::new(programs.exe(program));
    cmd.args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    Kid::start(cmd)
}

/// The standard output of a run that must have succeeded.
pub fn stdout_of(program: &str, out: Output) -> String {
    assert!(
        out.status.success(),
        "{program} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("the programs print UTF-8")
}

/// A key as `--key` takes it (as `ipcs` prints it).
pub fn key_hex(key: Key) -> String {
    format!("{:#x}", key.raw() as u32)
}

/// One line of `read_cell`'s output.
#[derive(Debug, PartialEq, Eq)]
pub struct Read {
    pub version: u64,
    pub words: [u64; 4],
    pub hash: String,
    pub name: String,
}

pub fn parse_read(line: &str) -> Read {
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
pub fn read_cell(programs: &Programs, target: &[&str], reads: u32) -> Vec<Read> {
    let reads = reads.to_string();
    let args: Vec<&str> = target.iter().copied().chain([reads.as_str()]).collect();
    let stdout = stdout_of("read_cell", run(programs, "read_cell", &args));
    let lines: Vec<Read> = stdout.lines().map(parse_read).collect();
    assert!(!lines.is_empty(), "read_cell printed nothing");
    lines
}
