//! A forked child and the handles it inherits, forked by the C library or
//! by the bare system call: whatever it does with its copies of a guard or
//! a handle, it never unpins its parent's guard nor removes the object its
//! parent armed with `remove_on_drop`.

mod common;

use std::time::Duration;

use common::values::{Text, is_whole, text_of};
use common::{Kid, SegGuard, child_args, key_arg, report, unique_key};
use shmstore::{Error, Key, SharedCell, SharedRegion};

#[test]
fn child_entry() {
    let Some(args) = child_args() else { return };
    match args[0].as_str() {
        "fork_with_guard" => fork_with_guard(key_arg(&args, 1), &args[2]),
        "fork_remove_on_drop" => fork_remove_on_drop(key_arg(&args, 1)),
        other => panic!("unknown role {other}"),
    }
    std::process::exit(0);
}

// ---------------------------------------------------------------------------
// A guard the parent holds across the fork.

/// The number of threads of this process.
fn thread_count() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:").map(|n| n.trim().to_owned()))
        })
        .unwrap_or_else(|| "?".into())
}

fn describe_publish(published: shmstore::Result<u64>) -> String {
    match published {
        Ok(v) => format!("Ok({v})"),
        Err(Error::ReadersBusy { .. }) => "ReadersBusy".into(),
        Err(e) => format!("Err({e:?})"),
    }
}

/// Child role (P): publish version 1, take a guard of it, fork; the
/// grandchild does `what` with its copies of the handle and the guard and
/// `_exit`s; then P publishes versions 2 and 3 and reports what its guard
/// shows. With 2 buffers and version 1 pinned by P's guard, version 3 has
/// no buffer to go to unless P's pin was lost.
fn fork_with_guard(key: Key, what: &str) {
    let region = SharedRegion::<Text>::opener()
        .publish_timeout(Duration::from_millis(300))
        .open(key)
        .unwrap();
    region.publish(&Text::of(1)).unwrap();
    let guard = region.read().unwrap();
    let seen = text_of(&guard);
    assert!(is_whole(&guard) && seen.0 == 1, "{seen:?}");
    // libtest's main thread waits for this one, holding no lock; this test
    // started no thread of its own.
    report("threads", thread_count());
    // SAFETY: the grandchild runs only this thread: it drops or forgets
    // values (atomic stores, shmdt, free) and pins through its own slot,
    // then _exits without running any destructor or atexit handler.
    // The grandchild runs only this thread: it drops or forgets values
    // (atomic stores, shmdt, free) and pins through its own slot, then
    // _exits without running any destructor or atexit handler.
    // `raw_drop_guard`: the fork system call itself, which runs no
    // pthread_atfork handler (the C library's fork does).
    let pid = if what.starts_with("raw_") {
        // SAFETY: the grandchild only drops the guard (atomic loads and
        // stores, a getpid) and _exits.
        unsafe { libc::syscall(libc::SYS_fork) as libc::pid_t }
    } else {
        // SAFETY: see above.
        unsafe { libc::fork() }
    };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let ok = match what {
            "drop_guard" | "raw_drop_guard" => {
                drop(guard);
                true
            }
            // The guard stays alive (it is never dropped: _exit).
            "own_read" => region.read().is_ok_and(|g| is_whole(&g)),
            "drop_handle" => {
                std::mem::forget(guard);
                drop(region);
                true
            }
            "everything" => {
                let ok = region.read().is_ok_and(|g| is_whole(&g));
                drop(guard);
                drop(region);
                ok
            }
            _ => false,
        };
        // SAFETY: ends the grandchild at once; nothing of the parent's is run.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) }
    }
    let mut status = 0;
    // SAFETY: waits for our own child; status is a valid out pointer.
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(waited, pid, "waitpid: {}", std::io::Error::last_os_error());
    let grandchild = if libc::WIFEXITED(status) {
        format!("exit {}", libc::WEXITSTATUS(status))
    } else {
        format!("signal {}", libc::WTERMSIG(status))
    };
    report("grandchild", grandchild);
    report("v2", describe_publish(region.publish(&Text::of(2))));
    report("v3", describe_publish(region.publish(&Text::of(3))));
    let now = text_of(&guard);
    report("guard_then", format!("{seen:?}"));
    report("guard_now", format!("{now:?}"));
    drop(guard);
    // With the guard gone, version 3 has a buffer.
    let v = region.version();
    report("after", describe_publish(region.publish(&Text::of(v + 1))));
}

/// A process holding a guard forks; whatever the child does with its
/// copies of the handle and the guard (drop the guard, read through the
/// handle, drop the handle, all of it), the parent's guard keeps its
/// buffer: with 2 buffers, publishing twice more either fails with
/// `ReadersBusy` or leaves the guard's value as it was.
#[test]
fn a_forked_child_does_not_unpin_the_parents_guard() {
    let mut failures = Vec::new();
    for what in [
        "drop_guard",
        "raw_drop_guard",
        "own_read",
        "drop_handle",
        "everything",
    ] {
        let key = unique_key();
        let region = SharedRegion::<Text>::options()
            .buffers(2)
            .create(key, 4096)
            .unwrap();
        let _g = SegGuard(region.id());
        let mut p = Kid::spawn(&["fork_with_guard", &key.raw().to_string(), what]);
        let threads = p.expect("threads");
        let grandchild = p.expect("grandchild");
        let v2 = p.expect("v2");
        let v3 = p.expect("v3");
        let then = p.expect("guard_then");
        let now = p.expect("guard_now");
        let after = p.expect("after");
        let status = p.wait();
        eprintln!(
            "{what}: P had {threads} threads at the fork; grandchild {grandchild}; \
             v2 {v2}, v3 {v3}; guard {then} -> {now}; then {after}"
        );
        assert!(status.success(), "{what}: P ended by {status}");
        assert_eq!(grandchild, "exit 0", "{what}: the grandchild failed");
        assert_eq!(v2, "Ok(2)", "{what}: publish of version 2");
        if now != then || !(v3 == "Ok(3)" || v3 == "ReadersBusy") || !after.starts_with("Ok(") {
            failures.push(format!(
                "{what}: P's guard of version 1 showed {then} before the fork and {now} after \
                 the grandchild ended and versions 2 and 3 were published (publish of 3: {v3}; \
                 the publish after dropping the guard: {after})"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------
// A forked child dropping an inherited remove_on_drop handle removes
// nothing: the handle was armed by its parent.

fn fork_remove_on_drop(key: Key) {
    let cell = SharedCell::<u64>::options()
        .remove_on_drop(true)
        .create(key, 1)
        .unwrap();
    report("id", cell.id());
    // SAFETY: the grandchild drops the handle (shmctl, shmdt) and _exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        drop(cell);
        // SAFETY: ends the grandchild.
        unsafe { libc::_exit(0) };
    }
    let mut status = 0;
    // SAFETY: our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    let reopen = SharedCell::<u64>::open(key).map(|c| c.id());
    report("reopen", format!("{reopen:?}"));
    drop(cell);
}

#[test]
fn a_forked_child_dropping_a_handle_removes_nothing() {
    let key = unique_key();
    let mut k = Kid::spawn(&["fork_remove_on_drop", &key.raw().to_string()]);
    let id: i32 = k.expect("id").parse().unwrap();
    let _g = SegGuard(id);
    let reopen = k.expect("reopen");
    assert!(k.wait().success());
    eprintln!("the parent reopening its own key after its child exited: {reopen}");
    assert!(reopen.starts_with("Ok("), "{reopen}");
}
