//! A read-write handle's reads: in place. A read pins the buffer `current`
//! names through a pin slot (`pin_slot.rs`, lent to the thread by
//! `pins.rs`), checks that the buffer holds the version `current` names
//! (`buffers.rs`), validates the archive the first time the handle meets
//! that `current` word, and hands out a guard that borrows it in place. The
//! handle keeps what it validated (the `current` word and the archive's
//! length, hence its root): later reads of that version use the kept
//! length, never the control block's again. The bytes are borrowed
//! through `archive.rs`, which says why that is sound.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use parking_lot::Mutex;
use rkyv::Archive;

use super::{Readable, RegionRef, SharedRegion, archive, corrupt, pin_slot, pins};
use crate::error::{Error, Result};
use crate::format::Current;
use crate::format::RegionControl;
use crate::store::{Access, ControlLink, Store};
use crate::sync::atomic::Std;
use crate::sync::backoff::Backoff;

/// What a handle that reads in place keeps: the archive it validated last
/// (its `current` word and its length, the only length reads of that
/// version use), and the pin slots it claimed, lent to its reading threads.
pub(super) struct InPlace {
    validated: Mutex<Option<(u64, usize)>>,
    pub(super) pins: Arc<pins::HandleSlots>,
}

impl InPlace {
    pub(super) fn new(link: Arc<ControlLink>) -> InPlace {
        InPlace {
            validated: Mutex::new(None),
            pins: pins::HandleSlots::new(link),
        }
    }
}

impl<T: Archive, A: Access> SharedRegion<T, A> {
    /// Pin the current archive and borrow it in place. The archive is
    /// validated the first time this handle sees its version; later reads of
    /// the same version cost a few atomic operations whatever its size.
    #[inline(always)]
    pub(super) fn read_in_place<'a>(&'a self, state: &'a InPlace) -> Result<RegionRef<'a, T>>
    where
        T: Readable,
    {
        // One construction of the guard, from scalars, for both paths: the
        // fast path's stay in registers.
        let p = match self.pin_fast(state) {
            Some(p) => p,
            None => self.read_slow(state)?,
        };
        Ok(self.guard(p.word, p.claim, p.lent, p.current, p.len))
    }

    /// The common case of `read`: this thread's own slot of this handle is
    /// free, and the archive `current` names is the one this thread read
    /// last through it. `None` (nothing left pinned) otherwise.
    #[inline(always)]
    fn pin_fast<'a>(&'a self, state: &InPlace) -> Option<PinnedArchive<'a>> {
        let ctl = self.control();
        let fast = pins::last_read(&state.pins)?;
        let word = &ctl.pins[fast.lease.slot].word;
        match pin_slot::pin::<Std>(&ctl.current, word, fast.lease.claim) {
            pin_slot::Pin::Pinned(c) if c == fast.current && self.holds(c) => Some(PinnedArchive {
                word,
                claim: fast.lease.claim,
                lent: true,
                current: c,
                len: fast.len,
            }),
            pin_slot::Pin::Pinned(_) => {
                pin_slot::unpin::<Std>(word, fast.lease.claim);
                None
            }
            // A commit came in between, the slot is pinned by an outer
            // guard of this thread, or it was revoked: the slow path sorts
            // it out.
            pin_slot::Pin::Moved | pin_slot::Pin::Lost => None,
        }
    }

    /// `read` when the fast path does not apply: pins through the thread's
    /// own slot if it is free (else one claimed for this read), claims a
    /// new slot if the thread's was revoked, and validates the archive if
    /// this handle has not yet. Also reports the errors.
    #[cold]
    #[inline(never)]
    fn read_slow<'a>(&'a self, state: &InPlace) -> Result<PinnedArchive<'a>>
    where
        T: Readable,
    {
        let ctl = self.control();
        let mut backoff = Backoff::new();
        let (lease, lent, hold, current) = loop {
            let slot = pins::acquire(ctl, &state.pins)?;
            let pinned = loop {
                match slot.pin(&ctl.current) {
                    pin_slot::Pin::Pinned(c) => break Some(c),
                    pin_slot::Pin::Moved => backoff.spin(),
                    pin_slot::Pin::Lost => break None,
                }
            };
            let Some(current) = pinned else {
                // Revoked while idle: the thread's slot is forgotten (a slot
                // claimed for this read is simply gone) and another claimed.
                if slot.lent {
                    pins::lost(&state.pins, slot.lease);
                }
                continue;
            };
            let (lease, lent) = (slot.lease, slot.lent);
            // From here the pin is held, and an error unpins it.
            let hold = slot.pinned();
            if !Current::from_raw(current).is_published() {
                return Err(Error::NothingPublished);
            }
            if self.holds(current) {
                break (lease, lent, hold, current);
            }
            drop(hold);
            if ctl.current.load(Ordering::Relaxed) == current {
                let (version, buffer) = (
                    Current::from_raw(current).version(),
                    Current::from_raw(current).buffer(),
                );
                return Err(corrupt(format_args!(
                    "current names version {version} in buffer {buffer}, which does not hold it"
                )));
            }
            // A writer chose the buffer after `current` moved off it: read
            // what `current` names now.
            backoff.spin();
        };
        let len = self.validated_len(state, current)?;
        if lent {
            pins::remember(pins::LastRead {
                id: state.pins.id,
                lease,
                current,
                len,
            });
        }
        // The guard takes the hold over.
        let hold = std::mem::ManuallyDrop::new(hold);
        Ok(PinnedArchive {
            word: hold.word,
            claim: hold.claim,
            lent: hold.lent(),
            current,
            len,
        })
    }

    /// The length of the archive `current` names, which this handle has
    /// validated: taken from what it kept if it validated this `current`
    /// already, else read once, checked against the layout, and the archive
    /// validated. The caller pins the buffer.
    fn validated_len(&self, state: &InPlace, current: u64) -> Result<usize>
    where
        T: Readable,
    {
        let mut validated = state.validated.lock();
        if let Some((c, len)) = *validated
            && c == current
        {
            return Ok(len);
        }
        let len = archive_len(&self.store, self.control(), current)?;
        // archive_len checked that the buffer and its `len` bytes lie inside
        // the mapping; the caller's pin keeps writers off them.
        archive::check_pinned::<T>(&self.store, Current::from_raw(current).buffer(), len)?;
        *validated = Some((current, len));
        Ok(len)
    }

    /// The guard of the archive `current` names, pinned through `word` by
    /// `claim`, which this handle validated at `len` bytes. Built from
    /// scalars, so that the fast path makes it in registers.
    #[inline(always)]
    fn guard<'a>(
        &'a self,
        word: &'a std::sync::atomic::AtomicU64,
        claim: u64,
        lent: bool,
        current: u64,
        len: usize,
    ) -> RegionRef<'a, T>
    where
        T: Readable,
    {
        // `len` is the length this handle kept when it validated the archive
        // `current` names (which fits the buffer: archive_len checked it),
        // and the pin keeps every writer off it while the guard lives.
        RegionRef::in_place(
            &self.store,
            Current::from_raw(current).buffer(),
            len,
            Current::from_raw(current).version(),
            pins::PinHold::new(word, claim, lent),
        )
    }
}

/// The length of the archive `current` names, its buffer index and length
/// checked against the layout; the reason as [`Error::Corrupt`] when they do
/// not fit. Read once: callers keep the result.
fn archive_len(store: &Store, ctl: &RegionControl, current: u64) -> Result<usize> {
    let layout = store.layout();
    let buffer = Current::from_raw(current).buffer();
    if buffer >= layout.slot_count {
        return Err(corrupt(format_args!(
            "current buffer {buffer} of {}",
            layout.slot_count
        )));
    }
    let len = ctl.buffers[buffer].len.load(Ordering::Acquire);
    if len > layout.slot_stride as u64 {
        return Err(corrupt(format_args!(
            "archive of {len} bytes in a buffer of {}",
            layout.slot_stride
        )));
    }
    Ok(len as usize)
}

/// A pinned archive this handle validated, for `read` to make a guard of:
/// the slot's word, the claim that pinned it, whether the slot is the
/// thread's own, the `current` word pinned and the kept length.
struct PinnedArchive<'a> {
    word: &'a std::sync::atomic::AtomicU64,
    claim: u64,
    lent: bool,
    current: u64,
    len: usize,
}
