//! How to open or create an object: [`Options`], one generic builder whose
//! settings every kind shares (timeouts, owner checks, the type's identity)
//! and whose methods are written once, with a parameter for what only one
//! kind has (`CellSettings`, `RegionSettings`), as `lock_api` builds its
//! mutexes over one raw trait, and a parameter for what the builder makes:
//! an [`Open`] builder opens an existing object with the access it names, a
//! [`Create`] builder creates one. Settings that only a creation uses (the
//! mode, the group, a cell's slots, a region's buffers) exist on creating
//! builders only, so they cannot be given to an open.

use std::marker::PhantomData;
use std::time::Duration;

use super::{Access, ReadWrite, Store};
use crate::error::{Error, Result, Target};
use crate::format::{Kind, TypeDesc};
use crate::schema::{Form, Schema, Shape};

/// How long openers wait for a creator to publish `READY`, by default.
pub const DEFAULT_INIT_TIMEOUT: Duration = Duration::from_secs(5);

/// What every kind's options share.
#[derive(Debug, Clone)]
pub struct Common {
    /// Permission bits of a created segment.
    pub mode: u32,
    /// Remove the segment (`IPC_RMID`) when the handle is dropped.
    pub remove_on_drop: bool,
    /// How long to wait for a creator to finish.
    pub init_timeout: Duration,
    /// Accept segments owned by other users.
    pub allow_foreign_owner: bool,
    /// The stored type's name, if not the Rust type's own.
    pub type_name: Option<String>,
    /// The stored type's schema version.
    pub schema_version: u32,
    /// The stored type's schema (`with_schema`), or why it has none.
    pub schema: Option<std::result::Result<String, String>>,
    /// The group a created segment is given.
    pub group: Option<u32>,
    /// A group whose members' segments are trusted.
    pub trust_group: Option<u32>,
    /// A user whose segments are trusted.
    pub trust_user: Option<u32>,
}

impl Default for Common {
    fn default() -> Self {
        Common {
            mode: 0o600,
            remove_on_drop: false,
            init_timeout: DEFAULT_INIT_TIMEOUT,
            allow_foreign_owner: false,
            type_name: None,
            schema_version: 0,
            schema: None,
            group: None,
            trust_group: None,
            trust_user: None,
        }
    }
}

impl Common {
    /// The identity of `T` stored as `kind` in `size` bytes aligned to
    /// `align`, with the name, schema version and schema these options
    /// give. A schema must imply that size and alignment
    /// ([`Error::InvalidLayout`](crate::Error::InvalidLayout) if not).
    pub fn type_desc<T: ?Sized>(
        &self,
        kind: Kind,
        size: usize,
        align: usize,
        extra: u64,
    ) -> Result<TypeDesc> {
        let schema = match &self.schema {
            None => None,
            Some(Err(reason)) => {
                return Err(Error::InvalidLayout {
                    reason: reason.clone(),
                });
            }
            Some(Ok(text)) => {
                check_schema::<T>(text, kind, size, align)?;
                Some(text.clone())
            }
        };
        Ok(TypeDesc {
            kind,
            name: self
                .type_name
                .clone()
                .unwrap_or_else(|| std::any::type_name::<T>().to_owned()),
            size: size as u32,
            align: align as u32,
            schema_version: self.schema_version,
            extra,
            schema,
        })
    }

    /// The bytes the schema takes in a created segment.
    pub fn schema_len(&self) -> usize {
        match &self.schema {
            Some(Ok(text)) => text.len(),
            _ => 0,
        }
    }
}

/// Check that `schema` implies the layout `T` has as `kind`.
fn check_schema<T: ?Sized>(schema: &str, kind: Kind, size: usize, align: usize) -> Result<()> {
    let form = match kind {
        Kind::Cell => Form::Cell,
        Kind::Region => Form::Region,
    };
    let implied = Shape::parse(schema.as_bytes())
        .map_err(|e| e.to_string())
        .and_then(|s| s.layout(form));
    match implied {
        Ok(l) if l.size == size && l.align == align => Ok(()),
        Ok(l) => Err(Error::InvalidLayout {
            reason: format!(
                "the schema of {} implies {} bytes aligned to {}, but the value stored is {size} \
                 bytes aligned to {align}: its Schema describes another layout (a hand-written \
                 one, or a repr the derive cannot see)",
                std::any::type_name::<T>(),
                l.size,
                l.align
            ),
        }),
        Err(reason) => Err(Error::InvalidLayout {
            reason: format!(
                "the schema of {} cannot be stored in a {}: {reason}",
                std::any::type_name::<T>(),
                kind.name()
            ),
        }),
    }
}

/// A builder of a handle to an object holding `T`: the settings every kind
/// shares (the methods of this type), those of its kind `K`
/// ([`CellSettings`](crate::CellSettings) for a
/// [`SharedCell`](crate::SharedCell),
/// [`RegionSettings`](crate::RegionSettings) for a
/// [`SharedRegion`](crate::SharedRegion)), and what it makes, `M`: an
/// [`Open<A>`] opens an existing object with access `A`, a [`Create`]
/// creates one (or opens the one there). Made by `opener()` and
/// `creator()` of [`SharedCell`](crate::SharedCell) and
/// [`SharedRegion`](crate::SharedRegion), and named by their aliases
/// ([`CellOpener`](crate::CellOpener), [`CellCreator`](crate::CellCreator),
/// [`RegionOpener`](crate::RegionOpener),
/// [`RegionCreator`](crate::RegionCreator)).
///
/// ```
/// use std::time::Duration;
/// use shmstore::{CellReader, Key, SharedCell, Target};
///
/// let cell = SharedCell::<[u64; 4]>::creator()
///     .mode(0o640)
///     .type_name("acme.Counters")
///     .schema_version(2)
///     .remove_on_drop(true)
///     .create(Key::PRIVATE, [0; 4])?;
/// assert_eq!(cell.info()?.mode, 0o640);
///
/// // Opening takes no creation settings; the access is the handle's type.
/// let reader = CellReader::<[u64; 4]>::opener()
///     .type_name("acme.Counters")
///     .schema_version(2)
///     .init_timeout(Duration::from_secs(1))
///     .open(Target::Id(cell.id()))?;
/// assert_eq!(reader.load(), [0; 4]);
/// # Ok::<(), shmstore::Error>(())
/// ```
///
/// What only a creation uses cannot be given to an open:
///
/// ```compile_fail
/// # use shmstore::{Key, SharedCell};
/// let cell = SharedCell::<u64>::opener().mode(0o640).open(Key::PRIVATE);
/// ```
///
/// ```compile_fail
/// # use shmstore::{Key, SharedRegion};
/// let region = SharedRegion::<String>::opener().buffers(8).open(Key::PRIVATE);
/// ```
///
/// nor what only a writer has to a read-only open:
///
/// ```compile_fail
/// # use shmstore::{CellReader, Key};
/// let reader = CellReader::<u64>::opener().remove_on_drop(true).open(Key::PRIVATE);
/// ```
///
/// ```compile_fail
/// # use shmstore::{Key, RegionReader};
/// # use std::time::Duration;
/// let reader = RegionReader::<String>::opener()
///     .publish_timeout(Duration::ZERO)
///     .open(Key::PRIVATE);
/// ```
///
/// and a read-only handle has no write methods:
///
/// ```compile_fail
/// # use shmstore::{CellReader, Key};
/// let reader = CellReader::<u64>::open(Key::PRIVATE).unwrap();
/// reader.store(1).unwrap();
/// ```
///
/// ```compile_fail
/// # use shmstore::{Key, RegionReader};
/// let reader = RegionReader::<String>::open(Key::PRIVATE).unwrap();
/// reader.publish(&String::new()).unwrap();
/// ```
///
/// The same lines with the settings each builder has compile:
///
/// ```no_run
/// # use shmstore::{CellReader, Key, RegionReader, SharedCell, SharedRegion};
/// # use std::time::Duration;
/// let cell = SharedCell::<u64>::creator().mode(0o640).create(Key::PRIVATE, 0);
/// let region = SharedRegion::<String>::creator().buffers(8).create(Key::PRIVATE, 64);
/// let cell = SharedCell::<u64>::opener().remove_on_drop(true).open(Key::PRIVATE);
/// let region = SharedRegion::<String>::opener()
///     .publish_timeout(Duration::ZERO)
///     .open(Key::PRIVATE);
/// let reader = CellReader::<u64>::open(Key::PRIVATE).unwrap();
/// let _ = reader.load();
/// let reader = RegionReader::<String>::open(Key::PRIVATE).unwrap();
/// let _ = reader.read();
/// ```
#[derive(Debug, Clone)]
pub struct Options<T, K, M> {
    pub(crate) common: Common,
    pub(crate) kind: K,
    _t: PhantomData<fn() -> (T, M)>,
}

/// What an [`Options`] makes: a handle with access `A`
/// ([`ReadWrite`](crate::ReadWrite) or [`ReadOnly`](crate::ReadOnly)) to an
/// existing object.
#[derive(Debug, Clone, Copy, Default)]
pub struct Open<A>(PhantomData<A>);

/// What an [`Options`] makes: a read-write handle to an object it creates
/// (or, with `open_or_create` and `open_or_replace`, finds).
#[derive(Debug, Clone, Copy, Default)]
pub struct Create;

/// What a builder makes: [`Open<A>`] or [`Create`].
pub trait Mode: sealed::Sealed {}
impl<A: Access> Mode for Open<A> {}
impl Mode for Create {}

/// A builder of a read-write handle: [`Open<ReadWrite>`] or [`Create`].
/// Only these have the settings of a writer (removal on drop, a region's
/// publish timeout).
pub trait Writes: Mode {}
impl Writes for Open<ReadWrite> {}
impl Writes for Create {}

mod sealed {
    pub trait Sealed {}
    impl<A: super::Access> Sealed for super::Open<A> {}
    impl Sealed for super::Create {}
}

impl<T, K, M: Mode> Options<T, K, M> {
    pub(crate) fn with(kind: K) -> Self {
        Options {
            common: Common::default(),
            kind,
            _t: PhantomData,
        }
    }

    /// How long an open waits for a racing creator to finish. Default 5 s.
    pub fn init_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.common.init_timeout = timeout;
        self
    }

    /// Accept a segment owned or created by another user than this one
    /// and root. Default off (see [`Error::ForeignOwner`](crate::Error::ForeignOwner)).
    pub fn allow_foreign_owner(&mut self, yes: bool) -> &mut Self {
        self.common.allow_foreign_owner = yes;
        self
    }

    /// The name the type is known by in the segment; by default
    /// `std::any::type_name::<T>()`, which changes when the type moves
    /// between crates or modules.
    pub fn type_name(&mut self, name: impl Into<String>) -> &mut Self {
        self.common.type_name = Some(name.into());
        self
    }

    /// A version to bump when the meaning of `T` changes but its layout
    /// does not. Default 0.
    pub fn schema_version(&mut self, version: u32) -> &mut Self {
        self.common.schema_version = version;
        self
    }

    /// Store `T`'s schema in a created object, and compare it with the
    /// stored one at an open (FORMAT.md, "Schema"): the type is then known
    /// by its structure instead of its name, a changed type is refused with
    /// what differs, field by field, and readers in other languages (and
    /// `shmstore get`) decode it by field name. Give it on every side: an
    /// opener without it compares the type by name, as before.
    pub fn with_schema(&mut self) -> &mut Self
    where
        T: Schema,
    {
        self.common.schema = Some(crate::schema::describe::<T>().map_err(|e| e.to_string()));
        self
    }

    /// Trust objects owned and created by members of group `gid` whose
    /// segment belongs to that group (see
    /// [`SegmentOptions::trust_group`](crate::SegmentOptions::trust_group)):
    /// a user outside the group who planted a segment at the key is still
    /// refused, unlike with [`allow_foreign_owner`](Self::allow_foreign_owner).
    pub fn trust_group(&mut self, gid: u32) -> &mut Self {
        self.common.trust_group = Some(gid);
        self
    }

    /// Trust objects owned and created by user `uid` too (see
    /// [`SegmentOptions::trust_user`](crate::SegmentOptions::trust_user)).
    pub fn trust_user(&mut self, uid: u32) -> &mut Self {
        self.common.trust_user = Some(uid);
        self
    }
}

/// The settings of a writer.
impl<T, K, M: Writes> Options<T, K, M> {
    /// Remove the segment (`IPC_RMID`) when this handle is dropped (by the
    /// process that opened or created it, not by a forked child): it then
    /// disappears after the last process detaches. Default off. It cannot
    /// happen when the process is killed (`kill -9`), exits without dropping
    /// the handle (`process::exit`, a handle in a `static` or leaked), or
    /// while another owner of the handle (an `Arc` in another thread) still
    /// holds it at exit: `shmstore gc` finds the objects left so.
    pub fn remove_on_drop(&mut self, yes: bool) -> &mut Self {
        self.common.remove_on_drop = yes;
        self
    }
}

/// The settings of a creation.
impl<T, K> Options<T, K, Create> {
    /// Permission bits of a created segment. Default `0o600`.
    pub fn mode(&mut self, mode: u32) -> &mut Self {
        self.common.mode = mode & 0o777;
        self
    }

    /// Give a created segment to group `gid` (`IPC_SET`, before anyone can
    /// open it), so that with a mode like `0o660` its members can use it;
    /// they open it with [`trust_group`](Self::trust_group). This user must
    /// be allowed to (a member of the group, or root).
    pub fn group(&mut self, gid: u32) -> &mut Self {
        self.common.group = Some(gid);
        self
    }
}

/// What a kind of object makes of its builder: the identity of `T` it
/// stores, and its handles. Implemented by the kinds' settings only.
pub trait Flavor<T>: Sized {
    /// The handle with access `A`.
    type Handle<A: Access>;
    /// The identity of `T` as this kind stores it, under these settings.
    fn type_desc(common: &Common) -> Result<TypeDesc>;
    /// A handle with access `A` over a store opened or created so.
    fn handle<A: Access>(store: Store, settings: &Self) -> Self::Handle<A>;
}

/// Opening, the same for every kind.
impl<T, K: Flavor<T>, A: Access> Options<T, K, Open<A>> {
    /// Open the existing object at `target`, checking that it holds `T`:
    /// a [`Key`](crate::Key) (a raw key, `ftok`, or a name), or a segment's
    /// id ([`Target::Id`], as `ipcs -m` or a handle's `id()` gives it; it
    /// reaches private and removed segments too). A
    /// [`ReadOnly`](crate::ReadOnly) builder attaches `SHM_RDONLY`.
    pub fn open(&self, target: impl Into<Target>) -> Result<K::Handle<A>> {
        let ty = K::type_desc(&self.common)?;
        let store = match target.into() {
            Target::Key(key) => Store::open(key, &self.common, &ty, A::READ_ONLY)?,
            Target::Id(id) => Store::attach_id(id, &self.common, &ty, A::READ_ONLY)?,
        };
        Ok(K::handle(store, &self.kind))
    }
}
