//! The System V shared-memory calls themselves, each returning the
//! kernel's errno as an `io::Error`: `shmget`, `shmat`, `shmdt` and
//! `shmctl` (`IPC_STAT`, `IPC_SET`, `IPC_RMID`). What a failure means, for
//! the public API, is decided in one place (`failure.rs`).
#![allow(unsafe_code)]

use std::io;
use std::mem::MaybeUninit;

/// `SHM_DEST` in `shm_perm.mode`: marked for removal, gone after the last
/// detach (the kernel's `<linux/shm.h>`; `libc` does not name it).
pub const SHM_DEST: u32 = 0o1000;
/// `SHM_LOCKED` in `shm_perm.mode`: locked in memory by `SHM_LOCK`.
pub const SHM_LOCKED: u32 = 0o2000;

/// `shmget(key, size, flags)`: the segment's id.
pub fn shmget(key: i32, size: usize, flags: libc::c_int) -> io::Result<i32> {
    // SAFETY: shmget takes plain integers and touches no memory of ours.
    let id = unsafe { libc::shmget(key, size, flags) };
    if id < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(id)
}

/// `shmat(id)` at an address the kernel chooses, read-only (`SHM_RDONLY`)
/// if asked: the mapping's first byte (null only if the kernel chose
/// address 0).
pub fn shmat(id: i32, read_only: bool) -> io::Result<*mut u8> {
    let flags = if read_only { libc::SHM_RDONLY } else { 0 };
    // SAFETY: a null address lets the kernel choose where to map, so no
    // existing mapping of ours is replaced.
    let addr = unsafe { libc::shmat(id, std::ptr::null(), flags) };
    if addr as isize == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(addr.cast())
}

/// `shmdt(addr)`.
///
/// # Safety
/// `addr` was returned by [`shmat`] and is detached once: nothing refers
/// to the mapping any more, which is gone when this returns `Ok`.
pub unsafe fn shmdt(addr: *mut u8) -> io::Result<()> {
    // SAFETY: `addr` is an attachment of ours that nothing refers to any
    // more (the caller's promise); shmdt unmaps it and touches nothing else.
    if unsafe { libc::shmdt(addr.cast()) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `shmctl(id, IPC_STAT)`.
pub fn stat(id: i32) -> io::Result<libc::shmid_ds> {
    let mut ds = MaybeUninit::<libc::shmid_ds>::zeroed();
    // SAFETY: `ds` is a valid, writable shmid_ds for IPC_STAT to fill.
    if unsafe { libc::shmctl(id, libc::IPC_STAT, ds.as_mut_ptr()) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: shmctl succeeded, so the kernel filled the struct (and it was
    // zeroed before, which is a valid value of this plain C struct anyway).
    Ok(unsafe { ds.assume_init() })
}

/// `shmctl(id, IPC_SET)` of what `ds` says (the kernel reads its owner's
/// uid and gid and its mode).
pub fn set(id: i32, ds: &libc::shmid_ds) -> io::Result<()> {
    let mut ds = *ds;
    // SAFETY: `ds` is a valid shmid_ds; IPC_SET only reads uid, gid and mode.
    if unsafe { libc::shmctl(id, libc::IPC_SET, &mut ds) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `shmctl(id, IPC_RMID)`.
pub fn rmid(id: i32) -> io::Result<()> {
    // SAFETY: IPC_RMID does not read the buffer argument, which may be null.
    if unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
