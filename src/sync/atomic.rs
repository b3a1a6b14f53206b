//! The atomic words the cross-process protocols are written against.
//!
//! Each protocol (the cell's ring of slots, the region's buffers and pins,
//! waiting for a change, creation, a name's claims, removal) is a set of
//! functions generic over a [`Model`]: the atomics and fence of the memory
//! they run on. The library instantiates them with [`Std`], whose words are
//! the `std` atomics that lie in the segment (its header, a region's
//! control block); the loom models in `tests/loom_*.rs` instantiate the very
//! same functions with `Loom` (built with `--cfg loom`), whose words are
//! loom's, so that loom explores every interleaving and every value a weak
//! memory order allows. A protocol step that is not in one of these
//! functions is not model-checked.

use std::sync::atomic::Ordering;

/// A 64-bit atomic word.
pub trait Word64 {
    /// Atomic load.
    fn load(&self, order: Ordering) -> u64;
    /// Atomic store.
    fn store(&self, value: u64, order: Ordering);
    /// Atomic compare-and-exchange (strong).
    fn compare_exchange(
        &self,
        current: u64,
        new: u64,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u64, u64>;
    /// Atomic add; returns the previous value.
    fn fetch_add(&self, value: u64, order: Ordering) -> u64;
}

/// A 32-bit atomic word.
pub trait Word32 {
    /// Atomic load.
    fn load(&self, order: Ordering) -> u32;
    /// Atomic store.
    fn store(&self, value: u32, order: Ordering);
    /// Atomic compare-and-exchange (strong).
    fn compare_exchange(
        &self,
        current: u32,
        new: u32,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u32, u32>;
    /// Atomic add; returns the previous value.
    fn fetch_add(&self, value: u32, order: Ordering) -> u32;
}

/// The atomics and fence a protocol runs on.
pub trait Model {
    /// A 64-bit word.
    type U64: Word64;
    /// A 32-bit word.
    type U32: Word32;
    /// An atomic fence.
    fn fence(order: Ordering);
    /// Back off in a retry loop (`sync::backoff` for the real thing; a
    /// yield to loom's scheduler in the models).
    fn spin(backoff: &mut super::backoff::Backoff);
}

/// The real thing: `std` atomics, which is what the segment holds.
pub enum Std {}

impl Model for Std {
    type U64 = std::sync::atomic::AtomicU64;
    type U32 = std::sync::atomic::AtomicU32;

    #[inline(always)]
    fn fence(order: Ordering) {
        std::sync::atomic::fence(order);
    }

    #[inline]
    fn spin(backoff: &mut super::backoff::Backoff) {
        backoff.spin();
    }
}

macro_rules! word {
    ($trait:ident, $ty:ty, $int:ty, $store:ident) => {
        impl $trait for $ty {
            #[inline(always)]
            fn load(&self, order: Ordering) -> $int {
                <$ty>::load(self, order)
            }
            #[inline(always)]
            fn store(&self, value: $int, order: Ordering) {
                word!(@store $store, $ty, self, value, order)
            }
            #[inline(always)]
            fn compare_exchange(
                &self,
                current: $int,
                new: $int,
                success: Ordering,
                failure: Ordering,
            ) -> Result<$int, $int> {
                <$ty>::compare_exchange(self, current, new, success, failure)
            }
            #[inline(always)]
            fn fetch_add(&self, value: $int, order: Ordering) -> $int {
                <$ty>::fetch_add(self, value, order)
            }
            word!(@only $trait, $ty, $int);
        }
    };
    (@store plain, $ty:ty, $word:ident, $value:ident, $order:ident) => {
        <$ty>::store($word, $value, $order)
    };
    (@store swap, $ty:ty, $word:ident, $value:ident, $order:ident) => {{
        <$ty>::swap($word, $value, $order);
    }};
    (@only Word64, $ty:ty, $int:ty) => {};
    (@only Word32, $ty:ty, $int:ty) => {};
}

word!(Word64, std::sync::atomic::AtomicU64, u64, plain);
word!(Word32, std::sync::atomic::AtomicU32, u32, plain);

/// loom's atomics, for the models in `tests/loom_*.rs`.
#[cfg(loom)]
pub enum Loom {}

#[cfg(loom)]
impl Model for Loom {
    type U64 = loom::sync::atomic::AtomicU64;
    type U32 = loom::sync::atomic::AtomicU32;

    fn fence(order: Ordering) {
        loom::sync::atomic::fence(order);
    }

    fn spin(_: &mut super::backoff::Backoff) {
        loom::thread::yield_now();
    }
}

// loom 0.7 lets a plain store land between the read and the write of
// another thread's read-modify-write of the same word, which the memory
// model forbids (tokio-rs/loom#254): a model then sees impossible values
// (a pin word that a writer's `fetch_add(0)` turns back into an older
// claim). The models' stores are therefore swaps, which loom keeps
// atomic. For every load of another thread a swap that discards what it
// read writes the same modification as the store; what a swap adds is
// that it continues a release sequence where a store would end one, so a
// protocol must not rely on a store ending one (none here does: their
// acquirers read the values they synchronise with directly).
#[cfg(loom)]
word!(Word64, loom::sync::atomic::AtomicU64, u64, swap);
#[cfg(loom)]
word!(Word32, loom::sync::atomic::AtomicU32, u32, swap);
