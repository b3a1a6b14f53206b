//! loom models of waiting for a change (`src/sync/notify.rs`): no waiter
//! sleeps through a commit, and a writer that dies between its commit and
//! its wake is made good by the next writer's recovery.
//!
//! The kernel's futex is modelled by a mutex and a condition variable:
//! `sleep` compares the word and queues atomically with respect to
//! `wake_all`, as the kernel's hash-bucket lock makes `FUTEX_WAIT` and
//! `FUTEX_WAKE`. Sleeps have no timeout here, so a lost wake-up shows as a
//! deadlock.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test --release --test loom_notify`.
#![cfg(loom)]

use std::sync::atomic::Ordering::{Release, SeqCst};
use std::time::Duration;

use loom::sync::atomic::{AtomicU32, AtomicU64};
use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;
use shmstore::loom_api::{Loom, notify};

#[derive(Default)]
struct Kernel {
    bucket: Mutex<()>,
    queue: Condvar,
}

impl notify::Sleep<AtomicU32> for Kernel {
    fn sleep(&self, word: &AtomicU32, expected: u32, _: Option<Duration>) -> std::io::Result<()> {
        let bucket = self.bucket.lock().unwrap();
        if word.load(SeqCst) == expected {
            drop(self.queue.wait(bucket).unwrap());
        }
        Ok(())
    }

    fn wake_all(&self, _: &AtomicU32) {
        let _bucket = self.bucket.lock().unwrap();
        self.queue.notify_all();
    }
}

#[derive(Default)]
struct Object {
    commit: AtomicU64,
    notify: AtomicU32,
    kernel: Kernel,
}

impl Object {
    /// A read-write waiter for any version other than 0.
    fn wait(&self) -> u64 {
        let mut now = 0;
        let mut changed = || {
            now = self.commit.load(SeqCst);
            now != 0
        };
        while !notify::wait_round::<Loom, _>(&self.notify, &self.kernel, true, &mut changed, None)
            .unwrap()
        {}
        now
    }

    /// A writer's commit of `version`, and its wake.
    fn commit(&self, version: u64) {
        self.commit.store(version, Release);
        notify::after_commit::<Loom, _>(&self.notify, &self.kernel);
    }
}

#[test]
fn a_waiter_never_sleeps_through_a_commit() {
    loom::model(|| {
        let o = Arc::new(Object::default());
        let waiter = {
            let o = o.clone();
            thread::spawn(move || o.wait())
        };
        o.commit(1);
        assert_eq!(waiter.join().unwrap(), 1);
    });
}

#[test]
fn two_waiters_and_two_commits() {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(3);
    }
    builder.check(|| {
        let o = Arc::new(Object::default());
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let o = o.clone();
                thread::spawn(move || o.wait())
            })
            .collect();
        o.commit(1);
        o.commit(2);
        for w in waiters {
            assert!(w.join().unwrap() >= 1);
        }
    });
}

/// The writer commits and dies before its wake; the next writer recovers
/// the lock and wakes unconditionally.
#[test]
fn recovery_wakes_what_a_dead_writer_did_not() {
    loom::model(|| {
        let o = Arc::new(Object::default());
        let waiter = {
            let o = o.clone();
            thread::spawn(move || o.wait())
        };
        let dead = {
            let o = o.clone();
            thread::spawn(move || o.commit.store(1, Release))
        };
        dead.join().unwrap();
        notify::wake::<Loom, _>(&o.notify, &o.kernel);
        assert_eq!(waiter.join().unwrap(), 1);
    });
}

impl notify::SleepAny<AtomicU32> for Kernel {
    fn sleep_any(&self, words: &[(&AtomicU32, u32)], _: Option<Duration>) -> std::io::Result<()> {
        // futex_waitv: all the words compared, and the sleeper queued on
        // all of them, under the buckets' locks (one here).
        let bucket = self.bucket.lock().unwrap();
        if words.iter().all(|(w, e)| w.load(SeqCst) == *e) {
            drop(self.queue.wait(bucket).unwrap());
        }
        Ok(())
    }
}

/// Two objects that share one kernel, as a watcher sees them.
#[derive(Default)]
struct Two {
    commit: [AtomicU64; 2],
    notify: [AtomicU32; 2],
    kernel: Kernel,
}

impl Two {
    /// A watcher on both (read-write attachments) until either changes;
    /// returns which.
    fn watch(&self) -> usize {
        let words = [(&self.notify[0], true), (&self.notify[1], true)];
        let mut which = None;
        let mut changed = || {
            which = (0..2).find(|&i| self.commit[i].load(SeqCst) != 0);
            which.is_some()
        };
        while !notify::wait_any_round::<Loom, _>(&words, &self.kernel, &mut changed, None).unwrap()
        {
        }
        which.unwrap()
    }

    fn commit(&self, i: usize) {
        self.commit[i].store(1, Release);
        notify::after_commit::<Loom, _>(&self.notify[i], &self.kernel);
    }
}

/// A watcher sleeping on several words never sleeps through a commit on
/// any of them (`wait_any_round`, as `watch/hub.rs` runs it).
#[test]
fn a_watcher_on_two_words_never_sleeps_through_a_commit() {
    for i in 0..2 {
        loom::model(move || {
            let o = Arc::new(Two::default());
            let watcher = {
                let o = o.clone();
                thread::spawn(move || o.watch())
            };
            o.commit(i);
            assert_eq!(watcher.join().unwrap(), i);
        });
    }
}
