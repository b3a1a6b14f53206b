//! Replays the fuzz inputs kept in the repository through the fuzz targets'
//! entry points, so that plain `cargo test` on stable catches a regression on
//! any input a fuzzing campaign found interesting: the minimised corpus
//! (`fuzz/corpus/TARGET/`), the hand-written seeds (`fuzz/seeds/TARGET/`) and
//! every crash or timeout input found so far (`fuzz/regressions/TARGET/`).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

/// The files directly in `dir`, sorted by name; none if it does not exist.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    // Sorted by name, not by path: comparing paths component by component
    // costs minutes under Miri for a corpus of a thousand files.
    let mut names: Vec<std::ffi::OsString> = entries
        .map(|e| e.expect("a directory entry"))
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.file_name())
        .collect();
    names.sort_unstable();
    names.into_iter().map(|n| dir.join(n)).collect()
}

/// How many corpus inputs of each target Miri replays.
const MIRI_SAMPLE: usize = 8;
/// How many bytes of each input Miri replays.
const MIRI_BYTES: usize = 192;

/// Run every kept input of `target` through `run`, each under
/// `catch_unwind`; fail naming every input that panicked.
fn replay(target: &str, run: fn(&[u8])) {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let corpus = inputs(&fuzz.join("corpus").join(target));
    assert!(
        !corpus.is_empty(),
        "no corpus for {target} in {}: the minimised corpus must be kept",
        fuzz.join("corpus").join(target).display()
    );
    // Under Miri, which runs a thousand times slower, an even sample of the
    // corpus stands in for it (the seeds and regressions all run), each
    // input cut to its first MIRI_BYTES bytes.
    let corpus = if cfg!(miri) {
        let step = corpus.len().div_ceil(MIRI_SAMPLE);
        corpus.into_iter().step_by(step).collect()
    } else {
        corpus
    };
    let mut all = corpus;
    all.extend(inputs(&fuzz.join("seeds").join(target)));
    all.extend(inputs(&fuzz.join("regressions").join(target)));
    let mut failed = Vec::new();
    for path in &all {
        let mut data = std::fs::read(path).expect("a readable fuzz input");
        if cfg!(miri) {
            data.truncate(MIRI_BYTES);
        }
        if catch_unwind(AssertUnwindSafe(|| run(&data))).is_err() {
            failed.push(path.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} inputs of {target} panicked:\n{}",
        failed.len(),
        all.len(),
        failed.join("\n")
    );
    println!("{target}: {} inputs replayed", all.len());
}

#[test]
fn header() {
    replay("header", shmstore::fuzzing::header);
}

#[test]
fn region_archive() {
    replay("region_archive", shmstore::fuzzing::region_archive);
}

#[test]
fn cell_ops() {
    replay("cell_ops", shmstore::fuzzing::cell_ops);
}

#[test]
fn region_ops() {
    replay("region_ops", shmstore::fuzzing::region_ops);
}

#[test]
fn cli_inspect() {
    replay("cli_inspect", shmstore::fuzzing::cli_inspect);
}

#[test]
fn schema() {
    replay("schema", shmstore::fuzzing::schema);
}
