//! Futex wait and wake on a 32-bit word in shared memory (`futex(2)`).
//!
//! The futexes are shared (no `FUTEX_PRIVATE_FLAG`): the kernel keys them by
//! the page, so processes that map the segment at different addresses meet
//! on the same word. Waiting only reads the word, so it works on a read-only
//! attachment too. Both calls are safe: a `&AtomicU32` is a valid, aligned
//! word for as long as the call borrows it. The waiting protocol
//! (`sync/notify.rs`) sleeps and wakes through them by way of
//! `store/wait.rs`.
#![allow(unsafe_code)]

use std::io;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

/// How a [`wait`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Woke {
    /// Woken by [`wake_all`], or spuriously, or by a signal.
    Woken,
    /// The word did not hold the expected value (`EAGAIN`): nothing slept.
    Changed,
    /// The timeout passed.
    TimedOut,
}

/// Sleep while `word` holds `expected`, at most `timeout` (forever if
/// `None`). The kernel compares and queues atomically, so a wake that
/// follows a change of the word is never missed. The caller re-checks its
/// condition whatever this returns.
///
/// Errors are those of `futex(2)` other than `EAGAIN`, `EINTR` and
/// `ETIMEDOUT`: `ENOSYS` where futexes are missing, `EFAULT` never for a
/// valid reference.
#[doc(alias = "FUTEX_WAIT")]
pub fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> io::Result<Woke> {
    let ts = timeout.map(|d| libc::timespec {
        tv_sec: d.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a live, aligned 4-byte atomic for the whole call (a
    // shared reference); the kernel only reads it. `ts_ptr` is null or
    // points to a timespec that outlives the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            ts_ptr,
            0usize,
            0u32,
        )
    };
    if rc == 0 {
        return Ok(Woke::Woken);
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EAGAIN) => Ok(Woke::Changed),
        Some(libc::EINTR) => Ok(Woke::Woken),
        Some(libc::ETIMEDOUT) => Ok(Woke::TimedOut),
        _ => Err(err),
    }
}

/// Wake every process sleeping in [`wait`] on `word`; returns how many
/// were woken.
#[doc(alias = "FUTEX_WAKE")]
pub fn wake_all(word: &AtomicU32) -> io::Result<usize> {
    // SAFETY: `word` is a live, aligned 4-byte atomic (a shared reference);
    // FUTEX_WAKE only computes its key and touches no other memory.
    let n = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            i32::MAX,
            0usize,
            0usize,
            0u32,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn wait_on_a_changed_word_returns_at_once() {
        let w = AtomicU32::new(5);
        assert_eq!(wait(&w, 4, None).unwrap(), Woke::Changed);
        assert_eq!(
            wait(&w, 5, Some(Duration::from_millis(1))).unwrap(),
            Woke::TimedOut
        );
        assert_eq!(wake_all(&w).unwrap(), 0);
    }

    #[test]
    fn wake_reaches_a_sleeping_thread() {
        let w = AtomicU32::new(0);
        std::thread::scope(|s| {
            let t = s.spawn(|| {
                while w.load(Ordering::SeqCst) == 0 {
                    wait(&w, 0, Some(Duration::from_secs(10))).unwrap();
                }
            });
            std::thread::sleep(Duration::from_millis(20));
            w.store(1, Ordering::SeqCst);
            wake_all(&w).unwrap();
            t.join().unwrap();
        });
    }
}
