//! shmstore against its floors and its peers, in one run, on one machine.
//!
//! ```text
//! cargo bench --bench compare               # everything, then BENCHMARKS.md
//! cargo bench --bench compare -- 64B        # a criterion filter: no BENCHMARKS.md
//! COMPARE_QUICK=1 cargo bench --bench compare   # a short smoke run
//! ```
//!
//! What is measured (criterion medians), with values of 64 B, 4 KiB and
//! 64 KiB (`Bytes<N>`, a `#[repr(C)]` `[u8; N]`) wherever the size matters:
//!
//! - floors: a plain copy out of a System V segment; a bare robust,
//!   process-shared pthread mutex lock/unlock, and the same around a copy into
//!   a segment; a shared futex wake between two processes (ping-pong, half a
//!   round trip); a cache line bounced between two processes spinning on an
//!   atomic word of a segment (ping-pong, half a round trip: the physical
//!   limit of any notification).
//! - `SharedCell`: `load`, `store`, `update`; `load` while another process
//!   stores as fast as it can; store→observed latency in another process,
//!   both sides spinning on `version()`, and both sides in `wait_for_change`
//!   (ping-pongs, half a round trip).
//! - `SharedRegion` (the value shape of `benches/region.rs`: a name, a
//!   `Vec<u64>` and eight string labels, archives of about 1 KiB, 64 KiB and
//!   1 MiB): `read` of a version already validated, the first `read` of a new
//!   version (validation), `publish`, and rkyv serialising the same value
//!   into a local buffer.
//! - peers: `shared_memory` + `raw_sync` (a process-shared mutex around a
//!   copy, uncontended and against a process storing continuously);
//!   cloudflare's `mmap-sync` (`read` with and without `check_bytes`,
//!   `write`); a Unix domain socket between two processes carrying the value
//!   encoded with `bincode` (request/response echo, half a round trip);
//!   `std::sync::Mutex<T>` in one process (the in-process ceiling).
//! - scaling: total `load`s per second of 1, 2, 4 and 8 reader processes
//!   while one writer process stores about 100,000 times a second.
//!
//! Then the medians saved by criterion (`estimates.json`) are read back and a
//! Markdown report (medians, ratios, scaling, the acceptance targets) is
//! printed and, on an unfiltered run, written into BENCHMARKS.md between its
//! `generated` markers, with the machine's CPU, core count, kernel and date.
//!
//! Nothing outlives the run. Every System V segment is created at
//! `Key::PRIVATE` and marked for removal at once; child processes (this
//! binary run again with [`CHILD_ENV`] set) attach it by id, and die with
//! their parent (`PR_SET_PDEATHSIG`). Files (mmap-sync's, shared_memory's
//! flinks, the socket) live in a fresh directory in `/dev/shm` (tmpfs), removed
//! at the end, on a panic too; shared_memory's POSIX objects are unlinked as
//! soon as every process has them open.

use std::collections::HashMap;
use std::ffi::CString;
use std::fmt::Write as _;
use std::hint::black_box;
use std::io::{ErrorKind, Read, Write};
use std::mem::MaybeUninit;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytemuck::{Pod, Zeroable};
use criterion::{BenchmarkGroup, Criterion, measurement::WallTime};
use mmap_sync::synchronizer::Synchronizer;
use raw_sync::locks::{LockImpl, LockInit, Mutex as RawSyncMutex};
use rkyv::rancor;
use rkyv::util::AlignedVec;
use shared_memory::{Shmem, ShmemConf};
use shmstore::{Key, Segment, SharedCell, SharedRegion};

/// Set in a child process: its role, its parent's pid and its arguments.
const CHILD_ENV: &str = "SHMSTORE_BENCH_COMPARE_CHILD";
/// Set in a child process that needs a file: its path.
const CHILD_PATH_ENV: &str = "SHMSTORE_BENCH_COMPARE_PATH";
/// Set (to anything) for a short smoke run.
const QUICK_ENV: &str = "COMPARE_QUICK";

/// The tag of the value that tells an echoing child to exit.
const STOP: u64 = u64::MAX;
/// How long a sleeper waits before checking that its peer is still alive.
const POLL: Duration = Duration::from_millis(100);
/// Spins after which a spinner yields the CPU and checks that its peer is
/// still alive (tens of µs: far more than any one-way time measured, so it
/// only matters when the peer has lost its CPU).
const SPIN_CHECK: u32 = 1 << 10;
/// Offset of the value in the floors' and shared_memory's segments: apart
/// from the mutex, as a cell's slots are apart from its header.
const DATA_AT: usize = 512;

/// Value sizes where the size matters, and their names in the results.
const SIZES: [&str; 3] = ["64B", "4KiB", "64KiB"];
/// Archive sizes of the region value.
const REGION_SIZES: [(&str, usize); 3] =
    [("1KiB", 1 << 10), ("64KiB", 64 << 10), ("1MiB", 1 << 20)];
/// Reader processes in the scaling test.
const READERS: [usize; 4] = [1, 2, 4, 8];
/// Stores per second of the writer in the scaling test.
const WRITER_RATE: u64 = 100_000;

// ---------------------------------------------------------------------------
// The value

/// `N` bytes of plain data, the value every cell-like store carries.
#[repr(C)]
#[derive(Clone, Copy)]
struct Bytes<const N: usize>([u8; N]);

// bytemuck's derive refuses `repr(C)` generic structs (it cannot check their
// padding), so the two impls are written out.
// SAFETY: `Bytes<N>` is `repr(C)` with one `[u8; N]` field: alignment 1, no
// padding, and all zeroes is a valid value.
unsafe impl<const N: usize> Zeroable for Bytes<N> {}
// SAFETY: as above, and every bit pattern is a valid `[u8; N]`; the type is
// `Copy + 'static`.
unsafe impl<const N: usize> Pod for Bytes<N> {}

impl<const N: usize> Bytes<N> {
    /// A recognisable value whose first eight bytes are `tag`.
    fn pattern(tag: u64) -> Self {
        let mut b = Self::zeroed();
        for (i, x) in b.0.iter_mut().enumerate() {
            *x = (i as u8).wrapping_mul(31);
        }
        b.set_tag(tag);
        b
    }

    fn set_tag(&mut self, tag: u64) {
        self.0[..8].copy_from_slice(&tag.to_le_bytes());
    }

    fn tag(&self) -> u64 {
        u64::from_le_bytes(self.0[..8].try_into().expect("8 bytes"))
    }
}

impl<const N: usize> bincode::Encode for Bytes<N> {
    fn encode<E: bincode::enc::Encoder>(
        &self,
        encoder: &mut E,
    ) -> Result<(), bincode::error::EncodeError> {
        self.0.encode(encoder)
    }
}

impl<Ctx, const N: usize> bincode::Decode<Ctx> for Bytes<N> {
    fn decode<D: bincode::de::Decoder<Context = Ctx>>(
        decoder: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        Ok(Bytes(<[u8; N]>::decode(decoder)?))
    }
}

/// Run `$f::<N>(args.., name)` for every size of [`SIZES`].
macro_rules! for_each_size {
    ($f:ident($($arg:expr),*)) => {{
        $f::<64>($($arg,)* SIZES[0]);
        $f::<4096>($($arg,)* SIZES[1]);
        $f::<65536>($($arg,)* SIZES[2]);
    }};
}

// ---------------------------------------------------------------------------
// main

/// Run-wide settings and the directory for files.
struct Ctx {
    dir: PathBuf,
    quick: bool,
}

impl Ctx {
    /// Scale a duration down for a quick run.
    fn time(&self, secs: f64) -> Duration {
        Duration::from_secs_f64(if self.quick { secs / 5.0 } else { secs })
    }

    fn samples(&self, n: usize) -> usize {
        if self.quick { 10 } else { n }
    }

    /// Settings of a group of in-process measurements.
    fn local(&self, g: &mut BenchmarkGroup<'_, WallTime>) {
        g.warm_up_time(self.time(0.5))
            .measurement_time(self.time(2.0))
            .sample_size(self.samples(20));
    }

    /// Settings of a group of cross-process measurements, noisier.
    fn ipc(&self, g: &mut BenchmarkGroup<'_, WallTime>) {
        g.warm_up_time(self.time(0.5))
            .measurement_time(self.time(4.0))
            .sample_size(self.samples(50));
    }
}

fn main() {
    // Before criterion sees the arguments: a child runs its role and exits.
    if let Some(spec) = std::env::var_os(CHILD_ENV) {
        let spec = spec.into_string().expect("child spec is UTF-8");
        std::process::exit(match child_main(&spec) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("bench child ({spec}): {e}");
                1
            }
        });
    }

    let started = SystemTime::now();
    let wall = Instant::now();
    let machine = Machine::probe();
    let out_dir = criterion_dir();
    let filtered = std::env::args().skip(1).any(|a| !a.starts_with('-'));
    let dir = TempDir::new();
    let ctx = Ctx {
        dir: dir.0.clone(),
        quick: std::env::var_os(QUICK_ENV).is_some(),
    };
    let mut c = Criterion::default()
        .warm_up_time(ctx.time(0.5))
        .measurement_time(ctx.time(1.5))
        .sample_size(ctx.samples(20))
        .without_plots()
        .output_directory(&out_dir)
        .configure_from_args();

    bench_floors(&mut c, &ctx);
    for_each_size!(bench_size(&mut c, &ctx));
    bench_region(&mut c, &ctx);
    let scaling = if filtered_out(&c, "scaling") {
        Vec::new()
    } else {
        READERS.iter().map(|&n| scaling(&ctx, n)).collect()
    };
    c.final_summary();
    drop(dir);

    let results = Results {
        out_dir,
        since: started,
    };
    let report = report(&results, &machine, &scaling, wall.elapsed(), ctx.quick);
    println!("\n{report}");
    if filtered || ctx.quick {
        println!("(filtered or quick run: BENCHMARKS.md left as it is)");
    } else {
        write_benchmarks_md(&report);
    }
}

/// Whether a criterion filter on the command line excludes `name` (for the
/// part measured outside criterion).
fn filtered_out(_c: &Criterion, name: &str) -> bool {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str()))
}

/// Where criterion keeps this bench's results: criterion's default directory
/// (found without asking `cargo metadata`), in a `compare` subdirectory so
/// that group names cannot collide with the other benches'.
fn criterion_dir() -> PathBuf {
    let base = if let Some(home) = std::env::var_os("CRITERION_HOME") {
        PathBuf::from(home)
    } else if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        PathBuf::from(target).join("criterion")
    } else {
        std::env::current_exe()
            .ok()
            .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.join("criterion")))
            .unwrap_or_else(|| PathBuf::from("target/criterion"))
    };
    base.join("compare")
}

/// A fresh directory for the run's files (in `/dev/shm` if there is one),
/// removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        const PREFIX: &str = "shmstore-bench-compare-";
        // On tmpfs where there is one, as mmap-sync is meant to be used: on a
        // disk file system its `write` (which `msync`s) measures the disk.
        let shm = Path::new("/dev/shm");
        let tmp = if shm.is_dir() {
            shm.to_owned()
        } else {
            std::env::temp_dir()
        };
        // A run killed outright (SIGKILL) could not remove its directory:
        // remove those whose process is gone.
        for entry in std::fs::read_dir(&tmp).into_iter().flatten().flatten() {
            let name = entry.file_name();
            let pid = name.to_str().and_then(|n| n.strip_prefix(PREFIX));
            if let Some(pid) = pid.and_then(|p| p.parse::<u32>().ok())
                && !Path::new(&format!("/proc/{pid}")).exists()
            {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        let dir = tmp.join(format!("{PREFIX}{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------
// Segments, words and raw primitives

/// A private System V segment of at least `size` bytes, already marked for
/// removal (children attach it by id).
fn private_segment(size: usize) -> Segment {
    let seg = Segment::options()
        .size(size.next_multiple_of(4096))
        .create(true)
        .open(Key::PRIVATE)
        .expect("create a private segment");
    seg.remove().expect("mark the segment for removal");
    seg
}

/// A page of control words shared with child processes, each word on its
/// own cache line.
struct Ctl {
    seg: Segment,
}

/// Indices of the control words.
const READY: usize = 0;
const START: usize = 1;
const HALT: usize = 2;
const WORD_A: usize = 3;
const WORD_B: usize = 4;
const WRITER_COUNT: usize = 5;
const READER_COUNT: usize = 8;

impl Ctl {
    fn new() -> Self {
        Ctl {
            seg: private_segment(4096),
        }
    }

    fn attach(id: i32) -> Result<Self, shmstore::Error> {
        Ok(Ctl {
            seg: Segment::attach_id(id)?,
        })
    }

    fn id(&self) -> i32 {
        self.seg.id()
    }

    /// The 64-bit word `i`.
    fn u64(&self, i: usize) -> &AtomicU64 {
        assert!((i + 1) * 64 <= self.seg.len());
        // SAFETY: the word is 64-aligned (the mapping is page-aligned) and
        // inside the mapping, which lives as long as the borrow of `self`;
        // every access to it, from any process, is atomic.
        unsafe { &*self.seg.as_ptr().add(i * 64).cast::<AtomicU64>() }
    }

    /// The 32-bit word `i` (a futex word), on the same line as `u64(i)`:
    /// a given index is used as one or the other.
    fn u32(&self, i: usize) -> &AtomicU32 {
        assert!((i + 1) * 64 <= self.seg.len());
        // SAFETY: as in `u64`.
        unsafe { &*self.seg.as_ptr().add(i * 64).cast::<AtomicU32>() }
    }
}

/// `FUTEX_WAIT` (shared) while `word` holds `expected`, at most `timeout`.
fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
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
fn futex_wake(word: &AtomicU32) {
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
struct RobustMutexSeg {
    seg: Segment,
}

impl RobustMutexSeg {
    fn new(value_size: usize) -> Self {
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
    fn lock_unlock(&self) {
        // SAFETY: the mutex was initialised in `new` and lives in the mapping
        // `self` keeps; this thread unlocks what it locked.
        unsafe {
            let rc = libc::pthread_mutex_lock(self.mutex());
            debug_assert_eq!(rc, 0);
            let rc = libc::pthread_mutex_unlock(self.mutex());
            debug_assert_eq!(rc, 0);
        }
    }

    /// Lock, copy `value` in, unlock.
    #[inline]
    fn store<const N: usize>(&self, value: &Bytes<N>) {
        assert!(DATA_AT + N <= self.seg.len());
        // SAFETY: as in `lock_unlock`; the value's N bytes at DATA_AT are
        // inside the mapping and written only by this thread, under the lock.
        unsafe {
            let rc = libc::pthread_mutex_lock(self.mutex());
            debug_assert_eq!(rc, 0);
            std::ptr::copy_nonoverlapping(
                value,
                self.seg.as_ptr().add(DATA_AT).cast::<Bytes<N>>(),
                1,
            );
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

/// A cell at `Key::PRIVATE`, already marked for removal.
fn private_cell<const N: usize>(initial: Bytes<N>) -> SharedCell<Bytes<N>> {
    let cell = SharedCell::create(Key::PRIVATE, initial).expect("create a cell");
    cell.remove().expect("mark the cell for removal");
    cell
}

/// A `shared_memory` mapping (POSIX `shm_open`, with a flink file) holding a
/// `raw_sync` mutex at offset 0 and a value at [`DATA_AT`].
struct ShmRawSync {
    lock: Box<dyn LockImpl>,
    shmem: Shmem,
    flink: PathBuf,
}

impl ShmRawSync {
    fn create(dir: &Path, name: &str, value_size: usize) -> Self {
        let flink = dir.join(format!("shmem-{name}"));
        let shmem = ShmemConf::new()
            .size(DATA_AT + value_size)
            .flink(&flink)
            .create()
            .expect("create a shared_memory mapping");
        let base = shmem.as_ptr();
        // SAFETY: the mapping is fresh, page-aligned, writable and at least
        // DATA_AT + value_size bytes long; the mutex goes at its start and its
        // data pointer at DATA_AT, past the mutex (checked below).
        let (lock, used) =
            unsafe { RawSyncMutex::new(base, base.add(DATA_AT)) }.expect("create a raw_sync mutex");
        assert!(used <= DATA_AT);
        ShmRawSync { lock, shmem, flink }
    }

    fn open(flink: &Path) -> Self {
        let shmem = ShmemConf::new()
            .flink(flink)
            .open()
            .expect("open the shared_memory mapping");
        let base = shmem.as_ptr();
        // SAFETY: the creator initialised a raw_sync mutex at the start of
        // this mapping before any child could open it; the data lies at
        // DATA_AT inside it.
        let (lock, _) = unsafe { RawSyncMutex::from_existing(base, base.add(DATA_AT)) }
            .expect("open the raw_sync mutex");
        ShmRawSync {
            lock,
            shmem,
            flink: flink.to_owned(),
        }
    }

    /// Remove the flink and the POSIX object now (the mappings stay): once
    /// every process has it open, nothing is left behind whatever happens.
    fn unlink(&mut self) {
        let _ = std::fs::remove_file(&self.flink);
        let name = CString::new(self.shmem.get_os_id()).expect("os id without NUL");
        // SAFETY: `name` is a valid NUL-terminated string for the call.
        unsafe { libc::shm_unlink(name.as_ptr()) };
        self.shmem.set_owner(false);
    }

    #[inline]
    fn load<const N: usize>(&self) -> Bytes<N> {
        assert!(DATA_AT + N <= self.shmem.len());
        let guard = self.lock.lock().expect("raw_sync lock");
        let mut out = MaybeUninit::<Bytes<N>>::uninit();
        // SAFETY: the guard's pointer is the mapping's DATA_AT, valid for N
        // bytes (asserted); writers copy into it only under the lock we hold.
        unsafe {
            std::ptr::copy_nonoverlapping((*guard).cast::<Bytes<N>>(), out.as_mut_ptr(), 1);
        }
        drop(guard);
        // SAFETY: all N bytes were copied in; any bytes are a valid Bytes<N>.
        unsafe { out.assume_init() }
    }

    #[inline]
    fn store<const N: usize>(&self, value: &Bytes<N>) {
        assert!(DATA_AT + N <= self.shmem.len());
        let guard = self.lock.lock().expect("raw_sync lock");
        // SAFETY: as in `load`; we hold the lock, so nobody else reads or
        // writes the value meanwhile.
        unsafe { std::ptr::copy_nonoverlapping(value, (*guard).cast::<Bytes<N>>(), 1) };
        drop(guard);
    }
}

// ---------------------------------------------------------------------------
// Child processes

/// A child process running one role; stopped (or killed) on drop.
struct Peer {
    child: Child,
}

impl Peer {
    fn spawn(role: &str, args: &[i64], path: Option<&Path>) -> Self {
        let mut spec = format!("{role}:{}", std::process::id());
        for a in args {
            write!(spec, ":{a}").expect("write to a String");
        }
        let mut cmd = Command::new(std::env::current_exe().expect("current_exe"));
        cmd.env(CHILD_ENV, spec)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        if let Some(p) = path {
            cmd.env(CHILD_PATH_ENV, p);
        }
        Peer {
            child: cmd.spawn().expect("spawn a bench child"),
        }
    }

    /// Panic (rather than hang) if the child has exited.
    fn check(&mut self) {
        if let Some(status) = self.child.try_wait().expect("try_wait") {
            panic!("bench child exited early: {status}");
        }
    }

    /// Wait until `ctl`'s READY word reaches `n`.
    fn wait_ready(peers: &mut [Peer], ctl: &Ctl, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while ctl.u64(READY).load(Ordering::SeqCst) < n {
            for p in peers.iter_mut() {
                p.check();
            }
            assert!(Instant::now() < deadline, "bench children not ready");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether the process that started this child is gone.
fn parent_gone(parent: libc::pid_t) -> bool {
    // SAFETY: getppid has no preconditions and cannot fail.
    unsafe { libc::getppid() != parent }
}

fn child_main(spec: &str) -> Result<(), Box<dyn std::error::Error>> {
    let mut parts = spec.split(':');
    let role = parts.next().ok_or("empty child spec")?;
    let parent: libc::pid_t = parts.next().ok_or("no parent pid")?.parse()?;
    let args: Vec<i64> = parts.map(str::parse).collect::<Result<_, _>>()?;
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes a signal number and no pointer.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) };
    if parent_gone(parent) {
        return Ok(()); // The parent died before the signal was armed.
    }
    let arg = |i: usize| -> Result<i32, Box<dyn std::error::Error>> {
        Ok(i32::try_from(*args.get(i).ok_or("missing argument")?)?)
    };
    let path = || -> Result<PathBuf, Box<dyn std::error::Error>> {
        Ok(std::env::var_os(CHILD_PATH_ENV)
            .ok_or("no path given")?
            .into())
    };
    macro_rules! sized {
        ($size:expr, $f:ident($($a:expr),*)) => {
            match $size {
                64 => $f::<64>($($a),*),
                4096 => $f::<4096>($($a),*),
                65536 => $f::<65536>($($a),*),
                n => Err(format!("no value of {n} bytes").into()),
            }
        };
    }
    match role {
        "futex" => futex_child(parent, arg(0)?),
        "spin" => spin_child(parent, arg(0)?),
        "cell_hammer" => sized!(arg(0)?, cell_hammer(arg(1)?, arg(2)?)),
        "shm_hammer" => sized!(arg(0)?, shm_hammer(arg(1)?, &path()?)),
        "cell_echo" => sized!(arg(0)?, cell_echo(parent, arg(1)? != 0, arg(2)?, arg(3)?)),
        "uds_echo" => sized!(arg(0)?, uds_echo(&path()?)),
        "scale_reader" => scale_reader(arg(0)?, arg(1)?, arg(2)? as usize),
        "scale_writer" => scale_writer(arg(0)?, arg(1)?),
        _ => Err(format!("unknown role {role:?}").into()),
    }
}

type ChildResult = Result<(), Box<dyn std::error::Error>>;

// ---------------------------------------------------------------------------
// Floors

fn bench_floors(c: &mut Criterion, ctx: &Ctx) {
    let lock = RobustMutexSeg::new(64);
    let mut g = c.benchmark_group("floor");
    ctx.local(&mut g);
    g.bench_function("robust_lock_unlock", |b| b.iter(|| lock.lock_unlock()));
    g.bench_function("getpid", |b| {
        // SAFETY: getpid has no preconditions and cannot fail.
        b.iter(|| black_box(unsafe { libc::getpid() }))
    });
    g.finish();
}

/// The cross-process floors, run just before the 64-byte store→observed
/// measurements they are compared with, so that both see the same machine.
fn bench_floor_ipc(c: &mut Criterion, ctx: &Ctx) {
    let mut futex: Option<FutexPingPong> = None;
    let mut spin: Option<SpinPingPong> = None;
    let mut g = c.benchmark_group("floor_ipc");
    ctx.ipc(&mut g);
    g.bench_function("futex_wake", |b| {
        let p = futex.get_or_insert_with(FutexPingPong::start);
        b.iter_custom(|iters| p.round_trips(iters) / 2);
    });
    drop(futex.take());
    g.bench_function("cacheline", |b| {
        let p = spin.get_or_insert_with(SpinPingPong::start);
        b.iter_custom(|iters| p.round_trips(iters) / 2);
    });
    drop(spin.take());
    g.finish();
}

/// Two futex words of a control page: A written by the parent, B echoed by
/// the child. One way is half a round trip.
struct FutexPingPong {
    ctl: Ctl,
    n: u32,
    peer: Peer,
}

impl FutexPingPong {
    fn start() -> Self {
        let ctl = Ctl::new();
        let mut peer = Peer::spawn("futex", &[ctl.id().into()], None);
        Peer::wait_ready(std::slice::from_mut(&mut peer), &ctl, 1);
        FutexPingPong { ctl, n: 0, peer }
    }

    fn round_trips(&mut self, iters: u64) -> Duration {
        let (a, b) = (self.ctl.u32(WORD_A), self.ctl.u32(WORD_B));
        let start = Instant::now();
        for _ in 0..iters {
            let prev = self.n;
            self.n = (self.n + 1) % u32::MAX; // never u32::MAX, the stop value
            a.store(self.n, Ordering::SeqCst);
            futex_wake(a);
            while b.load(Ordering::SeqCst) != self.n {
                futex_wait(b, prev, POLL);
                if b.load(Ordering::SeqCst) == prev {
                    self.peer.check();
                }
            }
        }
        start.elapsed()
    }
}

impl Drop for FutexPingPong {
    fn drop(&mut self) {
        let a = self.ctl.u32(WORD_A);
        a.store(u32::MAX, Ordering::SeqCst);
        futex_wake(a);
    }
}

fn futex_child(parent: libc::pid_t, ctl: i32) -> ChildResult {
    let ctl = Ctl::attach(ctl)?;
    let (a, b) = (ctl.u32(WORD_A), ctl.u32(WORD_B));
    let mut seen = a.load(Ordering::SeqCst);
    ctl.u64(READY).fetch_add(1, Ordering::SeqCst);
    loop {
        let v = a.load(Ordering::SeqCst);
        if v == seen {
            futex_wait(a, seen, POLL);
            if a.load(Ordering::SeqCst) == seen && parent_gone(parent) {
                return Ok(());
            }
            continue;
        }
        seen = v;
        if v == u32::MAX {
            return Ok(());
        }
        b.store(v, Ordering::SeqCst);
        futex_wake(b);
    }
}

/// Two words on two cache lines of a control page, both sides spinning: the
/// time for a cache line to go to the other core and back, halved.
struct SpinPingPong {
    ctl: Ctl,
    n: u64,
    peer: Peer,
}

impl SpinPingPong {
    fn start() -> Self {
        let ctl = Ctl::new();
        let mut peer = Peer::spawn("spin", &[ctl.id().into()], None);
        Peer::wait_ready(std::slice::from_mut(&mut peer), &ctl, 1);
        SpinPingPong { ctl, n: 0, peer }
    }

    fn round_trips(&mut self, iters: u64) -> Duration {
        let (a, b) = (self.ctl.u64(WORD_A), self.ctl.u64(WORD_B));
        let start = Instant::now();
        for _ in 0..iters {
            self.n += 1;
            a.store(self.n, Ordering::Release);
            let mut spins = 0u32;
            while b.load(Ordering::Acquire) != self.n {
                std::hint::spin_loop();
                spins += 1;
                if spins == SPIN_CHECK {
                    spins = 0;
                    std::thread::yield_now();
                    self.peer.check();
                }
            }
        }
        start.elapsed()
    }
}

impl Drop for SpinPingPong {
    fn drop(&mut self) {
        self.ctl.u64(WORD_A).store(STOP, Ordering::Release);
    }
}

fn spin_child(parent: libc::pid_t, ctl: i32) -> ChildResult {
    let ctl = Ctl::attach(ctl)?;
    let (a, b) = (ctl.u64(WORD_A), ctl.u64(WORD_B));
    let mut seen = a.load(Ordering::Acquire);
    ctl.u64(READY).fetch_add(1, Ordering::SeqCst);
    let mut spins = 0u32;
    loop {
        let v = a.load(Ordering::Acquire);
        if v == seen {
            std::hint::spin_loop();
            spins += 1;
            if spins == SPIN_CHECK {
                spins = 0;
                std::thread::yield_now();
                if parent_gone(parent) {
                    return Ok(());
                }
            }
            continue;
        }
        if v == STOP {
            return Ok(());
        }
        seen = v;
        b.store(v, Ordering::Release);
    }
}

// ---------------------------------------------------------------------------
// One value size: floors, SharedCell, shared_memory + raw_sync, std Mutex,
// Unix socket + bincode

fn bench_size<const N: usize>(c: &mut Criterion, ctx: &Ctx, name: &str) {
    let seg = private_segment(DATA_AT + N);
    let src = seg.as_ptr().wrapping_add(DATA_AT).cast::<Bytes<N>>();
    // SAFETY: DATA_AT + N bytes lie inside the mapping; only this thread
    // touches them.
    unsafe { src.write(Bytes::pattern(7)) };
    let floor = RobustMutexSeg::new(N);
    let cell = private_cell(Bytes::<N>::pattern(7));
    let mut shm = ShmRawSync::create(&ctx.dir, name, N);
    shm.unlink();
    shm.store(&Bytes::<N>::pattern(7));
    let std_mutex = std::sync::Mutex::new(Bytes::<N>::pattern(7));
    let mut value = Bytes::<N>::pattern(1);

    let mut g = c.benchmark_group(name);
    ctx.local(&mut g);
    g.bench_function("floor_copy", |b| {
        b.iter(|| {
            let mut out = MaybeUninit::<Bytes<N>>::uninit();
            // SAFETY: as above; no other process or thread writes the value.
            unsafe { std::ptr::copy_nonoverlapping(black_box(src), out.as_mut_ptr(), 1) };
            black_box(&out);
        })
    });
    g.bench_function("floor_copy_words", |b| {
        b.iter(|| {
            let mut out = MaybeUninit::<Bytes<N>>::uninit();
            let (from, to) = (black_box(src).cast::<u64>(), out.as_mut_ptr().cast::<u64>());
            for i in 0..N / 8 {
                // SAFETY: word i of the value lies inside the mapping, 8-aligned
                // (DATA_AT is), and inside `out`, written unaligned.
                unsafe {
                    to.add(i)
                        .write_unaligned(std::ptr::read_volatile(from.add(i)))
                };
            }
            black_box(&out);
        })
    });
    g.bench_function("floor_lock_copy", |b| {
        let mut n = 0u64;
        b.iter(|| {
            n += 1;
            value.0[8] = n as u8;
            floor.store(black_box(&value));
        })
    });
    g.bench_function("cell_load", |b| {
        b.iter(|| {
            let v = cell.load();
            black_box(&v);
        })
    });
    g.bench_function("cell_store", |b| {
        let mut n = 0u64;
        b.iter(|| {
            n += 1;
            value.0[8] = n as u8;
            cell.store(black_box(value)).expect("store");
        })
    });
    g.bench_function("cell_update", |b| {
        b.iter(|| {
            cell.update(|v| v.0[8] = black_box(v.0[8].wrapping_add(1)))
                .expect("update")
        })
    });
    g.bench_function("shm_rawsync_load", |b| {
        b.iter(|| {
            let v = shm.load::<N>();
            black_box(&v);
        })
    });
    g.bench_function("shm_rawsync_store", |b| {
        let mut n = 0u64;
        b.iter(|| {
            n += 1;
            value.0[8] = n as u8;
            shm.store(black_box(&value));
        })
    });
    g.bench_function("std_mutex_load", |b| {
        b.iter(|| {
            let v = *std_mutex.lock().expect("std mutex");
            black_box(&v);
        })
    });
    g.bench_function("std_mutex_store", |b| {
        let mut n = 0u64;
        b.iter(|| {
            n += 1;
            value.0[8] = n as u8;
            *std_mutex.lock().expect("std mutex") = black_box(value);
        })
    });
    g.finish();

    if name == SIZES[0] {
        bench_floor_ipc(c, ctx);
    }
    let mut g = c.benchmark_group(format!("{name}_ipc"));
    ctx.ipc(&mut g);
    for (id, spin) in [("cell_observe_spin", true), ("cell_observe_wait", false)] {
        let mut echo: Option<CellEcho<N>> = None;
        g.bench_function(id, |b| {
            let p = echo.get_or_insert_with(|| CellEcho::start(spin));
            b.iter_custom(|iters| p.round_trips(iters) / 2);
        });
    }
    {
        let mut hammer: Option<CellHammer<N>> = None;
        g.bench_function("cell_load_contended", |b| {
            let h = hammer.get_or_insert_with(CellHammer::start);
            b.iter(|| {
                let v = h.cell.load();
                black_box(&v);
            });
        });
    }
    {
        let mut hammer: Option<ShmHammer<N>> = None;
        g.bench_function("shm_rawsync_load_contended", |b| {
            let h = hammer.get_or_insert_with(|| ShmHammer::start(&ctx.dir, name));
            b.iter(|| {
                let v = h.shm.load::<N>();
                black_box(&v);
            });
        });
    }
    {
        let mut echo: Option<Box<UdsEcho<N>>> = None;
        g.bench_function("uds_bincode", |b| {
            let p = echo.get_or_insert_with(|| UdsEcho::start(&ctx.dir, name));
            b.iter_custom(|iters| p.round_trips(iters) / 2);
        });
    }
    g.finish();
}

/// A cell and a child process storing into it as fast as it can.
struct CellHammer<const N: usize> {
    cell: SharedCell<Bytes<N>>,
    ctl: Ctl,
    _peer: Peer,
}

impl<const N: usize> CellHammer<N> {
    fn start() -> Self {
        let cell = private_cell(Bytes::<N>::pattern(0));
        let ctl = Ctl::new();
        let mut peer = Peer::spawn(
            "cell_hammer",
            &[N as i64, ctl.id().into(), cell.id().into()],
            None,
        );
        Peer::wait_ready(std::slice::from_mut(&mut peer), &ctl, 1);
        // Make sure it is storing before the measurement starts.
        let v = cell.version();
        while cell.version() == v {
            peer.check();
            std::thread::yield_now();
        }
        CellHammer {
            cell,
            ctl,
            _peer: peer,
        }
    }
}

impl<const N: usize> Drop for CellHammer<N> {
    fn drop(&mut self) {
        self.ctl.u64(HALT).store(1, Ordering::SeqCst);
    }
}

fn cell_hammer<const N: usize>(ctl: i32, cell: i32) -> ChildResult {
    let ctl = Ctl::attach(ctl)?;
    let cell = SharedCell::<Bytes<N>>::options().attach_id(cell)?;
    ctl.u64(READY).fetch_add(1, Ordering::SeqCst);
    let mut value = Bytes::<N>::pattern(0);
    let mut n = 0u64;
    while ctl.u64(HALT).load(Ordering::Relaxed) == 0 {
        for _ in 0..256 {
            n += 1;
            value.set_tag(n);
            cell.store(value)?;
        }
    }
    Ok(())
}

/// A shared_memory + raw_sync value and a child process storing into it as
/// fast as it can.
struct ShmHammer<const N: usize> {
    shm: ShmRawSync,
    ctl: Ctl,
    _peer: Peer,
}

impl<const N: usize> ShmHammer<N> {
    fn start(dir: &Path, name: &str) -> Self {
        let mut shm = ShmRawSync::create(dir, &format!("{name}-contended"), N);
        shm.store(&Bytes::<N>::pattern(0));
        let ctl = Ctl::new();
        let mut peer = Peer::spawn("shm_hammer", &[N as i64, ctl.id().into()], Some(&shm.flink));
        Peer::wait_ready(std::slice::from_mut(&mut peer), &ctl, 1);
        shm.unlink();
        ShmHammer {
            shm,
            ctl,
            _peer: peer,
        }
    }
}

impl<const N: usize> Drop for ShmHammer<N> {
    fn drop(&mut self) {
        self.ctl.u64(HALT).store(1, Ordering::SeqCst);
    }
}

fn shm_hammer<const N: usize>(ctl: i32, flink: &Path) -> ChildResult {
    let ctl = Ctl::attach(ctl)?;
    let shm = ShmRawSync::open(flink);
    ctl.u64(READY).fetch_add(1, Ordering::SeqCst);
    let mut value = Bytes::<N>::pattern(0);
    let mut n = 0u64;
    while ctl.u64(HALT).load(Ordering::Relaxed) == 0 {
        for _ in 0..256 {
            n += 1;
            value.set_tag(n);
            shm.store(&value);
        }
    }
    Ok(())
}

/// Two cells, A stored by the parent, B by the child, which echoes each
/// value of A into B; both sides spin on `version()` or sleep in
/// `wait_for_change`.
struct CellEcho<const N: usize> {
    a: SharedCell<Bytes<N>>,
    b: SharedCell<Bytes<N>>,
    spin: bool,
    b_seen: u64,
    n: u64,
    value: Box<Bytes<N>>,
    peer: Peer,
}

impl<const N: usize> CellEcho<N> {
    fn start(spin: bool) -> Self {
        let a = private_cell(Bytes::<N>::pattern(0));
        let b = private_cell(Bytes::<N>::pattern(0));
        let peer = Peer::spawn(
            "cell_echo",
            &[N as i64, spin.into(), a.id().into(), b.id().into()],
            None,
        );
        let mut echo = CellEcho {
            a,
            b,
            spin,
            b_seen: 0,
            n: 0,
            value: Box::new(Bytes::pattern(0)),
            peer,
        };
        // The child stores into B once it has both cells.
        echo.wait_b();
        echo
    }

    fn wait_b(&mut self) {
        if self.spin {
            let mut spins = 0u32;
            loop {
                let v = self.b.version();
                if v != self.b_seen {
                    self.b_seen = v;
                    return;
                }
                std::hint::spin_loop();
                spins += 1;
                if spins == SPIN_CHECK {
                    spins = 0;
                    std::thread::yield_now();
                    self.peer.check();
                }
            }
        } else {
            loop {
                let v = self
                    .b
                    .wait_for_change(self.b_seen, Some(POLL))
                    .expect("wait");
                if v != self.b_seen {
                    self.b_seen = v;
                    return;
                }
                self.peer.check();
            }
        }
    }

    fn round_trips(&mut self, iters: u64) -> Duration {
        let start = Instant::now();
        for _ in 0..iters {
            self.n += 1;
            self.value.set_tag(self.n);
            self.a.store(*self.value).expect("store A");
            self.wait_b();
        }
        let elapsed = start.elapsed();
        assert_eq!(
            self.b.load().tag(),
            self.n,
            "the child echoed another value"
        );
        elapsed
    }
}

impl<const N: usize> Drop for CellEcho<N> {
    fn drop(&mut self) {
        self.value.set_tag(STOP);
        let _ = self.a.store(*self.value);
    }
}

fn cell_echo<const N: usize>(parent: libc::pid_t, spin: bool, a: i32, b: i32) -> ChildResult {
    let a = SharedCell::<Bytes<N>>::options().attach_id(a)?;
    let b = SharedCell::<Bytes<N>>::options().attach_id(b)?;
    let mut seen = a.version();
    b.store(Bytes::pattern(0))?;
    let mut spins = 0u32;
    loop {
        let v = if spin {
            a.version()
        } else {
            a.wait_for_change(seen, Some(POLL))?
        };
        if v == seen {
            if spin {
                std::hint::spin_loop();
                spins += 1;
                if spins < SPIN_CHECK {
                    continue;
                }
                spins = 0;
                std::thread::yield_now();
            }
            if parent_gone(parent) {
                return Ok(());
            }
            continue;
        }
        seen = v;
        let value = a.load();
        if value.tag() == STOP {
            return Ok(());
        }
        b.store(value)?;
    }
}

/// A Unix domain socket to a child process that decodes each value
/// (bincode, behind a 4-byte length) and sends it back encoded again.
struct UdsEcho<const N: usize> {
    stream: UnixStream,
    buf: Vec<u8>,
    value: Bytes<N>,
    n: u64,
    peer: Peer,
}

const BINCODE: bincode::config::Configuration = bincode::config::standard();

impl<const N: usize> UdsEcho<N> {
    fn start(dir: &Path, name: &str) -> Box<Self> {
        let path = dir.join(format!("uds-{name}.sock"));
        let listener = UnixListener::bind(&path).expect("bind the socket");
        listener.set_nonblocking(true).expect("nonblocking accept");
        let mut peer = Peer::spawn("uds_echo", &[N as i64], Some(&path));
        let stream = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    peer.check();
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => panic!("accept: {e}"),
            }
        };
        drop(listener);
        let _ = std::fs::remove_file(&path);
        stream.set_nonblocking(false).expect("blocking socket");
        Box::new(UdsEcho {
            stream,
            buf: vec![0; N + 64],
            value: Bytes::pattern(0),
            n: 0,
            peer,
        })
    }

    fn round_trips(&mut self, iters: u64) -> Duration {
        let start = Instant::now();
        for _ in 0..iters {
            self.n += 1;
            self.value.set_tag(self.n);
            send(&mut self.stream, &mut self.buf, &self.value).expect("send to the child");
            let back: Bytes<N> = receive(&mut self.stream, &mut self.buf)
                .expect("receive from the child")
                .expect("the child hung up");
            assert_eq!(back.tag(), self.n, "the child echoed another value");
            black_box(&back);
        }
        let elapsed = start.elapsed();
        self.peer.check();
        elapsed
    }
}

/// Encode `value` behind its length into `buf` and write it.
fn send<const N: usize>(
    stream: &mut UnixStream,
    buf: &mut [u8],
    value: &Bytes<N>,
) -> std::io::Result<()> {
    let len = bincode::encode_into_slice(value, &mut buf[4..], BINCODE)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    buf[..4].copy_from_slice(&(len as u32).to_le_bytes());
    stream.write_all(&buf[..4 + len])
}

/// Read one length-prefixed value and decode it; `None` at end of stream.
fn receive<const N: usize>(
    stream: &mut UnixStream,
    buf: &mut [u8],
) -> std::io::Result<Option<Bytes<N>>> {
    let mut len = [0u8; 4];
    match stream.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > buf.len() {
        return Err(std::io::Error::other("message too long"));
    }
    stream.read_exact(&mut buf[..len])?;
    let (value, _) = bincode::decode_from_slice::<Bytes<N>, _>(&buf[..len], BINCODE)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(Some(value))
}

fn uds_echo<const N: usize>(path: &Path) -> ChildResult {
    let mut stream = UnixStream::connect(path)?;
    let mut inbuf = vec![0u8; N + 64];
    let mut outbuf = vec![0u8; N + 64];
    while let Some(value) = receive::<N>(&mut stream, &mut inbuf)? {
        send(&mut stream, &mut outbuf, &value)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// SharedRegion and mmap-sync (the value shape of benches/region.rs)

/// The value shared, archived with rkyv 0.8 (shmstore's).
#[derive(rkyv::Archive, rkyv::Serialize)]
struct Config {
    name: String,
    values: Vec<u64>,
    labels: HashMap<String, String>,
}

use v07::Config07;

mod v07 {
    // bytecheck 0.6, which rkyv 0.7 derives `CheckBytes` with, writes its
    // unsafe calls without `unsafe` blocks inside an `unsafe fn`, as code
    // before edition 2024 could.
    #![allow(unsafe_op_in_unsafe_fn)]

    use std::collections::HashMap;

    /// The same value for mmap-sync, which archives with rkyv 0.7.
    #[derive(rkyv07::Archive, rkyv07::Serialize)]
    #[archive(crate = "rkyv07", check_bytes)]
    pub struct Config07 {
        pub name: String,
        pub values: Vec<u64>,
        pub labels: HashMap<String, String>,
    }
}

/// How long mmap-sync's `write` waits for readers of the buffer it reuses.
/// No guard is held across a write here, so it never waits.
const GRACE: Duration = Duration::from_secs(1);

fn config(len: usize) -> Config {
    Config {
        name: "edge-proxy-configuration".to_owned(),
        values: (0..len as u64)
            .map(|i| i.wrapping_mul(0x9e37_79b9))
            .collect(),
        labels: (0..8)
            .map(|i| (format!("label-{i:02}"), format!("value-of-label-{i:02}")))
            .collect(),
    }
}

fn mirror(c: &Config) -> Config07 {
    Config07 {
        name: c.name.clone(),
        values: c.values.clone(),
        labels: c.labels.clone(),
    }
}

fn archive_len(c: &Config) -> usize {
    rkyv::to_bytes::<rancor::Error>(c)
        .expect("serialise a config")
        .len()
}

/// A config whose rkyv 0.8 archive is about `target` bytes.
fn config_of_size(target: usize) -> Config {
    let base = archive_len(&config(0));
    config(target.saturating_sub(base) / size_of::<u64>())
}

/// A region holding one published `value`, already marked for removal.
fn region_with(value: &Config) -> SharedRegion<Config> {
    let capacity = archive_len(value) + 4096;
    let region = SharedRegion::<Config>::create(Key::PRIVATE, capacity).expect("create a region");
    region.remove().expect("mark the region for removal");
    region.publish(value).expect("publish");
    region
}

/// An mmap-sync writer and reader on the same files, one value written.
struct MmapSync {
    writer: Synchronizer,
    reader: Synchronizer,
}

impl MmapSync {
    fn new(dir: &Path, name: &str, value: &Config07) -> Self {
        let prefix = dir.join(name);
        let mut writer = Synchronizer::new(prefix.as_os_str());
        let reader = Synchronizer::new(prefix.as_os_str());
        writer.write(value, GRACE).expect("mmap-sync write");
        MmapSync { writer, reader }
    }

    /// mmap-sync's read: guard made, one field touched, guard dropped.
    #[inline]
    fn read(&mut self, check_bytes: bool) -> usize {
        // SAFETY: the guard is dropped before this returns, long before any
        // write's grace period could run out (nothing writes meanwhile: the
        // writer is ours, on this thread). Unchecked, rkyv trusts the bytes:
        // they are the archive of a `Config07` that our writer produced in
        // files of a directory made for this run, which no other process
        // writes.
        let guard = unsafe { self.reader.read::<Config07>(check_bytes) }.expect("mmap-sync read");
        black_box(guard.values.len())
    }
}

fn bench_region(c: &mut Criterion, ctx: &Ctx) {
    let values: Vec<(&str, Config, Config07)> = REGION_SIZES
        .iter()
        .map(|&(name, target)| {
            let v = config_of_size(target);
            let m = mirror(&v);
            (name, v, m)
        })
        .collect();

    for (name, value, value07) in &values {
        let region = region_with(value);
        drop(region.read().expect("read")); // validate this version once
        let mut mmap = MmapSync::new(&ctx.dir, name, value07);
        assert_eq!(mmap.read(true), value.values.len());
        let mut local = AlignedVec::<16>::new();

        let mut g = c.benchmark_group(format!("region_{name}"));
        ctx.local(&mut g);
        g.bench_function("read", |b| {
            b.iter(|| {
                let guard = region.read().expect("read");
                black_box(guard.values.len())
            })
        });
        g.bench_function("mmap_sync_read_unchecked", |b| b.iter(|| mmap.read(false)));
        g.bench_function("mmap_sync_read_checked", |b| b.iter(|| mmap.read(true)));
        g.bench_function("publish", |b| {
            b.iter(|| black_box(region.publish(value).expect("publish")))
        });
        g.bench_function("rkyv_local", |b| {
            b.iter(|| {
                let mut buf = std::mem::take(&mut local);
                buf.clear();
                local = rkyv::api::high::to_bytes_in::<_, rancor::Error>(value, buf)
                    .expect("serialise");
                black_box(local.len())
            })
        });
        g.bench_function("mmap_sync_write", |b| {
            b.iter(|| black_box(mmap.writer.write(value07, GRACE).expect("mmap-sync write")))
        });
        g.finish();
    }

    // Each iteration publishes (untimed), then times one first read: the
    // wall time is mostly the publishes, so this group measures briefly.
    let mut g = c.benchmark_group("region_first_read");
    g.warm_up_time(ctx.time(0.2))
        .measurement_time(ctx.time(0.5))
        .sample_size(ctx.samples(20));
    for (name, value, _) in &values {
        let region = region_with(value);
        g.bench_function(*name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    region.publish(value).expect("publish");
                    let start = Instant::now();
                    let guard = region.read().expect("read");
                    black_box(guard.values.len());
                    drop(guard);
                    total += start.elapsed();
                }
                total
            })
        });
    }
    g.finish();
}

// ---------------------------------------------------------------------------
// Scaling: reader processes against one paced writer process

/// The result of one scaling configuration (rates per second, medians of
/// the windows).
struct Scale {
    readers: usize,
    loads: f64,
    stores: f64,
}

fn scaling(ctx: &Ctx, readers: usize) -> Scale {
    let cell = private_cell(Bytes::<64>::pattern(0));
    let ctl = Ctl::new();
    let mut peers = vec![Peer::spawn(
        "scale_writer",
        &[ctl.id().into(), cell.id().into()],
        None,
    )];
    for i in 0..readers {
        peers.push(Peer::spawn(
            "scale_reader",
            &[ctl.id().into(), cell.id().into(), i as i64],
            None,
        ));
    }
    Peer::wait_ready(&mut peers, &ctl, readers as u64 + 1);
    ctl.u64(START).store(1, Ordering::SeqCst);

    let snapshot = || {
        let loads: u64 = (0..readers)
            .map(|i| ctl.u64(READER_COUNT + i).load(Ordering::Relaxed))
            .sum();
        (
            Instant::now(),
            loads,
            ctl.u64(WRITER_COUNT).load(Ordering::Relaxed),
        )
    };
    std::thread::sleep(ctx.time(0.3));
    let mut load_rates = Vec::new();
    let mut store_rates = Vec::new();
    for _ in 0..5 {
        let (t0, l0, s0) = snapshot();
        std::thread::sleep(ctx.time(0.6));
        let (t1, l1, s1) = snapshot();
        let secs = (t1 - t0).as_secs_f64();
        load_rates.push((l1 - l0) as f64 / secs);
        store_rates.push((s1 - s0) as f64 / secs);
        for p in &mut peers {
            p.check();
        }
    }
    ctl.u64(HALT).store(1, Ordering::SeqCst);
    drop(peers);
    let scale = Scale {
        readers,
        loads: median(&mut load_rates),
        stores: median(&mut store_rates),
    };
    println!(
        "scaling/{readers} readers: {:.1} M loads/s total, writer {:.0} stores/s",
        scale.loads / 1e6,
        scale.stores
    );
    scale
}

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// How many loads a reader makes between two updates of its count.
const COUNT_EVERY: u64 = 1024;

fn scale_reader(ctl: i32, cell: i32, slot: usize) -> ChildResult {
    let ctl = Ctl::attach(ctl)?;
    let cell = SharedCell::<Bytes<64>>::options().attach_id(cell)?;
    ctl.u64(READY).fetch_add(1, Ordering::SeqCst);
    while ctl.u64(START).load(Ordering::SeqCst) == 0 {
        std::thread::sleep(Duration::from_micros(100));
    }
    let count = ctl.u64(READER_COUNT + slot);
    let mut n = 0u64;
    while ctl.u64(HALT).load(Ordering::Relaxed) == 0 {
        for _ in 0..COUNT_EVERY {
            black_box(cell.load());
        }
        n += COUNT_EVERY;
        count.store(n, Ordering::Relaxed);
    }
    Ok(())
}

fn scale_writer(ctl: i32, cell: i32) -> ChildResult {
    let ctl = Ctl::attach(ctl)?;
    let cell = SharedCell::<Bytes<64>>::options().attach_id(cell)?;
    ctl.u64(READY).fetch_add(1, Ordering::SeqCst);
    while ctl.u64(START).load(Ordering::SeqCst) == 0 {
        std::thread::sleep(Duration::from_micros(100));
    }
    // Sleep-paced: wake every ~60 µs (a 50 µs sleep plus timer slack) and
    // make the stores due since the start, so the rate holds on average
    // while the writer uses little CPU.
    let start = Instant::now();
    let mut value = Bytes::<64>::pattern(0);
    let mut done = 0u64;
    while ctl.u64(HALT).load(Ordering::Relaxed) == 0 {
        let due = (start.elapsed().as_nanos() * u128::from(WRITER_RATE) / 1_000_000_000) as u64;
        while done < due {
            done += 1;
            value.set_tag(done);
            cell.store(value)?;
        }
        ctl.u64(WRITER_COUNT).store(done, Ordering::Relaxed);
        std::thread::sleep(Duration::from_micros(50));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The machine

struct Machine {
    cpu: String,
    cores: usize,
    kernel: String,
    rustc: String,
    date: String,
    virtual_machine: bool,
    load_before: String,
    busy_before: Vec<String>,
}

impl Machine {
    fn probe() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let field = |name: &str| {
            cpuinfo
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        };
        let rustc = Command::new(std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()))
            .arg("--version")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|| "unknown".into());
        Machine {
            cpu: field("model name").unwrap_or_else(|| "unknown".into()),
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_owned())
                .unwrap_or_else(|_| "unknown".into()),
            rustc,
            date: utc_now(),
            virtual_machine: field("flags")
                .is_some_and(|f| f.split(' ').any(|x| x == "hypervisor")),
            load_before: load_average(),
            busy_before: busy_processes(),
        }
    }
}

fn list_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split(' ').take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Other processes that are running (state R) right now, by name: what
/// competes with the run for the CPUs.
fn busy_processes() -> Vec<String> {
    let me = std::process::id();
    let mut names = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return names;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ...: comm may hold spaces and parentheses.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let state = stat[close + 1..].trim_start().chars().next();
        if state == Some('R') {
            names.push(stat[open + 1..close].to_owned());
        }
    }
    names.sort();
    names
}

fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m as u32, d as u32)
}

// ---------------------------------------------------------------------------
// The report

/// Criterion's medians of this run.
struct Results {
    out_dir: PathBuf,
    since: SystemTime,
}

impl Results {
    /// The median of `group/bench` in nanoseconds, if this run measured it.
    fn get(&self, group: &str, bench: &str) -> Option<f64> {
        let path = self
            .out_dir
            .join(group)
            .join(bench)
            .join("new/estimates.json");
        let modified = std::fs::metadata(&path).ok()?.modified().ok()?;
        if modified < self.since {
            return None;
        }
        let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
        json["median"]["point_estimate"].as_f64()
    }
}

fn fmt_ns(ns: Option<f64>) -> String {
    match ns {
        None => "n/a".into(),
        Some(ns) if ns >= 1_000_000.0 => format!("{:.2} ms", ns / 1e6),
        Some(ns) if ns >= 10_000.0 => format!("{:.1} µs", ns / 1e3),
        Some(ns) if ns >= 1_000.0 => format!("{:.2} µs", ns / 1e3),
        Some(ns) if ns >= 100.0 => format!("{ns:.0} ns"),
        Some(ns) => format!("{ns:.2} ns"),
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

fn fmt_ratio(r: Option<f64>) -> String {
    match r {
        None => "n/a".into(),
        Some(r) if r >= 100.0 => format!("{r:.0}x"),
        Some(r) if r < 0.1 => format!("1/{:.0}", 1.0 / r),
        Some(r) if r >= 10.0 => format!("{r:.1}x"),
        Some(r) => format!("{r:.2}x"),
    }
}

/// One acceptance target: met when `value` ≤ `max` (a ratio or, with
/// `unit_ns`, nanoseconds).
struct Target {
    what: String,
    value: Option<f64>,
    max: f64,
    strict: bool,
    unit_ns: bool,
}

impl Target {
    fn row(&self) -> String {
        let fmt = |x: f64| {
            if self.unit_ns {
                fmt_ns(Some(x))
            } else {
                fmt_ratio(Some(x))
            }
        };
        let bound = format!("{} {}", if self.strict { "<" } else { "≤" }, fmt(self.max));
        let (measured, verdict) = match self.value {
            None => ("n/a".to_owned(), "not measured".to_owned()),
            Some(v) => {
                let met = if self.strict {
                    v < self.max
                } else {
                    v <= self.max
                };
                let verdict = if met {
                    "**met**".to_owned()
                } else {
                    format!(
                        "**missed** by {} ({:.0}% over)",
                        if self.unit_ns {
                            fmt_ns(Some(v - self.max))
                        } else {
                            format!("{:.2}x", v - self.max)
                        },
                        (v / self.max - 1.0) * 100.0
                    )
                };
                (fmt(v), verdict)
            }
        };
        format!("| {} | {measured} | {bound} | {verdict} |", self.what)
    }
}

fn table(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    writeln!(out, "| {} |", header.join(" | ")).expect("write to a String");
    let align: Vec<&str> = header
        .iter()
        .enumerate()
        .map(|(i, _)| if i == 0 { "---" } else { "---:" })
        .collect();
    writeln!(out, "|{}|", align.join("|")).expect("write to a String");
    for r in rows {
        writeln!(out, "| {} |", r.join(" | ")).expect("write to a String");
    }
    out.push('\n');
}

fn report(r: &Results, m: &Machine, scaling: &[Scale], took: Duration, quick: bool) -> String {
    let mut out = String::new();
    let w = &mut out;
    let size_header = ["", "64 B", "4 KiB", "64 KiB"];
    let region_header = ["", "1 KiB", "64 KiB", "1 MiB"];
    let sized = |id: &str| -> Vec<Option<f64>> {
        SIZES
            .iter()
            .map(|s| r.get(s, id).or_else(|| r.get(&format!("{s}_ipc"), id)))
            .collect()
    };
    let regional = |id: &str| -> Vec<Option<f64>> {
        REGION_SIZES
            .iter()
            .map(|(s, _)| {
                if id == "first_read" {
                    r.get("region_first_read", s)
                } else {
                    r.get(&format!("region_{s}"), id)
                }
            })
            .collect()
    };
    let ns_row = |label: &str, xs: &[Option<f64>]| -> Vec<String> {
        std::iter::once(label.to_owned())
            .chain(xs.iter().map(|&x| fmt_ns(x)))
            .collect()
    };
    let ratio_row = |label: &str, a: &[Option<f64>], b: &[Option<f64>]| -> Vec<String> {
        std::iter::once(label.to_owned())
            .chain(a.iter().zip(b).map(|(&x, &y)| fmt_ratio(ratio(x, y))))
            .collect()
    };

    writeln!(
        w,
        "Machine: {}{}, {} cores (`available_parallelism`), Linux {}, {}. \
         Run on {}, {:.1} minutes{}. Load average before the run: {}, after it: {}; \
         other processes running at its start: {}; at its end: {}.\n",
        m.cpu,
        if m.virtual_machine {
            " (virtual machine)"
        } else {
            ""
        },
        m.cores,
        m.kernel,
        m.rustc,
        m.date,
        took.as_secs_f64() / 60.0,
        if quick { ", QUICK smoke settings" } else { "" },
        m.load_before,
        load_average(),
        list_or_none(&m.busy_before),
        list_or_none(&busy_processes()),
    )
    .expect("write to a String");

    // Medians by value size.
    writeln!(w, "### Medians by value size\n").expect("write to a String");
    let rows_spec: [(&str, &str); 15] = [
        (
            "floor: plain copy (`memcpy`) out of a segment",
            "floor_copy",
        ),
        (
            "floor: word-by-word volatile copy out of a segment",
            "floor_copy_words",
        ),
        (
            "floor: robust mutex lock + copy in + unlock",
            "floor_lock_copy",
        ),
        ("`SharedCell::load`", "cell_load"),
        ("`SharedCell::store`", "cell_store"),
        ("`SharedCell::update`", "cell_update"),
        (
            "`SharedCell::load`, another process storing nonstop",
            "cell_load_contended",
        ),
        (
            "`SharedCell` store→observed, spinning reader (one way)",
            "cell_observe_spin",
        ),
        (
            "`SharedCell` store→observed, `wait_for_change` reader (one way)",
            "cell_observe_wait",
        ),
        (
            "shared_memory + raw_sync: lock, copy out",
            "shm_rawsync_load",
        ),
        (
            "shared_memory + raw_sync: lock, copy in",
            "shm_rawsync_store",
        ),
        (
            "shared_memory + raw_sync: copy out, another process storing nonstop",
            "shm_rawsync_load_contended",
        ),
        (
            "Unix socket + bincode, echo (round trip / 2)",
            "uds_bincode",
        ),
        ("`std::sync::Mutex<T>`: lock, copy out", "std_mutex_load"),
        ("`std::sync::Mutex<T>`: lock, copy in", "std_mutex_store"),
    ];
    let rows: Vec<Vec<String>> = rows_spec
        .iter()
        .map(|(label, id)| ns_row(label, &sized(id)))
        .collect();
    table(w, &size_header, &rows);

    writeln!(w, "### Floors without a value\n").expect("write to a String");
    table(
        w,
        &["", "median"],
        &[
            vec![
                "robust process-shared mutex, lock + unlock".into(),
                fmt_ns(r.get("floor", "robust_lock_unlock")),
            ],
            vec![
                "context: a `getpid` system call".into(),
                fmt_ns(r.get("floor", "getpid")),
            ],
            vec![
                "shared futex wake between two processes (one way)".into(),
                fmt_ns(r.get("floor_ipc", "futex_wake")),
            ],
            vec![
                "cache line between two spinning processes (one way)".into(),
                fmt_ns(r.get("floor_ipc", "cacheline")),
            ],
        ],
    );

    writeln!(w, "### Ratios by value size\n").expect("write to a String");
    let futex = r.get("floor_ipc", "futex_wake");
    let line = r.get("floor_ipc", "cacheline");
    let rows = vec![
        ratio_row(
            "`load` / plain copy (`memcpy`)",
            &sized("cell_load"),
            &sized("floor_copy"),
        ),
        ratio_row(
            "`load` / word-by-word volatile copy",
            &sized("cell_load"),
            &sized("floor_copy_words"),
        ),
        ratio_row(
            "`store` / robust lock + copy + unlock",
            &sized("cell_store"),
            &sized("floor_lock_copy"),
        ),
        ratio_row(
            "`update` / robust lock + copy + unlock",
            &sized("cell_update"),
            &sized("floor_lock_copy"),
        ),
        ratio_row(
            "`load` contended / uncontended",
            &sized("cell_load_contended"),
            &sized("cell_load"),
        ),
        ratio_row(
            "store→observed spinning / cache-line ping-pong",
            &sized("cell_observe_spin"),
            &[line; 3],
        ),
        ratio_row(
            "store→observed `wait_for_change` / futex wake",
            &sized("cell_observe_wait"),
            &[futex; 3],
        ),
        ratio_row(
            "shared_memory + raw_sync copy out / `load`",
            &sized("shm_rawsync_load"),
            &sized("cell_load"),
        ),
        ratio_row(
            "shared_memory + raw_sync copy in / `store`",
            &sized("shm_rawsync_store"),
            &sized("cell_store"),
        ),
        ratio_row(
            "shared_memory + raw_sync contended / `load` contended",
            &sized("shm_rawsync_load_contended"),
            &sized("cell_load_contended"),
        ),
        ratio_row(
            "Unix socket + bincode / store→observed `wait_for_change`",
            &sized("uds_bincode"),
            &sized("cell_observe_wait"),
        ),
        ratio_row(
            "`std::sync::Mutex` copy out / `load`",
            &sized("std_mutex_load"),
            &sized("cell_load"),
        ),
        ratio_row(
            "`std::sync::Mutex` copy in / `store`",
            &sized("std_mutex_store"),
            &sized("cell_store"),
        ),
    ];
    table(w, &size_header, &rows);
    writeln!(
        w,
        "A ratio above 1 means the second is faster: for the peers' rows, \
         ours is that many times faster.\n"
    )
    .expect("write to a String");

    writeln!(
        w,
        "### SharedRegion and mmap-sync (archive of about the size given)\n"
    )
    .expect("write to a String");
    let region_rows = [
        ("`read`, version already validated", "read"),
        ("`read`, first of a new version (validates)", "first_read"),
        ("`publish`", "publish"),
        ("rkyv `to_bytes_in` a local `AlignedVec`", "rkyv_local"),
        (
            "mmap-sync `read(check_bytes = false)`",
            "mmap_sync_read_unchecked",
        ),
        (
            "mmap-sync `read(check_bytes = true)`",
            "mmap_sync_read_checked",
        ),
        ("mmap-sync `write`", "mmap_sync_write"),
    ];
    let mut rows: Vec<Vec<String>> = region_rows
        .iter()
        .map(|(label, id)| ns_row(label, &regional(id)))
        .collect();
    rows.push(ratio_row(
        "`read` / mmap-sync unchecked `read`",
        &regional("read"),
        &regional("mmap_sync_read_unchecked"),
    ));
    rows.push(ratio_row(
        "`publish` / mmap-sync `write`",
        &regional("publish"),
        &regional("mmap_sync_write"),
    ));
    rows.push(ratio_row(
        "`publish` / local rkyv serialisation",
        &regional("publish"),
        &regional("rkyv_local"),
    ));
    table(w, &region_header, &rows);

    writeln!(
        w,
        "### Scaling: `load` of a 64 B cell by N reader processes, one writer \
         process storing about {WRITER_RATE} times a second\n"
    )
    .expect("write to a String");
    let rows: Vec<Vec<String>> = scaling
        .iter()
        .map(|s| {
            vec![
                s.readers.to_string(),
                format!("{:.1} M", s.loads / 1e6),
                format!("{:.1} M", s.loads / 1e6 / s.readers as f64),
                format!("{:.0}", s.stores),
            ]
        })
        .collect();
    table(
        w,
        &[
            "reader processes",
            "loads/s, total",
            "loads/s per reader",
            "writer stores/s",
        ],
        &rows,
    );
    writeln!(
        w,
        "This machine has {} cores: beyond that many busy processes the \
         readers share them, so the total cannot grow.\n",
        m.cores
    )
    .expect("write to a String");

    writeln!(w, "### Acceptance targets\n").expect("write to a String");
    let (reads, first_ns) = (regional("read"), regional("read")[0]);
    let mut targets = vec![
        Target {
            what: "`load` / plain 64-byte copy, word by word (volatile, as `benches/cell.rs`)"
                .into(),
            value: ratio(sized("cell_load")[0], sized("floor_copy_words")[0]),
            max: 2.0,
            strict: false,
            unit_ns: false,
        },
        Target {
            what: "`load` / plain 64-byte copy, `memcpy` (vector moves)".into(),
            value: ratio(sized("cell_load")[0], sized("floor_copy")[0]),
            max: 2.0,
            strict: false,
            unit_ns: false,
        },
        Target {
            what: "`store` / robust lock + 64-byte copy + unlock".into(),
            value: ratio(sized("cell_store")[0], sized("floor_lock_copy")[0]),
            max: 2.0,
            strict: false,
            unit_ns: false,
        },
        Target {
            what: "store→wake / bare futex wake (64 B, one way)".into(),
            value: ratio(sized("cell_observe_wait")[0], futex),
            max: 1.5,
            strict: false,
            unit_ns: false,
        },
    ];
    for ((name, _), &ns) in REGION_SIZES.iter().zip(&reads) {
        targets.push(Target {
            what: format!("region `read` of a validated version, {name}"),
            value: ns,
            max: 50.0,
            strict: true,
            unit_ns: true,
        });
    }
    let last_ns = reads[reads.len() - 1];
    targets.push(Target {
        what: "region `read`, 1 MiB vs 1 KiB (slower / faster)".into(),
        value: match (first_ns, last_ns) {
            (Some(a), Some(b)) => Some(a.max(b) / a.min(b)),
            _ => None,
        },
        max: 1.5,
        strict: false,
        unit_ns: false,
    });
    let unchecked = regional("mmap_sync_read_unchecked");
    let publish = regional("publish");
    let write = regional("mmap_sync_write");
    for (i, (name, _)) in REGION_SIZES.iter().enumerate() {
        targets.push(Target {
            what: format!("region `read` / mmap-sync unchecked `read`, {name}"),
            value: ratio(reads[i], unchecked[i]),
            max: 1.0,
            strict: false,
            unit_ns: false,
        });
    }
    for (i, (name, _)) in REGION_SIZES.iter().enumerate() {
        targets.push(Target {
            what: format!("`publish` / mmap-sync `write`, {name} (≥ 2x faster)"),
            value: ratio(publish[i], write[i]),
            max: 0.5,
            strict: false,
            unit_ns: false,
        });
    }
    targets.push(Target {
        what: "`publish` / local rkyv serialisation, 1 MiB".into(),
        value: ratio(publish[2], regional("rkyv_local")[2]),
        max: 1.5,
        strict: false,
        unit_ns: false,
    });
    writeln!(w, "| target | measured | bound | verdict |").expect("write to a String");
    writeln!(w, "|---|---:|---:|---|").expect("write to a String");
    for t in &targets {
        writeln!(w, "{}", t.row()).expect("write to a String");
    }
    out
}

const BEGIN: &str = "<!-- generated by `cargo bench --bench compare`: begin -->";
const END: &str = "<!-- generated by `cargo bench --bench compare`: end -->";

/// Put `report` between the markers of BENCHMARKS.md (creating the file if
/// needed), keeping what is written around them.
fn write_benchmarks_md(report: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("BENCHMARKS.md");
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    let block = format!("{BEGIN}\n\n{report}\n{END}");
    let new = match (old.find(BEGIN), old.find(END)) {
        (Some(b), Some(e)) if b < e => {
            format!("{}{block}{}", &old[..b], &old[e + END.len()..])
        }
        _ => format!("# Benchmarks\n\n{block}\n{old}"),
    };
    std::fs::write(&path, new).expect("write BENCHMARKS.md");
    println!("wrote {}", path.display());
}
