//! `SharedRegion` reads and publishes, against a local rkyv serialisation and
//! against cloudflare's `mmap-sync`.
//!
//! One value shape, a configuration with a name, a `Vec<u64>` and a
//! `HashMap<String, String>` of eight labels, at three archive sizes (about
//! 1 KiB, 64 KiB and 1 MiB; only the vector grows). Criterion groups, each
//! with its measurements side by side:
//!
//! - `read_<size>`: [`SharedRegion::read`] of a version this handle has
//!   already validated (guard made, one field touched, guard dropped), next to
//!   mmap-sync's `read` without (`check_bytes = false`) and with
//!   (`check_bytes = true`) rkyv validation of the same value.
//! - `first_read`: the first `read` of a freshly published version, which
//!   validates the archive. Each iteration publishes (untimed) and then times
//!   one read on its own, so the figure carries one clock-read pair.
//! - `publish_<size>`: [`SharedRegion::publish`] next to rkyv serialising the
//!   same value into a reused local `AlignedVec` (the floor: the bytes have to
//!   be produced somewhere) and next to mmap-sync's `write`, its files in
//!   `std::env::temp_dir()` and, where there is one, on the tmpfs at
//!   `/dev/shm` (mmap-sync `msync`s each write; on a disk-backed directory
//!   that is a disk write).
//!
//! After criterion has run, the medians it saved (`estimates.json`) are read
//! back and printed as a Markdown table against the targets: a validated read
//! under 50 ns at every size, 1 MiB within 1.5x of 1 KiB, `publish` of the
//! 1 MiB value within 1.5x of the local serialisation, our read no slower than mmap-sync's
//! unchecked read, our publish at least 2x faster than its write (in either
//! place).
//!
//! Regions are created at `Key::PRIVATE` and marked for removal at once, so
//! none outlives the run. mmap-sync works on files: they go in fresh
//! directories under `std::env::temp_dir()` (`TMPDIR`) and `/dev/shm`,
//! removed at the end, on a panic too.
//!
//! ```text
//! cargo bench -p shmstore-bench --bench region
//! ```

mod common;

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, SystemTime};

use common::report::{criterion_dir, fmt_opt_ns, judge, median_ns, ratio};
use common::sys::{TMPFS, TempDir};
use common::values::{
    Config, Config07, MmapSync, archive_len, archive07_len, first_reads, read_region,
    region_values, region_with, serialise_local,
};
use criterion::Criterion;
use rkyv::util::AlignedVec;

/// Prefix of the directories for mmap-sync's files.
const DIR_PREFIX: &str = "shmstore-bench-region-";

fn main() {
    let started = SystemTime::now();
    let out_dir = criterion_dir();
    let mut c = Criterion::default()
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(20)
        .without_plots()
        .output_directory(&out_dir)
        .configure_from_args();

    let dir = TempDir::new(&std::env::temp_dir(), DIR_PREFIX);
    let tmpfs = Path::new(TMPFS)
        .is_dir()
        .then(|| TempDir::new(Path::new(TMPFS), DIR_PREFIX));
    let values = region_values();
    let mut sizes = Vec::new();
    for (name, v, m) in &values {
        sizes.push((*name, v.values.len(), archive_len(v), archive07_len(m)));
    }

    for (name, v, m) in &values {
        bench_read(&mut c, name, v, m, &dir.0);
    }
    bench_first_read(&mut c, &values);
    for (name, v, m) in &values {
        bench_publish(&mut c, name, v, m, &dir.0, tmpfs.as_ref().map(|d| &*d.0));
    }
    c.final_summary();
    drop(dir);
    drop(tmpfs);

    print_tables(&out_dir, started, &sizes);
}

// ---------------------------------------------------------------------------
// The measurements

fn bench_read(c: &mut Criterion, size: &str, value: &Config, value07: &Config07, dir: &Path) {
    let region = region_with(value);
    // Validate this version once, outside the measurement.
    drop(region.read().expect("read"));
    let mut mmap = MmapSync::new(dir, &format!("read-{size}"), value07);
    assert_eq!(mmap.read(true), value.values.len());

    let mut g = c.benchmark_group(format!("read_{size}"));
    g.bench_function("shmstore", |b| b.iter(|| read_region(&region)));
    g.bench_function("mmap_sync_unchecked", |b| b.iter(|| mmap.read(false)));
    g.bench_function("mmap_sync_checked", |b| b.iter(|| mmap.read(true)));
    g.finish();
}

fn bench_first_read(c: &mut Criterion, values: &[(&str, Config, Config07)]) {
    let mut g = c.benchmark_group("first_read");
    for (size, value, _) in values {
        let region = region_with(value);
        g.bench_function(*size, |b| {
            b.iter_custom(|iters| first_reads(&region, value, iters))
        });
    }
    g.finish();
}

fn bench_publish(
    c: &mut Criterion,
    size: &str,
    value: &Config,
    value07: &Config07,
    dir: &Path,
    tmpfs: Option<&Path>,
) {
    let region = region_with(value);
    let name = format!("write-{size}");
    let mut mmap = MmapSync::new(dir, &name, value07);
    let mut mmap_tmpfs = tmpfs.map(|d| MmapSync::new(d, &name, value07));
    let mut local = AlignedVec::<16>::new();

    let mut g = c.benchmark_group(format!("publish_{size}"));
    g.bench_function("shmstore", |b| {
        b.iter(|| black_box(region.publish(value).expect("publish")))
    });
    g.bench_function("rkyv_local", |b| {
        b.iter(|| serialise_local(&mut local, value))
    });
    g.bench_function("mmap_sync_write", |b| {
        b.iter(|| black_box(mmap.write(value07)))
    });
    if let Some(mmap) = &mut mmap_tmpfs {
        g.bench_function("mmap_sync_write_tmpfs", |b| {
            b.iter(|| black_box(mmap.write(value07)))
        });
    }
    g.finish();
}

// ---------------------------------------------------------------------------
// The summary tables

/// A median for these tables: microseconds with one decimal.
fn fmt_opt(ns: Option<f64>) -> String {
    fmt_opt_ns(ns, 1)
}

/// One row comparing `ours` with `other`: met when ours / other ≤ `max`.
fn ratio_row(what: &str, ours: Option<f64>, other: Option<f64>, max: f64) {
    let (ratio, met) = judge(ratio(ours, other), |r| r <= max);
    println!(
        "| {what} | {} | {} | {ratio} | ≤ {max:.2}x | {met} |",
        fmt_opt(ours),
        fmt_opt(other)
    );
}

/// One row comparing `other` with `ours`: met when other / ours ≥ `min`.
fn speedup_row(what: &str, ours: Option<f64>, other: Option<f64>, min: f64) {
    let (ratio, met) = judge(ratio(other, ours), |r| r >= min);
    println!(
        "| {what} | {} | {} | {ratio} | ≥ {min:.2}x | {met} |",
        fmt_opt(ours),
        fmt_opt(other)
    );
}

fn print_tables(out_dir: &Path, since: SystemTime, sizes: &[(&str, usize, usize, usize)]) {
    let m = |group: &str, bench: &str| median_ns(out_dir, group, bench, since);

    println!();
    println!("| value | `Vec<u64>` length | rkyv 0.8 archive | rkyv 0.7 archive (mmap-sync) |");
    println!("|---|---:|---:|---:|");
    for (name, len, a8, a7) in sizes {
        println!("| {name} | {len} | {a8} B | {a7} B |");
    }

    println!();
    println!("| check | shmstore (median) | reference (median) | ratio | target | met |");
    println!("|---|---:|---:|---:|---:|---|");
    let mut reads = Vec::new();
    for (name, ..) in sizes {
        let ours = m(&format!("read_{name}"), "shmstore");
        let met = match ours {
            Some(ns) if ns < 50.0 => "yes",
            Some(_) => "no",
            None => "not measured",
        };
        println!(
            "| `read`, validated, {name} | {} | | | < 50 ns | {met} |",
            fmt_opt(ours)
        );
        reads.push(ours);
    }
    if let (Some(first), Some(last)) = (reads.first().copied(), reads.last().copied()) {
        let (a, b) = (sizes[0].0, sizes[sizes.len() - 1].0);
        // Within 1.5x of each other, whichever is slower.
        let (slow, fast) = match (first, last) {
            (Some(x), Some(y)) if y < x => (Some(x), Some(y)),
            other => (other.1, other.0),
        };
        ratio_row(
            &format!("`read` {b} vs {a}, slower / faster"),
            slow,
            fast,
            1.5,
        );
    }
    // The target is set for the 1 MiB value; the smaller ones are context.
    for (i, (name, ..)) in sizes.iter().enumerate() {
        let what = format!("`publish` / rkyv `to_bytes_in` local, {name}");
        let ours = m(&format!("publish_{name}"), "shmstore");
        let local = m(&format!("publish_{name}"), "rkyv_local");
        if i + 1 == sizes.len() {
            ratio_row(&what, ours, local, 1.5);
        } else {
            let ratio = ratio(ours, local).map_or("n/a".into(), |r| format!("{r:.2}x"));
            println!(
                "| {what} | {} | {} | {ratio} | none | context |",
                fmt_opt(ours),
                fmt_opt(local)
            );
        }
    }
    for (name, ..) in sizes {
        ratio_row(
            &format!("`read` / mmap-sync `read(false)`, {name}"),
            m(&format!("read_{name}"), "shmstore"),
            m(&format!("read_{name}"), "mmap_sync_unchecked"),
            1.0,
        );
    }
    for (name, ..) in sizes {
        let group = format!("publish_{name}");
        let ours = m(&group, "shmstore");
        speedup_row(
            &format!("mmap-sync `write` (temp dir) / `publish`, {name}"),
            ours,
            m(&group, "mmap_sync_write"),
            2.0,
        );
        let tmpfs = m(&group, "mmap_sync_write_tmpfs");
        if tmpfs.is_some() {
            speedup_row(
                &format!("mmap-sync `write` ({TMPFS}) / `publish`, {name}"),
                ours,
                tmpfs,
                2.0,
            );
        }
    }

    println!();
    println!("| context (median) | 1st read, validating | mmap-sync `read(true)` |");
    println!("|---|---:|---:|");
    for (name, ..) in sizes {
        println!(
            "| {name} | {} | {} |",
            fmt_opt(m("first_read", name)),
            fmt_opt(m(&format!("read_{name}"), "mmap_sync_checked")),
        );
    }
}
