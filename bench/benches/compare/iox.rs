//! iceoryx2's events, a peer of the store→wake rows: a notifier waking a
//! listener in another process (ping-pong, half a round trip), and one
//! `notify` waking the last of N listeners of another process, which one
//! thread waits on with epoll (one way, as the tokio tasks' fan-out).
//! Events carry no value. Each run names its services after the parent's
//! pid; iceoryx2 removes their files (under `/tmp/iceoryx2` and `/dev/shm`)
//! with the last node that uses them, and keeps what every iceoryx2
//! process shares: two empty directories under `/tmp/iceoryx2` and a
//! 16-byte `iox2_*.global_mgmt` file in `/dev/shm`. It makes no System V
//! segment.

use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

use iceoryx2::port::listener::Listener;
use iceoryx2::port::notifier::Notifier;
use iceoryx2::prelude::*;
use iceoryx2::service::port_factory::event::PortFactory;

use crate::POLL;
use crate::common::child::{Peer, parent_gone};
use crate::ctl::{ChildResult, Ctl, HALT, READY, spawn};
use crate::wake::{EpollSet, Fanout, Source, armed, now_ns, woke};

/// The service variant of every iceoryx2 row: between processes.
pub type Ipc = ipc::Service;

/// The most listeners a fan-out service takes.
const MAX_LISTENERS: usize = 128;

/// A node of this process, quiet but for errors.
pub fn node() -> Result<Node<Ipc>, Box<dyn std::error::Error>> {
    set_log_level(LogLevel::Error);
    Ok(NodeBuilder::new().create::<Ipc>()?)
}

/// The name of the service `what` of the run whose parent is `parent`.
pub fn service_name(
    parent: libc::pid_t,
    what: &str,
) -> Result<ServiceName, Box<dyn std::error::Error>> {
    Ok(ServiceName::new(&format!(
        "shmstore-bench-compare/{parent}/{what}"
    ))?)
}

/// The event service `what` of the run whose parent is `parent`.
fn service(
    node: &Node<Ipc>,
    parent: libc::pid_t,
    what: &str,
) -> Result<PortFactory<Ipc>, Box<dyn std::error::Error>> {
    Ok(node
        .service_builder(&service_name(parent, what)?)
        .event()
        .max_listeners(MAX_LISTENERS)
        .open_or_create()?)
}

/// Wait on `listener` until a notification arrives; `check` runs whenever
/// a wait of [`POLL`] ends with none.
fn wait_one(listener: &Listener<Ipc>, mut check: impl FnMut()) {
    while listener.timed_wait(|_| {}, POLL).expect("wait") == 0 {
        check();
    }
}

/// Two services, A notified by the parent, B by the child, which answers
/// each notification on A with one on B.
pub struct IoxEcho {
    /// Declared first: the child has exited before the services go.
    peer: Peer,
    ctl: Ctl,
    notifier: Notifier<Ipc>,
    listener: Listener<Ipc>,
    _services: [PortFactory<Ipc>; 2],
    _node: Node<Ipc>,
}

impl IoxEcho {
    pub fn start() -> IoxEcho {
        let me = std::process::id() as libc::pid_t;
        let node = node().expect("an iceoryx2 node");
        let a = service(&node, me, "a").expect("service A");
        let b = service(&node, me, "b").expect("service B");
        let notifier = a.notifier_builder().create().expect("a notifier");
        let listener = b.listener_builder().create().expect("a listener");
        let ctl = Ctl::new();
        let mut peer = spawn("iox_echo", &[ctl.id().into()], None);
        // The child notifies B once it listens on A.
        wait_one(&listener, || peer.check());
        IoxEcho {
            peer,
            ctl,
            notifier,
            listener,
            _services: [a, b],
            _node: node,
        }
    }

    pub fn round_trips(&mut self, iters: u64) -> Duration {
        let start = Instant::now();
        for _ in 0..iters {
            self.notifier.notify().expect("notify");
            wait_one(&self.listener, || self.peer.check());
        }
        start.elapsed()
    }
}

impl Drop for IoxEcho {
    fn drop(&mut self) {
        self.ctl.u64(HALT).store(1, SeqCst);
        let _ = self.notifier.notify();
    }
}

pub fn iox_echo(parent: libc::pid_t, ctl: i32) -> ChildResult {
    let ctl = Ctl::attach(ctl)?;
    let node = node()?;
    let listener = service(&node, parent, "a")?.listener_builder().create()?;
    let notifier = service(&node, parent, "b")?.notifier_builder().create()?;
    notifier.notify()?;
    loop {
        let n = listener.timed_wait(|_| {}, POLL)?;
        if ctl.u64(HALT).load(SeqCst) != 0 {
            return Ok(());
        }
        if n == 0 {
            if parent_gone(parent) {
                return Ok(());
            }
            continue;
        }
        notifier.notify()?;
    }
}

/// The parent's side of an iceoryx2 fan-out: a notifier on the service.
pub struct IoxSource {
    notifier: Notifier<Ipc>,
    _service: PortFactory<Ipc>,
    _node: Node<Ipc>,
}

impl Source for IoxSource {
    fn fire(&self, _round: u32) {
        self.notifier.notify().expect("notify");
    }

    fn stop(&self, ctl: &Ctl) {
        ctl.u64(HALT).store(1, SeqCst);
        let _ = self.notifier.notify();
    }
}

/// A fan-out of `listeners` listeners in one child process.
pub fn iox_fanout(listeners: usize) -> Fanout<IoxSource> {
    assert!(listeners <= MAX_LISTENERS);
    let me = std::process::id() as libc::pid_t;
    let node = node().expect("an iceoryx2 node");
    let service = service(&node, me, "fan").expect("the fan-out service");
    let notifier = service.notifier_builder().create().expect("a notifier");
    let ctl = Ctl::new();
    let peer = spawn("iox_fanout", &[ctl.id().into(), listeners as i64], None);
    let source = IoxSource {
        notifier,
        _service: service,
        _node: node,
    };
    Fanout::start(peer, ctl, source, listeners)
}

/// The child of an iceoryx2 fan-out: `listeners` listeners on one service,
/// their descriptors in one epoll set that this thread waits on; a round
/// ends when every listener has had its notification.
pub fn iox_fanout_child(parent: libc::pid_t, ctl: i32, listeners: i32) -> ChildResult {
    let ctl = Ctl::attach(ctl)?;
    let waiters = u32::try_from(listeners)?;
    let node = node()?;
    let service = service(&node, parent, "fan")?;
    let listeners = (0..waiters)
        .map(|_| service.listener_builder().create())
        .collect::<Result<Vec<_>, _>>()?;
    let mut set = EpollSet::new(listeners.len());
    for (i, l) in listeners.iter().enumerate() {
        // SAFETY: the descriptor stays open as long as its listener, which
        // outlives the epoll set's use here.
        set.add(unsafe { l.file_descriptor().native_handle() }, i as u64);
    }
    let mut woken = vec![false; listeners.len()];
    let mut left = listeners.len();
    for _ in 0..waiters {
        armed(&ctl, waiters);
    }
    ctl.u64(READY).fetch_add(1, SeqCst);
    loop {
        let events = set.wait(POLL);
        if ctl.u64(HALT).load(SeqCst) != 0 {
            return Ok(());
        }
        if events.is_empty() && parent_gone(parent) {
            return Ok(());
        }
        for e in events {
            let i = e.u64 as usize;
            listeners[i].try_wait(|_| {})?;
            if !woken[i] {
                woken[i] = true;
                left -= 1;
            }
        }
        if left == 0 {
            let woken_at = now_ns();
            for _ in 0..waiters {
                woke(&ctl, waiters, woken_at);
            }
            woken.fill(false);
            left = listeners.len();
            for _ in 0..waiters {
                armed(&ctl, waiters);
            }
        }
    }
}
