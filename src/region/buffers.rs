//! A region's buffers: how a writer chooses one, fills it and makes it
//! current, and how a reader that cannot pin (a read-only attachment, or a
//! reader in another language) copies one and knows its copy is whole.
//!
//! Each buffer's description (`BufferMeta`) holds the length of its archive
//! and the version it holds; `version` doubles as the buffer's own seqlock.
//!
//! **Writer** (holding the write lock): take, among the buffers that are
//! not current, the one whose version is oldest (so that a buffer a copier
//! may be reading is reused as late as possible) and none that stopped
//! being current less than the region's reuse grace ago; store its
//! `version = 0` (release); scan the pins (`pin_slot.rs`), and if one pins
//! it, give it its version back and try the next; then a release fence;
//! write the archive (plain writes); store `len` (relaxed) and `version =
//! v` (release); then the commit: `current = Current::new(v, b)`, that is
//! `(v << 8) | b` (release).
//!
//! **Copying reader**: load `current` (acquire) → version `v`, buffer `b`;
//! load `buffers[b].version` (acquire); load `len` and check it against
//! the buffer's size; copy `len` bytes (relaxed 8-byte loads, or a string
//! move the check covers); acquire fence; load `buffers[b].version` again
//! (acquire): the copy is whole if both loads gave `v`, whatever `current`
//! did meanwhile. If either did not, `b` is being (or was) rewritten, and
//! `current` has moved on: load it again and start again; if `current` is
//! still the word first loaded, a peer scribbled on the control block
//! (`Corrupt`), and the reader stops instead of spinning.
//!
//! **Why a kept copy is whole.** The acquire load that read `version = v`
//! synchronises with the release store of it, which came after that
//! version's bytes and `len`: they are visible. The copy can differ from
//! them only by bytes of a later writer of `b`, which stored `version = 0`
//! before its release fence and its writes (and `len`); a copier that read
//! any of those writes and then passed its acquire fence sees `version = 0`
//! or a later value, and versions only grow, so never `v` again: it starts
//! again. And a reader that sees `version` other than `v` (from a later
//! writer's release store of it) sees everything before it, the commit
//! that moved `current` off `b` included (an earlier publish, ordered by
//! the lock): `current` no longer reads the word first loaded, which never
//! comes back (versions only grow); so an unchanged `current` there is a
//! scribble. A copy is thus thrown away only when its own buffer was
//! rewritten, not whenever another commit moved `current`: with `n` buffers
//! and no pins, a copy survives `n - 1` commits made while it runs (its
//! buffer is the `n`-th to be reused after it), and any number once a reuse
//! grace at least as long as the copy is set.
//!
//! **In-place readers** pin (`pin_slot.rs`) and then check that the
//! buffer holds the version `current` named (`holds`, acquire): no writer
//! chooses a pinned buffer, so a pinned archive does not change while it is
//! read. The check closes what a peer's scribble of `current` could open: a
//! reader pinning, through a scribbled `current`, a buffer that a writer
//! has just chosen. The writer announced it (`version = 0`) before the scan
//! that did not see the pin; so the reader's compare-and-swap, later in
//! the pin word's order, acquired the scan and sees the announcement.
//!
//! The model in `tests/loom_pins.rs` runs these functions, with the pins.

use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

use crate::format::Current;
use crate::sync::atomic::{Model, Word64};

/// A buffer's description, as the protocol sees it.
pub struct Meta<'a, W> {
    /// The length of its archive.
    pub len: &'a W,
    /// The version it holds; 0 while a writer fills it.
    pub version: &'a W,
}

/// The buffer a writer fills next, announced: of `count`, neither
/// `current` nor refused by `ready` (the reuse grace), the one whose version
/// is oldest is announced (its `version = 0`, release) and then the pins
/// are scanned (`scan`, read-modify-writes of every pin word: a bit per
/// buffer pinned); if the scan finds it pinned, it gets its version back
/// and the next is tried. `None` if every candidate is pinned.
///
/// The announcement comes before the scan that clears the buffer, so that
/// a reader whose pin the scan does not see (its compare-and-swap comes
/// later in the word's order, and so acquires the scan) sees `version = 0`
/// and does not use the buffer, even if a peer scribbled `current` to name
/// it.
pub fn choose<'a, M: Model + 'a>(
    count: usize,
    current: Option<usize>,
    meta: impl Fn(usize) -> Meta<'a, M::U64>,
    scan: impl Fn() -> u64,
    ready: impl Fn(usize) -> bool,
) -> Option<usize> {
    let mut skip = 0u64;
    loop {
        let b = (0..count)
            .filter(|&b| Some(b) != current && skip & (1 << b) == 0 && ready(b))
            .min_by_key(|&b| meta(b).version.load(Relaxed))?;
        let m = meta(b);
        let old = m.version.load(Relaxed);
        m.version.store(0, Release);
        crate::crash::point("region.after_announce");
        let pinned = scan();
        if pinned & (1 << b) == 0 {
            return Some(b);
        }
        m.version.store(old, Release);
        skip |= pinned | (1 << b);
    }
}

/// Whether the buffer `meta` describes holds `version`: what a reader that
/// pinned it checks (acquire) before it uses the bytes.
#[inline(always)]
pub fn holds<M: Model>(meta: &Meta<'_, M::U64>, version: u64) -> bool {
    meta.version.load(Acquire) == version
}

/// A publish, by a writer holding the write lock: the buffer `choose`
/// gives (told the current buffer, if any version is published), announced
/// by it (see [`choose`]), is filled by `write` (told the buffer and the version it writes;
/// it returns the archive's length) and made current. Returns the new
/// version; an error of `choose` or `write` leaves `current` as it was.
pub fn publish<'a, M: Model + 'a, E>(
    current: &M::U64,
    meta: impl Fn(usize) -> Meta<'a, M::U64>,
    choose: impl FnOnce(Option<usize>) -> Result<usize, E>,
    write: impl FnOnce(usize, u64) -> Result<u64, E>,
) -> Result<u64, E> {
    // Relaxed: only lock holders store `current`, and the lock orders them.
    let c = Current::from_raw(current.load(Relaxed));
    let v = c.version();
    let b = choose(c.is_published().then_some(c.buffer()))?;
    crate::crash::point("region.after_choose");
    let m = meta(b);
    begin::<M>();
    let len = write(b, v + 1)?;
    crate::crash::point("region.after_write");
    commit::<M>(current, &m, v + 1, b, len);
    Ok(v + 1)
}

/// The writer, before it writes the buffer it chose (announced by
/// `choose`): a copier that reads any byte it writes sees the announcement.
pub fn begin<M: Model>() {
    M::fence(Release);
}

/// The writer, after it wrote `len` bytes of version `next` into buffer
/// `b`: the buffer's description, then the commit.
pub fn commit<M: Model>(current: &M::U64, meta: &Meta<'_, M::U64>, next: u64, b: usize, len: u64) {
    meta.len.store(len, Relaxed);
    meta.version.store(next, Release);
    crate::crash::point("region.after_len");
    current.store(Current::new(next, b).raw(), Release);
    crate::crash::point("region.after_commit");
}

/// What one copy attempt gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Copied {
    /// A whole copy of the archive this `current` word names, `len` bytes.
    Whole {
        /// The `current` word copied, raw ([`Current::from_raw`]).
        current: u64,
        /// Its length.
        len: usize,
    },
    /// Nothing published yet.
    Nothing,
    /// A faulty peer wrote the control block: the buffer's length is more
    /// than `stride` (that length), or `current` names a buffer that does
    /// not hold its version (`u64::MAX`).
    Corrupt {
        /// The `current` word judged, raw.
        current: u64,
        /// The length found, or `u64::MAX`.
        len: u64,
    },
    /// The buffer was rewritten during the copy: try again.
    Rewritten,
}

/// Copy the current archive: `copy(b, len)` copies `len` bytes of buffer
/// `b` out (relaxed loads); its result is kept only if `Whole` is returned.
pub fn copy<'a, M: Model + 'a>(
    current: &M::U64,
    meta: impl Fn(usize) -> Option<Meta<'a, M::U64>>,
    stride: usize,
    copy: impl FnOnce(usize, usize),
) -> Copied {
    let c = Current::from_raw(current.load(Acquire));
    let (v, b) = (c.version(), c.buffer());
    if !c.is_published() {
        return Copied::Nothing;
    }
    let Some(m) = meta(b) else {
        return Copied::Corrupt {
            current: c.raw(),
            len: u64::MAX,
        };
    };
    let rewritten = || {
        if current.load(Relaxed) == c.raw() {
            Copied::Corrupt {
                current: c.raw(),
                len: u64::MAX,
            }
        } else {
            Copied::Rewritten
        }
    };
    if m.version.load(Acquire) != v {
        return rewritten();
    }
    let len = m.len.load(Relaxed);
    if len > stride as u64 {
        return Copied::Corrupt {
            current: c.raw(),
            len,
        };
    }
    copy(b, len as usize);
    M::fence(Acquire);
    if m.version.load(Acquire) != v {
        return rewritten();
    }
    Copied::Whole {
        current: c.raw(),
        len: len as usize,
    }
}
