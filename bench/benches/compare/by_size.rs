//! One value size: floors, `SharedCell`, shared_memory + raw_sync, std
//! Mutex, Unix socket + bincode, in process and across processes; and the
//! cell's cross-process measurements (a process storing nonstop, an echo).
//! For values of up to 4 KiB, iceoryx2's blackboard and publish-subscribe
//! run in the same groups (`blackboard.rs`, `pubsub.rs`).

use std::hint::black_box;
use std::mem::MaybeUninit;
use std::time::{Duration, Instant};

use criterion::Criterion;
use shmstore::SharedCell;

use crate::blackboard::{self, MAX_VALUE};
use crate::common::child::{Peer, parent_gone};
use crate::common::sys::{DATA_AT, RobustMutexSeg, private_segment};
use crate::ctl::{ChildResult, Ctl, Hammer, WriterWindow, hammer_loop, spawn};
use crate::floors::bench_floor_ipc;
use crate::peers::{ShmHammer, ShmRawSync, UdsEcho};
use crate::pubsub::PubSubEcho;
use crate::value::{Bytes, private_cell, waited_cell};
use crate::wake::bench_wake;
use crate::{Ctx, POLL, SIZES, STOP, Spin};

/// How long a hammer child's stores are counted alone, right after it
/// starts and before any reader (a fifth of that in a quick run).
pub const ALONE_SECS: f64 = 0.3;

/// The writer's side of the contended reads of one value size: the stores
/// per second of the child storing nonstop, alone and while each reader ran
/// (`None` where not measured).
#[derive(Clone, Copy, Default)]
pub struct WriterSide {
    /// `SharedCell::store` in a loop, no reader.
    pub cell_alone: Option<f64>,
    /// The same while `cell_load_contended` ran.
    pub cell_load: Option<f64>,
    /// The same while `cell_load_into_contended` ran.
    pub cell_load_into: Option<f64>,
    /// shared_memory + raw_sync stores in a loop, no reader.
    pub shm_alone: Option<f64>,
    /// The same while `shm_rawsync_load_contended` ran.
    pub shm_load: Option<f64>,
    /// iceoryx2 blackboard writes in a loop, no reader.
    pub board_alone: Option<f64>,
    /// The same while `iceoryx2_blackboard_read_contended` ran.
    pub board_load: Option<f64>,
}

/// Measure one value size; return the writer's side of its contended reads.
pub fn bench_size<const N: usize>(c: &mut Criterion, ctx: &Ctx, name: &str) -> WriterSide {
    let seg = private_segment(DATA_AT + N);
    let src = seg.as_ptr().wrapping_add(DATA_AT).cast::<Bytes<N>>();
    // SAFETY: DATA_AT + N bytes lie inside the mapping; only this thread
    // touches them.
    unsafe { src.write(Bytes::pattern(7)) };
    let floor = RobustMutexSeg::new(N);
    let cell = private_cell(Bytes::<N>::pattern(7));
    let mut shm = ShmRawSync::create(&ctx.dir, name, N);
    shm.unlink();
    shm.store(&Bytes::<N>::pattern(7));
    let std_mutex = std::sync::Mutex::new(Bytes::<N>::pattern(7));
    let mut value = Bytes::<N>::pattern(1);

    let mut g = c.benchmark_group(name);
    ctx.local(&mut g);
    g.bench_function("floor_copy", |b| {
        b.iter(|| {
            let mut out = MaybeUninit::<Bytes<N>>::uninit();
            // SAFETY: as above; no other process or thread writes the value.
            unsafe { std::ptr::copy_nonoverlapping(black_box(src), out.as_mut_ptr(), 1) };
            black_box(&out);
        })
    });
    g.bench_function("floor_copy_words", |b| {
        b.iter(|| {
            let mut out = MaybeUninit::<Bytes<N>>::uninit();
            let (from, to) = (black_box(src).cast::<u64>(), out.as_mut_ptr().cast::<u64>());
            for i in 0..N / 8 {
                // SAFETY: word i of the value lies inside the mapping, 8-aligned
                // (DATA_AT is), and inside `out`, written unaligned.
                unsafe {
                    to.add(i)
                        .write_unaligned(std::ptr::read_volatile(from.add(i)))
                };
            }
            black_box(&out);
        })
    });
    g.bench_function("floor_lock_copy", |b| {
        let mut n = 0u64;
        b.iter(|| {
            n += 1;
            value.0[8] = n as u8;
            floor.store(black_box(&value));
        })
    });
    g.bench_function("cell_load", |b| {
        b.iter(|| {
            let v = cell.load();
            black_box(&v);
        })
    });
    g.bench_function("cell_load_into", |b| {
        let mut out = Bytes::<N>::pattern(0);
        b.iter(|| {
            cell.load_into(&mut out);
            black_box(&out);
        })
    });
    g.bench_function("cell_store", |b| {
        let mut n = 0u64;
        b.iter(|| {
            n += 1;
            value.0[8] = n as u8;
            cell.store(black_box(value)).expect("store");
        })
    });
    g.bench_function("cell_lease_store", |b| {
        let mut lease = cell.lease().expect("lease");
        let mut n = 0u64;
        b.iter(|| {
            n += 1;
            value.0[8] = n as u8;
            lease.store(black_box(value)).expect("leased store");
        })
    });
    g.bench_function("cell_update", |b| {
        b.iter(|| {
            cell.update(|v| v.0[8] = black_box(v.0[8].wrapping_add(1)))
                .expect("update")
        })
    });
    g.bench_function("shm_rawsync_load", |b| {
        b.iter(|| {
            let v = shm.load::<N>();
            black_box(&v);
        })
    });
    g.bench_function("shm_rawsync_store", |b| {
        let mut n = 0u64;
        b.iter(|| {
            n += 1;
            value.0[8] = n as u8;
            shm.store(black_box(&value));
        })
    });
    g.bench_function("std_mutex_load", |b| {
        b.iter(|| {
            let v = *std_mutex.lock().expect("std mutex");
            black_box(&v);
        })
    });
    g.bench_function("std_mutex_store", |b| {
        let mut n = 0u64;
        b.iter(|| {
            n += 1;
            value.0[8] = n as u8;
            *std_mutex.lock().expect("std mutex") = black_box(value);
        })
    });
    if N <= MAX_VALUE {
        blackboard::bench_local::<N>(&mut g);
    }
    g.finish();

    if name == SIZES[0] {
        bench_floor_ipc(c, ctx);
    }
    let mut g = c.benchmark_group(format!("{name}_ipc"));
    ctx.ipc(&mut g);
    // iceoryx2's publish-subscribe first, so that the `wait_for_change` row
    // stays right before the wake-ups (below) compared with it.
    if N <= MAX_VALUE {
        let mut echo: Option<PubSubEcho<N>> = None;
        g.bench_function("iceoryx2_pubsub_spin", |b| {
            let p = echo.get_or_insert_with(PubSubEcho::start);
            b.iter_custom(|iters| p.round_trips(iters) / 2);
        });
    }
    for (id, spin) in [("cell_observe_spin", true), ("cell_observe_wait", false)] {
        let mut echo: Option<CellEcho<N>> = None;
        g.bench_function(id, |b| {
            let p = echo.get_or_insert_with(|| CellEcho::start(spin));
            b.iter_custom(|iters| p.round_trips(iters) / 2);
        });
    }
    if name == SIZES[0] {
        // The async and descriptor wake-ups, right after the
        // `wait_for_change` row they are compared with; then this size's
        // group goes on.
        g.finish();
        bench_wake(c, ctx);
        g = c.benchmark_group(format!("{name}_ipc"));
        ctx.ipc(&mut g);
    }
    // The writer's count is read when the reader starts and each time
    // criterion's closure returns: the window covers all the time the
    // reader looped (warm-up and samples).
    let alone = ctx.time(ALONE_SECS);
    let mut writer = WriterSide::default();
    {
        let mut hammer: Option<CellHammer<N>> = None;
        let mut window = WriterWindow::default();
        g.bench_function("cell_load_contended", |b| {
            let h = hammer.get_or_insert_with(|| CellHammer::start(alone));
            window.mark(&h.hammer.ctl);
            b.iter(|| {
                let v = h.cell.load();
                black_box(&v);
            });
            window.mark(&h.hammer.ctl);
        });
        writer.cell_load = window.rate();
        let mut window = WriterWindow::default();
        g.bench_function("cell_load_into_contended", |b| {
            let h = hammer.get_or_insert_with(|| CellHammer::start(alone));
            let mut out = Bytes::<N>::pattern(0);
            window.mark(&h.hammer.ctl);
            b.iter(|| {
                h.cell.load_into(&mut out);
                black_box(&out);
            });
            window.mark(&h.hammer.ctl);
        });
        writer.cell_load_into = window.rate();
        writer.cell_alone = hammer.as_ref().map(|h| h.hammer.alone);
    }
    if N <= MAX_VALUE {
        (writer.board_alone, writer.board_load) = blackboard::bench_contended::<N>(&mut g, alone);
    }
    {
        let mut hammer: Option<ShmHammer<N>> = None;
        let mut window = WriterWindow::default();
        g.bench_function("shm_rawsync_load_contended", |b| {
            let h = hammer.get_or_insert_with(|| ShmHammer::start(&ctx.dir, name, alone));
            window.mark(&h.hammer.ctl);
            b.iter(|| {
                let v = h.shm.load::<N>();
                black_box(&v);
            });
            window.mark(&h.hammer.ctl);
        });
        writer.shm_load = window.rate();
        writer.shm_alone = hammer.as_ref().map(|h| h.hammer.alone);
    }
    {
        let mut echo: Option<Box<UdsEcho<N>>> = None;
        g.bench_function("uds_bincode", |b| {
            let p = echo.get_or_insert_with(|| UdsEcho::start(&ctx.dir, name));
            b.iter_custom(|iters| p.round_trips(iters) / 2);
        });
    }
    g.finish();
    let rate = |r: Option<f64>| r.map_or("n/a".to_owned(), |r| format!("{:.0}", r));
    println!(
        "{name}_ipc writer stores/s: cell alone {}, during load {}, during load_into {}; \
         raw_sync alone {}, during its load {}",
        rate(writer.cell_alone),
        rate(writer.cell_load),
        rate(writer.cell_load_into),
        rate(writer.shm_alone),
        rate(writer.shm_load),
    );
    if N <= MAX_VALUE {
        println!(
            "{name}_ipc iceoryx2 blackboard writes/s: alone {}, during its read {}",
            rate(writer.board_alone),
            rate(writer.board_load),
        );
    }
    writer
}

/// A cell and a child process storing into it as fast as it can, counting
/// its stores in the control page.
struct CellHammer<const N: usize> {
    cell: SharedCell<Bytes<N>>,
    hammer: Hammer,
}

impl<const N: usize> CellHammer<N> {
    /// Start the child, wait until it stores, then count its stores alone
    /// for `alone`.
    fn start(alone: Duration) -> Self {
        let cell = private_cell(Bytes::<N>::pattern(0));
        let ctl = Ctl::new();
        let peer = spawn(
            "cell_hammer",
            &[N as i64, ctl.id().into(), cell.id().into()],
            None,
        );
        let hammer = Hammer::running(ctl, peer, alone);
        CellHammer { cell, hammer }
    }
}

pub fn cell_hammer<const N: usize>(ctl: i32, cell: i32) -> ChildResult {
    let ctl = Ctl::attach(ctl)?;
    let cell = SharedCell::<Bytes<N>>::opener().open(shmstore::Target::Id(cell))?;
    let mut value = Bytes::<N>::pattern(0);
    hammer_loop(&ctl, |n| {
        value.set_tag(n);
        Ok(cell.store(value)?)
    })
}

/// Two cells, A stored by the parent, B by the child, which echoes each
/// value of A into B; both sides spin on `version()` or sleep in
/// `wait_for_change`.
pub struct CellEcho<const N: usize> {
    /// Declared first: the child has exited before the cells are removed.
    peer: Peer,
    a: SharedCell<Bytes<N>>,
    b: SharedCell<Bytes<N>>,
    spin: bool,
    b_seen: u64,
    n: u64,
    value: Box<Bytes<N>>,
}

impl<const N: usize> CellEcho<N> {
    pub fn start(spin: bool) -> Self {
        let cell = if spin { private_cell } else { waited_cell };
        let a = cell(Bytes::<N>::pattern(0));
        let b = cell(Bytes::<N>::pattern(0));
        let peer = spawn(
            "cell_echo",
            &[N as i64, spin.into(), a.id().into(), b.id().into()],
            None,
        );
        let mut echo = CellEcho {
            a,
            b,
            spin,
            b_seen: 0,
            n: 0,
            value: Box::new(Bytes::pattern(0)),
            peer,
        };
        // The child stores into B once it has both cells.
        echo.wait_b();
        echo
    }

    fn wait_b(&mut self) {
        if self.spin {
            let mut spin = Spin::default();
            loop {
                let v = self.b.version();
                if v != self.b_seen {
                    self.b_seen = v;
                    return;
                }
                if spin.idle() {
                    self.peer.check();
                }
            }
        } else {
            loop {
                let v = self
                    .b
                    .wait_for_change(self.b_seen, Some(POLL))
                    .expect("wait");
                if v != self.b_seen {
                    self.b_seen = v;
                    return;
                }
                self.peer.check();
            }
        }
    }

    pub fn round_trips(&mut self, iters: u64) -> Duration {
        let start = Instant::now();
        for _ in 0..iters {
            self.n += 1;
            self.value.set_tag(self.n);
            self.a.store(*self.value).expect("store A");
            self.wait_b();
        }
        let elapsed = start.elapsed();
        assert_eq!(
            self.b.load().tag(),
            self.n,
            "the child echoed another value"
        );
        elapsed
    }
}

impl<const N: usize> Drop for CellEcho<N> {
    fn drop(&mut self) {
        self.value.set_tag(STOP);
        let _ = self.a.store(*self.value);
    }
}

pub fn cell_echo<const N: usize>(parent: libc::pid_t, spin: bool, a: i32, b: i32) -> ChildResult {
    let a = SharedCell::<Bytes<N>>::opener().open(shmstore::Target::Id(a))?;
    let b = SharedCell::<Bytes<N>>::opener().open(shmstore::Target::Id(b))?;
    let mut seen = a.version();
    b.store(Bytes::pattern(0))?;
    let mut spinner = Spin::default();
    loop {
        let v = if spin {
            a.version()
        } else {
            a.wait_for_change(seen, Some(POLL))?
        };
        if v == seen {
            // A sleeper checks after each POLL; a spinner every SPIN_CHECK
            // turns.
            if (!spin || spinner.idle()) && parent_gone(parent) {
                return Ok(());
            }
            continue;
        }
        seen = v;
        if !echo_once(&a, &b)? {
            return Ok(());
        }
    }
}

/// Copy A's value into B, as an echoing child does once A moved; `false`
/// (and nothing stored) if the value is the [`STOP`] tag.
pub fn echo_once<const N: usize>(
    a: &SharedCell<Bytes<N>>,
    b: &SharedCell<Bytes<N>>,
) -> shmstore::Result<bool> {
    let value = a.load();
    if value.tag() == STOP {
        return Ok(false);
    }
    b.store(value)?;
    Ok(true)
}
