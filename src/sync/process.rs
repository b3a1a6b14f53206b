//! Facts about other processes: whether one is alive.

/// This process's pid, without a system call after the first: glibc no
/// longer caches `getpid`, and a region read needs the pid. The cache is
/// cleared in the child of a `fork`.
#[inline]
pub fn own_pid() -> i32 {
    match OWN_PID.load(std::sync::atomic::Ordering::Relaxed) {
        0 => fetch_own_pid(),
        pid => pid,
    }
}

/// The cache of [`own_pid`]; 0 until the first call and in a forked child.
static OWN_PID: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

#[cold]
#[inline(never)]
fn fetch_own_pid() -> i32 {
    use std::sync::Once;
    use std::sync::atomic::Ordering;
    static HOOK: Once = Once::new();
    extern "C" fn forget_in_child() {
        OWN_PID.store(0, Ordering::Relaxed);
    }
    HOOK.call_once(|| {
        // SAFETY: registers a handler that only stores to an atomic, which
        // is async-signal-safe as the child of fork requires.
        unsafe { libc::pthread_atfork(None, None, Some(forget_in_child)) };
    });
    let pid = std::process::id() as i32;
    OWN_PID.store(pid, Ordering::Relaxed);
    pid
}

/// Whether process `pid` exists and has not exited (a zombie counts as
/// exited: it will never run again).
pub fn alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists and may be
    // signalled; nothing is sent.
    let rc = unsafe { libc::kill(pid, 0) };
    let exists = rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    exists && !is_zombie(pid)
}

/// The start time of process `pid` in clock ticks after boot (field 22 of
/// `/proc/PID/stat`): with the pid, it names a process even across pid reuse.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    // Field 3 (the state) is the first after the name; field 22 is 19 later.
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// This process's start time, read once per process (again in the child
/// of a `fork`).
pub fn own_start_time() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    // Cached with the pid it belongs to, so the child of a fork reads its own.
    static PID: AtomicU64 = AtomicU64::new(0);
    static START: AtomicU64 = AtomicU64::new(0);
    let me = own_pid() as u64;
    if PID.load(Ordering::Acquire) == me {
        return START.load(Ordering::Relaxed);
    }
    let start = start_time(me as i32).unwrap_or(0);
    START.store(start, Ordering::Relaxed);
    PID.store(me, Ordering::Release);
    start
}

/// Whether the process that recorded (`pid`, `start`) is still running; a
/// start of 0 means unknown, and only the pid is checked.
pub fn same_process_alive(pid: i32, start: u64) -> bool {
    alive(pid) && (start == 0 || start_time(pid).is_none_or(|s| s == start))
}

/// Whether `/proc/PID/stat` says the process is a zombie or dead.
fn is_zombie(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the command name, which is in parentheses and may
    // itself contain spaces and parentheses.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .is_some_and(|state| state == "Z" || state == "X")
}
