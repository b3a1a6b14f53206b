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
//! cargo bench --bench region
//! ```

use std::collections::HashMap;
mod common;

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use common::median_ns;
use criterion::Criterion;
use mmap_sync::synchronizer::Synchronizer;
use rkyv::rancor;
use rkyv::util::AlignedVec;
use shmstore::{Key, SharedRegion};

/// The value shared, archived with rkyv 0.8 (shmstore's).
#[derive(rkyv::Archive, rkyv::Serialize)]
struct Config {
    name: String,
    values: Vec<u64>,
    labels: HashMap<String, String>,
}

use v07::Config07;

mod v07 {
    // bytecheck 0.6, which rkyv 0.7 derives `CheckBytes` with, writes its
    // unsafe calls without `unsafe` blocks inside an `unsafe fn`, as code
    // before edition 2024 could.
    #![allow(unsafe_op_in_unsafe_fn)]

    use std::collections::HashMap;

    /// The same value for mmap-sync, which archives with rkyv 0.7.
    #[derive(rkyv07::Archive, rkyv07::Serialize)]
    #[archive(crate = "rkyv07", check_bytes)]
    pub struct Config07 {
        pub name: String,
        pub values: Vec<u64>,
        pub labels: HashMap<String, String>,
    }
}

/// The archive sizes aimed at, and their names in the results.
const SIZES: [(&str, usize); 3] = [("1KiB", 1 << 10), ("64KiB", 64 << 10), ("1MiB", 1 << 20)];

/// How long mmap-sync's `write` waits for readers of the buffer it reuses.
/// No guard is held across a write here, so it never waits.
const GRACE: Duration = Duration::from_secs(1);

fn labels() -> HashMap<String, String> {
    (0..8)
        .map(|i| (format!("label-{i:02}"), format!("value-of-label-{i:02}")))
        .collect()
}

fn config(len: usize) -> Config {
    Config {
        name: "edge-proxy-configuration".to_owned(),
        values: (0..len as u64)
            .map(|i| i.wrapping_mul(0x9e37_79b9))
            .collect(),
        labels: labels(),
    }
}

fn mirror(c: &Config) -> Config07 {
    Config07 {
        name: c.name.clone(),
        values: c.values.clone(),
        labels: c.labels.clone(),
    }
}

fn archive_len(c: &Config) -> usize {
    rkyv::to_bytes::<rancor::Error>(c)
        .expect("serialise a config")
        .len()
}

fn archive07_len(c: &Config07) -> usize {
    rkyv07::to_bytes::<_, 1024>(c)
        .expect("serialise a config with rkyv 0.7")
        .len()
}

/// A config whose rkyv 0.8 archive is about `target` bytes.
fn config_of_size(target: usize) -> Config {
    let base = archive_len(&config(0));
    config(target.saturating_sub(base) / size_of::<u64>())
}

/// A region holding one published `value`, already marked for removal.
fn region_with(value: &Config) -> SharedRegion<Config> {
    let capacity = archive_len(value) + 4096;
    let region = SharedRegion::<Config>::create(Key::PRIVATE, capacity).expect("create a region");
    region.remove().expect("mark the region for removal");
    region.publish(value).expect("publish");
    region
}

/// The tmpfs where mmap-sync's writes are also measured.
const TMPFS: &str = "/dev/shm";

/// A fresh directory for mmap-sync's files, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(base: &Path) -> Self {
        let dir = base.join(format!("shmstore-bench-region-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An mmap-sync writer and reader on the same files, one value written.
struct MmapSync {
    writer: Synchronizer,
    reader: Synchronizer,
}

impl MmapSync {
    fn new(dir: &Path, name: &str, value: &Config07) -> Self {
        let prefix = dir.join(name);
        let mut writer = Synchronizer::new(prefix.as_os_str());
        let reader = Synchronizer::new(prefix.as_os_str());
        writer.write(value, GRACE).expect("mmap-sync write");
        MmapSync { writer, reader }
    }

    /// mmap-sync's read: guard made, one field touched, guard dropped.
    #[inline]
    fn read(&mut self, check_bytes: bool) -> usize {
        // SAFETY: the guard is dropped before this returns, long before any
        // write's grace period could run out (nothing writes meanwhile: the
        // writer is ours, on this thread). Unchecked, rkyv trusts the bytes:
        // they are the archive of a `Config07` that our writer produced and
        // validated (mmap-sync's `write` checks it) in files of a directory
        // made for this run, which no other process writes.
        let guard = unsafe { self.reader.read::<Config07>(check_bytes) }.expect("mmap-sync read");
        black_box(guard.values.len())
    }
}

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

    let dir = TempDir::new(&std::env::temp_dir());
    let tmpfs = Path::new(TMPFS)
        .is_dir()
        .then(|| TempDir::new(Path::new(TMPFS)));
    let values: Vec<(&str, Config, Config07)> = SIZES
        .iter()
        .map(|&(name, target)| {
            let v = config_of_size(target);
            let m = mirror(&v);
            (name, v, m)
        })
        .collect();
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

/// Where criterion keeps its results: as criterion decides by default, but
/// without asking `cargo metadata` (the binary lies in `<target>/<profile>/deps`).
fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(target).join("criterion");
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.join("criterion")))
        .unwrap_or_else(|| PathBuf::from("target/criterion"))
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
    g.bench_function("shmstore", |b| {
        b.iter(|| {
            let guard = region.read().expect("read");
            black_box(guard.values.len())
        })
    });
    g.bench_function("mmap_sync_unchecked", |b| b.iter(|| mmap.read(false)));
    g.bench_function("mmap_sync_checked", |b| b.iter(|| mmap.read(true)));
    g.finish();
}

fn bench_first_read(c: &mut Criterion, values: &[(&str, Config, Config07)]) {
    let mut g = c.benchmark_group("first_read");
    for (size, value, _) in values {
        let region = region_with(value);
        g.bench_function(*size, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    region.publish(value).expect("publish");
                    let start = Instant::now();
                    let guard = region.read().expect("read");
                    black_box(guard.values.len());
                    drop(guard);
                    total += start.elapsed();
                }
                total
            })
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
        b.iter(|| {
            let mut buf = std::mem::take(&mut local);
            buf.clear();
            local =
                rkyv::api::high::to_bytes_in::<_, rancor::Error>(value, buf).expect("serialise");
            black_box(local.len())
        })
    });
    g.bench_function("mmap_sync_write", |b| {
        b.iter(|| black_box(mmap.writer.write(value07, GRACE).expect("mmap-sync write")))
    });
    if let Some(mmap) = &mut mmap_tmpfs {
        g.bench_function("mmap_sync_write_tmpfs", |b| {
            b.iter(|| black_box(mmap.writer.write(value07, GRACE).expect("mmap-sync write")))
        });
    }
    g.finish();
}

// ---------------------------------------------------------------------------
// The summary tables

fn fmt_ns(ns: f64) -> String {
    if ns >= 10_000.0 {
        format!("{:.1} µs", ns / 1000.0)
    } else if ns >= 100.0 {
        format!("{ns:.0} ns")
    } else {
        format!("{ns:.2} ns")
    }
}

fn fmt_opt(ns: Option<f64>) -> String {
    ns.map_or("n/a".into(), fmt_ns)
}

/// One row comparing `ours` with `other`: met when ours / other ≤ `max`.
fn ratio_row(what: &str, ours: Option<f64>, other: Option<f64>, max: f64) {
    let (ratio, met) = match (ours, other) {
        (Some(o), Some(f)) if f > 0.0 => {
            let r = o / f;
            (format!("{r:.2}x"), if r <= max { "yes" } else { "no" })
        }
        _ => ("n/a".into(), "not measured"),
    };
    println!(
        "| {what} | {} | {} | {ratio} | ≤ {max:.2}x | {met} |",
        fmt_opt(ours),
        fmt_opt(other)
    );
}

/// One row comparing `other` with `ours`: met when other / ours ≥ `min`.
fn speedup_row(what: &str, ours: Option<f64>, other: Option<f64>, min: f64) {
    let (ratio, met) = match (ours, other) {
        (Some(o), Some(f)) if o > 0.0 => {
            let r = f / o;
            (format!("{r:.2}x"), if r >= min { "yes" } else { "no" })
        }
        _ => ("n/a".into(), "not measured"),
    };
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
            let ratio = match (ours, local) {
                (Some(o), Some(l)) if l > 0.0 => format!("{:.2}x", o / l),
                _ => "n/a".into(),
            };
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
