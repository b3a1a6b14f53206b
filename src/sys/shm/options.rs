//! How to find, create and attach a segment: [`SegmentOptions`]. What each
//! `shmget` and `shmat` failure means is decided in `failure.rs`.
#![allow(unsafe_code)]

use std::ptr::NonNull;

use super::Segment;
use super::SegmentInfo;
use super::failure::{Call, error};
use super::info::{remove, stat};
use super::raw;
use crate::error::{Error, Result, Target};
use crate::key::Key;

/// How to find, create and attach a segment.
///
/// ```
/// use shmstore::{Key, Segment};
///
/// let seg = Segment::options()
///     .size(4096)
///     .create(true)
///     .mode(0o600)
///     .open(Key::PRIVATE)?;
/// assert_eq!(seg.len(), 4096);
/// seg.write_at(0, b"hello")?;
/// let mut buf = [0u8; 5];
/// seg.read_at(0, &mut buf)?;
/// assert_eq!(&buf, b"hello");
/// seg.remove()?; // gone once `seg` is dropped
/// # Ok::<(), shmstore::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct SegmentOptions {
    size: usize,
    create: bool,
    exclusive: bool,
    mode: u32,
    read_only: bool,
    huge_pages: bool,
    no_reserve: bool,
    allow_foreign_owner: bool,
    trust_group: Option<u32>,
    trust_user: Option<u32>,
    /// The last option set that only a create uses, which `attach_id`
    /// refuses rather than ignore.
    create_only: Option<&'static str>,
}

impl Default for SegmentOptions {
    fn default() -> Self {
        SegmentOptions {
            size: 0,
            create: false,
            exclusive: false,
            mode: 0o600,
            read_only: false,
            huge_pages: false,
            no_reserve: false,
            allow_foreign_owner: false,
            trust_group: None,
            trust_user: None,
            create_only: None,
        }
    }
}

impl SegmentOptions {
    /// Options that open an existing segment read-write, any size, mode `0o600`
    /// if it were created.
    pub fn new() -> Self {
        Self::default()
    }

    /// The size in bytes. Needed to create; when opening, a size larger than
    /// the segment's is [`Error::SizeMismatch`] and a smaller one is ignored
    /// ([`Segment::len`] gives the real size). Default 0: any size.
    pub fn size(&mut self, bytes: usize) -> &mut Self {
        self.size = bytes;
        self
    }

    /// Create the segment if it does not exist (`IPC_CREAT`). Without
    /// [`exclusive`](Self::exclusive), [`open`](Self::open) looks the key up
    /// first and creates with `IPC_CREAT | IPC_EXCL` only if it is missing,
    /// so that it knows whether it created the segment.
    pub fn create(&mut self, yes: bool) -> &mut Self {
        self.create = yes;
        self.create_only = Some("create");
        self
    }

    /// With [`create`](Self::create): fail with [`Error::AlreadyExists`] if
    /// the segment exists (`IPC_EXCL`). Exactly one of many racing creators
    /// succeeds.
    pub fn exclusive(&mut self, yes: bool) -> &mut Self {
        self.exclusive = yes;
        self.create_only = Some("exclusive");
        self
    }

    /// The permission bits of a created segment (only the low 9 bits count).
    /// Default `0o600`: only this user.
    pub fn mode(&mut self, mode: u32) -> &mut Self {
        self.mode = mode & 0o777;
        self.create_only = Some("mode");
        self
    }

    /// Attach read-only (`SHM_RDONLY`): a write through the mapping faults.
    pub fn read_only(&mut self, yes: bool) -> &mut Self {
        self.read_only = yes;
        self
    }

    /// Back a created segment with huge pages (`SHM_HUGETLB`). Fails with
    /// [`Error::NoHugePages`] where the system has none reserved.
    pub fn huge_pages(&mut self, yes: bool) -> &mut Self {
        self.huge_pages = yes;
        self.create_only = Some("huge_pages");
        self
    }

    /// Reserve no swap space for a created segment (`SHM_NORESERVE`): a write
    /// may then get `SIGSEGV` when memory runs out.
    pub fn no_reserve(&mut self, yes: bool) -> &mut Self {
        self.no_reserve = yes;
        self.create_only = Some("no_reserve");
        self
    }

    /// Accept a segment owned or created by another user than the caller and
    /// root. Off by default: another user can pre-create a segment at a
    /// guessable key and feed it to us ([`Error::ForeignOwner`]).
    pub fn allow_foreign_owner(&mut self, yes: bool) -> &mut Self {
        self.allow_foreign_owner = yes;
        self
    }

    /// Also accept a segment owned and created by members of group `gid`,
    /// if the segment's group is `gid`: users who share a group share its
    /// segments, while a user outside the group who planted a segment at the
    /// key is still refused. A member is a user whose primary group is
    /// `gid`, or whom the user database lists in it; the creator also counts
    /// when the kernel recorded `gid` as its group at creation (`cgid`).
    pub fn trust_group(&mut self, gid: u32) -> &mut Self {
        self.trust_group = Some(gid);
        self
    }

    /// [`trust_group`](Self::trust_group), or no group.
    pub(crate) fn trust_group_opt(&mut self, gid: Option<u32>) -> &mut Self {
        self.trust_group = gid;
        self
    }

    /// Also accept a segment owned and created by user `uid` (as well as
    /// this user and root): for an operator or a service that reads the
    /// objects of one other user, without trusting every user as
    /// [`allow_foreign_owner`](Self::allow_foreign_owner) does.
    pub fn trust_user(&mut self, uid: u32) -> &mut Self {
        self.trust_user = Some(uid);
        self
    }

    /// [`trust_user`](Self::trust_user), or no user.
    pub(crate) fn trust_user_opt(&mut self, uid: Option<u32>) -> &mut Self {
        self.trust_user = uid;
        self
    }

    /// Find (or create, as the options say) the segment at `key` and attach it.
    ///
    /// [`Key::PRIVATE`] always creates a new segment, whatever
    /// [`create`](Self::create) says.
    ///
    /// The segment returned is the one at `key` when it was attached: what
    /// is checked (owner, size) is read again after `shmat`, whose
    /// attachment keeps the id from naming another segment; a segment that
    /// was removed between the lookup and the attach, its id perhaps taken
    /// by another, is let go and the key looked up again.
    ///
    /// If this call created the segment and then cannot attach it, it
    /// removes the segment again before returning the error, so a failed
    /// call leaves nothing behind. A segment that existed before the call is
    /// never removed.
    #[doc(alias = "shmget")]
    #[doc(alias = "shmat")]
    pub fn open(&self, key: Key) -> Result<Segment> {
        for _ in 0..OPEN_OR_CREATE_ROUNDS {
            let (id, created) = self.get(key)?;
            let attached = self.attach(id, Target::Key(key), created);
            match attached {
                Ok(seg) if key.is_private() || seg.key.raw() == key.raw() => {
                    if created && self.mode & 0o600 != 0o600 {
                        // Created with the owner's read and write so that
                        // this attach could not fail for the mode; now the
                        // mode asked for, on the attached segment.
                        if let Err(e) = seg.set_mode(self.mode) {
                            let _ = seg.remove();
                            return Err(e);
                        }
                    }
                    return Ok(seg);
                }
                // Removed between the lookup and the attach (its key is
                // then IPC_PRIVATE): look the key up again.
                Ok(_) | Err(Error::IdNotFound { .. }) if !created => {}
                Ok(seg) => {
                    // Made by this call and removed by another process
                    // before this one attached it: gone once detached.
                    drop(seg);
                }
                Err(e) => {
                    if created && !matches!(e, Error::IdNotFound { .. }) {
                        // This call made the segment, so it existed for
                        // nobody before, and no attach holds it: remove it
                        // by id. The attach failed a few microseconds after
                        // the segment was made (the creator always has read
                        // and write: `shmat` ran out of address space, or
                        // mapped it at address 0). One that another process
                        // removed meanwhile (`IdNotFound`) is gone already,
                        // and its id is not touched.
                        let _ = remove(id);
                    }
                    return Err(e);
                }
            }
        }
        Err(Error::Contended {
            key,
            op: "attach the segment at the key",
            rounds: OPEN_OR_CREATE_ROUNDS,
        })
    }

    /// `shmget` as the options say: the segment's id, and whether this call
    /// created it.
    fn get(&self, key: Key) -> Result<(i32, bool)> {
        // The mode bits also ask shmget for access; when only looking up, ask
        // for none and let shmat check the access the attachment really needs.
        // Creating is always exclusive, so that a success means this call
        // made the segment (IPC_EXCL changes nothing for Key::PRIVATE, which
        // always makes a new one).
        // The owner's read and write always, so that the creator can attach
        // what it made (`open` sets the mode asked for afterwards).
        let mut create = (self.mode | 0o600) as libc::c_int | libc::IPC_CREAT | libc::IPC_EXCL;
        if self.huge_pages {
            create |= libc::SHM_HUGETLB;
        }
        if self.no_reserve {
            create |= libc::SHM_NORESERVE;
        }
        let failed = |err| {
            let call = Call::Get {
                key,
                size: self.size,
                huge_pages: self.huge_pages,
            };
            error(call, err)
        };
        if key.is_private() || (self.create && self.exclusive) {
            return raw::shmget(key.raw(), self.size, create)
                .map(|id| (id, true))
                .map_err(failed);
        }
        if !self.create {
            return raw::shmget(key.raw(), self.size, 0)
                .map(|id| (id, false))
                .map_err(failed);
        }
        // Open or create: look the key up, and create it exclusively only if
        // it is missing. A segment created (EEXIST) or removed (ENOENT) by
        // another process between the two calls sends us round again.
        for _ in 0..OPEN_OR_CREATE_ROUNDS {
            match raw::shmget(key.raw(), self.size, 0) {
                Ok(id) => return Ok((id, false)),
                Err(err) if err.raw_os_error() == Some(libc::ENOENT) => {}
                Err(err) => return Err(failed(err)),
            }
            match raw::shmget(key.raw(), self.size, create) {
                Ok(id) => return Ok((id, true)),
                Err(err) if err.raw_os_error() == Some(libc::EEXIST) => {}
                Err(err) => return Err(failed(err)),
            }
        }
        Err(Error::Contended {
            key,
            op: "open or create the segment at the key",
            rounds: OPEN_OR_CREATE_ROUNDS,
        })
    }

    /// Attach the segment with this kernel id (as `ipcs -m` lists it). The
    /// size, read-only and owner options (`allow_foreign_owner`,
    /// `trust_group`, `trust_user`) apply; an option that only
    /// a create uses (`create`, `exclusive`, `mode`, `huge_pages`,
    /// `no_reserve`) is refused with [`Error::InvalidOptions`] rather than
    /// ignored.
    #[doc(alias = "shmat")]
    pub fn attach_id(&self, id: i32) -> Result<Segment> {
        if let Some(option) = self.create_only {
            return Err(Error::InvalidOptions {
                reason: format!(
                    "`{option}` applies to a segment being created; attach_id only attaches an existing one"
                ),
            });
        }
        self.attach(id, Target::Id(id), false)
    }

    fn attach(&self, id: i32, target: Target, created: bool) -> Result<Segment> {
        let info = stat(id, target)?;
        if !created {
            self.check_owner(&info, target)?;
        }
        let addr = raw::shmat(id, self.read_only).map_err(|err| {
            let size = info.size;
            error(Call::Attach { id, target, size }, err)
        })?;
        let Some(ptr) = NonNull::new(addr) else {
            // SAFETY: the attachment just made, which nothing refers to.
            let _ = unsafe { raw::shmdt(addr) };
            return Err(Error::Unsupported {
                reason: "the kernel attached the segment at address 0, which Rust cannot \
                         reference"
                    .into(),
            });
        };
        // The attachment is what is judged from here on: while it lasts, the
        // id names this segment. What was read before `shmat` may describe
        // another segment that had the id (removed since, the id reused), so
        // it is read again: the length above all, which bounds every access.
        let mut seg = Segment {
            id,
            key: info.key,
            ptr,
            len: 0,
            read_only: self.read_only,
        };
        let now = stat(id, target)?;
        if !created {
            self.check_owner(&now, target)?;
        }
        if self.size > now.size {
            return Err(Error::SizeMismatch {
                requested: self.size,
                actual: now.size,
            });
        }
        seg.key = now.key;
        seg.len = now.size;
        Ok(seg)
    }

    /// [`Error::ForeignOwner`] unless the segment's owner and creator are
    /// trusted ([`trusts`](Self::trusts)).
    fn check_owner(&self, info: &SegmentInfo, target: Target) -> Result<()> {
        if self.trusts(info) {
            return Ok(());
        }
        Err(Error::ForeignOwner {
            target,
            uid: info.uid,
            cuid: info.cuid,
            gid: info.gid,
            euid: crate::sys::proc::euid(),
        })
    }

    /// Whether the owner and the creator of the segment `info` describes
    /// are trusted: this user, root, the user of `trust_user`, or (with
    /// `trust_group`) members of the segment's group; anyone with
    /// `allow_foreign_owner`.
    pub(crate) fn trusts(&self, info: &SegmentInfo) -> bool {
        if self.allow_foreign_owner {
            return true;
        }
        let euid = crate::sys::proc::euid();
        let in_group = |uid: u32| {
            self.trust_group.is_some_and(|g| {
                info.gid == g
                    && ((uid == info.cuid && info.cgid == g)
                        || crate::sys::proc::user_in_group(uid, g))
            })
        };
        let trusted =
            |uid: u32| uid == euid || uid == 0 || Some(uid) == self.trust_user || in_group(uid);
        trusted(info.uid) && trusted(info.cuid)
    }
}

/// How many times an open-or-create looks the key up and tries to create the
/// segment before giving up on other processes creating and removing it.
const OPEN_OR_CREATE_ROUNDS: usize = 16;
