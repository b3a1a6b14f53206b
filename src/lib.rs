//! # shmstore
//!
//! Typed objects shared between cooperating processes on one Linux host
//! through System V shared memory, read without copying.
//!
//! - [`Key`]: the name of a segment: a raw value, `IPC_PRIVATE`, `ftok`, or
//!   an object's name (`Key::named`, `Key::named_in`).
//! - [`Segment`]: a safe wrapper of `shmget`, `shmat`, `shmdt` and `shmctl`.
//! - [`SharedCell`]: one plain-data value, read lock-free, written under a
//!   robust process-shared mutex, with change notification;
//!   [`CellReader`] is its read-only attachment.
//! - [`SharedRegion`]: an rkyv archive (strings, vectors, maps) read in
//!   place by many processes, each read pinning the buffer it borrows;
//!   [`RegionReader`] is its read-only attachment, which reads copies.
//! - Opening and creating: `open(target)` with the handle's access (a
//!   [`Key`] or a segment's id, [`Target`]), `create(key, ..)`, and the
//!   builders [`Options`]: `opener()` ([`CellOpener`], [`RegionOpener`])
//!   has the settings of an open, `creator()` ([`CellCreator`],
//!   [`RegionCreator`]) those of a creation too.
//! - [`Schema`] and [`schema`]: types that describe their own layout
//!   (`#[derive(Schema)]`); stored with `with_schema()`, the schema is the
//!   type's identity at every open and lets readers without the Rust type
//!   decode a value by field name.
//! - [`list_segments`] and [`inspect`]: every segment on the system, and
//!   what a shmstore one holds.
//! - [`Error`]: the one error type; each variant says what to do.
//!
//! ARCHITECTURE.md describes the layers and the protocols, FORMAT.md the
//! bytes in a segment.
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
#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]

// The derive's output names `::shmstore`, in this crate's own tests too.
extern crate self as shmstore;

mod catalog;
mod cell;
#[cfg(feature = "crash-points")]
#[doc(hidden)]
pub mod crash;
#[cfg(not(feature = "crash-points"))]
mod crash;
mod error;
mod format;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod inspect;
mod key;
pub mod raw;
mod region;
pub mod schema;
mod store;
mod sync;
mod sys;
pub mod watch;

/// The protocols, for the loom models in `tests/loom_*.rs` (built with
/// `RUSTFLAGS="--cfg loom"` only).
#[cfg(loom)]
#[doc(hidden)]
pub mod loom_api {
    pub use crate::cell::ring;
    pub use crate::region::{buffers, pin_slot};
    pub use crate::store::life::{claim, removal};
    pub use crate::sync::atomic::{Loom, Model, Word32, Word64};
    pub use crate::sync::{notify, ready};
}

pub use cell::{
    CellCreator, CellLease, CellOpener, CellReader, CellSettings, DEFAULT_CELL_SLOTS, SharedCell,
};
pub use error::{Error, Limit, Result, Target};
pub use format::{FORMAT_VERSION, Kind, TypeDesc};
pub use key::{Key, NAME_MAX, NAME_PROBES, SECRET_FILE};
pub use region::{
    Publishable, Readable, RegionCreator, RegionOpener, RegionReader, RegionRef, RegionSettings,
    SharedRegion,
};
pub use schema::Schema;
/// Derive [`Schema`](trait@Schema): see [`schema`].
pub use shmstore_derive::Schema;
pub use store::options::{Create, Mode, Open, Options, Writes};
pub use store::{Access, ReadOnly, ReadWrite};
pub use sys::proc::list_segments;
pub use sys::shm::{Segment, SegmentInfo, SegmentOptions};

/// The rkyv this crate archives regions with: derive `Archive` and
/// `Serialize` from it (`#[derive(shmstore::rkyv::Archive, ...)]` with
/// `#[rkyv(crate = shmstore::rkyv)]`), or depend on the same version
/// (`rkyv = "0.8"`), so that the traits match.
pub use rkyv;

/// The bytemuck whose `Pod` a cell's value implements.
pub use bytemuck;

/// The examples in README.md, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
