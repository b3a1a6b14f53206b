//! Named steps of the cross-process protocols, where a test can make this
//! process die or stop exactly (feature `crash-points`; without it every
//! point compiles to nothing).
//!
//! A process started with `SHMSTORE_CRASH_AT=STEP` kills itself with
//! `SIGKILL` the first time it reaches `STEP`, as `kill -9` would at that
//! instruction; `STEP@N` waits for the `N`th time; `STEP:stop` stops itself
//! with `SIGSTOP` instead, so that the test can look at the segment before
//! it kills or continues the process. `tests/crash_points.rs` and
//! `tests/life.rs` (the life of an object) hold the tables of the steps and
//! what must hold after a death or a stop there. The signal is sent
//! through `sys::proc`, as every system call is.

/// Every named step, in protocol order.
#[cfg_attr(not(feature = "crash-points"), allow(dead_code))]
pub const STEPS: &[&str] = &[
    // The life of an object (store/life/; the command's listings,
    // catalog.rs).
    "create.before_shmget",
    "create.after_shmget",
    "create.after_claim",
    "create.after_scan",
    "create.after_header",
    "create.after_mutex",
    "create.after_value",
    "replace.after_judge",
    "remove.after_list",
    "remove.after_mark",
    "remove.finish",
    "gc.after_list",
    "gc.after_judge",
    "gc.after_mark",
    // A cell's store (cell/mod.rs, cell/ring.rs).
    "cell.after_lock",
    // A lease taken (cell/lease.rs): its stores go through the cell steps.
    "lease.after_lock",
    "cell.after_announce",
    "cell.after_slot",
    "cell.after_commit",
    // A region's publish (region/publish.rs, region/buffers.rs); the
    // announcement is made inside the choice of a buffer.
    "region.after_lock",
    "region.after_announce",
    "region.after_choose",
    "region.after_write",
    "region.after_len",
    "region.after_commit",
    // Waiting (sync/notify.rs): a writer before it wakes the waiters after
    // either kind's commit, a waiter before it sleeps.
    "notify.before_wake",
    "notify.before_sleep",
    // A watcher thread before it sleeps on all its words (watch/hub.rs).
    "notify.before_sleep_any",
    // A reader's pin (region/pin_slot.rs).
    "pin.after_claim",
    "pin.after_start",
    "pin.after_pin",
    // A reclaim of a dead reader's pin (region/pin_slot.rs).
    "reclaim.after_judge",
    // The bridge between hosts (bridge/: its feature `crash-points`): an
    // exporter with a value read and not yet put, and put (the bucket
    // acknowledged it) and not yet noted; an importer with an entry
    // decoded and not yet written, and written and not yet noted.
    "bridge.export.after_read",
    "bridge.export.after_put",
    "bridge.import.after_decode",
    "bridge.import.after_write",
];

#[cfg(feature = "crash-points")]
mod armed {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

    struct Arm {
        step: String,
        at: u64,
        stop: bool,
        hits: AtomicU64,
    }

    /// Whether a step may be armed in this process: `UNKNOWN` until a point
    /// looked at the environment, and for good if it named a step; `NO`
    /// once it is known that none is armed.
    static ARMED: AtomicU8 = AtomicU8::new(UNKNOWN);
    const UNKNOWN: u8 = 0;
    const NO: u8 = 1;

    fn arm() -> Option<&'static Arm> {
        static ARM: OnceLock<Option<Arm>> = OnceLock::new();
        ARM.get_or_init(|| {
            let spec = std::env::var("SHMSTORE_CRASH_AT").ok()?;
            let (spec, stop) = match spec.strip_suffix(":stop") {
                Some(s) => (s.to_owned(), true),
                None => (spec, false),
            };
            let (step, at) = match spec.split_once('@') {
                Some((s, n)) => (s.to_owned(), n.parse().unwrap_or(1)),
                None => (spec, 1),
            };
            assert!(
                super::STEPS.contains(&step.as_str()),
                "SHMSTORE_CRASH_AT names no step: {step}"
            );
            Some(Arm {
                step,
                at,
                stop,
                hits: AtomicU64::new(0),
            })
        })
        .as_ref()
    }

    #[cold]
    #[inline(never)]
    fn reached(step: &'static str) {
        let Some(arm) = arm() else {
            ARMED.store(NO, Ordering::Relaxed);
            return;
        };
        if arm.step == step && arm.hits.fetch_add(1, Ordering::SeqCst) + 1 == arm.at {
            if arm.stop {
                crate::sys::proc::stop_self();
            } else {
                crate::sys::proc::kill_self();
            }
        }
    }

    /// Die or stop here if this is the armed step: one load and a branch
    /// when nothing is armed.
    #[inline(always)]
    pub fn point(step: &'static str) {
        if ARMED.load(Ordering::Relaxed) != NO {
            reached(step);
        }
    }
}

#[cfg(feature = "crash-points")]
pub use armed::point;

/// Die or stop here if this is the armed step (no-op: the feature
/// `crash-points` is off).
#[cfg(not(feature = "crash-points"))]
#[inline(always)]
pub fn point(_step: &'static str) {}
