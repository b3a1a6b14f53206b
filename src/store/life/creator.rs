//! Who made a segment, and whether that process still runs: how a creator
//! at work is told from one that died.
//!
//! A creator's first writes are its pid and start time (with the name, if
//! any), before the magic, which it stores with release ordering: whoever
//! sees the magic (acquire) judges the creator by both, so a process that
//! took over a dead creator's pid does not pass for it. Before the magic,
//! only the kernel's `shm_cpid` names the creator: it must be alive, have
//! started no later than the segment was made, and run as the user that
//! made it (`sys::proc::may_be_creator`).

use std::sync::atomic::Ordering::{Acquire, Relaxed};
use std::time::Instant;

use crate::error::{Error, Result, Target};
use crate::format::{Header, MAGIC, STATE_FRESH, STATE_INITIALIZING, STATE_READY};
use crate::store::Memory;
use crate::sync::atomic::Std;
use crate::sync::backoff::Backoff;
use crate::sync::ready;
use crate::sys::proc;
use crate::sys::shm::{Segment, SegmentInfo};

/// The creator of a segment, as `IPC_STAT` gives it.
#[derive(Debug, Clone, Copy)]
pub struct Creator {
    /// `shm_cpid`.
    pub pid: i32,
    /// `shm_ctime`: the creation (or last `IPC_SET`).
    pub created: Option<std::time::SystemTime>,
    /// `shm_perm.cuid`.
    pub uid: u32,
}

impl Creator {
    /// The creator as `info` names it.
    pub fn from_info(info: &SegmentInfo) -> Creator {
        Creator {
            pid: info.cpid,
            created: info.ctime,
            uid: info.cuid,
        }
    }

    /// The creator of `seg`, as `IPC_STAT` gives it.
    pub fn of(seg: &Segment) -> Result<Creator> {
        Ok(Creator::from_info(&seg.info()?))
    }

    /// Whether the creator is still running. A pid alone may have been taken
    /// over since the creator died: where the header names the creator (its
    /// first writes are its pid and start time, before the magic), the
    /// process with that pid must have that start time; before that, it must
    /// have started before the segment was made and run as its user.
    pub fn alive(&self, header: &Header) -> bool {
        let named =
            header.magic.load(Acquire) == MAGIC && header.creator_pid.load(Relaxed) == self.pid;
        let start = header.creator_start.load(Relaxed);
        if named && start != 0 {
            proc::same_process_alive(self.pid, Some(start))
        } else {
            proc::may_be_creator(self.pid, self.created, self.uid)
        }
    }
}

/// Whether the process the header names as its creator (pid and start time,
/// written before the magic) still runs. For a header whose magic was seen.
pub fn claimant_alive(header: &Header) -> (i32, bool) {
    let pid = header.creator_pid.load(Relaxed);
    let start = header.creator_start.load(Relaxed);
    (pid, proc::same_process_alive(pid, Some(start)))
}

/// Wait until the header's state is READY, or find out it never will be:
/// [`Error::CreatorDied`] once its creator is judged dead,
/// [`Error::InitTimeout`] after `timeout`. Bytes that are not a shmstore
/// creator's return at once, for validation to say why.
pub fn wait_ready(
    h: &Header,
    memory: &Memory,
    target: Target,
    timeout: std::time::Duration,
) -> Result<()> {
    let start = Instant::now();
    let deadline = start.checked_add(timeout);
    let mut backoff = Backoff::new();
    loop {
        let state = ready::state::<Std>(&h.state);
        let magic = h.magic.load(Relaxed);
        if state == STATE_READY {
            return Ok(());
        }
        let initialising =
            matches!(state, STATE_FRESH | STATE_INITIALIZING) && (magic == 0 || magic == MAGIC);
        if !initialising {
            return Ok(());
        }
        let creator = match memory {
            Memory::Segment(s) => Creator::of(s)?,
            #[cfg(feature = "fuzzing")]
            Memory::Heap { .. } => Creator {
                pid: 0,
                created: None,
                uid: 0,
            },
        };
        if !creator.alive(h) && ready::state::<Std>(&h.state) != STATE_READY {
            return Err(Error::CreatorDied {
                target,
                id: memory.id(),
                creator: creator.pid,
            });
        }
        let waited = start.elapsed();
        if waited >= timeout {
            return Err(Error::InitTimeout {
                target,
                creator: creator.pid,
                waited,
            });
        }
        backoff.snooze(deadline);
    }
}
