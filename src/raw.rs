//! Objects whose type is known at run time, not at compile time: a
//! [`RawObject`] opens any cell or region and hands out its identity
//! ([`TypeDesc`]) and its bytes, and creates or writes an object of an
//! identity it is given. For programs that move objects without knowing
//! their Rust types: a bridge between hosts (`shmstore-bridge`), a
//! recorder, a replayer.
//!
//! **What a raw handle checks.** An open validates the segment as every
//! open does, then checks its identity against the one it read from the
//! header on the same attachment: a raw handle is as sure of its object's
//! identity as a typed one, it only learns it instead of being told. A
//! write is checked before anything is copied into the segment, since its
//! bytes usually come from outside:
//! - a cell's value must be exactly the stored size; if the object stores
//!   a schema, the value must decode by it;
//! - a region's archive must decode by the stored schema (every pointer,
//!   length, string, tag and map inside the archive), its root at an
//!   offset aligned as the root is, in rkyv's format of this build. A region
//!   without a schema cannot be written raw ([`Error::Unsupported`]): its
//!   bytes could not be checked without its type.
//!
//! Readers of a region validate every archive with their type's own check
//! (rkyv's bytecheck) in any case: an archive the schema accepts that the
//! type's check refuses (two pointers sharing bytes, say) is refused by each
//! reader as [`Error::Corrupt`], never read as a value.
//!
//! **What a raw handle cannot mirror.** The header keeps a type's name up to
//! 128 bytes, and its fingerprint covers the whole name: an object whose type name was longer cannot be
//! recreated with the same identity, and [`RawObject::open`] refuses it
//! ([`Error::Unsupported`]).

use std::time::Duration;

use crate::error::{Error, Result, Target};
use crate::format::{Kind, MAX_ALIGN, TypeDesc};
use crate::key::Key;
use crate::region::{RegionSettings, SharedRegion};
use crate::schema::{Form, Shape};
use crate::store::life::{creator, look};
use crate::store::{Access, Common, Memory, ReadOnly, ReadWrite, Store};
use crate::sync::atomic::Std;
use crate::sys::shm::{Segment, SegmentInfo};

/// A handle to a cell or a region whose type is known at run time: its
/// identity and its bytes. See the [module's documentation](self).
///
/// ```
/// use shmstore::raw::{RawObject, RawOptions};
/// use shmstore::{Key, SharedCell};
///
/// let cell = SharedCell::<u32>::creator().with_schema().create(Key::PRIVATE, 7)?;
/// let raw = RawObject::<shmstore::ReadOnly>::open(shmstore::Target::Id(cell.id()))?;
/// assert_eq!(raw.identity().schema.as_deref(), Some("u32"));
/// assert_eq!(raw.read()?.bytes, 7u32.to_ne_bytes());
///
/// // Another object of the same identity, written from bytes.
/// let copy = RawOptions::new().create(Key::PRIVATE, raw.identity(), 0, &9u32.to_ne_bytes())?;
/// copy.write(&10u32.to_ne_bytes())?;
/// assert_eq!(copy.read()?.bytes, 10u32.to_ne_bytes());
/// assert!(copy.write(&[1, 2]).is_err()); // not a u32
/// # copy.remove()?;
/// # cell.remove()?;
/// # Ok::<(), shmstore::Error>(())
/// ```
pub struct RawObject<A: Access = ReadWrite> {
    inner: Inner<A>,
    identity: TypeDesc,
    /// The stored schema, parsed once at open.
    shape: Option<Shape>,
}

/// A read-only raw handle (`SHM_RDONLY`).
pub type RawReader = RawObject<ReadOnly>;

enum Inner<A: Access> {
    Cell(Store),
    /// A region handle over any archive: its own checks are never used,
    /// only its buffers, pins and waiting.
    Region(SharedRegion<(), A>),
}

/// A value as a raw handle reads it: its version and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawValue {
    /// The version read.
    pub version: u64,
    /// A cell's value, or a copy of a region's current archive.
    pub bytes: Vec<u8>,
}

/// How a raw handle opens or creates: owner checks, timeouts, and what a
/// creation lays out (a cell's slots, a region's buffers).
#[derive(Debug, Clone)]
pub struct RawOptions {
    common: Common,
    slots: usize,
    buffers: usize,
}

impl Default for RawOptions {
    fn default() -> Self {
        RawOptions {
            common: Common::default(),
            slots: crate::cell::DEFAULT_CELL_SLOTS,
            buffers: crate::region::DEFAULT_BUFFERS,
        }
    }
}

impl RawOptions {
    /// The defaults of typed handles.
    pub fn new() -> RawOptions {
        RawOptions::default()
    }

    /// Permission bits of a created segment. Default `0o600`.
    pub fn mode(&mut self, mode: u32) -> &mut Self {
        self.common.mode = mode & 0o777;
        self
    }

    /// How long an open waits for a racing creator. Default 5 s.
    pub fn init_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.common.init_timeout = timeout;
        self
    }

    /// Accept segments owned or created by other users (see
    /// [`Options::allow_foreign_owner`](crate::Options::allow_foreign_owner)).
    pub fn allow_foreign_owner(&mut self, yes: bool) -> &mut Self {
        self.common.allow_foreign_owner = yes;
        self
    }

    /// Trust objects of user `uid` too.
    pub fn trust_user(&mut self, uid: u32) -> &mut Self {
        self.common.trust_user = Some(uid);
        self
    }

    /// Trust objects of group `gid` (see
    /// [`Options::trust_group`](crate::Options::trust_group)).
    pub fn trust_group(&mut self, gid: u32) -> &mut Self {
        self.common.trust_group = Some(gid);
        self
    }

    /// The slots of a created cell (a power of two from 2 to 64).
    pub fn slots(&mut self, n: usize) -> &mut Self {
        self.slots = n;
        self
    }

    /// The buffers of a created region (2 to 64).
    pub fn buffers(&mut self, n: usize) -> &mut Self {
        self.buffers = n;
        self
    }

    /// Open the object at `target` read-write, whatever it holds.
    pub fn open(&self, target: impl Into<Target>) -> Result<RawObject<ReadWrite>> {
        RawObject::open_with(target.into(), &self.common)
    }

    /// Open the object at `target` read-only, whatever it holds.
    pub fn open_read_only(&self, target: impl Into<Target>) -> Result<RawReader> {
        RawObject::open_with(target.into(), &self.common)
    }

    /// Create an object of identity `ty` at `key`: a cell holding
    /// `initial`, or a region with buffers of `capacity` bytes (at least
    /// the root's size and `initial`'s length, rounded up to 64) that
    /// publishes `initial` unless it is empty. Fails with
    /// [`Error::AlreadyExists`] if the key is taken, and with
    /// [`Error::InvalidLayout`] for an alignment over 4096 or a root larger
    /// than `capacity`.
    pub fn create(
        &self,
        key: Key,
        ty: &TypeDesc,
        capacity: usize,
        initial: &[u8],
    ) -> Result<RawObject<ReadWrite>> {
        self.make(key, ty, capacity, initial, false)
    }

    /// Open the object at `key` if it holds identity `ty` (else
    /// [`Error::TypeMismatch`]), or create it as [`create`](Self::create)
    /// does. An object opened is left as it was: `initial` is written only
    /// into one this call creates.
    pub fn open_or_create(
        &self,
        key: Key,
        ty: &TypeDesc,
        capacity: usize,
        initial: &[u8],
    ) -> Result<RawObject<ReadWrite>> {
        self.make(key, ty, capacity, initial, true)
    }

    fn make(
        &self,
        key: Key,
        ty: &TypeDesc,
        capacity: usize,
        initial: &[u8],
        or_open: bool,
    ) -> Result<RawObject<ReadWrite>> {
        check_align(ty)?;
        let shape = parse_schema(ty)?;
        let schema_len = ty.schema.as_ref().map_or(0, String::len);
        let mut created = false;
        let store = match ty.kind {
            Kind::Cell => {
                check_cell(ty, shape.as_ref(), initial)?;
                let layout = crate::cell::cell_layout(
                    ty.size as usize,
                    ty.align as usize,
                    self.slots,
                    schema_len,
                )?;
                let init = |store: &Store| {
                    created = true;
                    // Nobody reads it before READY.
                    store.write_slot(0, initial);
                    Ok(())
                };
                if or_open {
                    Store::open_or_create(key, &self.common, ty, &layout, init)?
                } else {
                    Store::create(key, &self.common, ty, &layout, init)?
                }
            }
            Kind::Region => {
                if !initial.is_empty() {
                    check_region(ty, shape.as_ref(), initial)?;
                }
                // The capacity asked for bounds the segment: a root larger
                // than it is refused, not made room for (an identity may
                // come from a peer).
                let capacity = capacity.max(initial.len());
                if ty.size as usize > capacity {
                    return Err(Error::InvalidLayout {
                        reason: format!("a root of {} bytes in buffers of {capacity}", ty.size),
                    });
                }
                let layout = crate::region::region_layout(
                    capacity,
                    self.buffers,
                    ty.align as usize,
                    schema_len,
                )?;
                let init = |_: &Store| {
                    created = true;
                    Ok(())
                };
                if or_open {
                    Store::open_or_create(key, &self.common, ty, &layout, init)?
                } else {
                    Store::create(key, &self.common, ty, &layout, init)?
                }
            }
        };
        let raw = RawObject::wrap(store, ty.clone(), shape);
        if created
            && ty.kind == Kind::Region
            && !initial.is_empty()
            && let Err(e) = raw.write(initial)
        {
            let _ = raw.remove();
            return Err(e);
        }
        Ok(raw)
    }
}

/// Whether an object of identity `ty` can be made holding `bytes` (a
/// cell's value or a region's archive): what [`RawOptions::create`] checks
/// before it makes anything, and [`RawObject::write`] before it writes.
pub fn check(ty: &TypeDesc, bytes: &[u8]) -> Result<()> {
    check_align(ty)?;
    let shape = parse_schema(ty)?;
    match ty.kind {
        Kind::Cell => check_cell(ty, shape.as_ref(), bytes),
        Kind::Region => check_region(ty, shape.as_ref(), bytes),
    }
}

/// Whether `ty`'s alignment is one a segment can have (FORMAT.md): a
/// power of two up to [`MAX_ALIGN`].
fn check_align(ty: &TypeDesc) -> Result<()> {
    if !ty.align.is_power_of_two() || ty.align > MAX_ALIGN {
        return Err(Error::InvalidLayout {
            reason: format!(
                "an alignment of {}: a power of two up to {MAX_ALIGN} is required",
                ty.align
            ),
        });
    }
    Ok(())
}

/// The stored schema of `ty`, parsed, and checked to imply its layout.
fn parse_schema(ty: &TypeDesc) -> Result<Option<Shape>> {
    let Some(text) = &ty.schema else {
        return Ok(None);
    };
    let form = match ty.kind {
        Kind::Cell => Form::Cell,
        Kind::Region => Form::Region,
    };
    let shape = Shape::parse(text.as_bytes()).map_err(|e| Error::InvalidLayout {
        reason: format!("the schema is not readable: {e}"),
    })?;
    let layout = shape
        .layout(form)
        .map_err(|reason| Error::InvalidLayout { reason })?;
    if (layout.size, layout.align) != (ty.size as usize, ty.align as usize) {
        return Err(Error::InvalidLayout {
            reason: format!(
                "the schema implies {} bytes aligned to {}, the identity {} aligned to {}",
                layout.size, layout.align, ty.size, ty.align
            ),
        });
    }
    Ok(Some(shape))
}

/// Check a cell's value: its size, and its schema if it has one.
fn check_cell(ty: &TypeDesc, shape: Option<&Shape>, bytes: &[u8]) -> Result<()> {
    if bytes.len() != ty.size as usize {
        return Err(Error::Corrupt {
            reason: format!(
                "a value of {} bytes for a cell of {} bytes",
                bytes.len(),
                ty.size
            ),
        });
    }
    if let Some(shape) = shape {
        crate::schema::decode(shape, Form::Cell, bytes).map_err(|e| Error::Corrupt {
            reason: format!("the value does not decode by its schema: {e}"),
        })?;
    }
    Ok(())
}

/// Check a region's archive by its schema (see the module's docs).
fn check_region(ty: &TypeDesc, shape: Option<&Shape>, bytes: &[u8]) -> Result<()> {
    let Some(shape) = shape else {
        return Err(Error::Unsupported {
            reason: "writing a region that stores no schema from bytes: they cannot be checked \
                     without its type (create it with `with_schema()`)"
                .into(),
        });
    };
    let ours = crate::region::rkyv_format();
    if ty.extra != ours {
        return Err(Error::Unsupported {
            reason: format!(
                "writing an archive in rkyv's format {:#x}; this build checks {ours:#x}",
                ty.extra
            ),
        });
    }
    let root = bytes.len().checked_sub(ty.size as usize);
    if root.is_none_or(|at| at % (ty.align.max(1) as usize) != 0) {
        return Err(Error::Corrupt {
            reason: format!(
                "an archive of {} bytes cannot end with a root of {} bytes aligned to {}",
                bytes.len(),
                ty.size,
                ty.align
            ),
        });
    }
    crate::schema::decode(shape, Form::Region, bytes).map_err(|e| Error::Corrupt {
        reason: format!("the archive does not decode by its schema: {e}"),
    })?;
    Ok(())
}

impl<A: Access> RawObject<A> {
    /// Open the object at `target` (a key, a name, or a segment's id),
    /// whatever it holds, with the default options (see [`RawOptions`]).
    pub fn open(target: impl Into<Target>) -> Result<Self> {
        Self::open_with(target.into(), &Common::default())
    }

    fn open_with(target: Target, common: &Common) -> Result<Self> {
        // The identity is read from a validated READY header, then the
        // object is opened as any typed open does, with that identity: if
        // the object changed in between (replaced by another type), the
        // open refuses it and the identity is read again.
        let mut last = None;
        for _ in 0..4 {
            let ty = identity_at(target, common)?;
            let shape = parse_schema(&ty)?;
            let opened = match target {
                Target::Key(key) => Store::open(key, common, &ty, A::READ_ONLY),
                Target::Id(id) => Store::attach_id(id, common, &ty, A::READ_ONLY),
            };
            match opened {
                // The identity checked at the open is compared whole with
                // the one the kept attachment holds: an object swapped in
                // meanwhile whose schema is the same but whose name is not
                // passes the open's check (schemas are compared instead of
                // names), and is caught here.
                Ok(store) => match identity_of(store.memory(), target, common) {
                    Ok(kept) if kept == ty => return Ok(Self::wrap(store, ty, shape)),
                    Ok(kept) => {
                        last = Some(Error::TypeMismatch {
                            stored: kept.to_string(),
                            requested: ty.to_string(),
                            differences: Vec::new(),
                        })
                    }
                    Err(e) => return Err(e),
                },
                Err(e @ Error::TypeMismatch { .. }) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.expect("a round ran"))
    }

    fn wrap(store: Store, identity: TypeDesc, shape: Option<Shape>) -> Self {
        let inner = match identity.kind {
            Kind::Cell => Inner::Cell(store),
            Kind::Region => Inner::Region(SharedRegion::wrap(store, &RegionSettings::default())),
        };
        RawObject {
            inner,
            identity,
            shape,
        }
    }

    /// The object's identity: what an open of it checks, and what
    /// [`RawOptions::create`] takes to make another like it.
    pub fn identity(&self) -> &TypeDesc {
        &self.identity
    }

    /// A cell or a region.
    pub fn kind(&self) -> Kind {
        self.identity.kind
    }

    /// The untyped store.
    pub(crate) fn store(&self) -> &Store {
        match &self.inner {
            Inner::Cell(store) => store,
            Inner::Region(region) => region.store(),
        }
    }

    /// The current value's version and bytes: a cell's value as its
    /// readers copy it, or a copy of a region's current archive
    /// ([`Error::NothingPublished`] before the first). The bytes are as
    /// untrusted as the segment: a peer may have written anything.
    pub fn read(&self) -> Result<RawValue> {
        match &self.inner {
            Inner::Cell(store) => {
                let mut bytes = vec![0u8; self.identity.size as usize];
                let version = store.read_cell(&mut bytes);
                Ok(RawValue { version, bytes })
            }
            Inner::Region(region) => {
                let (version, bytes) = crate::region::copy_current(region.store())?;
                Ok(RawValue { version, bytes })
            }
        }
    }

    /// The current version (0 before a region's first publish).
    pub fn version(&self) -> u64 {
        match &self.inner {
            Inner::Cell(store) => store.seq().load(std::sync::atomic::Ordering::Acquire),
            Inner::Region(region) => region.version(),
        }
    }

    /// Wait until the version differs from `since` or `timeout` passes,
    /// as [`SharedCell::wait_for_change`](crate::SharedCell::wait_for_change)
    /// does; [`Error::Removed`] once the object is removed.
    pub fn wait_for_change(&self, since: u64, timeout: Option<Duration>) -> Result<u64> {
        match &self.inner {
            Inner::Cell(store) => {
                let seq = store.seq();
                store.wait_for_change(since, timeout, || {
                    seq.load(std::sync::atomic::Ordering::SeqCst)
                })
            }
            Inner::Region(region) => region.wait_for_change(since, timeout),
        }
    }

    /// The bytes a value may take: a cell's size, a region's buffer size.
    pub fn capacity(&self) -> usize {
        match &self.inner {
            Inner::Cell(_) => self.identity.size as usize,
            Inner::Region(region) => region.capacity(),
        }
    }

    /// `IPC_STAT` of the segment.
    pub fn info(&self) -> Result<SegmentInfo> {
        self.store().info()
    }

    /// Whether the object was removed (one `IPC_STAT`).
    pub fn is_removed(&self) -> Result<bool> {
        self.store().is_removed()
    }

    /// The segment's kernel id.
    pub fn id(&self) -> i32 {
        self.store().id()
    }
}

impl RawObject<ReadWrite> {
    /// Write `bytes` as the next value, once checked (see the
    /// [module's documentation](self)): a cell's value, or a region's whole
    /// archive. Returns the new version. Bytes that do not check are
    /// [`Error::Corrupt`] and leave the object as it was.
    pub fn write(&self, bytes: &[u8]) -> Result<u64> {
        match &self.inner {
            Inner::Cell(store) => {
                check_cell(&self.identity, self.shape.as_ref(), bytes)?;
                let guard = store.lock()?;
                let h = store.header();
                let slots = store.layout().slot_count as u64;
                let next = crate::cell::ring::write::<Std>(&h.seq, &h.writing, slots, |slot| {
                    // Only lock holders write the slot, and readers that
                    // copy it meanwhile see `writing` moved.
                    store.write_slot(slot, bytes)
                });
                guard.committed();
                Ok(next)
            }
            Inner::Region(region) => {
                check_region(&self.identity, self.shape.as_ref(), bytes)?;
                region.publish_checked(bytes, |_| Ok(()))
            }
        }
    }

    /// `IPC_RMID`, as [`SharedCell::remove`](crate::SharedCell::remove).
    pub fn remove(&self) -> Result<()> {
        self.store().remove()
    }
}

impl<A: Access> std::fmt::Debug for RawObject<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct(if A::READ_ONLY {
            "RawReader"
        } else {
            "RawObject"
        })
        .field("identity", &self.identity)
        .field("memory", self.store().memory())
        .finish()
    }
}

/// The identity the object at `target` holds, read from its header once
/// it is READY and valid, on an attachment of its own (read-only).
fn identity_at(target: Target, common: &Common) -> Result<TypeDesc> {
    let seg = match target {
        Target::Key(key) => {
            let found = if key.name().is_some() {
                Store::locate(key, common, true)?
            } else {
                look::attach_key(key, common, true)?
            };
            found.ok_or(Error::NotFound { key })?
        }
        Target::Id(id) => Segment::options()
            .read_only(true)
            .allow_foreign_owner(common.allow_foreign_owner)
            .trust_group_opt(common.trust_group)
            .trust_user_opt(common.trust_user)
            .attach_id(id)?,
    };
    identity_of(&Memory::Segment(seg), target, common)
}

/// The identity the object in `memory` holds, read once it is READY and
/// valid.
fn identity_of(memory: &Memory, target: Target, common: &Common) -> Result<TypeDesc> {
    let h = crate::format::header_of(memory)?;
    creator::wait_ready(h, memory, target, common.init_timeout)?;
    let valid = crate::format::validate(h, memory.len())?;
    let mut ty = h.stored_type();
    ty.kind = valid.kind;
    ty.size = valid.value_size;
    ty.align = valid.value_align;
    ty.schema_version = valid.schema_version;
    ty.extra = valid.type_extra;
    ty.schema = match valid.schema(memory)? {
        None => None,
        Some(bytes) => Some(String::from_utf8(bytes).map_err(|_| Error::Corrupt {
            reason: "the stored schema is not UTF-8".into(),
        })?),
    };
    if ty.fingerprint() != valid.type_hash {
        return Err(Error::Unsupported {
            reason: format!(
                "opening without its type an object whose identity cannot be read back from its \
                 header (its type name `{}` was cut at {} bytes, or the header was written over)",
                ty.name.escape_debug(),
                crate::format::TYPE_NAME_MAX
            ),
        });
    }
    Ok(ty)
}
