//! Futex wait and wake on a 32-bit word in shared memory.
//!
//! The futexes are shared (no `FUTEX_PRIVATE_FLAG`): the kernel keys them by
//! the page, so processes that map the segment at different addresses meet on
//! the same word. Waiting only reads the word, so it works on a read-only
//! attachment too.

use std::time::Duration;

/// Sleep while the 32-bit word at `word` holds `expected`, at most `timeout`
/// (forever if `None`). Returns early on a wake, a signal, a timeout, or at
/// once if the word differs; the caller re-checks its condition.
///
/// # Safety
/// `word` must point to a 4-byte aligned word of a shared mapping that stays
/// mapped for the duration of the call.
pub unsafe fn wait(word: *const u32, expected: u32, timeout: Option<Duration>) {
    let ts = timeout.map(|d| libc::timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: the word is valid and mapped per the caller's contract; the
    // kernel only reads it; `ts_ptr` is null or points to a live timespec.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word,
            libc::FUTEX_WAIT,
            expected,
            ts_ptr,
            0usize,
            0u32,
        );
    }
}

/// Wake every process sleeping in [`wait`] on the word at `word`; returns
/// how many were woken.
///
/// # Safety
/// `word` must point to a 4-byte aligned word of a live shared mapping.
pub unsafe fn wake_all(word: *const u32) -> usize {
    // SAFETY: the word is valid per the caller's contract; FUTEX_WAKE does
    // not access it beyond computing its key.
    let n = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word,
            libc::FUTEX_WAKE,
            i32::MAX,
            0usize,
            0usize,
            0u32,
        )
    };
    n.max(0) as usize
}
