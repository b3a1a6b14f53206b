//! The rows that wake another process, measured again with the two
//! processes placed (`placement.rs`): both on one CPU, then each on its own
//! CPU. A group a placement (`placed_same_cpu`, `placed_two_cpus`), each
//! with the futex floor first, then the cache-line floor, `SharedCell`
//! store→observed (spinning, `wait_for_change`), the async and descriptor
//! wakes and iceoryx2's event (ping-pongs, half a round trip), the Unix
//! socket echo, and the fan-outs to the last of N waiters (one way), all
//! with 64-byte values. Each row pins the parent before it starts its
//! child, and unpins it once the child has exited. The unpinned rows, where
//! the scheduler places the processes, are measured as before in their own
//! groups.

use std::time::Duration;

use criterion::{BenchmarkGroup, Criterion, measurement::WallTime};

use crate::Ctx;
use crate::by_size::CellEcho;
use crate::floors::{FutexPingPong, SpinPingPong};
use crate::iox::{IoxEcho, iox_fanout};
use crate::peers::UdsEcho;
use crate::placement::{Pin, Placement};
use crate::wake::{Echo, FANOUT, How, cell_fanout};

pub fn bench_placed(c: &mut Criterion, ctx: &Ctx) {
    for placement in Placement::ALL {
        let group = format!("placed_{}", placement.name());
        let cpus = match placement.cpus() {
            Ok(cpus) => cpus,
            Err(why) => {
                println!("{group}: skipped: {why}");
                continue;
            }
        };
        let mut g = c.benchmark_group(&group);
        // Half the unpinned rows' measurement time: twice as many rows.
        ctx.ipc(&mut g);
        g.measurement_time(ctx.time(2.0));
        let half = |d: Duration| d / 2;
        placed(&mut g, "futex_wake", cpus, FutexPingPong::start, |p, n| {
            half(p.round_trips(n))
        });
        placed(&mut g, "cacheline", cpus, SpinPingPong::start, |p, n| {
            half(p.round_trips(n))
        });
        for (id, spin) in [("cell_observe_spin", true), ("cell_observe_wait", false)] {
            placed(
                &mut g,
                id,
                cpus,
                || CellEcho::<64>::start(spin),
                |p, n| half(p.round_trips(n)),
            );
        }
        for (how, id) in How::ALL {
            placed(
                &mut g,
                id,
                cpus,
                || Echo::start(how),
                |p, n| half(p.round_trips(n)),
            );
        }
        placed(&mut g, "iceoryx2_event", cpus, IoxEcho::start, |p, n| {
            half(p.round_trips(n))
        });
        placed(
            &mut g,
            "uds_bincode",
            cpus,
            || UdsEcho::<64>::start(&ctx.dir, &format!("64B-{}", placement.name())),
            |p, n| half(p.round_trips(n)),
        );
        for n in FANOUT {
            placed(
                &mut g,
                &format!("async_last_of_{n}"),
                cpus,
                || cell_fanout(n),
                |p, iters| p.last_woken(iters),
            );
            placed(
                &mut g,
                &format!("iceoryx2_last_of_{n}"),
                cpus,
                || iox_fanout(n),
                |p, iters| p.last_woken(iters),
            );
        }
        g.finish();
    }
}

/// What a placed row holds while it is measured: declared first, `inner`
/// (and its child) goes before the pin is undone.
struct Placed<T> {
    inner: T,
    _pin: Pin,
}

/// Measure `id` with the parent and the child on `cpus`: pinned, then
/// `start` (which starts the child) on the first call of criterion's
/// routine, `measure(inner, iters)` on every call (the time of `iters`
/// one-way trips), and all undone when the row is done.
fn placed<T>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    id: &str,
    cpus: (usize, usize),
    start: impl Fn() -> T,
    mut measure: impl FnMut(&mut T, u64) -> Duration,
) {
    let mut held: Option<Placed<T>> = None;
    g.bench_function(id, |b| {
        let p = held.get_or_insert_with(|| {
            let pin = Pin::new(cpus);
            Placed {
                inner: start(),
                _pin: pin,
            }
        });
        b.iter_custom(|iters| measure(&mut p.inner, iters));
    });
    drop(held);
}
