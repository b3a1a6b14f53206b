//! What the kernel knows of a segment (`shmctl(IPC_STAT)`), and the two
//! other `shmctl` commands by id: `IPC_SET` and `IPC_RMID`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::failure::{Call, error};
use super::raw::{self, SHM_DEST, SHM_LOCKED};
use crate::error::{Result, Target};
use crate::key::Key;

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

impl SegmentInfo {
    /// What `IPC_STAT` of segment `id` filled in.
    fn of(id: i32, ds: &libc::shmid_ds) -> SegmentInfo {
        let mode = u32::from(ds.shm_perm.mode);
        SegmentInfo {
            id,
            key: Key::from_kernel(ds.shm_perm.__key),
            size: ds.shm_segsz,
            mode: mode & 0o777,
            marked_for_removal: mode & SHM_DEST != 0,
            locked: mode & SHM_LOCKED != 0,
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
        }
    }
}

/// `IPC_STAT` of segment `id`, reached as `target`.
pub(super) fn stat(id: i32, target: Target) -> Result<SegmentInfo> {
    raw::stat(id)
        .map(|ds| SegmentInfo::of(id, &ds))
        .map_err(|e| error(ctl("IPC_STAT", id, target), e))
}

/// `IPC_SET` of segment `id`: what `IPC_STAT` gives, as `change` changes
/// its permissions.
pub(super) fn set(id: i32, change: impl FnOnce(&mut libc::ipc_perm)) -> Result<()> {
    let target = Target::Id(id);
    let mut ds = raw::stat(id).map_err(|e| error(ctl("IPC_STAT", id, target), e))?;
    change(&mut ds.shm_perm);
    raw::set(id, &ds).map_err(|e| error(ctl("IPC_SET", id, target), e))
}

/// `IPC_RMID` of segment `id`.
pub(super) fn remove(id: i32) -> Result<()> {
    raw::rmid(id).map_err(|e| error(ctl("IPC_RMID", id, Target::Id(id)), e))
}

fn ctl(op: &'static str, id: i32, target: Target) -> Call {
    Call::Ctl { op, id, target }
}
