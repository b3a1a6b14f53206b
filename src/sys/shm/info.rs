//! What the kernel knows of a segment (`shmctl(IPC_STAT)`), and the two
//! other `shmctl` commands by id: `IPC_SET` and `IPC_RMID`.
#![allow(unsafe_code)]

use std::io;
use std::mem::MaybeUninit;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result, Target};
use crate::key::Key;

/// `SHM_DEST` in `shm_perm.mode`: marked for removal, gone after the last detach.
const SHM_DEST: u16 = 0o1000;
/// `SHM_LOCKED` in `shm_perm.mode`: locked in memory by `SHM_LOCK`.
const SHM_LOCKED: u16 = 0o2000;

/// What the kernel knows of a segment (`shmctl(IPC_STAT)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    /// The segment's id.
    pub id: i32,
    /// Its key; [`Key::PRIVATE`] for private segments and for segments
    /// marked for removal.
    pub key: Key,
    /// Its size in bytes, as created.
    pub size: usize,
    /// The permission bits (low 9 bits of `shm_perm.mode`).
    pub mode: u32,
    /// `IPC_RMID` was called: it disappears after the last detach.
    pub marked_for_removal: bool,
    /// Locked in memory (`SHM_LOCK`).
    pub locked: bool,
    /// Owner's user id.
    pub uid: u32,
    /// Owner's group id.
    pub gid: u32,
    /// Creator's user id.
    pub cuid: u32,
    /// Creator's group id.
    pub cgid: u32,
    /// Process id of the creator.
    pub cpid: i32,
    /// Process id of the last `shmat`/`shmdt`.
    pub lpid: i32,
    /// Number of current attachments.
    pub nattch: u64,
    /// Time of the last attach, if any.
    pub atime: Option<SystemTime>,
    /// Time of the last detach, if any.
    pub dtime: Option<SystemTime>,
    /// Time of the creation or the last `IPC_SET`.
    pub ctime: Option<SystemTime>,
}

fn time_of(secs: libc::time_t) -> Option<SystemTime> {
    (secs > 0).then(|| UNIX_EPOCH + Duration::from_secs(secs as u64))
}

fn stat_raw(id: i32, target: Target) -> Result<libc::shmid_ds> {
    let mut ds = MaybeUninit::<libc::shmid_ds>::zeroed();
    // SAFETY: `ds` is a valid, writable shmid_ds for IPC_STAT to fill.
    let rc = unsafe { libc::shmctl(id, libc::IPC_STAT, ds.as_mut_ptr()) };
    if rc < 0 {
        return Err(ctl_error(
            id,
            target,
            "IPC_STAT",
            io::Error::last_os_error(),
        ));
    }
    // SAFETY: shmctl succeeded, so the kernel filled the struct (and it was
    // zeroed before, which is a valid value of this plain C struct anyway).
    Ok(unsafe { ds.assume_init() })
}

pub(super) fn stat(id: i32, target: Target) -> Result<SegmentInfo> {
    let ds = stat_raw(id, target)?;
    let raw_key = ds.shm_perm.__key;
    Ok(SegmentInfo {
        id,
        key: if raw_key == 0 {
            Key::PRIVATE
        } else {
            Key::new(raw_key)?
        },
        size: ds.shm_segsz,
        mode: u32::from(ds.shm_perm.mode & 0o777),
        marked_for_removal: ds.shm_perm.mode & SHM_DEST != 0,
        locked: ds.shm_perm.mode & SHM_LOCKED != 0,
        uid: ds.shm_perm.uid,
        gid: ds.shm_perm.gid,
        cuid: ds.shm_perm.cuid,
        cgid: ds.shm_perm.cgid,
        cpid: ds.shm_cpid,
        lpid: ds.shm_lpid,
        nattch: ds.shm_nattch,
        atime: time_of(ds.shm_atime),
        dtime: time_of(ds.shm_dtime),
        ctime: time_of(ds.shm_ctime),
    })
}

fn ctl_error(id: i32, target: Target, op: &'static str, err: io::Error) -> Error {
    match err.raw_os_error() {
        Some(libc::EACCES) | Some(libc::EPERM) => Error::PermissionDenied {
            target,
            op,
            source: err,
        },
        Some(libc::EINVAL) | Some(libc::EIDRM) => Error::IdNotFound { id },
        _ => Error::Os {
            target: Some(target),
            op,
            source: err,
        },
    }
}

pub(super) fn set(id: i32, change: impl FnOnce(&mut libc::ipc_perm)) -> Result<()> {
    let target = Target::Id(id);
    let mut ds = stat_raw(id, target)?;
    change(&mut ds.shm_perm);
    // SAFETY: `ds` is a valid shmid_ds; IPC_SET only reads uid, gid and mode.
    let rc = unsafe { libc::shmctl(id, libc::IPC_SET, &mut ds) };
    if rc < 0 {
        return Err(ctl_error(id, target, "IPC_SET", io::Error::last_os_error()));
    }
    Ok(())
}

pub(super) fn remove(id: i32) -> Result<()> {
    // SAFETY: IPC_RMID does not read the buffer argument, which may be null.
    let rc = unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
    if rc < 0 {
        return Err(ctl_error(
            id,
            Target::Id(id),
            "IPC_RMID",
            io::Error::last_os_error(),
        ));
    }
    Ok(())
}
