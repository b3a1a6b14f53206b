//! The value `SharedRegion` is measured with: a configuration with a name, a
//! `Vec<u64>` and a `HashMap<String, String>` of eight labels, at archive
//! sizes of about 1 KiB, 64 KiB and 1 MiB (only the vector grows); its mirror
//! for mmap-sync, which archives with rkyv 0.7; and mmap-sync's writer and
//! reader of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use mmap_sync::synchronizer::Synchronizer;
use rkyv::rancor;
use rkyv::util::AlignedVec;
use shmstore::{Key, SharedRegion};

use super::sys::unlink_segment;

pub use v07::Config07;

/// The archive sizes aimed at, and their names in the results.
pub const REGION_SIZES: [(&str, usize); 3] =
    [("1KiB", 1 << 10), ("64KiB", 64 << 10), ("1MiB", 1 << 20)];

/// How long mmap-sync's `write` waits for readers of the buffer it reuses.
/// No guard is held across a write here, so it never waits.
pub const GRACE: Duration = Duration::from_secs(1);

/// The value shared, archived with rkyv 0.8 (shmstore's).
#[derive(rkyv::Archive, rkyv::Serialize)]
pub struct Config {
    pub name: String,
    pub values: Vec<u64>,
    pub labels: HashMap<String, String>,
}

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

fn labels() -> HashMap<String, String> {
    (0..8)
        .map(|i| (format!("label-{i:02}"), format!("value-of-label-{i:02}")))
        .collect()
}

/// A config whose vector holds `len` values.
pub fn config(len: usize) -> Config {
    Config {
        name: "edge-proxy-configuration".to_owned(),
        values: (0..len as u64)
            .map(|i| i.wrapping_mul(0x9e37_79b9))
            .collect(),
        labels: labels(),
    }
}

/// The same value for mmap-sync.
pub fn mirror(c: &Config) -> Config07 {
    Config07 {
        name: c.name.clone(),
        values: c.values.clone(),
        labels: c.labels.clone(),
    }
}

/// The length of `c`'s rkyv 0.8 archive.
pub fn archive_len(c: &Config) -> usize {
    rkyv::to_bytes::<rancor::Error>(c)
        .expect("serialise a config")
        .len()
}

/// The length of `c`'s rkyv 0.7 archive (mmap-sync's).
pub fn archive07_len(c: &Config07) -> usize {
    rkyv07::to_bytes::<_, 1024>(c)
        .expect("serialise a config with rkyv 0.7")
        .len()
}

/// A config whose rkyv 0.8 archive is about `target` bytes.
pub fn config_of_size(target: usize) -> Config {
    let base = archive_len(&config(0));
    config(target.saturating_sub(base) / size_of::<u64>())
}

/// The value of every size of [`REGION_SIZES`], with its name and its mirror.
pub fn region_values() -> Vec<(&'static str, Config, Config07)> {
    REGION_SIZES
        .iter()
        .map(|&(name, target)| {
            let v = config_of_size(target);
            let m = mirror(&v);
            (name, v, m)
        })
        .collect()
}

/// A region holding one published `value`, its segment already marked for
/// removal ([`unlink_segment`]: publishes go on).
pub fn region_with(value: &Config) -> SharedRegion<Config> {
    let capacity = archive_len(value) + 4096;
    let region = SharedRegion::<Config>::create(Key::PRIVATE, capacity).expect("create a region");
    unlink_segment(region.id());
    region.publish(value).expect("publish");
    region
}

/// `read` of `region`: guard made, one field touched, guard dropped.
#[inline]
pub fn read_region(region: &SharedRegion<Config>) -> usize {
    let guard = region.read().expect("read");
    black_box(guard.values.len())
}

/// `iters` times: publish `value` into `region` (untimed), then time the
/// first `read` of that version, which validates the archive. Returns the
/// reads' total time, so the figure carries one clock-read pair a read.
pub fn first_reads(region: &SharedRegion<Config>, value: &Config, iters: u64) -> Duration {
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
}

/// rkyv serialising `value` into `local`, a buffer reused from one call to
/// the next (the floor of a publish: the bytes have to be produced
/// somewhere). Returns the archive's length.
#[inline]
pub fn serialise_local(local: &mut AlignedVec<16>, value: &Config) -> usize {
    let mut buf = std::mem::take(local);
    buf.clear();
    *local = rkyv::api::high::to_bytes_in::<_, rancor::Error>(value, buf).expect("serialise");
    black_box(local.len())
}

/// An mmap-sync writer and reader on the same files, one value written.
pub struct MmapSync {
    writer: Synchronizer,
    reader: Synchronizer,
}

impl MmapSync {
    /// The files `<dir>/<name>…`, holding `value`.
    pub fn new(dir: &Path, name: &str, value: &Config07) -> Self {
        let prefix = dir.join(name);
        let mut writer = Synchronizer::new(prefix.as_os_str());
        let reader = Synchronizer::new(prefix.as_os_str());
        writer.write(value, GRACE).expect("mmap-sync write");
        MmapSync { writer, reader }
    }

    /// mmap-sync's write of `value` (serialised, validated, checksummed,
    /// copied into the data file readers do not use, `msync`ed).
    #[inline]
    pub fn write(&mut self, value: &Config07) -> (usize, bool) {
        self.writer.write(value, GRACE).expect("mmap-sync write")
    }

    /// mmap-sync's read: guard made, one field touched, guard dropped.
    #[inline]
    pub fn read(&mut self, check_bytes: bool) -> usize {
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
