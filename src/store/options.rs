//! How to open or create an object: [`Options`], one generic type whose
//! settings every kind shares (mode, removal on drop, timeouts, owner
//! checks, the type's identity) and whose open and attach methods are
//! written once, with a second parameter for what only one kind has
//! (`CellSettings`, `RegionSettings`), as `lock_api` builds its mutexes over
//! one raw trait.

use std::marker::PhantomData;
use std::time::Duration;

use super::Store;
use crate::error::Result;
use crate::format::{Kind, TypeDesc};
use crate::key::Key;

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
            group: None,
            trust_group: None,
            trust_user: None,
        }
    }
}

impl Common {
    /// The identity of `T` stored as `kind` in `size` bytes aligned to
    /// `align`, with the name and schema version these options give.
    pub fn type_desc<T: ?Sized>(
        &self,
        kind: Kind,
        size: usize,
        align: usize,
        extra: u64,
    ) -> TypeDesc {
        TypeDesc {
            kind,
            name: self
                .type_name
                .clone()
                .unwrap_or_else(|| std::any::type_name::<T>().to_owned()),
            size: size as u32,
            align: align as u32,
            schema_version: self.schema_version,
            extra,
        }
    }
}

/// How to open or create an object holding `T`: the settings every kind
/// shares (the methods of this type) and those of its kind `K`
/// ([`CellSettings`](crate::CellSettings) for a
/// [`SharedCell`](crate::SharedCell),
/// [`RegionSettings`](crate::RegionSettings) for a
/// [`SharedRegion`](crate::SharedRegion)). Made by `SharedCell::options()`
/// and `SharedRegion::options()`.
///
/// ```
/// use std::time::Duration;
/// use shmstore::{Key, SharedCell};
///
/// let cell = SharedCell::<[u64; 4]>::options()
///     .mode(0o640)
///     .type_name("acme.Counters")
///     .schema_version(2)
///     .init_timeout(Duration::from_secs(1))
///     .remove_on_drop(true)
///     .create(Key::PRIVATE, [0; 4])?;
/// assert_eq!(cell.info()?.mode, 0o640);
/// # Ok::<(), shmstore::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Options<T, K> {
    pub(crate) common: Common,
    pub(crate) kind: K,
    _t: PhantomData<fn() -> T>,
}

impl<T, K> Options<T, K> {
    pub(crate) fn with(kind: K) -> Self {
        Options {
            common: Common::default(),
            kind,
            _t: PhantomData,
        }
    }

    /// Permission bits of a created segment. Default `0o600`.
    pub fn mode(&mut self, mode: u32) -> &mut Self {
        self.common.mode = mode & 0o777;
        self
    }

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

    /// How long `open` waits for a racing creator to finish. Default 5 s.
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

    /// Give a created segment to group `gid` (`IPC_SET`, before anyone can
    /// open it), so that with a mode like `0o660` its members can use it;
    /// they open it with [`trust_group`](Self::trust_group). This user must
    /// be allowed to (a member of the group, or root).
    pub fn group(&mut self, gid: u32) -> &mut Self {
        self.common.group = Some(gid);
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

/// What a kind of object makes of its options: the identity of `T` it
/// stores, and its handles. Implemented by the kinds' settings only.
pub trait Flavor<T>: Sized {
    /// The read-write handle.
    type Handle;
    /// The read-only handle.
    type Reader;
    /// The identity of `T` as this kind stores it.
    fn type_desc(options: &Options<T, Self>) -> TypeDesc;
    /// A read-write handle over an opened or created store.
    fn handle(store: Store, options: &Options<T, Self>) -> Self::Handle;
    /// A read-only handle over a store opened `SHM_RDONLY`.
    fn reader(store: Store, options: &Options<T, Self>) -> Self::Reader;
}

/// Opening and attaching, the same for every kind.
impl<T, K: Flavor<T>> Options<T, K> {
    /// Open the existing object at `key`, checking that it holds `T`.
    pub fn open(&self, key: Key) -> Result<K::Handle> {
        let store = Store::open(key, &self.common, &K::type_desc(self), false)?;
        Ok(K::handle(store, self))
    }

    /// Attach the object at `key` read-only (`SHM_RDONLY`).
    pub fn open_read_only(&self, key: Key) -> Result<K::Reader> {
        let store = Store::open(key, &self.common, &K::type_desc(self), true)?;
        Ok(K::reader(store, self))
    }

    /// Attach the object in the segment with this id (as `ipcs -m` or the
    /// handle's `id()` gives it); works for private and removed segments
    /// that no key reaches any more.
    pub fn attach_id(&self, id: i32) -> Result<K::Handle> {
        let store = Store::attach_id(id, &self.common, &K::type_desc(self), false)?;
        Ok(K::handle(store, self))
    }

    /// Attach the object in the segment with this id read-only.
    pub fn attach_id_read_only(&self, id: i32) -> Result<K::Reader> {
        let store = Store::attach_id(id, &self.common, &K::type_desc(self), true)?;
        Ok(K::reader(store, self))
    }
}
