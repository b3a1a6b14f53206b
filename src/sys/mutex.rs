//! A process-shared, robust, error-checking pthread mutex living in shared
//! memory.
//!
//! Robust: when the owner dies holding it, the next locker gets `EOWNERDEAD`,
//! marks it consistent and is told so ([`Locked::Recovered`]). Error-checking:
//! a thread that locks it twice gets an error instead of a deadlock.
//!
//! The format embeds a [`MutexRoom`]: bytes that only pthread touches, with
//! no methods. What can be done with a room depends on how it was reached,
//! which only its owner knows, so the two ways to a [`Mutex`] are unsafe:
//! [`Mutex::init`] (the creator's, on a room nobody uses yet) and
//! [`Mutex::made`] (anyone's, on a room that holds a mutex made by `init`).
//! A `Mutex` locks safely, and unlocks only through the [`MutexGuard`] its
//! lock returns.
#![allow(unsafe_code)]

use std::cell::UnsafeCell;
use std::io;
use std::marker::PhantomData;

/// The size of the platform's `pthread_mutex_t`, which the format reserves
/// room for and records (`format/header.rs`, `format/identity.rs`).
pub const SIZE: usize = size_of::<libc::pthread_mutex_t>();

/// The room a [`MutexRoom`] has for the mutex.
pub const ROOM: usize = 64;

const _: () = assert!(SIZE <= ROOM);

/// Room for a process-shared `pthread_mutex_t`, on its own cache line.
#[repr(C, align(64))]
pub struct MutexRoom(UnsafeCell<[u8; ROOM]>);

// SAFETY: the bytes are only ever touched through pthread_mutex_* calls
// (through `Mutex`), which are made for concurrent use from any thread or
// process; the room has no other access.
unsafe impl Sync for MutexRoom {}

impl MutexRoom {
    fn raw(&self) -> *mut libc::pthread_mutex_t {
        self.0.get().cast()
    }
}

/// How a lock was acquired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locked {
    /// The mutex was free or released normally.
    Clean,
    /// Its previous owner died holding it; it was made consistent again.
    Recovered,
}

/// A room known to hold a robust mutex, in writable memory mapped for
/// `'a`.
#[derive(Clone, Copy)]
pub struct Mutex<'a> {
    room: &'a MutexRoom,
}

impl<'a> Mutex<'a> {
    /// Initialise a process-shared, robust, error-checking mutex in `room`.
    ///
    /// # Safety
    /// `room` lies in writable memory that stays mapped (at the same
    /// address) for `'a`, and no thread or process uses it as a mutex yet
    /// (nor will before this returns); once a [`MutexGuard`] of the mutex
    /// is leaked, the memory is never unmapped (a leaked guard keeps the
    /// room on the thread's robust list, which the kernel writes through
    /// when the thread exits).
    pub unsafe fn init(room: &'a MutexRoom) -> io::Result<Mutex<'a>> {
        let m = room.raw();
        let mut attr = std::mem::MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
        let check = |rc: libc::c_int| {
            if rc == 0 {
                Ok(())
            } else {
                Err(io::Error::from_raw_os_error(rc))
            }
        };
        // SAFETY: `attr` is initialised by pthread_mutexattr_init before any
        // other use and destroyed at the end; `m` is the room, writable and
        // in use by nobody (the caller's promise), aligned to 64 and at least
        // SIZE bytes (asserted above).
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
            result?;
        }
        Ok(Mutex { room })
    }

    /// The mutex in `room`, made earlier by [`init`](Self::init).
    ///
    /// # Safety
    /// `room` lies in writable memory that stays mapped (at the same
    /// address) for `'a`, and holds a mutex made by `init` (in this process
    /// or another), or only zeros (the static initialiser of glibc and musl:
    /// a plain mutex, private to the process); once a [`MutexGuard`] of it
    /// is leaked, the memory is never unmapped.
    pub unsafe fn made(room: &'a MutexRoom) -> Mutex<'a> {
        Mutex { room }
    }

    /// Lock the mutex, recovering it if its owner died. On an error the
    /// mutex is not unlocked (as when it could not be made consistent).
    pub fn lock(self) -> io::Result<(Locked, MutexGuard<'a>)> {
        let m = self.room.raw();
        let guard = || MutexGuard {
            room: self.room,
            _not_send: PhantomData,
        };
        // SAFETY: `m` is a mutex made by init (or a zeroed, statically
        // initialised one) in writable memory mapped for 'a (how this Mutex
        // was made); the guard, which unlocks, borrows the room for no
        // longer.
        match unsafe { libc::pthread_mutex_lock(m) } {
            0 => Ok((Locked::Clean, guard())),
            libc::EOWNERDEAD => {
                // The data it guards is consistent whatever instruction its
                // owner died at (each write of the crate's is made visible
                // by one commit store, made or not): say so, and tell the
                // caller.
                // SAFETY: we own the mutex (EOWNERDEAD hands it over).
                match unsafe { libc::pthread_mutex_consistent(m) } {
                    0 => Ok((Locked::Recovered, guard())),
                    rc => Err(io::Error::from_raw_os_error(rc)),
                }
            }
            rc => Err(io::Error::from_raw_os_error(rc)),
        }
    }

    /// Lock the mutex if no one holds it, recovering it if its owner died;
    /// `None` if a live owner holds it. On an error the mutex is not
    /// unlocked (as when it could not be made consistent).
    pub fn try_lock(self) -> io::Result<Option<(Locked, MutexGuard<'a>)>> {
        let m = self.room.raw();
        let guard = || MutexGuard {
            room: self.room,
            _not_send: PhantomData,
        };
        // SAFETY: as in `lock`: `m` is a mutex made by init (or a zeroed one)
        // in writable memory mapped for 'a, and the guard borrows the room
        // for no longer.
        match unsafe { libc::pthread_mutex_trylock(m) } {
            0 => Ok(Some((Locked::Clean, guard()))),
            libc::EBUSY => Ok(None),
            libc::EOWNERDEAD => {
                // As in `lock`.
                // SAFETY: we own the mutex (EOWNERDEAD hands it over).
                match unsafe { libc::pthread_mutex_consistent(m) } {
                    0 => Ok(Some((Locked::Recovered, guard()))),
                    rc => Err(io::Error::from_raw_os_error(rc)),
                }
            }
            rc => Err(io::Error::from_raw_os_error(rc)),
        }
    }
}

/// The mutex, locked by this thread; unlocks on drop, on the thread that
/// locked (it is not `Send`).
pub struct MutexGuard<'a> {
    room: &'a MutexRoom,
    _not_send: PhantomData<*const ()>,
}

impl Drop for MutexGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: this thread locked the mutex in `Mutex::lock` and has not
        // unlocked it (the guard is made only on success, is not Send and
        // unlocks once); the room is mapped while the guard borrows it. An
        // error-checking mutex reports a wrong owner instead of corrupting
        // it, so the result needs no handling.
        unsafe {
            libc::pthread_mutex_unlock(self.room.raw());
        }
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
///
/// # Safety
/// None needed: it does nothing; `unsafe` for the same signature as the
/// other build's.
#[cfg(miri)]
unsafe fn shared_and_robust(_: *mut libc::pthread_mutexattr_t) -> io::Result<()> {
    Ok(())
}
