//! A read-only handle's reads: a `SHM_RDONLY` attachment cannot pin, so it
//! reads a validated private copy of the current archive, made once per
//! version; `buffers::copy` says how a copy is known to be whole.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use rkyv::Archive;

use super::{Readable, RegionRef, SharedRegion, buffers, check_archive};
use crate::error::{Error, Result};
use crate::format::Current;
use crate::store::{Access, Store};
use crate::sync::atomic::Std;

/// What a handle that reads copies keeps: the copy of the version it read
/// last, and how many copies it made again.
#[derive(Default)]
pub(super) struct Copies {
    cache: Mutex<Option<(u64, Arc<ArchiveCopy>)>>,
    /// Copies made again because their buffer was rewritten meanwhile.
    pub(super) retries: AtomicU64,
}

/// A private copy of an archive, starting at an address aligned as its
/// root type asks (rkyv aligns an archive's parts relative to its start).
pub(crate) struct ArchiveCopy {
    buf: Vec<u8>,
    start: usize,
    len: usize,
}

impl ArchiveCopy {
    /// `len` zero bytes at an address aligned to `align` (a power of two).
    fn zeroed(len: usize, align: usize) -> ArchiveCopy {
        let buf = vec![0u8; len + align - 1];
        // The heap buffer never moves: `buf` is never grown.
        let addr = buf.as_ptr().addr();
        let start = addr.next_multiple_of(align) - addr;
        ArchiveCopy { buf, start, len }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.start + self.len]
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf[self.start..self.start + self.len]
    }
}

/// One copy of the archive `store` (a region) holds now, into the buffer
/// `make` gives for its length (`bytes` is that buffer's bytes): the copy
/// and the current word it is of, or `None` when its buffer was rewritten
/// while it was copied (copy again).
fn copy_once<B>(
    store: &Store,
    make: impl FnOnce(usize) -> B,
    bytes: impl FnOnce(&mut B) -> &mut [u8],
) -> Result<Option<(u64, B)>> {
    let ctl = store.region_control();
    let layout = *store.layout();
    let mut made = None;
    let meta = |b: usize| {
        (b < layout.slot_count).then(|| buffers::Meta {
            len: &ctl.buffers[b].len,
            version: &ctl.buffers[b].version,
        })
    };
    let copied = buffers::copy::<Std>(&ctl.current, meta, layout.slot_stride, |b, len| {
        let mut into = make(len);
        // Buffer `b` is below the validated slot count, and `len` at most
        // its stride (both checked by buffers::copy).
        store.read_slot(b, bytes(&mut into));
        made = Some(into);
    });
    match copied {
        buffers::Copied::Whole { current, .. } => Ok(made.map(|m| (current, m))),
        buffers::Copied::Nothing => Err(Error::NothingPublished),
        buffers::Copied::Corrupt { current, len } => {
            let (version, buffer) = (
                Current::from_raw(current).version(),
                Current::from_raw(current).buffer(),
            );
            Err(Error::Corrupt {
                reason: if len == u64::MAX {
                    format!(
                        "the current word names version {version} in buffer {buffer} (of {}), \
                         which does not hold it",
                        layout.slot_count
                    )
                } else {
                    format!(
                        "archive of {len} bytes in a buffer of {}",
                        layout.slot_stride
                    )
                },
            })
        }
        buffers::Copied::Rewritten => Ok(None),
    }
}

/// A copy of the archive `store` (a region) holds now, whole (made again
/// while its buffer is rewritten meanwhile), and its version; not checked
/// as any type. For readers that know no Rust type (`catalog::contents`).
pub(crate) fn copy_current(store: &Store) -> Result<(u64, Vec<u8>)> {
    loop {
        let copied = copy_once(store, |len| vec![0u8; len], |v| v.as_mut_slice())?;
        if let Some((current, bytes)) = copied {
            return Ok((Current::from_raw(current).version(), bytes));
        }
    }
}

impl<T: Archive, A: Access> SharedRegion<T, A> {
    /// The current value, from a validated private copy. A copy is made
    /// once per version; one whose buffer was rewritten meanwhile is made
    /// again (`state.retries` counts them).
    pub(super) fn read_copy(&self, state: &Copies) -> Result<RegionRef<'static, T>>
    where
        T: Readable,
    {
        let ctl = self.control();
        loop {
            let current = ctl.current.load(Ordering::Acquire);
            if !Current::from_raw(current).is_published() {
                return Err(Error::NothingPublished);
            }
            let mut cache = state.cache.lock();
            if let Some((seen, copy)) = cache.as_ref()
                && *seen == current
            {
                return Ok(Self::copy_guard(copy.clone(), current));
            }
            let align = align_of::<T::Archived>().max(16);
            let copied = copy_once(
                &self.store,
                |len| ArchiveCopy::zeroed(len, align),
                ArchiveCopy::bytes_mut,
            )?;
            let Some((current, bytes)) = copied else {
                state.retries.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            check_archive::<T>(bytes.bytes())?;
            let copy = Arc::new(bytes);
            *cache = Some((current, copy.clone()));
            return Ok(Self::copy_guard(copy, current));
        }
    }

    fn copy_guard(copy: Arc<ArchiveCopy>, current: u64) -> RegionRef<'static, T>
    where
        T: Readable,
    {
        // The copy was validated as T::Archived when it was cached.
        RegionRef::copied(copy, Current::from_raw(current).version())
    }
}
