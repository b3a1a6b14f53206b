//! Futex wait and wake on a 32-bit word in shared memory (`futex(2)`), and
//! a wait on several words at once (`futex_waitv(2)`, Linux 5.16).
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

/// The pointer a futex call takes for an optional timespec: null for none.
fn timespec_ptr(ts: &Option<libc::timespec>) -> *const libc::timespec {
    ts.as_ref().map_or(std::ptr::null(), std::ptr::from_ref)
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
    let ts_ptr = timespec_ptr(&ts);
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

/// The most words one [`wait_any`] sleeps on (the kernel's
/// `FUTEX_WAITV_MAX`).
pub const WAITV_MAX: usize = 128;

/// One word of a `futex_waitv` call, laid out as the kernel's `struct
/// futex_waitv`.
#[repr(C)]
struct WaitV {
    val: u64,
    uaddr: u64,
    flags: u32,
    reserved: u32,
}

/// `FUTEX2_SIZE_U32`: the word is 32 bits (and shared: no
/// `FUTEX2_PRIVATE`).
const FUTEX2_SIZE_U32: u32 = 0x02;

/// Sleep while every word holds its expected value, at most `timeout`
/// (forever if `None`): a [`wake_all`] on any of them ends the sleep. The
/// kernel compares all the words and queues on all of them atomically with
/// respect to wakes, as [`wait`] does for one. At most [`WAITV_MAX`] words.
///
/// Errors: `ENOSYS` (`ErrorKind::Unsupported`) on kernels before 5.16
/// (the caller falls back to [`wait`] on one word in short slices);
/// `EINVAL` for no words or more than [`WAITV_MAX`].
#[doc(alias = "futex_waitv")]
pub fn wait_any(words: &[(&AtomicU32, u32)], timeout: Option<Duration>) -> io::Result<Woke> {
    if words.is_empty() || words.len() > WAITV_MAX {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let waiters: Vec<WaitV> = words
        .iter()
        .map(|(word, expected)| WaitV {
            val: u64::from(*expected),
            uaddr: word.as_ptr() as u64,
            flags: FUTEX2_SIZE_U32,
            reserved: 0,
        })
        .collect();
    // futex_waitv's timeout is absolute, on the clock it is given.
    let deadline = match timeout {
        Some(d) => {
            let mut now = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: `now` is a valid timespec for the call to fill.
            if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) } != 0 {
                return Err(io::Error::last_os_error());
            }
            let nanos = now.tv_nsec as u64 + u64::from(d.subsec_nanos());
            let secs = (now.tv_sec as u64)
                .saturating_add(d.as_secs())
                .saturating_add(nanos / 1_000_000_000)
                .min(libc::time_t::MAX as u64);
            Some(libc::timespec {
                tv_sec: secs as libc::time_t,
                tv_nsec: (nanos % 1_000_000_000) as libc::c_long,
            })
        }
        None => None,
    };
    let ts_ptr = timespec_ptr(&deadline);
    // SAFETY: `waiters` holds `words.len()` (1 to 128) futex_waitv entries,
    // each the address of a live, aligned 4-byte atomic borrowed for the
    // whole call (the kernel only reads the words); `ts_ptr` is null or
    // points to a timespec that outlives the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_futex_waitv,
            waiters.as_ptr(),
            waiters.len() as libc::c_uint,
            0u32,
            ts_ptr,
            libc::CLOCK_MONOTONIC,
        )
    };
    if rc >= 0 {
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
    #[cfg_attr(miri, ignore = "Miri does not implement futex_waitv")]
    fn wait_any_sleeps_on_every_word() {
        let words = [AtomicU32::new(1), AtomicU32::new(2), AtomicU32::new(3)];
        let all: Vec<(&AtomicU32, u32)> = words.iter().zip([1, 2, 3]).collect();
        assert_eq!(
            wait_any(&all, Some(Duration::from_millis(1))).unwrap(),
            Woke::TimedOut
        );
        let one_moved: Vec<(&AtomicU32, u32)> = words.iter().zip([1, 9, 3]).collect();
        assert_eq!(wait_any(&one_moved, None).unwrap(), Woke::Changed);
        assert!(wait_any(&[], None).is_err());
        std::thread::scope(|s| {
            let t = s.spawn(|| {
                while words[2].load(Ordering::SeqCst) == 3 {
                    wait_any(&all, Some(Duration::from_secs(10))).unwrap();
                }
            });
            std::thread::sleep(Duration::from_millis(20));
            words[2].store(4, Ordering::SeqCst);
            wake_all(&words[2]).unwrap();
            t.join().unwrap();
        });
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
