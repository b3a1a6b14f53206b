//! Copies between private memory and shared slots that other processes may
//! write at the same time.
//!
//! A plain `memcpy` out of memory another process writes concurrently is a
//! data race, undefined behaviour under Rust's memory model. These copies go
//! through relaxed 64-bit atomic loads and stores instead, which compile to
//! plain moves on every supported architecture; the seqlock around them
//! decides whether what was read is a consistent value.
//!
//! Eight bytes a move is slow for large values (a 4 KiB copy takes several
//! times as long as `memcpy`'s vector moves). On x86-64, copies of
//! [`STRING_MIN`] bytes or more use the processor's string move (`rep
//! movsb`) in inline assembly instead: to the memory model it is a sequence
//! of relaxed byte-wise atomic accesses (every byte access of it is
//! single-copy atomic), which is what a seqlock needs, and it runs at
//! `memcpy` speed. Fences around it keep the string operation's accesses,
//! which the processor may perform out of order among themselves, on the
//! right side of the seqlock's counter accesses.
#![allow(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The size from which copies use the string move, where the processor has
/// one.
#[cfg_attr(miri, allow(dead_code))]
pub const STRING_MIN: usize = 256;

/// Copy `len` bytes from the slot at `src` to `dst`.
///
/// # Safety
/// `src` must be 8-byte aligned and valid for reads of `len` rounded up to a
/// multiple of 8 bytes, for the duration of the call, and derived from a
/// pointer that may also write (the bytes are read as atomics, which other
/// threads may write: a pointer from a shared reference to plain bytes does
/// not do); `dst` must be valid for writes of `len` bytes (it may be
/// uninitialised and unaligned) and must not overlap the slot.
#[inline]
pub unsafe fn load_bytes(src: *const u8, dst: *mut u8, len: usize) {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    if len >= STRING_MIN {
        // SAFETY: the caller's promises, which `string::load` repeats.
        unsafe { string::load(src, dst, len) };
        return;
    }
    let words = src.cast::<AtomicU64>();
    let whole = len / 8;
    for i in 0..whole {
        // SAFETY: word i lies within the readable, aligned slot, and its 8
        // bytes within dst's `len`.
        unsafe {
            let w = (*words.add(i)).load(Relaxed);
            dst.add(8 * i).cast::<u64>().write_unaligned(w.to_le());
        }
    }
    let rest = len - 8 * whole;
    if rest > 0 {
        // SAFETY: the slot is readable up to the next multiple of 8 bytes;
        // dst has `rest` bytes left after the whole words.
        unsafe {
            let w = (*words.add(whole)).load(Relaxed).to_le_bytes();
            std::ptr::copy_nonoverlapping(w.as_ptr(), dst.add(8 * whole), rest);
        }
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
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    if data.len() >= STRING_MIN {
        let whole = data.len() / 8 * 8;
        // SAFETY: dst is writable for data.len() >= whole bytes (the
        // caller's promise), data readable for as many; they do not overlap
        // (data is private memory).
        unsafe { string::store(data.as_ptr(), dst, whole) };
        chunks = data[whole..].chunks_exact(8);
        i = whole / 8;
    }
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

/// The string move of x86-64, with the fences the seqlock needs.
#[cfg(all(target_arch = "x86_64", not(miri)))]
mod string {
    /// Copy `n` bytes from shared `src` to private `dst`; the copy's loads
    /// are complete before any later load (`lfence`), so a load of the
    /// seqlock's counter after it cannot be served before them.
    ///
    /// # Safety
    /// `src` readable and `dst` writable for `n` bytes; no overlap.
    #[inline]
    pub unsafe fn load(src: *const u8, dst: *mut u8, n: usize) {
        // SAFETY: `rep movsb` reads [src, src + n) and writes [dst, dst + n),
        // which the caller vouches for; the direction flag is clear at
        // every Rust call boundary (System V ABI), so it copies upwards.
        // The block may read and write memory, so the compiler keeps it
        // between the surrounding atomic accesses.
        unsafe {
            std::arch::asm!(
                "rep movsb",
                "lfence",
                inout("rcx") n => _,
                inout("rsi") src => _,
                inout("rdi") dst => _,
                options(nostack, preserves_flags),
            );
        }
    }

    /// Copy `n` bytes from private `src` to shared `dst`; earlier stores
    /// (the announcement of the version being written) are visible before
    /// any of the copy's (`sfence`).
    ///
    /// # Safety
    /// `src` readable and `dst` writable for `n` bytes; no overlap.
    #[inline]
    pub unsafe fn store(src: *const u8, dst: *mut u8, n: usize) {
        // SAFETY: as in `load`, with the roles of the two ranges swapped.
        unsafe {
            std::arch::asm!(
                "sfence",
                "rep movsb",
                inout("rcx") n => _,
                inout("rsi") src => _,
                inout("rdi") dst => _,
                options(nostack, preserves_flags),
            );
        }
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
            // SAFETY: as above; out has len bytes.
            unsafe { load_bytes(slot.as_mut_ptr().cast(), out.as_mut_ptr(), len) };
            assert_eq!(out, data);
        }
    }

    #[test]
    fn round_trip_every_length_around_the_string_move() {
        let mut slot = vec![0u64; STRING_MIN / 8 + 4];
        for len in STRING_MIN - 9..=STRING_MIN + 17 {
            let data: Vec<u8> = (0..len)
                .map(|b| (b as u8).wrapping_mul(13) ^ 0xa5)
                .collect();
            slot.fill(u64::MAX);
            // SAFETY: the slot has STRING_MIN + 32 aligned bytes, enough for
            // any len here rounded up to 8.
            unsafe { store_bytes(slot.as_mut_ptr().cast(), &data) };
            let mut out = vec![0u8; len];
            // SAFETY: as above; out has len bytes.
            unsafe { load_bytes(slot.as_mut_ptr().cast(), out.as_mut_ptr(), len) };
            assert_eq!(out, data, "{len} bytes");
            // The rest of the last word is zero, as FORMAT.md says.
            let bytes: &[u8] = bytemuck::cast_slice(&slot);
            let end = len.next_multiple_of(8);
            assert!(bytes[len..end].iter().all(|&b| b == 0), "{len} bytes");
            assert!(bytes[end..].iter().all(|&b| b == 0xff), "{len} bytes");
        }
    }
}
