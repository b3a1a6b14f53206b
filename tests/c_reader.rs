//! A C program written from `FORMAT.md` alone (`tests/c/read_cell.c`) reads a
//! `SharedCell` that Rust writes: the documented format and read protocol are
//! what the crate really does.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};

use shmstore::{Key, SharedCell};

type Words = [u64; 4];

/// A temporary directory holding the compiled reader, removed on drop.
struct Reader {
    dir: PathBuf,
    exe: PathBuf,
}

impl Drop for Reader {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The first C compiler found (`cc`, then `gcc`).
fn c_compiler() -> Option<&'static str> {
    ["cc", "gcc"].into_iter().find(|cc| {
        Command::new(cc)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// Compile `tests/c/read_cell.c` into a fresh temporary directory, or print
/// why the test is skipped and return `None` when there is no C compiler.
fn compile(test: &str) -> Option<Reader> {
    let Some(cc) = c_compiler() else {
        println!("skipping {test}: no C compiler (cc or gcc) found");
        return None;
    };
    let dir = std::env::temp_dir().join(format!("shmstore-c-reader-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the temporary directory");
    let reader = Reader {
        exe: dir.join("read_cell"),
        dir,
    };
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/read_cell.c");
    let out = Command::new(cc)
        .args(["-std=c11", "-O2", "-Wall", "-Wextra", "-pedantic", "-o"])
        .arg(&reader.exe)
        .arg(&source)
        .output()
        .expect("run the C compiler");
    let diagnostics = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{cc} failed on {}:\n{diagnostics}",
        source.display()
    );
    if !diagnostics.trim().is_empty() {
        println!("{cc} warnings:\n{diagnostics}");
    }
    Some(reader)
}

/// One line of the reader's output.
#[derive(Debug, PartialEq, Eq)]
struct Read {
    version: u64,
    words: Words,
    hash: String,
    name: String,
}

fn parse(line: &str) -> Read {
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

/// Run the reader on segment `id` for `reads` reads and parse its lines.
fn run(reader: &Reader, id: i32, reads: u32) -> Vec<Read> {
    let out: Output = Command::new(&reader.exe)
        .arg(id.to_string())
        .arg(reads.to_string())
        .output()
        .expect("run read_cell");
    assert!(
        out.status.success(),
        "read_cell failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("read_cell prints UTF-8");
    let reads: Vec<Read> = stdout.lines().map(parse).collect();
    assert!(!reads.is_empty(), "read_cell printed nothing");
    reads
}

#[test]
fn c_reader_reads_what_rust_stored() {
    let Some(reader) = compile("stored") else {
        return;
    };
    let cell = SharedCell::<Words>::options()
        .remove_on_drop(true)
        .create(Key::PRIVATE, [1, 2, 3, 4])
        .expect("create the cell");
    let values: [Words; 3] = [
        [10, 20, 30, 40],
        [u64::MAX, 0, 0x0123_4567_89ab_cdef, 1 << 63],
        [7, 0xdead_beef_0000_0001, 42, u64::MAX - 1],
    ];
    for (i, value) in values.iter().enumerate() {
        cell.store(*value).expect("store");
        let reads = run(&reader, cell.id(), 1);
        assert_eq!(
            reads,
            [Read {
                version: i as u64 + 1,
                words: *value,
                hash: "ok".to_owned(),
                name: std::any::type_name::<Words>().to_owned(),
            }]
        );
    }
    assert_eq!(cell.load(), values[2], "the C reader changed the cell");
}

/// Runs of the reader in the concurrent test before it gives up on seeing
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
    let Some(reader) = compile("concurrent") else {
        return;
    };
    let name = "acme.Zähler";
    let cell = SharedCell::<Words>::options()
        .remove_on_drop(true)
        .type_name(name)
        .schema_version(7)
        .create(Key::PRIVATE, value_for(0))
        .expect("create the cell");
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
            let reads = run(&reader, cell.id(), 1_000_000);
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
