//! The on-segment format, crate-private: the header, a region's control
//! block, the identity of what a segment stores, validation, and the one
//! place a mapping's pointer and length become a header or a control block
//! (`mapping.rs`). `FORMAT.md` documents it for other languages; nothing of
//! it is public API but [`Kind`] and [`FORMAT_VERSION`], so the format can
//! change without a semver change of the crate (it has its own version,
//! [`FORMAT_VERSION`]).

mod header;
mod identity;
mod mapping;
mod region;
mod validate;

pub use header::*;
pub use identity::{Kind, TypeDesc};
pub use mapping::{Mapping, Snapshot, header_of, region_control_of};
pub use region::*;
pub use validate::{Layout, Validated, validate, write_schema};
