//! iceoryx2's publish-subscribe, a peer of the store→observed row with
//! spinning readers (`cell_observe_spin`): two services of `Bytes<N>`
//! samples, A published by the parent and B by a child process, which
//! sends back a copy of each sample it receives on A; each side polls its
//! subscriber's `receive()` in a loop, as the cell's sides spin on
//! `version()` (ping-pong, half a round trip). Each direction is one
//! `send_copy` (a loan from the publisher's data segment, the value copied
//! into it, the offset pushed to the subscriber) and one `receive`; the
//! child copies the value out of its sample into the sample it sends back.
//! Measured for 64 B and 4 KiB values
//! ([`MAX_VALUE`](crate::blackboard::MAX_VALUE)).
//!
//! Each run names its services after the parent's pid and the value size;
//! their files go as `iox.rs` says, with the last node that uses them. It
//! makes no System V segment.

use std::time::{Duration, Instant};

use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::*;
use iceoryx2::service::port_factory::publish_subscribe::PortFactory;

use crate::common::child::{Peer, parent_gone};
use crate::ctl::{ChildResult, spawn};
use crate::iox::{Ipc, node, service_name};
use crate::value::Bytes;
use crate::{STOP, Spin};

type Service<const N: usize> = PortFactory<Ipc, Bytes<N>, ()>;

/// The publish-subscribe service `what` (A or B) of `N`-byte samples of
/// the run whose parent is `parent`.
fn service<const N: usize>(
    node: &Node<Ipc>,
    parent: libc::pid_t,
    what: &str,
) -> Result<Service<N>, Box<dyn std::error::Error>> {
    Ok(node
        .service_builder(&service_name(parent, &format!("pubsub-{N}-{what}"))?)
        .publish_subscribe::<Bytes<N>>()
        .open_or_create()?)
}

/// Poll `subscriber` until a sample arrives; its tag. `check` runs every
/// [`SPIN_CHECK`](crate::SPIN_CHECK) polls that find none, after yielding the CPU.
fn spin_receive<const N: usize>(
    subscriber: &Subscriber<Ipc, Bytes<N>, ()>,
    mut check: impl FnMut(),
) -> u64 {
    let mut spin = Spin::default();
    loop {
        if let Some(sample) = subscriber.receive().expect("receive") {
            return sample.payload().tag();
        }
        if spin.idle() {
            check();
        }
    }
}

/// The parent's side: a publisher on A, a subscriber on B, and the child.
pub struct PubSubEcho<const N: usize> {
    /// Declared first: the child has exited before the services go.
    peer: Peer,
    publisher: Publisher<Ipc, Bytes<N>, ()>,
    subscriber: Subscriber<Ipc, Bytes<N>, ()>,
    _services: [Service<N>; 2],
    _node: Node<Ipc>,
    n: u64,
    value: Box<Bytes<N>>,
}

impl<const N: usize> PubSubEcho<N> {
    pub fn start() -> Self {
        let me = std::process::id() as libc::pid_t;
        let node = node().expect("an iceoryx2 node");
        let a = service::<N>(&node, me, "a").expect("service A");
        let b = service::<N>(&node, me, "b").expect("service B");
        let publisher = a.publisher_builder().create().expect("a publisher");
        let subscriber = b.subscriber_builder().create().expect("a subscriber");
        let mut peer = spawn("pubsub_echo", &[N as i64], None);
        // The child sends a sample on B once it subscribes to A.
        spin_receive(&subscriber, || peer.check());
        PubSubEcho {
            peer,
            publisher,
            subscriber,
            _services: [a, b],
            _node: node,
            n: 0,
            value: Box::new(Bytes::pattern(0)),
        }
    }

    pub fn round_trips(&mut self, iters: u64) -> Duration {
        let mut tag = 0;
        let start = Instant::now();
        for _ in 0..iters {
            self.n += 1;
            self.value.set_tag(self.n);
            let sent = self.publisher.send_copy(*self.value).expect("send A");
            assert_eq!(sent, 1, "the child does not subscribe to A");
            tag = spin_receive(&self.subscriber, || self.peer.check());
        }
        let elapsed = start.elapsed();
        assert_eq!(tag, self.n, "the child echoed another value");
        elapsed
    }
}

impl<const N: usize> Drop for PubSubEcho<N> {
    fn drop(&mut self) {
        self.value.set_tag(STOP);
        let _ = self.publisher.send_copy(*self.value);
    }
}

/// The child: send each sample of A back on B until one tagged [`STOP`]
/// arrives or the parent is gone.
pub fn pubsub_echo<const N: usize>(parent: libc::pid_t) -> ChildResult {
    let node = node()?;
    let subscriber = service::<N>(&node, parent, "a")?
        .subscriber_builder()
        .create()?;
    let publisher = service::<N>(&node, parent, "b")?
        .publisher_builder()
        .create()?;
    // The parent subscribed to B before starting this process.
    if publisher.send_copy(Bytes::pattern(0))? == 0 {
        return Err("the parent does not subscribe to B".into());
    }
    let mut spin = Spin::default();
    loop {
        if let Some(sample) = subscriber.receive()? {
            if sample.payload().tag() == STOP {
                return Ok(());
            }
            publisher.send_copy(*sample.payload())?;
            continue;
        }
        if spin.idle() && parent_gone(parent) {
            return Ok(());
        }
    }
}
