//! Child processes (the bench binary run again, its role in an environment
//! variable) and the futex ping-pong between a parent and such a child.
#![allow(dead_code)]

use std::error::Error;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::sys::{futex_wait, futex_wake};

/// If this process is a child that [`Peer::spawn`] started (`env` is set),
/// run `body` with its spec (`role:<parent pid>:<args>`) and exit: 0 when it
/// returns `Ok`, 1 after printing its error. Otherwise return.
pub fn exit_if_child(env: &str, body: impl FnOnce(&str) -> Result<(), Box<dyn Error>>) {
    if let Some(spec) = std::env::var_os(env) {
        let spec = spec.into_string().expect("child spec is UTF-8");
        std::process::exit(match body(&spec) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("bench child ({spec}): {e}");
                1
            }
        });
    }
}

/// A child process running one role; stopped (or killed) on drop.
pub struct Peer {
    child: Child,
}

impl Peer {
    /// This binary run again with `env` set to `role:<our pid>:<args>` (the
    /// arguments separated by colons) and, if given, `path`'s variable set to
    /// its path; no standard input, standard output discarded.
    pub fn spawn(env: &str, role: &str, args: &[i64], path: Option<(&str, &Path)>) -> Self {
        let vars: Vec<(&str, &OsStr)> = path.iter().map(|&(v, p)| (v, p.as_os_str())).collect();
        Self::spawn_with(env, role, args, &vars)
    }

    /// As [`Peer::spawn`], with each of `vars` (name, value) set in the
    /// child's environment.
    pub fn spawn_with(env: &str, role: &str, args: &[i64], vars: &[(&str, &OsStr)]) -> Self {
        let mut spec = format!("{role}:{}", std::process::id());
        for a in args {
            write!(spec, ":{a}").expect("write to a String");
        }
        let mut cmd = Command::new(std::env::current_exe().expect("current_exe"));
        cmd.env(env, spec)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        for (var, value) in vars {
            cmd.env(var, value);
        }
        Peer {
            child: cmd.spawn().expect("spawn a bench child"),
        }
    }

    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Panic (rather than hang) if the child has exited.
    pub fn check(&mut self) {
        if let Some(status) = self.child.try_wait().expect("try_wait") {
            panic!("bench child exited early: {status}");
        }
    }
}

impl Drop for Peer {
    /// Let the child exit by itself (it has been told to stop, or its parent
    /// is gone), or kill it.
    fn drop(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether the process that started this child is gone (it was re-parented).
pub fn parent_gone(parent: libc::pid_t) -> bool {
    // SAFETY: getppid has no preconditions and cannot fail.
    unsafe { libc::getppid() != parent }
}

/// Stored in word A of a futex ping-pong to tell the echoing child to exit;
/// the parent's values wrap below it.
pub const FUTEX_STOP: u32 = u32::MAX;

/// The parent's side of a futex ping-pong, `iters` round trips: store the
/// next value of `n` in `a` and wake it, then sleep on `b` until the child
/// has echoed the value there. `check` runs whenever a sleep (at most `poll`)
/// ends with `b` unchanged, to notice a child that died. Returns the time
/// the round trips took.
#[inline]
pub fn futex_round_trips(
    a: &AtomicU32,
    b: &AtomicU32,
    n: &mut u32,
    iters: u64,
    poll: Duration,
    mut check: impl FnMut(),
) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        let prev = *n;
        *n = (*n + 1) % FUTEX_STOP; // never FUTEX_STOP
        a.store(*n, Ordering::SeqCst);
        futex_wake(a);
        while b.load(Ordering::SeqCst) != *n {
            futex_wait(b, prev, poll);
            if b.load(Ordering::SeqCst) == prev {
                check();
            }
        }
    }
    start.elapsed()
}

/// The child's side of a futex ping-pong: echo each new value of `a` into
/// `b` and wake it, sleeping on `a` (at most `poll` at a time) in between,
/// until `a` holds [`FUTEX_STOP`] or `parent` is gone. `ready` runs once the
/// value `a` starts from has been read, to tell the parent.
pub fn futex_echo(
    a: &AtomicU32,
    b: &AtomicU32,
    parent: libc::pid_t,
    poll: Duration,
    ready: impl FnOnce(),
) {
    let mut seen = a.load(Ordering::SeqCst);
    ready();
    loop {
        let v = a.load(Ordering::SeqCst);
        if v == seen {
            futex_wait(a, seen, poll);
            if a.load(Ordering::SeqCst) == seen && parent_gone(parent) {
                return;
            }
            continue;
        }
        seen = v;
        if v == FUTEX_STOP {
            return;
        }
        b.store(v, Ordering::SeqCst);
        futex_wake(b);
    }
}
