//! The glue between a region and rkyv: what `publish` and `read` need of a
//! type, the archive check, and the facts of rkyv's format that a region's
//! type identity records.

use rkyv::api::high::{HighSerializer, HighValidator};
use rkyv::bytecheck::CheckBytes;
use rkyv::rancor;
use rkyv::ser::allocator::ArenaHandle;
use rkyv::ser::writer::Buffer;
use rkyv::{Archive, Portable, Serialize};

use crate::error::{Error, Result};

/// The bound `publish` needs: rkyv can serialise `T` into a buffer.
pub trait Publishable:
    for<'a> Serialize<HighSerializer<Buffer<'a>, ArenaHandle<'a>, rancor::Error>>
{
}
impl<T> Publishable for T where
    T: for<'a> Serialize<HighSerializer<Buffer<'a>, ArenaHandle<'a>, rancor::Error>>
{
}

/// The bound `read` needs: rkyv can validate `T`'s archived form.
pub trait Readable:
    Archive<Archived: Portable + for<'a> CheckBytes<HighValidator<'a, rancor::Error>>>
{
}
impl<T> Readable for T where
    T: Archive<Archived: Portable + for<'a> CheckBytes<HighValidator<'a, rancor::Error>>>
{
}

/// Validate `bytes` as an archived `T` (rkyv's bytecheck).
pub(crate) fn check_archive<T: Readable>(bytes: &[u8]) -> Result<()> {
    rkyv::access::<T::Archived, rancor::Error>(bytes)
        .map(|_| ())
        .map_err(|e| Error::Corrupt {
            reason: format!("the archive does not validate: {e}"),
        })
}

/// rkyv's format facts that change the archived bytes: endianness, the size
/// of archived `usize` (pointer width) and whether primitives are aligned.
pub(crate) fn rkyv_format() -> u64 {
    let little = archives_little_endian();
    let usize_size = size_of::<rkyv::primitive::ArchivedUsize>() as u64;
    let u32_align = align_of::<rkyv::primitive::ArchivedU32>() as u64;
    0x7200_0000 | (u64::from(little) << 16) | (usize_size << 8) | u32_align
}

/// Whether rkyv stores a `u32` little-endian, read off its archived bytes.
fn archives_little_endian() -> bool {
    rkyv::to_bytes::<rancor::Error>(&0x0102_0304_u32)
        .is_ok_and(|bytes| bytes.as_slice() == [4, 3, 2, 1])
}
