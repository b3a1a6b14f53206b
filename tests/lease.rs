//! A cell's lease (`SharedCell::lease`): one writer keeps the write lock and
//! stores without locking. Readers in other processes see whole values in
//! order; a leaseholder killed at any moment, or paused, or forked, or
//! forgotten, leaves a cell the next writer recovers as after any writer's
//! death. The steps of a leased store killed one by one are in
//! `crash_points.rs`.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{
    Kid, Pattern, SegGuard, check_stamps_under_writer, child, child_args, key_arg,
    load_stamps_until_stopped, new_cell, report, resume, start_stopped, stop_on_stdin,
};
use shmstore::{Error, Key, SharedCell};

#[test]
fn child_entry() {
    let Some(args) = child_args() else { return };
    match args[0].as_str() {
        "load" => load_stamps_until_stopped::<7>(key_arg(&args, 1), false),
        "lease_until_stopped" => lease_until_stopped(key_arg(&args, 1)),
        "lease_forever" => lease_forever(key_arg(&args, 1)),
        "lease_then_store" => lease_then_store(key_arg(&args, 1)),
        "fork_lease" => fork_lease(key_arg(&args, 1), false),
        "raw_fork_lease" => fork_lease(key_arg(&args, 1), true),
        "raw_fork_child_leases_and_dies" => raw_fork_child_leases_and_dies(key_arg(&args, 1)),
        other => panic!("unknown role {other}"),
    }
    std::process::exit(0);
}

/// Child role: take a lease and store `Pattern::of(1)`, `of(2)`, ...
/// through it until the parent sends a line. Reports `ready`, then
/// `stores`.
fn lease_until_stopped(key: Key) {
    let cell = SharedCell::<Pattern>::open(key).unwrap();
    let mut lease = cell.lease().unwrap();
    let stop = stop_on_stdin();
    report("ready", 1);
    let mut n = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        n += 1;
        lease.store(Pattern::of(n)).unwrap();
    }
    report("stores", n);
}

/// Child role: take a lease, report `leased` and the version, then store
/// the next versions through it until killed.
fn lease_forever(key: Key) {
    let cell = SharedCell::<Pattern>::open(key).unwrap();
    let mut lease = cell.lease().unwrap();
    let mut v = cell.version();
    report("leased", v);
    loop {
        v += 1;
        lease.store(Pattern::of(v)).unwrap();
    }
}

/// Child role: take a lease (a test stops it there), store the next version
/// through it, report `stored`, and drop the lease.
fn lease_then_store(key: Key) {
    let cell = SharedCell::<Pattern>::open(key).unwrap();
    let mut lease = cell.lease().unwrap();
    let v = cell.version() + 1;
    lease.store(Pattern::of(v)).unwrap();
    report("stored", v);
}

/// Readers in other processes load whole values, never going backwards,
/// while a leaseholder stores nonstop.
#[test]
fn readers_see_whole_values_in_order_under_a_lease() {
    let (_cell, key, _g) = new_cell(Pattern::of(0));
    let k = key.raw().to_string();
    let stores = check_stamps_under_writer(
        &[&["load", &k], &["load", &k]],
        &["lease_until_stopped", &k],
        Duration::from_millis(300),
        "lease",
    );
    assert!(stores > 0);
}

/// While a lease is held, `try_lease` says so, other writers wait, and
/// waiters wake at each leased store; once it is dropped, writers go on.
#[test]
fn a_held_lease_keeps_other_writers_out_and_wakes_waiters() {
    let (cell, key, _g) = new_cell(Pattern::of(0));
    let mut lease = cell.lease().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::scope(|s| {
        s.spawn(|| {
            // Another thread of this process: no lease while this one's held.
            assert!(matches!(cell.try_lease(), Err(Error::WriteLocked { .. })));
            tx.send(cell.wait_for_change(0, Some(Duration::from_secs(10))))
                .unwrap();
            // Waits for the lease to go.
            cell.store(Pattern::of(100)).unwrap();
        });
        // The waiter announced itself: only the leased store's wake ends
        // its sleep.
        let start = Instant::now();
        while !waiting(key) {
            assert!(start.elapsed() < Duration::from_secs(10), "never waited");
            std::thread::sleep(Duration::from_millis(1));
        }
        lease.store(Pattern::of(1)).unwrap();
        assert!(!waiting(key), "the leased store woke nobody");
        assert_eq!(rx.recv().unwrap().unwrap(), 1);
        // This thread holds the lock already: refused, not deadlocked.
        match cell.store(Pattern::of(9)) {
            Err(Error::Lock { source, .. }) => {
                assert_eq!(source.raw_os_error(), Some(libc::EDEADLK))
            }
            other => panic!("a store beside this thread's lease: {other:?}"),
        }
        assert!(matches!(cell.try_lease(), Err(Error::Lock { .. })));
        lease.update(|v| *v = Pattern::of(2)).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(
            cell.load(),
            Pattern::of(2),
            "a store went through the lease"
        );
        drop(lease);
    });
    assert_eq!(cell.load(), Pattern::of(100));
    assert_eq!(cell.version(), 3);
    assert_eq!(cell.recoveries(), 0);
}

/// Whether the `WAITING` bit of the cell's `notify` word (FORMAT.md:
/// offset 264) is set.
fn waiting(key: Key) -> bool {
    let seg = shmstore::Segment::options()
        .read_only(true)
        .open(key)
        .unwrap();
    let mut b = [0u8; 4];
    seg.read_at(264, &mut b).unwrap();
    u32::from_le_bytes(b) & 1 == 1
}

/// The object marked removed: a leased store fails and writes nothing.
#[test]
fn a_leased_store_into_a_removed_cell_fails() {
    let (cell, _key, _g) = new_cell(Pattern::of(0));
    let mut lease = cell.lease().unwrap();
    lease.store(Pattern::of(1)).unwrap();
    cell.remove().unwrap();
    assert!(matches!(
        lease.store(Pattern::of(2)),
        Err(Error::Removed { .. })
    ));
    assert!(matches!(
        lease.update(|v| *v = Pattern::of(3)),
        Err(Error::Removed { .. })
    ));
    assert_eq!(cell.load(), Pattern::of(1));
}

/// A leaseholder killed with SIGKILL at a random moment of its nonstop
/// stores, over and over: each time the cell holds the last version it
/// committed, whole, and the next lease recovers the lock.
#[test]
fn leaseholders_killed_at_random_moments_are_recovered() {
    let (cell, key, _g) = new_cell(Pattern::of(0));
    let k = key.raw().to_string();
    let rounds = 60;
    let mut seed = 0x2545_f491_4f6c_dd1du64 ^ u64::from(std::process::id());
    for round in 0..rounds {
        let mut kid = Kid::spawn(&["lease_forever", &k]);
        let from: u64 = kid.expect("leased").parse().unwrap();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_micros(seed % 3000));
        assert_eq!(kid.kill().signal(), Some(libc::SIGKILL));
        let v = cell.version();
        let value = cell.load();
        assert!(value.is_whole(), "round {round}: torn {value:?}");
        assert_eq!(
            value.seq, v,
            "round {round}: version {v}, value {}",
            value.seq
        );
        assert!(v >= from, "round {round}: went back from {from} to {v}");
        let mut lease = cell.try_lease().unwrap();
        lease.store(Pattern::of(v + 1)).unwrap();
        drop(lease);
        assert_eq!(cell.recoveries(), round + 1, "round {round}");
        assert_eq!(cell.load(), Pattern::of(v + 1));
    }
}

/// A leaseholder paused (SIGSTOP) right after taking the lease: readers go
/// on, `try_lease` is refused, a store waits; resumed, it stores and lets
/// go, and the waiting store goes through without a recovery. Paused again
/// and killed instead: the waiting store recovers the lock.
#[test]
fn a_paused_leaseholder_holds_writers_not_readers() {
    for kill in [false, true] {
        let (cell, key, _g) = new_cell(Pattern::of(0));
        let mut kid = start_stopped(
            child(&["lease_then_store", &key.raw().to_string()]),
            "lease.after_lock",
        );
        assert_eq!(cell.load(), Pattern::of(0));
        assert!(matches!(cell.try_lease(), Err(Error::WriteLocked { .. })));
        let (tx, rx) = mpsc::channel();
        std::thread::scope(|s| {
            s.spawn(|| {
                let started = Instant::now();
                let stored = cell.store(Pattern::of(50));
                tx.send((stored, started.elapsed())).unwrap();
            });
            assert!(
                rx.recv_timeout(Duration::from_millis(200)).is_err(),
                "a store went through a paused lease"
            );
            if kill {
                kid.kill();
            } else {
                resume(&kid);
                assert_eq!(kid.expect("stored"), "1");
                assert!(kid.wait().success());
            }
            let (stored, _) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
            stored.unwrap();
        });
        assert_eq!(cell.load(), Pattern::of(50));
        assert_eq!(cell.recoveries(), u64::from(kill), "killed: {kill}");
        assert_eq!(cell.version(), if kill { 1 } else { 2 });
    }
}

/// Child role: take a lease and fork; the grandchild's leased store and
/// update fail with `Forked` and its drop of the lease lets nothing go:
/// after it exits, this process still holds the lock (another process's
/// `try_lease` is refused until this one says `release`).
///
/// `raw`: the fork system call itself, as `tests/fork.rs` makes one. The C
/// library's fork sets the child's cached thread id; the bare system call
/// leaves it the parent thread's, so pthread takes the child for the
/// mutex's owner.
fn fork_lease(key: Key, raw: bool) {
    let cell = SharedCell::<Pattern>::open(key).unwrap();
    let mut lease = cell.lease().unwrap();
    lease.store(Pattern::of(1)).unwrap();
    // SAFETY: the grandchild runs only this thread: it calls the lease's
    // store and update (a getpid at most) and drops it (a futile unlock and
    // an Arc decrement), then _exits without running anything of the
    // parent's.
    let pid = if raw {
        // SAFETY: as above; the fork system call runs no atfork handler.
        unsafe { libc::syscall(libc::SYS_fork) as libc::pid_t }
    } else {
        // SAFETY: as above.
        unsafe { libc::fork() }
    };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let store = matches!(lease.store(Pattern::of(2)), Err(Error::Forked { .. }));
        let update = matches!(
            lease.update(|v| *v = Pattern::of(3)),
            Err(Error::Forked { .. })
        );
        drop(lease);
        // SAFETY: ends the grandchild at once.
        unsafe { libc::_exit(if store && update { 0 } else { 1 }) }
    }
    let mut status = 0;
    // SAFETY: waits for our own child; status is a valid out pointer.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    report(
        "grandchild",
        if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            -1
        },
    );
    lease.store(Pattern::of(4)).unwrap();
    report("stored", 4);
    common::read_command();
    drop(lease);
    report("released", 1);
}

#[test]
fn a_forked_child_cannot_use_or_drop_its_parents_lease() {
    for role in ["fork_lease", "raw_fork_lease"] {
        a_forked_child_cannot_use_or_drop_a_lease(role);
    }
}

fn a_forked_child_cannot_use_or_drop_a_lease(role: &str) {
    let (cell, key, _g) = new_cell(Pattern::of(0));
    let mut kid = Kid::spawn(&[role, &key.raw().to_string()]);
    assert_eq!(kid.expect("grandchild"), "0", "{role}");
    assert_eq!(kid.expect("stored"), "4", "{role}");
    assert!(
        matches!(cell.try_lease(), Err(Error::WriteLocked { .. })),
        "{role}: the forked child's drop let the parent's lease go"
    );
    assert_eq!(cell.load(), Pattern::of(4));
    kid.send("release");
    assert_eq!(kid.expect("released"), "1");
    assert!(kid.wait().success());
    cell.try_lease().unwrap().store(Pattern::of(5)).unwrap();
    assert_eq!(cell.recoveries(), 0);
}

/// A lease forgotten by a thread that then drops its handle and exits: the
/// segment stays attached (the robust list still names its mutex), and the
/// next writer recovers the lock the thread died holding.
#[test]
fn a_forgotten_lease_keeps_the_segment_attached_and_is_recovered() {
    let key = common::unique_key();
    let cell = SharedCell::create(key, Pattern::of(0)).unwrap();
    let id = cell.id();
    let _g = SegGuard(id);
    drop(cell);
    std::thread::spawn(move || {
        let cell = SharedCell::<Pattern>::open(key).unwrap();
        let mut lease = cell.lease().unwrap();
        lease.store(Pattern::of(1)).unwrap();
        std::mem::forget(lease);
        drop(cell);
    })
    .join()
    .unwrap();
    let cell = SharedCell::<Pattern>::open(key).unwrap();
    assert_eq!(
        cell.info().unwrap().nattch,
        2,
        "the forgotten lease's attachment and this handle's"
    );
    assert_eq!(cell.load(), Pattern::of(1));
    cell.store(Pattern::of(2)).unwrap();
    assert_eq!(cell.recoveries(), 1);
}

/// Child role: fork by the bare system call; the grandchild takes a lease,
/// stores version 1 through it and is killed holding it. Reports the
/// grandchild's end, then stays (alive, as the pthread owner the lock
/// names) until the parent sends a line.
fn raw_fork_child_leases_and_dies(key: Key) {
    let cell = SharedCell::<Pattern>::open(key).unwrap();
    // SAFETY: the grandchild runs only this thread: it takes a lease and
    // stores through it, then kills itself; nothing of the parent's runs.
    let pid = unsafe { libc::syscall(libc::SYS_fork) as libc::pid_t };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let mut lease = cell.lease().unwrap();
        lease.store(Pattern::of(1)).unwrap();
        // SAFETY: kills this process, holding the lease.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
        unreachable!();
    }
    let mut status = 0;
    // SAFETY: waits for our own child; status is a valid out pointer.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    report(
        "grandchild",
        if libc::WIFSIGNALED(status) {
            libc::WTERMSIG(status)
        } else {
            -1
        },
    );
    common::read_command();
}

/// A leaseholder made by the bare fork system call and killed holding the
/// lease is recovered by the next writer, as any other leaseholder is
/// (ARCHITECTURE.md: "Dead processes", and "fork": a child of the bare
/// system call may use its handles).
#[test]
#[ignore = "pthread keeps the parent thread's id in a child of the bare fork system \
            call and the kernel gives it no robust list: its death holding the lock \
            is never recovered (ARCHITECTURE.md, fork)"]
fn a_bare_fork_childs_lease_is_recovered_after_its_death() {
    let (cell, key, _g) = new_cell(Pattern::of(0));
    let mut kid = Kid::spawn(&["raw_fork_child_leases_and_dies", &key.raw().to_string()]);
    assert_eq!(kid.expect("grandchild"), libc::SIGKILL.to_string());
    let taken = cell.try_lease().map(|mut l| l.store(Pattern::of(2)));
    kid.send("done");
    assert!(kid.wait().success());
    // Once the process whose thread id the lock names is gone too.
    let later = cell.try_lease().map(|mut l| l.store(Pattern::of(2)));
    match (taken, later) {
        (Ok(Ok(())), _) => {}
        other => panic!("the dead grandchild's lease was never recovered: {other:?}"),
    }
    assert_eq!(cell.recoveries(), 1);
}
