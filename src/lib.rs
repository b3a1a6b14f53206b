//! # shmstore
//!
//! Typed objects shared between cooperating processes on one Linux host
//! through System V shared memory, read without copying.
//!
//! The crate is built in layers, each in its own module:
//!
//! - [`Key`]: the name of a segment: a raw value, `IPC_PRIVATE`, or `ftok`.
//! - [`Segment`]: a safe wrapper of `shmget`, `shmat`, `shmdt` and `shmctl`.
//! - [`header`]: the validated header at the start of every segment.
//! - [`SharedCell`]: one plain-data value, read lock-free, written under a
//!   robust process-shared mutex, with change notification.
//! - [`SharedRegion`]: an rkyv archive (strings, vectors, maps) read in
//!   place by many processes, each read pinning the buffer it borrows.
//! - [`Error`]: the one error type; each variant says what to do.
//!
//! ```
//! use shmstore::{Key, Segment};
//!
//! let seg = Segment::options().size(4096).create(true).open(Key::PRIVATE)?;
//! seg.write_at(0, &42u64.to_ne_bytes())?;
//! let info = seg.info()?;
//! assert_eq!(info.size, 4096);
//! assert_eq!(info.nattch, 1);
//! assert_eq!(info.cpid, std::process::id() as i32);
//! seg.remove()?;
//! # Ok::<(), shmstore::Error>(())
//! ```

#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod cell;
#[cfg(feature = "crash-points")]
#[doc(hidden)]
pub mod crash;
#[cfg(not(feature = "crash-points"))]
mod crash;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod header;
mod identity;
mod image;
pub mod inspect;
pub mod key;
mod listing;
mod raw;
pub mod region;
pub mod segment;
mod sync;

/// The protocols, for the loom models in `tests/loom_*.rs` (built with
/// `RUSTFLAGS="--cfg loom"` only).
#[cfg(loom)]
#[doc(hidden)]
pub mod loom_api {
    pub use crate::cell::ring;
    pub use crate::region::pin_slot;
    pub use crate::sync::atomic::{Loom, Model, Word32, Word64};
    pub use crate::sync::{notify, ready};
}

pub use cell::{CellOptions, CellReader, DEFAULT_CELL_SLOTS, SharedCell};
pub use error::{Error, Limit, Result, Target};
pub use key::Key;
pub use listing::list_segments;
pub use region::{RegionOptions, RegionReader, RegionRef, SharedRegion};
pub use segment::{Segment, SegmentInfo, SegmentOptions};

/// The examples in README.md, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
