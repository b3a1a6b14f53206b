//! What `/proc` and a few system calls tell about processes and segments:
//! this process's pid (kept across `fork` correctly) and user, whether
//! another is alive, whether it is the one that started a claim or created
//! a segment, whether a user is in a group, and the kernel's list of every
//! segment (`/proc/sysvipc/shm`); and the signals the crash points send
//! this process.
//!
//! A pid alone does not name a process for long: pids are reused, within
//! seconds on a busy machine (or on purpose: an unprivileged user can fork
//! until it owns a given pid). So a process that leaves its mark in shared
//! memory also leaves its start time, and one judging the mark compares both.
#![allow(unsafe_code)]

use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::Result;
use crate::key::Key;
use crate::sys::shm::SegmentInfo;
use crate::sys::shm::failure::{Call, error};
use crate::sys::shm::raw::{SHM_DEST, SHM_LOCKED};

/// This process's pid, without a system call after the first: glibc no
/// longer caches `getpid`, and a region read needs the pid.
///
/// The cache (pid and start time) lives in a page marked
/// `MADV_WIPEONFORK`, which the kernel zero-fills in the child of every
/// fork, however it is made (`fork`, `SYS_fork`, `clone` without
/// `CLONE_VM`): a child never sees its parent's pid or start time here, not
/// even a descendant that happens to get an ancestor's pid back. Where the
/// kernel lacks `MADV_WIPEONFORK` (before 4.14), a `pthread_atfork` handler
/// clears the cache instead, which covers forks made through the C library
/// only.
#[inline]
pub fn own_pid() -> i32 {
    let pid = cache().pid.load(Ordering::Relaxed);
    if pid != 0 {
        return pid;
    }
    fetch_own_pid()
}

/// What [`own_pid`] and [`own_start_time`] remember; all zero in a new
/// process and in the child of a fork.
struct Cache {
    pid: AtomicI32,
    /// The start time plus one; 0 until read.
    start: AtomicU64,
    /// See [`own_word`].
    own: AtomicUsize,
}

/// The cache: in a wipe-on-fork page, or [`FALLBACK`].
static PAGE: AtomicPtr<Cache> = AtomicPtr::new(std::ptr::null_mut());
/// The cache where the kernel has no `MADV_WIPEONFORK`.
static FALLBACK: Cache = Cache {
    pid: AtomicI32::new(0),
    start: AtomicU64::new(0),
    own: AtomicUsize::new(0),
};

#[inline]
fn cache() -> &'static Cache {
    let page = PAGE.load(Ordering::Acquire);
    if page.is_null() {
        return init_cache();
    }
    // SAFETY: a non-null PAGE points to a Cache in a page that is never
    // unmapped, or to FALLBACK (see `init_cache`).
    unsafe { &*page }
}

#[cold]
fn init_cache() -> &'static Cache {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| PAGE.store(cache_cell(), Ordering::Release));
    // SAFETY: `call_once` stored a pointer to a live, never-freed Cache.
    unsafe { &*PAGE.load(Ordering::Acquire) }
}

#[cold]
#[inline(never)]
fn fetch_own_pid() -> i32 {
    let pid = std::process::id() as i32;
    cache().pid.store(pid, Ordering::Relaxed);
    pid
}

/// The bytes mapped for the cache: a page (the kernel rounds a mapping up
/// to whole pages, and a page is at least this long).
#[cfg(not(miri))]
const CACHE_MAPPING: usize = 4096;

#[cfg(not(miri))]
const _: () = assert!(std::mem::size_of::<Cache>() <= CACHE_MAPPING);

/// A never-freed cache that reads all zero in the child of a fork.
#[cfg(not(miri))]
fn cache_cell() -> *mut Cache {
    // SAFETY: an anonymous private mapping at an address the kernel picks:
    // it replaces nothing; the result is checked.
    let page = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            CACHE_MAPPING,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if page != libc::MAP_FAILED {
        // SAFETY: `page` is the page just mapped; madvise only changes how
        // the kernel copies it on fork.
        if unsafe { libc::madvise(page, CACHE_MAPPING, libc::MADV_WIPEONFORK) } == 0 {
            // The page is zero-filled (an all-zero Cache: atomics, valid
            // for zero), page-aligned and never unmapped.
            return page.cast();
        }
        // SAFETY: the page mapped above, which nothing refers to.
        unsafe { libc::munmap(page, CACHE_MAPPING) };
    }
    extern "C" fn forget_in_child() {
        FALLBACK.pid.store(0, Ordering::Relaxed);
        FALLBACK.start.store(0, Ordering::Relaxed);
        FALLBACK.own.store(0, Ordering::Relaxed);
    }
    // SAFETY: registers a handler that only stores to atomics, which is
    // async-signal-safe as the child of a fork requires.
    unsafe { libc::pthread_atfork(None, None, Some(forget_in_child)) };
    (&raw const FALLBACK).cast_mut()
}

/// Miri runs no fork and knows no `mmap`: a plain static.
#[cfg(miri)]
fn cache_cell() -> *mut Cache {
    (&raw const FALLBACK).cast_mut()
}

/// This process's effective user id.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Kill this process where it stands (`SIGKILL`), as `kill -9` would at
/// this instruction: a crash point's death.
#[cfg(feature = "crash-points")]
pub fn kill_self() {
    // SAFETY: raising a signal on this process touches no memory of ours;
    // SIGKILL, which cannot be caught, ends the process here.
    unsafe { libc::raise(libc::SIGKILL) };
}

/// Stop this process where it stands (`SIGSTOP`) until it is continued
/// (`SIGCONT`) or killed: a crash point's pause.
#[cfg(feature = "crash-points")]
pub fn stop_self() {
    // SAFETY: raising a signal on this process touches no memory of ours;
    // SIGSTOP, which cannot be caught, suspends the process here.
    unsafe { libc::raise(libc::SIGSTOP) };
}

/// Whether process `pid` exists and has not exited (a zombie counts as
/// exited: it will never run again). Processes of other users count
/// (`EPERM`): judge them further by [`start_time`].
#[cfg(not(miri))]
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

/// Under Miri (no `kill`): only this process is known to be alive.
#[cfg(miri)]
pub fn alive(pid: i32) -> bool {
    pid == own_pid()
}

/// Fields of `/proc/PID/stat` after the command name, which is in
/// parentheses and may itself hold spaces and parentheses: field 3 (the
/// state) first.
#[cfg(not(miri))]
fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// Under Miri, `/proc` is outside the abstract machine: nothing is known.
#[cfg(miri)]
fn stat_fields(_pid: i32) -> Option<Vec<String>> {
    None
}

/// The start time of process `pid` in clock ticks after boot (field 22 of
/// `/proc/PID/stat`): with the pid, it names a process even across pid reuse.
pub fn start_time(pid: i32) -> Option<u64> {
    stat_fields(pid)?.get(19)?.parse().ok()
}

/// A word of this process alone, 0 in a new process and in the child of
/// every fork, however it is made, as [`own_pid`]'s cache is: for state
/// that a child must not take for its own, whatever its pid (the watcher
/// threads' bookkeeping, `watch/hub.rs`).
pub fn own_word() -> &'static AtomicUsize {
    &cache().own
}

/// This process's start time, read once per process (again in the child
/// of a fork: see [`own_pid`]); 0 if `/proc` does not tell.
pub fn own_start_time() -> u64 {
    let cache = cache();
    match cache.start.load(Ordering::Relaxed) {
        0 => {
            let start = start_time(own_pid()).unwrap_or(0);
            cache.start.store(start + 1, Ordering::Relaxed);
            start
        }
        known => known - 1,
    }
}

/// Whether the process that recorded (`pid`, `start`) is still running; a
/// start of `None` or 0 means unknown, and only the pid is checked. This
/// process answers for itself without a system call (a reader short of pin
/// slots judges every slot, and a process with many threads is slow to
/// judge through `/proc`).
pub fn same_process_alive(pid: i32, start: Option<u64>) -> bool {
    if pid == own_pid() {
        let own = own_start_time();
        return match start {
            Some(start) if start != 0 && own != 0 => start == own,
            _ => true,
        };
    }
    alive(pid)
        && match start {
            Some(start) if start != 0 => start_time(pid).is_none_or(|s| s == start),
            _ => true,
        }
}

/// Whether the process is a zombie or dead: every one of its threads is.
/// (The state in `/proc/PID/stat` is its first thread's, which is a zombie
/// once that thread exits alone, while the others still run.)
#[cfg(not(miri))]
fn is_zombie(pid: i32) -> bool {
    let dead = |fields: Option<Vec<String>>| {
        fields
            .and_then(|f| f.into_iter().next())
            .is_some_and(|state| state == "Z" || state == "X")
    };
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return dead(stat_fields(pid));
    };
    tasks.flatten().all(|task| {
        let stat = std::fs::read_to_string(task.path().join("stat")).ok();
        dead(stat.and_then(|s| {
            let (_, rest) = s.rsplit_once(')')?;
            Some(rest.split_whitespace().map(str::to_owned).collect())
        }))
    })
}

/// How much later than a segment's creation its creator may seem to have
/// started: the kernel keeps the creation time in whole seconds, and a
/// process's start is the boot time (whole seconds) plus clock ticks
/// (FORMAT.md, "Opening, and telling a slow creator from a dead one").
const CLOCK_SLACK: Duration = Duration::from_secs(2);

/// Whether process `pid` may be the one that created, as user `cuid`, a
/// segment whose creation time the kernel gives as `created`: it is alive,
/// it started no later than that (allowing for the kernel's one-second
/// clocks), and one of its user ids is `cuid`. A process that took over the
/// creator's pid after the creator died started later, or (if within the
/// same second) belongs to another user, or is the same user's, who could
/// remove the segment anyway. Where `/proc` does not tell (hidepid), the pid
/// alone decides.
pub fn may_be_creator(pid: i32, created: Option<SystemTime>, cuid: u32) -> bool {
    if !alive(pid) {
        return false;
    }
    let (Some(started), Some(created)) = (started_at(pid), created) else {
        return true;
    };
    if started > created + CLOCK_SLACK {
        return false;
    }
    uids(pid).is_none_or(|ids| ids.contains(&cuid))
}

/// When process `pid` started, from its start time and the boot time.
fn started_at(pid: i32) -> Option<SystemTime> {
    let ticks = start_time(pid)?;
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let btime: u64 = stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz <= 0 {
        return None;
    }
    let hz = hz as u64;
    Some(
        UNIX_EPOCH
            + Duration::from_secs(btime)
            + Duration::from_secs(ticks / hz)
            + Duration::from_nanos((ticks % hz) * 1_000_000_000 / hz),
    )
}

/// Whether the user database (NSS: `/etc/passwd`, `/etc/group`, ...)
/// puts user `uid` in group `gid`, as its primary group or a supplementary
/// one. `false` for a user it does not know, for an entry that does not
/// fit in 16 KiB, and for a user in more than 256 groups that `gid` is not
/// the primary group of.
#[cfg(not(miri))]
pub fn user_in_group(uid: u32, gid: u32) -> bool {
    let mut pwd = std::mem::MaybeUninit::<libc::passwd>::uninit();
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call: `pwd` and `found` are
    // writable, `buf` holds `buf.len()` bytes that the result points into.
    let rc = unsafe {
        libc::getpwuid_r(
            uid,
            pwd.as_mut_ptr(),
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        )
    };
    if rc != 0 || found.is_null() {
        return false;
    }
    // SAFETY: getpwuid_r succeeded and filled `pwd`.
    let pwd = unsafe { pwd.assume_init() };
    if pwd.pw_gid == gid {
        return true;
    }
    let mut groups = vec![0 as libc::gid_t; 256];
    let mut n = groups.len() as libc::c_int;
    // SAFETY: `pw_name` is a NUL-terminated name in `buf`, alive here;
    // `groups` has room for `n` entries, and `n` is updated in place.
    let rc = unsafe { libc::getgrouplist(pwd.pw_name, pwd.pw_gid, groups.as_mut_ptr(), &mut n) };
    rc >= 0 && groups[..n.max(0) as usize].contains(&gid)
}

/// Under Miri, no user database.
#[cfg(miri)]
pub fn user_in_group(_uid: u32, _gid: u32) -> bool {
    false
}

/// The real, effective, saved and file-system user ids of process `pid`.
fn uids(pid: i32) -> Option<Vec<u32>> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
    line.split_whitespace().map(|u| u.parse().ok()).collect()
}

/// The kernel's list of segments.
pub const PROC_SHM: &str = "/proc/sysvipc/shm";

/// Every segment on the system, in the kernel's order.
///
/// ```
/// let all = shmstore::list_segments()?;
/// for seg in &all {
///     println!("{} {} {} bytes", seg.key, seg.id, seg.size);
/// }
/// # Ok::<(), shmstore::Error>(())
/// ```
pub fn list_segments() -> Result<Vec<SegmentInfo>> {
    let text = std::fs::read_to_string(PROC_SHM).map_err(|e| error(Call::List, e))?;
    Ok(parse(&text))
}

/// Parse the text of `/proc/sysvipc/shm`; lines that do not parse are
/// skipped.
pub fn parse(text: &str) -> Vec<SegmentInfo> {
    text.lines().skip(1).filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<SegmentInfo> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() < 14 {
        return None;
    }
    let num = |i: usize| f[i].parse::<i64>().ok();
    let time = |i: usize| {
        num(i)
            .filter(|&t| t > 0)
            .map(|t| UNIX_EPOCH + Duration::from_secs(t as u64))
    };
    // The kernel prints the mode in octal, with SHM_DEST and SHM_LOCKED
    // above the permission bits.
    let perms = u32::from_str_radix(f[2], 8).ok()?;
    Some(SegmentInfo {
        id: f[1].parse().ok()?,
        key: Key::from_kernel(f[0].parse().ok()?),
        size: f[3].parse().ok()?,
        mode: perms & 0o777,
        marked_for_removal: perms & SHM_DEST != 0,
        locked: perms & SHM_LOCKED != 0,
        cpid: num(4)? as i32,
        lpid: num(5)? as i32,
        nattch: num(6)? as u64,
        uid: num(7)? as u32,
        gid: num(8)? as u32,
        cuid: num(9)? as u32,
        cgid: num(10)? as u32,
        atime: time(11),
        dtime: time(12),
        ctime: time(13),
    })
}

#[cfg(all(test, not(miri)))]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_its_own_creator() {
        let me = own_pid();
        assert_eq!(me, std::process::id() as i32);
        assert!(alive(me));
        assert!(same_process_alive(me, Some(own_start_time())));
        assert!(!same_process_alive(me, Some(own_start_time() + 1)));
        let euid = euid();
        let now = SystemTime::now();
        assert!(may_be_creator(me, Some(now), euid));
        assert!(!may_be_creator(me, Some(now), euid.wrapping_add(1)));
        // Created long before this process started: not its creator.
        assert!(!may_be_creator(me, Some(UNIX_EPOCH), euid));
        assert!(!alive(0) && !alive(-1));
    }
}

#[cfg(test)]
mod listing_tests {
    use super::*;

    #[test]
    fn parses_the_kernel_format() {
        let text = "       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      dtime      ctime                   rss                  swap\n\
                    1392508929      32769  1600                 30272 15964 15970      1     0     0     0     0 1795708267          0 1795708260                 28672                     0\n\
                    garbage\n";
        let all = parse(text);
        assert_eq!(all.len(), 1);
        let s = &all[0];
        assert_eq!(s.key.raw(), 1_392_508_929);
        assert_eq!((s.id, s.size, s.mode), (32769, 30272, 0o600));
        assert!(s.marked_for_removal && !s.locked);
        assert_eq!((s.cpid, s.lpid, s.nattch), (15964, 15970, 1));
        assert!(s.atime.is_some() && s.dtime.is_none());
    }
}
