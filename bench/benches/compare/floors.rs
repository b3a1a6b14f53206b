//! The floors without a value: a bare robust mutex, a system call, and the
//! two cross-process ping-pongs (a shared futex wake, a cache line between
//! two spinning processes) that store→observed latency is compared with.

use std::hint::black_box;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use criterion::Criterion;

use crate::common::child::{FUTEX_STOP, Peer, futex_echo, futex_round_trips, parent_gone};
use crate::common::sys::{RobustMutexSeg, futex_wake};
use crate::ctl::{ChildResult, Ctl, READY, WORD_A, WORD_B, spawn};
use crate::{Ctx, POLL, STOP, Spin};

pub fn bench_floors(c: &mut Criterion, ctx: &Ctx) {
    let lock = RobustMutexSeg::new(64);
    let mut g = c.benchmark_group("floor");
    ctx.local(&mut g);
    g.bench_function("robust_lock_unlock", |b| b.iter(|| lock.lock_unlock()));
    g.bench_function("getpid", |b| {
        // SAFETY: getpid has no preconditions and cannot fail.
        b.iter(|| black_box(unsafe { libc::getpid() }))
    });
    g.finish();
}

/// The cross-process floors, run just before the 64-byte store→observed
/// measurements they are compared with, so that both see the same machine.
pub fn bench_floor_ipc(c: &mut Criterion, ctx: &Ctx) {
    let mut futex: Option<FutexPingPong> = None;
    let mut spin: Option<SpinPingPong> = None;
    let mut g = c.benchmark_group("floor_ipc");
    ctx.ipc(&mut g);
    g.bench_function("futex_wake", |b| {
        let p = futex.get_or_insert_with(FutexPingPong::start);
        b.iter_custom(|iters| p.round_trips(iters) / 2);
    });
    drop(futex.take());
    g.bench_function("cacheline", |b| {
        let p = spin.get_or_insert_with(SpinPingPong::start);
        b.iter_custom(|iters| p.round_trips(iters) / 2);
    });
    drop(spin.take());
    g.finish();
}

/// Two futex words of a control page: A written by the parent, B echoed by
/// the child. One way is half a round trip.
pub struct FutexPingPong {
    ctl: Ctl,
    n: u32,
    peer: Peer,
}

impl FutexPingPong {
    pub fn start() -> Self {
        let ctl = Ctl::new();
        let mut peer = spawn("futex", &[ctl.id().into()], None);
        ctl.wait_ready(std::slice::from_mut(&mut peer), 1);
        FutexPingPong { ctl, n: 0, peer }
    }

    pub fn round_trips(&mut self, iters: u64) -> Duration {
        let (a, b) = (self.ctl.u32(WORD_A), self.ctl.u32(WORD_B));
        futex_round_trips(a, b, &mut self.n, iters, POLL, || self.peer.check())
    }
}

impl Drop for FutexPingPong {
    fn drop(&mut self) {
        let a = self.ctl.u32(WORD_A);
        a.store(FUTEX_STOP, Ordering::SeqCst);
        futex_wake(a);
    }
}

pub fn futex_child(parent: libc::pid_t, ctl: i32) -> ChildResult {
    let ctl = Ctl::attach(ctl)?;
    let (a, b) = (ctl.u32(WORD_A), ctl.u32(WORD_B));
    futex_echo(a, b, parent, POLL, || {
        ctl.u64(READY).fetch_add(1, Ordering::SeqCst);
    });
    Ok(())
}

/// Two words on two cache lines of a control page, both sides spinning: the
/// time for a cache line to go to the other core and back, halved.
pub struct SpinPingPong {
    ctl: Ctl,
    n: u64,
    peer: Peer,
}

impl SpinPingPong {
    pub fn start() -> Self {
        let ctl = Ctl::new();
        let mut peer = spawn("spin", &[ctl.id().into()], None);
        ctl.wait_ready(std::slice::from_mut(&mut peer), 1);
        SpinPingPong { ctl, n: 0, peer }
    }

    pub fn round_trips(&mut self, iters: u64) -> Duration {
        let (a, b) = (self.ctl.u64(WORD_A), self.ctl.u64(WORD_B));
        let start = Instant::now();
        for _ in 0..iters {
            self.n += 1;
            a.store(self.n, Ordering::Release);
            let mut spin = Spin::default();
            while b.load(Ordering::Acquire) != self.n {
                if spin.idle() {
                    self.peer.check();
                }
            }
        }
        start.elapsed()
    }
}

impl Drop for SpinPingPong {
    fn drop(&mut self) {
        self.ctl.u64(WORD_A).store(STOP, Ordering::Release);
    }
}

pub fn spin_child(parent: libc::pid_t, ctl: i32) -> ChildResult {
    let ctl = Ctl::attach(ctl)?;
    let (a, b) = (ctl.u64(WORD_A), ctl.u64(WORD_B));
    let mut seen = a.load(Ordering::Acquire);
    ctl.u64(READY).fetch_add(1, Ordering::SeqCst);
    let mut spin = Spin::default();
    loop {
        let v = a.load(Ordering::Acquire);
        if v == seen {
            if spin.idle() && parent_gone(parent) {
                return Ok(());
            }
            continue;
        }
        if v == STOP {
            return Ok(());
        }
        seen = v;
        b.store(v, Ordering::Release);
    }
}
