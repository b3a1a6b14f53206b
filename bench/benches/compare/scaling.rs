//! Scaling: total `load`s per second of reader processes against one paced
//! writer process.

use std::hint::black_box;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use shmstore::SharedCell;

use crate::ctl::{ChildResult, Ctl, HALT, READER_COUNT, READY, START, WRITER_COUNT, spawn};
use crate::value::{Bytes, private_cell};
use crate::{Ctx, WRITER_RATE};

/// The result of one scaling configuration (rates per second, medians of
/// the windows).
pub struct Scale {
    pub readers: usize,
    pub loads: f64,
    pub stores: f64,
}

pub fn scaling(ctx: &Ctx, readers: usize) -> Scale {
    let cell = private_cell(Bytes::<64>::pattern(0));
    let ctl = Ctl::new();
    let mut peers = vec![spawn(
        "scale_writer",
        &[ctl.id().into(), cell.id().into()],
        None,
    )];
    for i in 0..readers {
        peers.push(spawn(
            "scale_reader",
            &[ctl.id().into(), cell.id().into(), i as i64],
            None,
        ));
    }
    ctl.wait_ready(&mut peers, readers as u64 + 1);
    ctl.u64(START).store(1, Ordering::SeqCst);

    let snapshot = || {
        let loads: u64 = (0..readers)
            .map(|i| ctl.u64(READER_COUNT + i).load(Ordering::Relaxed))
            .sum();
        (
            Instant::now(),
            loads,
            ctl.u64(WRITER_COUNT).load(Ordering::Relaxed),
        )
    };
    std::thread::sleep(ctx.time(0.3));
    let mut load_rates = Vec::new();
    let mut store_rates = Vec::new();
    for _ in 0..5 {
        let (t0, l0, s0) = snapshot();
        std::thread::sleep(ctx.time(0.6));
        let (t1, l1, s1) = snapshot();
        let secs = (t1 - t0).as_secs_f64();
        load_rates.push((l1 - l0) as f64 / secs);
        store_rates.push((s1 - s0) as f64 / secs);
        for p in &mut peers {
            p.check();
        }
    }
    ctl.u64(HALT).store(1, Ordering::SeqCst);
    drop(peers);
    let scale = Scale {
        readers,
        loads: median(&mut load_rates),
        stores: median(&mut store_rates),
    };
    println!(
        "scaling/{readers} readers: {:.1} M loads/s total, writer {:.0} stores/s",
        scale.loads / 1e6,
        scale.stores
    );
    scale
}

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// How many loads a reader makes between two updates of its count.
const COUNT_EVERY: u64 = 1024;

pub fn scale_reader(ctl: i32, cell: i32, slot: usize) -> ChildResult {
    let ctl = Ctl::attach(ctl)?;
    let cell = SharedCell::<Bytes<64>>::opener().open(shmstore::Target::Id(cell))?;
    ctl.u64(READY).fetch_add(1, Ordering::SeqCst);
    while ctl.u64(START).load(Ordering::SeqCst) == 0 {
        std::thread::sleep(Duration::from_micros(100));
    }
    let count = ctl.u64(READER_COUNT + slot);
    let mut n = 0u64;
    while ctl.u64(HALT).load(Ordering::Relaxed) == 0 {
        for _ in 0..COUNT_EVERY {
            black_box(cell.load());
        }
        n += COUNT_EVERY;
        count.store(n, Ordering::Relaxed);
    }
    Ok(())
}

pub fn scale_writer(ctl: i32, cell: i32) -> ChildResult {
    let ctl = Ctl::attach(ctl)?;
    let cell = SharedCell::<Bytes<64>>::opener().open(shmstore::Target::Id(cell))?;
    ctl.u64(READY).fetch_add(1, Ordering::SeqCst);
    while ctl.u64(START).load(Ordering::SeqCst) == 0 {
        std::thread::sleep(Duration::from_micros(100));
    }
    // Sleep-paced: wake every ~60 µs (a 50 µs sleep plus timer slack) and
    // make the stores due since the start, so the rate holds on average
    // while the writer uses little CPU.
    let start = Instant::now();
    let mut value = Bytes::<64>::pattern(0);
    let mut done = 0u64;
    while ctl.u64(HALT).load(Ordering::Relaxed) == 0 {
        let due = (start.elapsed().as_nanos() * u128::from(WRITER_RATE) / 1_000_000_000) as u64;
        while done < due {
            done += 1;
            value.set_tag(done);
            cell.store(value)?;
        }
        ctl.u64(WRITER_COUNT).store(done, Ordering::Relaxed);
        std::thread::sleep(Duration::from_micros(50));
    }
    Ok(())
}
