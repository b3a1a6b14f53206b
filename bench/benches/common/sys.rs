//! System V segments, futexes, the robust-mutex floor and temporary
//! directories: the raw pieces the benches' floors and peers are made of.
#![allow(dead_code)]

use std::mem::MaybeUninit;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use shmstore::{Key, Segment};

/// The smallest segment [`private_segment`] makes.
pub const PAGE: usize = 4096;

/// Offset of the value in the floors' segments (and in shared_memory's, in
/// the compare bench): on cache lines of its own, apart from the mutex, as a
/// cell's slots are apart from its header.
pub const DATA_AT: usize = 512;

/// The tmpfs where mmap-sync's files go: its `write` `msync`s, which on a
/// disk-backed directory is a disk write.
pub const TMPFS: &str = "/dev/shm";

/// A private System V segment of at least `size` bytes (whole pages),
/// already marked for removal (children attach it by id).
pub fn private_segment(size: usize) -> Segment {
    let seg = Segment::options()
        .size(size.next_multiple_of(PAGE))
        .create(true)
        .open(Key::PRIVATE)
        .expect("create a private segment");
    seg.remove().expect("mark the segment for removal");
    seg
}

/// `IPC_RMID` of the segment `id` and nothing else: it goes with its last
/// detach, and children can still attach it by id. A handle's `remove()`
/// also marks the object removed, after which its stores and publishes
/// return `Error::Removed`; this leaves them working.
pub fn unlink_segment(id: i32) {
    Segment::attach_id(id)
        .and_then(|seg| seg.remove())
        .expect("mark the segment for removal");
}

/// `FUTEX_WAIT` (shared, not private) while `word` holds `expected`, at most
/// `timeout`. Returns on a wake, a signal, a timeout or a changed word.
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `word` is a live, aligned 4-byte word of a shared mapping, which
    // the kernel only reads; `ts` outlives the call.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
            0usize,
            0u32,
        );
    }
}

/// `FUTEX_WAKE` (shared) of every sleeper on `word`.
pub fn futex_wake(word: &AtomicU32) {
    // SAFETY: `word` is a live, aligned word; FUTEX_WAKE only computes its key.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            i32::MAX,
            0usize,
            0usize,
            0u32,
        );
    }
}

/// A robust, process-shared, error-checking pthread mutex at offset 0 of a
/// private segment (the kind `SharedCell` writes under), with room for a
/// value at [`DATA_AT`].
pub struct RobustMutexSeg {
    seg: Segment,
}

impl RobustMutexSeg {
    /// The mutex, with room for `value_size` bytes at [`DATA_AT`].
    pub fn new(value_size: usize) -> Self {
        let seg = private_segment(DATA_AT + value_size);
        assert!(size_of::<libc::pthread_mutex_t>() <= DATA_AT);
        let m = seg.as_ptr().cast::<libc::pthread_mutex_t>();
        let mut attr = MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
        // SAFETY: `attr` is initialised by pthread_mutexattr_init before any
        // other use and destroyed after the mutex is made; `m` points to the
        // page-aligned start of a fresh segment, writable, large enough and
        // used by nobody else.
        unsafe {
            let a = attr.as_mut_ptr();
            assert_eq!(libc::pthread_mutexattr_init(a), 0);
            assert_eq!(
                libc::pthread_mutexattr_setpshared(a, libc::PTHREAD_PROCESS_SHARED),
                0
            );
            assert_eq!(
                libc::pthread_mutexattr_setrobust(a, libc::PTHREAD_MUTEX_ROBUST),
                0
            );
            assert_eq!(
                libc::pthread_mutexattr_settype(a, libc::PTHREAD_MUTEX_ERRORCHECK),
                0
            );
            assert_eq!(libc::pthread_mutex_init(m, a), 0);
            libc::pthread_mutexattr_destroy(a);
        }
        RobustMutexSeg { seg }
    }

    fn mutex(&self) -> *mut libc::pthread_mutex_t {
        self.seg.as_ptr().cast()
    }

    /// Lock and unlock, nothing in between.
    #[inline]
    pub fn lock_unlock(&self) {
        // SAFETY: the mutex was initialised in `new` and lives in the mapping
        // `self` keeps; this thread unlocks what it locked.
        unsafe {
            let rc = libc::pthread_mutex_lock(self.mutex());
            debug_assert_eq!(rc, 0);
            let rc = libc::pthread_mutex_unlock(self.mutex());
            debug_assert_eq!(rc, 0);
        }
    }

    /// Lock, copy `value` in (`memcpy`), unlock.
    #[inline]
    pub fn store<T: Copy>(&self, value: &T) {
        assert!(
            DATA_AT.is_multiple_of(align_of::<T>()) && DATA_AT + size_of::<T>() <= self.seg.len()
        );
        // SAFETY: as in `lock_unlock`; the value's bytes at DATA_AT are
        // inside the mapping (asserted), aligned for `T` (DATA_AT is, and the
        // mapping is page-aligned), and written only by this thread, under
        // the lock.
        unsafe {
            let rc = libc::pthread_mutex_lock(self.mutex());
            debug_assert_eq!(rc, 0);
            std::ptr::copy_nonoverlapping(value, self.seg.as_ptr().add(DATA_AT).cast::<T>(), 1);
            let rc = libc::pthread_mutex_unlock(self.mutex());
            debug_assert_eq!(rc, 0);
        }
    }

    /// Lock, write the 64-byte `value` in with one volatile write, unlock.
    #[inline]
    pub fn store_volatile(&self, value: [u64; 8]) {
        const { assert!(DATA_AT + size_of::<[u64; 8]>() <= PAGE) };
        // SAFETY: as in `lock_unlock`; the value's 64 bytes at DATA_AT are
        // inside the segment's first page (checked above), 64-aligned, and
        // written only by this thread while it holds the lock.
        unsafe {
            let rc = libc::pthread_mutex_lock(self.mutex());
            debug_assert_eq!(rc, 0);
            std::ptr::write_volatile(self.seg.as_ptr().add(DATA_AT).cast::<[u64; 8]>(), value);
            let rc = libc::pthread_mutex_unlock(self.mutex());
            debug_assert_eq!(rc, 0);
        }
    }
}

impl Drop for RobustMutexSeg {
    fn drop(&mut self) {
        // SAFETY: the mutex was initialised in `new` and nobody holds it.
        unsafe { libc::pthread_mutex_destroy(self.mutex()) };
    }
}

/// A fresh directory `<base>/<prefix><pid>` for a run's files, removed on
/// drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(base: &Path, prefix: &str) -> Self {
        let dir = base.join(format!("{prefix}{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the temp dir");
        TempDir(dir)
    }

    /// Remove the directories under `base` that [`TempDir::new`] made with
    /// `prefix` for processes that are gone: a run killed outright (SIGKILL)
    /// could not remove its own.
    pub fn remove_stale(base: &Path, prefix: &str) {
        for entry in std::fs::read_dir(base).into_iter().flatten().flatten() {
            let name = entry.file_name();
            let pid = name.to_str().and_then(|n| n.strip_prefix(prefix));
            if let Some(pid) = pid.and_then(|p| p.parse::<u32>().ok())
                && !Path::new(&format!("/proc/{pid}")).exists()
            {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
