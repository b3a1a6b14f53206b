//! `SharedRegion` and mmap-sync, with the value shape of `benches/region.rs`.

use std::hint::black_box;

use criterion::Criterion;
use rkyv::util::AlignedVec;

use crate::Ctx;
use crate::common::values::{
    MmapSync, first_reads, read_region, region_values, region_with, serialise_local,
};

/// The buffers of a region made by `region_with`: `SharedRegion`'s
/// default (`creator().buffers(..)` not called).
const REGION_BUFFERS: usize = 4;

pub fn bench_region(c: &mut Criterion, ctx: &Ctx) {
    let values = region_values();

    for (name, value, value07) in &values {
        let region = region_with(value);
        drop(region.read().expect("read")); // validate this version once
        let mut mmap = MmapSync::new(&ctx.dir, name, value07);
        assert_eq!(mmap.read(true), value.values.len());
        let mut local = AlignedVec::<16>::new();
        // As many local buffers as the region has, used in turn as publish
        // uses its buffers: the same cache footprint.
        let mut rotating: Vec<AlignedVec<16>> =
            (0..REGION_BUFFERS).map(|_| AlignedVec::new()).collect();
        let mut turn = 0;

        let mut g = c.benchmark_group(format!("region_{name}"));
        ctx.local(&mut g);
        g.bench_function("read", |b| b.iter(|| read_region(&region)));
        g.bench_function("mmap_sync_read_unchecked", |b| b.iter(|| mmap.read(false)));
        g.bench_function("mmap_sync_read_checked", |b| b.iter(|| mmap.read(true)));
        g.bench_function("publish", |b| {
            b.iter(|| black_box(region.publish(value).expect("publish")))
        });
        g.bench_function("rkyv_local", |b| {
            b.iter(|| serialise_local(&mut local, value))
        });
        g.bench_function("rkyv_local_rotating", |b| {
            b.iter(|| {
                turn = (turn + 1) % rotating.len();
                serialise_local(&mut rotating[turn], value)
            })
        });
        g.bench_function("mmap_sync_write", |b| {
            b.iter(|| black_box(mmap.write(value07)))
        });
        g.finish();
    }

    // Each iteration publishes (untimed), then times one first read: the
    // wall time is mostly the publishes, so this group measures briefly.
    let mut g = c.benchmark_group("region_first_read");
    g.warm_up_time(ctx.time(0.2))
        .measurement_time(ctx.time(0.5))
        .sample_size(ctx.samples(20));
    for (name, value, _) in &values {
        let region = region_with(value);
        g.bench_function(*name, |b| {
            b.iter_custom(|iters| first_reads(&region, value, iters))
        });
    }
    g.finish();
}
