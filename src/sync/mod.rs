//! Synchronisation between processes over shared memory: the robust write
//! mutex, futex wait/wake on a shared word, and atomic copies for the
//! cell's seqlock. Together with `segment.rs`, the only code that
//! calls `libc`.

pub mod atomic;
pub mod copy;
pub mod futex;
pub mod mutex;
pub mod notify;
pub mod process;
pub mod ready;
