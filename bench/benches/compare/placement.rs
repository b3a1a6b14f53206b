//! Where the two processes of a measurement run: both on one CPU, or on two
//! different CPUs, set with `sched_setaffinity`. The parent pins every
//! thread it has while a [`Pin`] lives, and puts back the mask its main
//! thread had when the pin goes; a child started meanwhile finds its CPU in
//! [`CPU_ENV`] and pins itself before anything else ([`pin_child`]). The
//! CPUs are the first one or two of the parent's mask.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Set in a child process that is to run on one CPU: that CPU's number.
pub const CPU_ENV: &str = "SHMSTORE_BENCH_COMPARE_CPU";

/// [`CHILD_CPU`] when no pin is held.
const NO_CPU: usize = usize::MAX;
/// The CPU of the children started while a [`Pin`] is held.
static CHILD_CPU: AtomicUsize = AtomicUsize::new(NO_CPU);

/// Where a measurement's parent and child run.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Placement {
    /// Both on one CPU: a wake-up is a switch from one process to the other.
    SameCpu,
    /// Each on its own CPU: a wake-up crosses to the other CPU (and may
    /// find it idle).
    TwoCpus,
}

impl Placement {
    pub const ALL: [Placement; 2] = [Placement::SameCpu, Placement::TwoCpus];

    /// The name in the results (`placed_<name>` groups).
    pub fn name(self) -> &'static str {
        match self {
            Placement::SameCpu => "same_cpu",
            Placement::TwoCpus => "two_cpus",
        }
    }

    /// The parent's CPU and the child's, or why this placement cannot be
    /// had here.
    pub fn cpus(self) -> Result<(usize, usize), String> {
        let allowed = allowed_cpus().map_err(|e| format!("sched_getaffinity: {e}"))?;
        match (self, allowed.as_slice()) {
            (_, []) => Err("this process may run on no CPU".into()),
            (Placement::SameCpu, [a, ..]) => Ok((*a, *a)),
            (Placement::TwoCpus, [a, b, ..]) => Ok((*a, *b)),
            (Placement::TwoCpus, [a]) => Err(format!(
                "this process may run on one CPU only (CPU {a}), so no two processes \
                 can run on two CPUs"
            )),
        }
    }
}

/// The CPUs this thread may run on, in increasing order.
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    let set = get_affinity()?;
    Ok((0..libc::CPU_SETSIZE as usize)
        // SAFETY: `cpu` < CPU_SETSIZE, inside the set.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect())
}

/// The calling thread's affinity mask.
fn get_affinity() -> io::Result<libc::cpu_set_t> {
    // SAFETY: an all-zero cpu_set_t is an empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is valid for writes of its size for the call.
    let r = unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(set)
}

/// Set the mask of thread `tid` (0: the calling thread).
fn set_affinity(tid: libc::pid_t, set: &libc::cpu_set_t) -> io::Result<()> {
    // SAFETY: `set` is valid for reads of its size for the call.
    let r = unsafe { libc::sched_setaffinity(tid, size_of::<libc::cpu_set_t>(), set) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The mask holding `cpu` alone.
fn only(cpu: usize) -> libc::cpu_set_t {
    assert!(cpu < libc::CPU_SETSIZE as usize, "CPU {cpu} out of range");
    // SAFETY: an all-zero cpu_set_t is an empty set; `cpu` is in range.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        set
    }
}

/// Set the mask of every thread of this process. A thread that exits
/// meanwhile is skipped; threads started later inherit the mask of the
/// thread that starts them.
fn set_all_threads(set: &libc::cpu_set_t) -> io::Result<()> {
    for entry in std::fs::read_dir("/proc/self/task")? {
        let Some(tid) = entry?
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<libc::pid_t>().ok())
        else {
            continue;
        };
        match set_affinity(tid, set) {
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
            r => r?,
        }
    }
    Ok(())
}

/// This process pinned to one CPU, and the children it starts meanwhile to
/// another (or the same); undone on drop.
pub struct Pin {
    saved: libc::cpu_set_t,
}

impl Pin {
    /// Pin this process to `parent` and the children started from now on
    /// to `child`.
    pub fn new((parent, child): (usize, usize)) -> Pin {
        let saved = get_affinity().expect("sched_getaffinity");
        let pin = Pin { saved };
        set_all_threads(&only(parent)).expect("pin this process to its CPU");
        CHILD_CPU.store(child, Ordering::SeqCst);
        pin
    }
}

impl Drop for Pin {
    fn drop(&mut self) {
        CHILD_CPU.store(NO_CPU, Ordering::SeqCst);
        if let Err(e) = set_all_threads(&self.saved) {
            // Not a panic: this may run while unwinding from one.
            eprintln!("could not restore this process's CPU mask: {e}");
        }
    }
}

/// The CPU a child started now is to run on, while a [`Pin`] is held.
pub fn child_cpu() -> Option<usize> {
    let cpu = CHILD_CPU.load(Ordering::SeqCst);
    (cpu != NO_CPU).then_some(cpu)
}

/// In a child process: pin it to the CPU in [`CPU_ENV`], if set. Called
/// first thing, so that every thread the child starts inherits the mask.
pub fn pin_child() -> Result<(), Box<dyn std::error::Error>> {
    let Some(cpu) = std::env::var_os(CPU_ENV) else {
        return Ok(());
    };
    let cpu: usize = cpu.to_str().ok_or("CPU number not UTF-8")?.parse()?;
    set_affinity(0, &only(cpu)).map_err(|e| format!("pin to CPU {cpu}: {e}"))?;
    Ok(())
}
