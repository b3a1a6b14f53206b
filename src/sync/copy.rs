//! Copies between private memory and shared slots that other processes may
//! write at the same time.
//!
//! A plain `memcpy` out of memory another process writes concurrently is a
//! data race, undefined behaviour under Rust's memory model. These copies go
//! through relaxed 64-bit atomic loads and stores instead, which compile to
//! plain moves on every supported architecture; the seqlock around them
//! decides whether what was read is a consistent value.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Copy `out.len()` bytes from the slot at `src` into `out`.
///
/// # Safety
/// `src` must be 8-byte aligned and valid for reads of `out.len()` rounded up
/// to a multiple of 8 bytes, for the duration of the call.
#[inline]
pub unsafe fn load_bytes(src: *const u8, out: &mut [u8]) {
    let words = src.cast::<AtomicU64>();
    let mut chunks = out.chunks_exact_mut(8);
    let mut i = 0;
    for chunk in &mut chunks {
        // SAFETY: word i lies within the readable, aligned slot.
        let w = unsafe { (*words.add(i)).load(Relaxed) };
        chunk.copy_from_slice(&w.to_le_bytes());
        i += 1;
    }
    let rest = chunks.into_remainder();
    if !rest.is_empty() {
        // SAFETY: the slot is readable up to the next multiple of 8 bytes.
        let w = unsafe { (*words.add(i)).load(Relaxed) };
        rest.copy_from_slice(&w.to_le_bytes()[..rest.len()]);
    }
}

/// Copy `data` into the slot at `dst`, zero-padding its last word.
///
/// # Safety
/// `dst` must be 8-byte aligned and valid for writes of `data.len()` rounded
/// up to a multiple of 8 bytes, for the duration of the call.
#[inline]
pub unsafe fn store_bytes(dst: *mut u8, data: &[u8]) {
    let words = dst.cast::<AtomicU64>();
    let mut chunks = data.chunks_exact(8);
    let mut i = 0;
    for chunk in &mut chunks {
        let w = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        // SAFETY: word i lies within the writable, aligned slot.
        unsafe { (*words.add(i)).store(w, Relaxed) };
        i += 1;
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut last = [0u8; 8];
        last[..rest.len()].copy_from_slice(rest);
        // SAFETY: the slot is writable up to the next multiple of 8 bytes.
        unsafe { (*words.add(i)).store(u64::from_le_bytes(last), Relaxed) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_every_length() {
        let mut slot = [0u64; 4];
        for len in 0..=32 {
            let data: Vec<u8> = (0..len as u8).map(|b| b.wrapping_mul(7) ^ 0x5a).collect();
            // SAFETY: the slot has 32 aligned bytes, enough for any len <= 32.
            unsafe { store_bytes(slot.as_mut_ptr().cast(), &data) };
            let mut out = vec![0u8; len];
            // SAFETY: as above.
            unsafe { load_bytes(slot.as_ptr().cast(), &mut out) };
            assert_eq!(out, data);
        }
    }
}
