//! A process-shared, robust, error-checking pthread mutex living in shared
//! memory.
//!
//! Robust: when the owner dies holding it, the next locker gets `EOWNERDEAD`,
//! marks it consistent and is told so ([`Locked::Recovered`]). Error-checking:
//! a thread that locks it twice gets an error instead of a deadlock.
#![allow(unsafe_code)]

use std::io;

/// The size of the platform's `pthread_mutex_t`, which the format reserves
/// room for and records (`format/header.rs`, `format/identity.rs`).
pub const SIZE: usize = size_of::<libc::pthread_mutex_t>();

/// How a lock was acquired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locked {
    /// The mutex was free or released normally.
    Clean,
    /// Its previous owner died holding it; it was made consistent again.
    Recovered,
}

/// Initialise a process-shared, robust, error-checking mutex at `m`.
///
/// # Safety
/// `m` must point to writable memory of `size_of::<pthread_mutex_t>()` bytes,
/// aligned for it, that no process uses as a mutex yet.
pub unsafe fn init(m: *mut libc::pthread_mutex_t) -> io::Result<()> {
    let mut attr = std::mem::MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
    let check = |rc: libc::c_int| {
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::from_raw_os_error(rc))
        }
    };
    // SAFETY: `attr` is initialised by pthread_mutexattr_init before any other
    // use and destroyed at the end; `m` is valid per the caller's contract.
    unsafe {
        check(libc::pthread_mutexattr_init(attr.as_mut_ptr()))?;
        let a = attr.as_mut_ptr();
        let result = shared_and_robust(a)
            .and_then(|()| {
                check(libc::pthread_mutexattr_settype(
                    a,
                    libc::PTHREAD_MUTEX_ERRORCHECK,
                ))
            })
            .and_then(|()| check(libc::pthread_mutex_init(m, a)));
        libc::pthread_mutexattr_destroy(a);
        result
    }
}

/// Make the attributes process-shared and robust.
///
/// # Safety
/// `a` must point to initialised mutex attributes.
#[cfg(not(miri))]
unsafe fn shared_and_robust(a: *mut libc::pthread_mutexattr_t) -> io::Result<()> {
    // SAFETY: `a` is initialised (the caller's promise).
    let rc = unsafe { libc::pthread_mutexattr_setpshared(a, libc::PTHREAD_PROCESS_SHARED) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    // SAFETY: as above.
    match unsafe { libc::pthread_mutexattr_setrobust(a, libc::PTHREAD_MUTEX_ROBUST) } {
        0 => Ok(()),
        rc => Err(io::Error::from_raw_os_error(rc)),
    }
}

/// Under Miri, which runs one process and knows neither attribute: a
/// mutex private to the process, which is all a heap image needs.
#[cfg(miri)]
unsafe fn shared_and_robust(_: *mut libc::pthread_mutexattr_t) -> io::Result<()> {
    Ok(())
}

/// Lock the mutex at `m`, recovering it if its owner died.
///
/// # Safety
/// `m` must point to a mutex made by [`init`], in memory that stays mapped
/// (at the same address) until the matching [`unlock`].
pub unsafe fn lock(m: *mut libc::pthread_mutex_t) -> io::Result<Locked> {
    // SAFETY: per the caller's contract, `m` is an initialised robust mutex.
    match unsafe { libc::pthread_mutex_lock(m) } {
        0 => Ok(Locked::Clean),
        libc::EOWNERDEAD => {
            // The data it guards is consistent whatever instruction its
            // owner died at (each write of the crate's is made visible by
            // one commit store, made or not): say so, and tell the caller.
            // SAFETY: we own the mutex (EOWNERDEAD hands it over).
            match unsafe { libc::pthread_mutex_consistent(m) } {
                0 => Ok(Locked::Recovered),
                rc => Err(io::Error::from_raw_os_error(rc)),
            }
        }
        rc => Err(io::Error::from_raw_os_error(rc)),
    }
}

/// Unlock the mutex at `m`.
///
/// # Safety
/// The calling thread must hold the mutex (locked by [`lock`]).
pub unsafe fn unlock(m: *mut libc::pthread_mutex_t) {
    // SAFETY: the caller holds the mutex. An error-checking mutex reports a
    // wrong owner instead of corrupting it, so the result needs no handling.
    unsafe {
        libc::pthread_mutex_unlock(m);
    }
}
