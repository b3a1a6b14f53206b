//! The value every cell-like store carries in the compare bench, and a cell
//! of it.

use bytemuck::{Pod, Zeroable};
use iceoryx2::prelude::ZeroCopySend;
use shmstore::{Key, SharedCell};

use crate::common::sys::unlink_segment;

/// `N` bytes of plain data, the value every cell-like store carries.
/// iceoryx2's blackboard and publish-subscribe take it as is: `ZeroCopySend`
/// (a `repr(C)` struct of `ZeroCopySend` fields), and `Debug` for the
/// publish-subscribe payload.
#[repr(C)]
#[derive(Clone, Copy, Debug, ZeroCopySend)]
pub struct Bytes<const N: usize>(pub [u8; N]);

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
    pub fn pattern(tag: u64) -> Self {
        let mut b = Self::zeroed();
        for (i, x) in b.0.iter_mut().enumerate() {
            *x = (i as u8).wrapping_mul(31);
        }
        b.set_tag(tag);
        b
    }

    pub fn set_tag(&mut self, tag: u64) {
        self.0[..8].copy_from_slice(&tag.to_le_bytes());
    }

    pub fn tag(&self) -> u64 {
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

/// A cell at `Key::PRIVATE`, its segment already marked for removal
/// ([`unlink_segment`]: stores go on). Nobody may wait on it: a wait on a
/// removed cell returns `Error::Removed`.
pub fn private_cell<const N: usize>(initial: Bytes<N>) -> SharedCell<Bytes<N>> {
    let cell = SharedCell::create(Key::PRIVATE, initial).expect("create a cell");
    unlink_segment(cell.id());
    cell
}

/// A cell at `Key::PRIVATE` that processes wait on: removed when this
/// handle is dropped, not before, since waiters return `Error::Removed`
/// for a removed cell. Drop the children first, so that none is waiting.
pub fn waited_cell<const N: usize>(initial: Bytes<N>) -> SharedCell<Bytes<N>> {
    SharedCell::creator()
        .remove_on_drop(true)
        .create(Key::PRIVATE, initial)
        .expect("create a cell")
}
