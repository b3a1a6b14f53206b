//! The watcher threads of this process and the objects each one watches:
//! one thread per group of up to [`GROUP_MAX`] objects, started by the
//! first subscription that needs it and stopped (joined) with the group's
//! last one. The protocol and why it loses no change are in `mod.rs`.

use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::sync::atomic::Ordering::{AcqRel, Acquire, SeqCst};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::Object;
use crate::error::{Error, Result};
use crate::store::wait::{Futex, READ_ONLY_SLICE, REMOVAL_CHECK};
use crate::sync::atomic::Std;
use crate::sync::notify::{self, MAX_SLEEP, Sleep};
use crate::sys::eventfd::EventFd;
use crate::sys::futex::WAITV_MAX;
use crate::sys::proc;

/// The most objects one watcher thread watches: one `futex_waitv` call's
/// words, less the group's own kick word.
pub const GROUP_MAX: usize = WAITV_MAX - 1;

/// How long a watcher thread pauses after a wait that failed (never
/// expected), so that a failing call does not spin.
const FAILED_WAIT_PAUSE: Duration = READ_ONLY_SLICE;

/// The longest an unsubscribe waits for the thread's next delivery pass,
/// which the kick brings at once: a thread that never makes it (never
/// expected) leaves the unsubscribe to return anyway, with its shares.
const PASS_WAIT: Duration = Duration::from_secs(1);

/// A subscription's descriptor, which watchers signal.
#[derive(Debug)]
pub struct Inbox {
    pub fd: EventFd,
}

/// The watcher threads of this process.
pub struct Hub {
    groups: Vec<(Arc<Group>, JoinHandle<()>)>,
}

/// This process's hub, made on first use in each process and found through
/// a word that reads 0 in the child of every fork (`proc::own_word`): a
/// child makes its own, whatever its pid, and never touches its parent's,
/// whose threads are not in the child and whose lock a thread of the parent
/// may have held when it forked. A hub is never freed, so no later one gets
/// the address of one a parent left behind: the address tells the process.
#[allow(unsafe_code)]
pub fn hub() -> &'static Mutex<Hub> {
    let word = proc::own_word();
    let mut found = word.load(Acquire);
    if found == 0 {
        let made = Box::new(Mutex::new(Hub { groups: Vec::new() }));
        let addr = std::ptr::from_ref::<Mutex<Hub>>(&made) as usize;
        found = match word.compare_exchange(0, addr, AcqRel, Acquire) {
            Ok(_) => {
                Box::leak(made);
                addr
            }
            // Another thread of this process made one first.
            Err(other) => other,
        };
    }
    // SAFETY: a non-zero word holds the address of a hub that a thread of
    // this process leaked above (in a child the word reads 0 until the
    // child stores its own): a valid `Mutex<Hub>` for the rest of the
    // process.
    unsafe { &*(found as *const Mutex<Hub>) }
}

/// One watcher thread's objects.
pub struct Group {
    state: Mutex<State>,
    /// Moved on (and woken) whenever `state` changes, so that the thread
    /// looks at it again rather than sleep on its old list.
    kick: AtomicU32,
    /// Notified after each delivery pass (`State::passes`).
    passed: Condvar,
}

struct State {
    slots: Vec<Slot>,
    /// Set with the last slot gone: the thread returns.
    exit: bool,
    /// Delivery passes made, and one more as the thread returns. The
    /// thread drops the shares of the objects its round slept on before
    /// each pass, so once the count moves past its value when a slot went,
    /// the thread holds nothing of it.
    passes: u64,
}

/// One object a group watches, and the subscriptions it signals.
struct Slot {
    object: Arc<Object>,
    /// The version the watcher last saw (or the one at the slot's making).
    seen: u64,
    /// Whether the kernel said the object was removed (it is not watched
    /// any more; the subscriptions were signalled).
    removed: bool,
    /// Whether the watcher saw `life` marked at its last pass: a mark is
    /// signalled once, not at every round while it stands.
    marked: bool,
    /// When the watcher last asked the kernel whether it was removed.
    checked: Instant,
    inboxes: Vec<Arc<Inbox>>,
}

impl Group {
    fn kick(&self) {
        self.kick.fetch_add(1, SeqCst);
        Futex.wake_all(&self.kick);
    }
}

/// Add `inbox` to the watchers of `object` (a share of a handle's store):
/// to the group that watches the same attachment already, or to one with
/// room, or to a new group with its own thread. Returns the object as the
/// group keeps it and the group.
pub fn subscribe(object: Object, inbox: &Arc<Inbox>) -> Result<(Arc<Object>, Arc<Group>)> {
    let mut hub = hub().lock();
    for (group, _) in &hub.groups {
        let mut state = group.state.lock();
        if let Some(slot) = state
            .slots
            .iter_mut()
            .find(|s| s.object.store.same_memory(&object.store))
        {
            slot.inboxes.push(Arc::clone(inbox));
            return Ok((Arc::clone(&slot.object), Arc::clone(group)));
        }
    }
    let object = Arc::new(object);
    let slot = Slot {
        seen: object.version(),
        object: Arc::clone(&object),
        removed: false,
        marked: object.marked_removed(),
        checked: Instant::now(),
        inboxes: vec![Arc::clone(inbox)],
    };
    for (group, _) in &hub.groups {
        let mut state = group.state.lock();
        if state.slots.len() < GROUP_MAX {
            state.slots.push(slot);
            drop(state);
            group.kick();
            return Ok((object, Arc::clone(group)));
        }
    }
    let group = Arc::new(Group {
        state: Mutex::new(State {
            slots: vec![slot],
            exit: false,
            passes: 0,
        }),
        kick: AtomicU32::new(0),
        passed: Condvar::new(),
    });
    let thread = {
        let group = Arc::clone(&group);
        std::thread::Builder::new()
            .name("shmstore-watch".into())
            .spawn(move || run(&group))
            .map_err(|source| Error::Os {
                target: None,
                op: "spawn a watcher thread",
                source,
            })?
    };
    hub.groups.push((Arc::clone(&group), thread));
    Ok((object, group))
}

/// Take `inbox` off `object` in `group`; the object's slot goes with its
/// last subscription, and the group's thread with its last slot (joined
/// here, so that no thread and no attachment of it outlive the last
/// subscription). A slot that goes from a group that stays waits for the
/// thread's next delivery pass instead, so that the shares its round held
/// are dropped too. Only in the process that subscribed (the caller makes
/// sure): in a fork's child the group's thread is not there.
pub fn unsubscribe(object: &Arc<Object>, group: &Arc<Group>, inbox: &Arc<Inbox>) {
    let mut hub = hub().lock();
    let mut state = group.state.lock();
    let mut slot_gone = false;
    if let Some(i) = state
        .slots
        .iter()
        .position(|s| Arc::ptr_eq(&s.object, object))
    {
        let slot = &mut state.slots[i];
        slot.inboxes.retain(|b| !Arc::ptr_eq(b, inbox));
        if slot.inboxes.is_empty() {
            state.slots.swap_remove(i);
            slot_gone = true;
        }
    }
    let empty = state.slots.is_empty();
    state.exit = empty;
    let passes = state.passes;
    drop(state);
    let thread = if empty {
        hub.groups
            .iter()
            .position(|(g, _)| Arc::ptr_eq(g, group))
            .map(|i| hub.groups.swap_remove(i).1)
    } else {
        None
    };
    drop(hub);
    group.kick();
    if let Some(thread) = thread {
        // The thread returns at its next look at the state, right after
        // the kick.
        let _ = thread.join();
    } else if slot_gone {
        // The kick ends the thread's round, and the pass after it.
        let deadline = Instant::now() + PASS_WAIT;
        let mut state = group.state.lock();
        while state.passes == passes {
            if group.passed.wait_until(&mut state, deadline).timed_out() {
                break;
            }
        }
    }
}

/// A watcher thread: rounds of waiting on every live object's word and
/// the kick word, each followed by a delivery pass under the lock.
fn run(group: &Group) {
    loop {
        let (objects, kick) = {
            let mut state = group.state.lock();
            if state.exit {
                // Holding no share now, as after a pass: an unsubscribe
                // that waits for one need not wait for more.
                state.passes = state.passes.wrapping_add(1);
                drop(state);
                group.passed.notify_all();
                return;
            }
            let objects: Vec<(Arc<Object>, u64, bool)> = state
                .slots
                .iter()
                .filter(|s| !s.removed)
                .map(|s| (Arc::clone(&s.object), s.seen, s.marked))
                .collect();
            (objects, group.kick.load(SeqCst))
        };
        // Read-write attachments announce themselves, so writers wake the
        // thread; a read-only one cannot, so the thread looks every slice.
        let slice = if objects.iter().all(|(o, _, _)| o.announces()) {
            MAX_SLEEP
        } else {
            READ_ONLY_SLICE
        };
        let mut words: Vec<(&AtomicU32, bool)> = vec![(&group.kick, false)];
        words.extend(objects.iter().map(|(o, _, _)| (o.notify(), o.announces())));
        let mut changed = || {
            group.kick.load(SeqCst) != kick
                || objects
                    .iter()
                    .any(|(o, seen, marked)| o.version() != *seen || o.marked_removed() != *marked)
        };
        if notify::wait_any_round::<Std, _>(&words, &Futex, &mut changed, Some(slice)).is_err() {
            std::thread::sleep(FAILED_WAIT_PAUSE);
        }
        drop(words);
        drop(objects);
        deliver(group);
    }
}

/// Under the lock: every object whose version moved from what the watcher
/// saw, or that was removed, signals its subscriptions.
fn deliver(group: &Group) {
    let mut state = group.state.lock();
    let now = Instant::now();
    for slot in state.slots.iter_mut().filter(|s| !s.removed) {
        let version = slot.object.version();
        let marked = slot.object.marked_removed();
        let newly_marked = marked && !slot.marked;
        slot.marked = marked;
        // A mark is final only once the kernel says so: a remover whose
        // `IPC_RMID` fails takes its mark back, and a peer may write one.
        // An `ipcrm` marks nothing: while nothing changes, ask the kernel
        // now and then. While a mark stands, ask at every pass (a pass
        // follows a wake or a slice, so this is bounded).
        let mut removed = false;
        if marked || (version == slot.seen && now.duration_since(slot.checked) >= REMOVAL_CHECK) {
            slot.checked = now;
            removed = slot.object.store.is_removed().unwrap_or(false);
        }
        if version != slot.seen || newly_marked || removed {
            slot.seen = version;
            slot.removed = removed;
            if removed {
                slot.object.gone.store(true, SeqCst);
            }
            for inbox in &slot.inboxes {
                // A signal that fails (never expected for an eventfd)
                // leaves the subscription to its next change.
                let _ = inbox.fd.signal();
            }
        }
    }
    state.passes = state.passes.wrapping_add(1);
    drop(state);
    group.passed.notify_all();
}

/// How many watcher threads this process runs (for the tests).
pub fn threads() -> usize {
    hub().lock().groups.len()
}
