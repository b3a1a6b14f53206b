//! Waking a waiter in another process from an event loop, next to
//! `wait_for_change` and the bare futex wake: a store into a 64-byte cell
//! reaching a tokio task in `changed(since).await` or in a `changes()`
//! stream, or making a `Subscription`'s descriptor readable to `epoll_wait`
//! (ping-pongs, half a round trip, as `cell_observe_wait`); and one store
//! reaching the last of N tokio tasks of another process (one way, timed
//! with the monotonic clock both processes read). iceoryx2's events,
//! measured the same ways, run in the same group (`iox.rs`).

use std::future::{Future, poll_fn};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

use criterion::Criterion;
use shmstore::watch::{Changes, Subscription};
use shmstore::{SharedCell, Target};
use tokio::runtime::Runtime;

use crate::by_size::echo_once;
use crate::common::child::{Peer, parent_gone};
use crate::common::sys::{futex_wait, futex_wake};
use crate::ctl::{ARMED, ChildResult, Ctl, LAST_WOKEN, READY, ROUNDS_DONE, WOKEN, spawn};
use crate::iox::{IoxEcho, IoxSource, iox_fanout};
use crate::value::{Bytes, waited_cell};
use crate::{Ctx, POLL, STOP};

/// The value of every cell here: 64 bytes, as in the `wait_for_change` row
/// these rows are compared with.
type Value = Bytes<64>;
type Cell = SharedCell<Value>;

/// How many tokio tasks one store wakes in the fan-out rows.
pub const FANOUT: [usize; 3] = [1, 10, 100];

/// Measured next to `64B_ipc/cell_observe_wait` (the caller runs this right
/// after it) and the futex floor run just before that.
pub fn bench_wake(c: &mut Criterion, ctx: &Ctx) {
    let mut g = c.benchmark_group("wake");
    ctx.ipc(&mut g);
    for (how, id) in How::ALL {
        let mut echo: Option<Echo> = None;
        g.bench_function(id, |b| {
            let p = echo.get_or_insert_with(|| Echo::start(how));
            b.iter_custom(|iters| p.round_trips(iters) / 2);
        });
    }
    {
        let mut echo: Option<IoxEcho> = None;
        g.bench_function("iceoryx2_event", |b| {
            let p = echo.get_or_insert_with(IoxEcho::start);
            b.iter_custom(|iters| p.round_trips(iters) / 2);
        });
    }
    // Each store here is followed by untimed work (every waiter waits
    // again): half the measurement time keeps the wall time near the
    // ping-pongs'.
    g.measurement_time(ctx.time(2.0));
    for tasks in FANOUT {
        let mut fanout: Option<Fanout<Cell>> = None;
        g.bench_function(format!("async_last_of_{tasks}"), |b| {
            let p = fanout.get_or_insert_with(|| cell_fanout(tasks));
            b.iter_custom(|iters| p.last_woken(iters));
        });
        let mut fanout: Option<Fanout<IoxSource>> = None;
        g.bench_function(format!("iceoryx2_last_of_{tasks}"), |b| {
            let p = fanout.get_or_insert_with(|| iox_fanout(tasks));
            b.iter_custom(|iters| p.last_woken(iters));
        });
    }
    g.finish();
}

/// How one side of a ping-pong learns of the other's store.
#[derive(Clone, Copy)]
pub enum How {
    /// A tokio task in `cell.changed(since).await`: a subscription per call.
    Changed = 0,
    /// A tokio task in `changes.changed().await` of one `changes()` stream.
    Stream = 1,
    /// `epoll_wait` on a `Subscription`'s descriptor, then `changes()`.
    Epoll = 2,
}

impl How {
    /// Each way, with its benchmark's name.
    pub const ALL: [(How, &'static str); 3] = [
        (How::Changed, "async_changed"),
        (How::Stream, "async_stream"),
        (How::Epoll, "fd_epoll"),
    ];

    fn from_arg(arg: i32) -> Result<How, String> {
        match arg {
            0 => Ok(How::Changed),
            1 => Ok(How::Stream),
            2 => Ok(How::Epoll),
            n => Err(format!("no way of waiting numbered {n}")),
        }
    }
}

/// A single-threaded tokio runtime with its reactor (and timers, for the
/// waits' timeouts): the task that waits runs on the thread that polls.
fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// One side's means of waiting for its cell's next version, and the
/// runtime its waits run on (also for `epoll_wait`, which blocks it: the
/// loops are shared).
struct Wait {
    rt: Runtime,
    on: On,
}

enum On {
    Changed,
    Stream(Changes),
    Epoll(Epoll),
}

impl Wait {
    /// Ready to wait for versions of `cell` other than its version now:
    /// the stream and the subscription are made here, before the other
    /// side may store.
    fn new(how: How, cell: &Cell) -> Wait {
        let rt = runtime();
        let on = match how {
            How::Changed => On::Changed,
            How::Stream => {
                let _in = rt.enter();
                On::Stream(cell.changes().expect("a changes() stream"))
            }
            How::Epoll => On::Epoll(Epoll::new(cell)),
        };
        Wait { rt, on }
    }
}

impl On {
    /// The version of `cell` after `seen`, or `None` if it did not move
    /// within [`POLL`].
    async fn next(&mut self, cell: &Cell, seen: u64) -> shmstore::Result<Option<u64>> {
        match self {
            On::Changed => tokio::time::timeout(POLL, cell.changed(seen))
                .await
                .ok()
                .transpose(),
            On::Stream(changes) => tokio::time::timeout(POLL, changes.changed())
                .await
                .ok()
                .transpose(),
            On::Epoll(epoll) => epoll.next(POLL),
        }
    }
}

/// An epoll instance: descriptors registered for reading, each with a
/// token that the events `wait` returns carry.
pub struct EpollSet {
    fd: OwnedFd,
    events: Vec<libc::epoll_event>,
}

impl EpollSet {
    /// An instance whose `wait` returns at most `room` events.
    pub fn new(room: usize) -> EpollSet {
        // SAFETY: epoll_create1 takes flags only.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        assert!(fd >= 0, "epoll_create1: {}", io::Error::last_os_error());
        EpollSet {
            // SAFETY: `fd` is a descriptor just opened, owned by nothing else.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            events: vec![libc::epoll_event { events: 0, u64: 0 }; room.max(1)],
        }
    }

    /// Watch `fd` (which must stay open while registered) for reading.
    pub fn add(&self, fd: RawFd, token: u64) {
        let mut event = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: both descriptors are open; `event` is valid for the call.
        let r =
            unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event) };
        assert_eq!(r, 0, "epoll_ctl: {}", io::Error::last_os_error());
    }

    /// Wait at most `timeout` for readable descriptors: their events (none
    /// on a timeout).
    pub fn wait(&mut self, timeout: Duration) -> &[libc::epoll_event] {
        // SAFETY: room for `events.len()` events, valid for the call.
        let n = unsafe {
            libc::epoll_wait(
                self.fd.as_raw_fd(),
                self.events.as_mut_ptr(),
                self.events.len() as i32,
                timeout.as_millis() as i32,
            )
        };
        &self.events[..usize::try_from(n).unwrap_or(0)]
    }
}

/// A subscription to one cell, its descriptor registered with an epoll
/// instance, as an event loop holds it.
struct Epoll {
    sub: Subscription,
    set: EpollSet,
}

impl Epoll {
    fn new(cell: &Cell) -> Epoll {
        let mut sub = Subscription::new().expect("a subscription");
        sub.add(cell).expect("subscribe to the cell");
        let set = EpollSet::new(1);
        set.add(sub.as_raw_fd(), 0);
        Epoll { sub, set }
    }

    /// Once the descriptor is readable (at most `timeout`), the cell's new
    /// version, if `changes()` reports one.
    fn next(&mut self, timeout: Duration) -> shmstore::Result<Option<u64>> {
        if self.set.wait(timeout).is_empty() {
            return Ok(None);
        }
        match self.sub.changes()?.pop() {
            Some(change) => change.version.map(Some),
            None => Ok(None),
        }
    }
}

/// The next version of `cell` after `seen`; `check` runs whenever a wait
/// ends with none.
async fn next_version(on: &mut On, cell: &Cell, seen: u64, mut check: impl FnMut()) -> u64 {
    loop {
        match on.next(cell, seen).await.expect("wait for a change") {
            Some(v) => return v,
            None => check(),
        }
    }
}

/// Two cells, A stored by the parent, B by the child, which echoes each
/// value of A into B; both sides wait the same way.
pub struct Echo {
    /// Declared first: the child has exited before the cells are removed.
    peer: Peer,
    a: Cell,
    b: Cell,
    wait: Wait,
    b_seen: u64,
    n: u64,
}

impl Echo {
    pub fn start(how: How) -> Echo {
        let a = waited_cell(Value::pattern(0));
        let b = waited_cell(Value::pattern(0));
        let b_seen = b.version();
        let wait = Wait::new(how, &b);
        let peer = spawn(
            "wake_echo",
            &[how as i64, a.id().into(), b.id().into()],
            None,
        );
        let mut echo = Echo {
            peer,
            a,
            b,
            wait,
            b_seen,
            n: 0,
        };
        // The child stores into B once it waits on A.
        let Echo {
            peer,
            b,
            wait,
            b_seen,
            ..
        } = &mut echo;
        *b_seen = wait
            .rt
            .block_on(next_version(&mut wait.on, b, *b_seen, || peer.check()));
        echo
    }

    pub fn round_trips(&mut self, iters: u64) -> Duration {
        let Echo {
            peer,
            a,
            b,
            wait,
            b_seen,
            n,
        } = self;
        wait.rt.block_on(async {
            let mut value = Value::pattern(0);
            let start = Instant::now();
            for _ in 0..iters {
                *n += 1;
                value.set_tag(*n);
                a.store(value).expect("store A");
                *b_seen = next_version(&mut wait.on, b, *b_seen, || peer.check()).await;
            }
            let elapsed = start.elapsed();
            assert_eq!(b.load().tag(), *n, "the child echoed another value");
            elapsed
        })
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        let _ = self.a.store(Value::pattern(STOP));
    }
}

pub fn wake_echo(parent: libc::pid_t, how: i32, a: i32, b: i32) -> ChildResult {
    let how = How::from_arg(how)?;
    let a = Cell::opener().open(Target::Id(a))?;
    let b = Cell::opener().open(Target::Id(b))?;
    let mut seen = a.version();
    let Wait { rt, mut on } = Wait::new(how, &a);
    b.store(Value::pattern(0))?;
    rt.block_on(async {
        loop {
            let Some(v) = on.next(&a, seen).await? else {
                if parent_gone(parent) {
                    return Ok(());
                }
                continue;
            };
            seen = v;
            if !echo_once(&a, &b)? {
                return Ok(());
            }
        }
    })
}

/// `CLOCK_MONOTONIC` in nanoseconds: one clock for every process of the
/// machine.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is valid for the call; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// What a fan-out's parent does to wake the child's waiters, once a
/// round, and to tell them to stop.
pub trait Source {
    fn fire(&self, round: u32);
    fn stop(&self, ctl: &Ctl);
}

impl Source for Cell {
    fn fire(&self, round: u32) {
        self.store(Value::pattern(round.into())).expect("store");
    }

    fn stop(&self, _ctl: &Ctl) {
        let _ = self.store(Value::pattern(STOP));
    }
}

/// A child process with `waiters` waiting on what `source` fires (for
/// shmstore, tokio tasks of one current-thread runtime, each in
/// `changed(since).await` on a cell); each round is one firing, timed from
/// just before it to the latest time a waiter woke, as the child writes it
/// in [`LAST_WOKEN`].
pub struct Fanout<S: Source> {
    /// Declared first: the child has exited before the source goes.
    peer: Peer,
    ctl: Ctl,
    source: S,
    waiters: u32,
    rounds: u32,
}

impl<S: Source> Fanout<S> {
    /// `peer` was started with `ctl`; wait until its waiters are set up.
    pub fn start(mut peer: Peer, ctl: Ctl, source: S, waiters: usize) -> Fanout<S> {
        ctl.wait_ready(std::slice::from_mut(&mut peer), 1);
        Fanout {
            peer,
            ctl,
            source,
            waiters: waiters as u32,
            rounds: 0,
        }
    }

    /// The sum over `iters` rounds of the time from the firing to the last
    /// waiter woken.
    pub fn last_woken(&mut self, iters: u64) -> Duration {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            self.rounds += 1;
            // Untimed: every waiter waits again. (No pause after it: a
            // pause lets the CPUs idle, and a wake from idle on this
            // virtual machine is slower than the ping-pongs' wakes.)
            self.wait_word(ARMED, self.rounds * self.waiters);
            self.ctl.u64(LAST_WOKEN).store(0, SeqCst);
            let fired_at = now_ns();
            self.source.fire(self.rounds);
            self.wait_word(ROUNDS_DONE, self.rounds);
            let woken_at = self.ctl.u64(LAST_WOKEN).load(SeqCst);
            total += Duration::from_nanos(woken_at.saturating_sub(fired_at));
        }
        total
    }

    /// Sleep until the futex word `i` reaches `target`, checking that the
    /// child is alive whenever a sleep ends with the word unchanged.
    fn wait_word(&mut self, i: usize, target: u32) {
        wait_word(self.ctl.u32(i), target, || self.peer.check());
    }
}

/// Sleep until the futex word `word` reaches `target`; `check` runs
/// whenever a sleep (at most [`POLL`]) ends with the word unchanged.
pub fn wait_word(word: &AtomicU32, target: u32, mut check: impl FnMut()) {
    loop {
        let v = word.load(SeqCst);
        if v >= target {
            return;
        }
        futex_wait(word, v, POLL);
        if word.load(SeqCst) == v {
            check();
        }
    }
}

impl<S: Source> Drop for Fanout<S> {
    fn drop(&mut self) {
        self.source.stop(&self.ctl);
    }
}

/// A fan-out of `tasks` tokio tasks on one cell.
pub fn cell_fanout(tasks: usize) -> Fanout<Cell> {
    let cell = waited_cell(Value::pattern(0));
    let ctl = Ctl::new();
    let peer = spawn(
        "wake_fanout",
        &[ctl.id().into(), cell.id().into(), tasks as i64],
        None,
    );
    Fanout::start(peer, ctl, cell, tasks)
}

/// In a fan-out's child: one more waiter of `waiters` is waiting (each
/// round's last wakes the parent).
pub fn armed(ctl: &Ctl, waiters: u32) {
    if (ctl.u32(ARMED).fetch_add(1, SeqCst) + 1).is_multiple_of(waiters) {
        futex_wake(ctl.u32(ARMED));
    }
}

/// In a fan-out's child: one more waiter of `waiters` woke at `woken_at`
/// (each round's last tells the parent).
pub fn woke(ctl: &Ctl, waiters: u32, woken_at: u64) {
    ctl.u64(LAST_WOKEN).fetch_max(woken_at, SeqCst);
    if (ctl.u32(WOKEN).fetch_add(1, SeqCst) + 1).is_multiple_of(waiters) {
        ctl.u32(ROUNDS_DONE).fetch_add(1, SeqCst);
        futex_wake(ctl.u32(ROUNDS_DONE));
    }
}

pub fn wake_fanout(ctl: i32, cell: i32, tasks: i32) -> ChildResult {
    let ctl = Arc::new(Ctl::attach(ctl)?);
    let cell = Arc::new(Cell::opener().open(Target::Id(cell))?);
    let tasks = u32::try_from(tasks)?;
    runtime().block_on(async {
        let seen = cell.version();
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                tokio::spawn(fanout_task(
                    Arc::clone(&ctl),
                    Arc::clone(&cell),
                    seen,
                    tasks,
                ))
            })
            .collect();
        ctl.u64(READY).fetch_add(1, SeqCst);
        for h in handles {
            h.await??;
        }
        Ok(())
    })
}

/// One task of a fan-out: wait in `changed(since)`, counting each wait it
/// enters (its first poll: subscribed) in ARMED; on each wake, its time
/// into LAST_WOKEN (the latest), and the round done once every task woke.
async fn fanout_task(
    ctl: Arc<Ctl>,
    cell: Arc<Cell>,
    mut seen: u64,
    tasks: u32,
) -> shmstore::Result<()> {
    loop {
        let mut wait = pin!(cell.changed(seen));
        let mut first = true;
        let v = poll_fn(|cx| {
            let polled = wait.as_mut().poll(cx);
            if first {
                first = false;
                armed(&ctl, tasks);
            }
            polled
        })
        .await?;
        let woken_at = now_ns();
        seen = v;
        if cell.load().tag() == STOP {
            return Ok(());
        }
        woke(&ctl, tasks, woken_at);
    }
}
