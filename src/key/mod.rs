//! System V IPC keys: `IPC_PRIVATE`, raw values, `ftok`, and names.
//!
//! A name (`acme/config`) derives its key by the algorithm of FORMAT.md
//! ("Names"), so that a C or Python reader finds the object too, and is
//! stored in the segment and checked at every open through the name. Two
//! names whose keys collide, or a name whose key another program took,
//! never open each other's object: the open probes the next key of the
//! name's sequence.

use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::error::{Error, Result};

mod namespace;
mod siphash;

/// The secret's file, in a private namespace's directory
/// ([`Key::named_in`]).
pub const SECRET_FILE: &str = "shmstore.secret";

/// The bytes of a private namespace's secret.
pub const SECRET_LEN: usize = 16;

/// The key that names a System V shared-memory segment.
///
/// Two processes that use the same key reach the same segment. A key comes
/// from a number agreed on in advance ([`Key::new`]), from a path both
/// processes can see ([`Key::ftok`]), or is [`Key::PRIVATE`], which always
/// makes a new segment that other processes can reach only by its id.
///
/// `Display` prints the key as `ipcs -m` does, e.g. `0x2a01beef`.
///
/// ```
/// use shmstore::Key;
///
/// let key = Key::new(0x2a01_beef).unwrap();
/// assert_eq!(key.raw(), 0x2a01_beef);
/// assert_eq!(key.to_string(), "0x2a01beef");
/// assert!(Key::new(0).is_err()); // 0 is IPC_PRIVATE
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(i32, Option<&'static Name>);

/// A name, and the secret of its private namespace, if it is in one.
#[derive(PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Name {
    text: &'static str,
    secret: Option<[u8; SECRET_LEN]>,
}

/// The longest name, in bytes of UTF-8.
pub const NAME_MAX: usize = 128;
/// How many keys of a name's sequence are probed.
pub const NAME_PROBES: u8 = 8;

impl Key {
    /// `IPC_PRIVATE`: every create with it makes a new segment, reachable by
    /// other processes only through its id.
    pub const PRIVATE: Key = Key(0, None);

    /// A key from its raw value.
    ///
    /// Fails with [`Error::InvalidKey`] for 0, which the kernel takes as
    /// `IPC_PRIVATE`: use [`Key::PRIVATE`] for that on purpose.
    pub fn new(raw: i32) -> Result<Key> {
        if raw == 0 {
            return Err(Error::InvalidKey {
                raw,
                reason: "0 is IPC_PRIVATE; use Key::PRIVATE to ask for a private segment",
            });
        }
        Ok(Key(raw, None))
    }

    /// The key the kernel gives for a segment (`IPC_STAT`,
    /// `/proc/sysvipc/shm`): [`Key::PRIVATE`] for 0, which private segments
    /// and segments marked for removal show.
    pub(crate) fn from_kernel(raw: i32) -> Key {
        Key(raw, None)
    }

    /// The key of an object named `name`: 1 to [`NAME_MAX`] bytes of UTF-8,
    /// no control character (NUL included); `/` separates an application's
    /// prefix, as in `acme/config`. The name is stored in the object when
    /// it is created and checked at every open through this key, so objects
    /// of two names never open each other even if their keys collide, and
    /// neither opens an object that another program made at that key
    /// value: the open tries the next key of the name's sequence (FORMAT.md
    /// says how keys are derived). `Display` shows the name.
    ///
    /// ```
    /// use shmstore::{Key, SharedCell};
    ///
    /// let key = Key::named("acme/test-counter")?;
    /// assert_eq!(key.name(), Some("acme/test-counter"));
    /// # let _ = SharedCell::<u64>::open(key).map(|c| c.remove());
    /// let cell = SharedCell::<u64>::create(key, 0)?;
    /// assert_eq!(SharedCell::<u64>::open(key)?.id(), cell.id());
    /// cell.remove()?;
    /// assert!(Key::named("bad\nname").is_err());
    /// # Ok::<(), shmstore::Error>(())
    /// ```
    pub fn named(name: &str) -> Result<Key> {
        check_name(name)?;
        let name = intern(name, None);
        Ok(Key(name_key(name, 0), Some(name)))
    }

    /// The name, for a key made by [`Key::named`] or [`Key::named_in`].
    pub fn name(self) -> Option<&'static str> {
        self.1.map(|n| n.text)
    }

    /// The keys a named object may be at, in the order they are tried: the
    /// name's sequence ([`NAME_PROBES`] keys); just this key if it has no
    /// name.
    pub(crate) fn candidates(self) -> impl Iterator<Item = Key> {
        let probes = match self.1 {
            Some(_) => NAME_PROBES,
            None => 1,
        };
        (0..probes).map(move |i| match self.1 {
            Some(name) => Key(name_key(name, i), Some(name)),
            None => self,
        })
    }

    /// The key glibc's `ftok(path, proj_id)` gives, bit for bit.
    ///
    /// The key combines the low 16 bits of the file's inode number, the low 8
    /// bits of its device number and `proj_id`. Like `ftok`, it only needs to
    /// `stat` the path; it fails with [`Error::KeyPath`] if the path does not
    /// exist or cannot be reached. Two paths on different devices or with inode
    /// numbers equal in their low 16 bits can give the same key.
    ///
    /// If the combination comes out as 0 (possible only with `proj_id` 0) it
    /// would silently mean `IPC_PRIVATE`; that is refused with
    /// [`Error::InvalidKey`].
    ///
    /// ```
    /// use shmstore::Key;
    ///
    /// let key = Key::ftok("/", b'A').unwrap();
    /// assert_eq!(key.raw() as u32 >> 24, u32::from(b'A'));
    /// assert!(Key::ftok("/no/such/path", b'A').is_err());
    /// ```
    pub fn ftok(path: impl AsRef<Path>, proj_id: u8) -> Result<Key> {
        let path = path.as_ref();
        let meta = std::fs::metadata(path).map_err(|source| Error::KeyPath {
            path: path.to_path_buf(),
            source,
        })?;
        let raw = Self::ftok_bits(meta.ino(), meta.dev(), proj_id);
        if raw == 0 {
            return Err(Error::InvalidKey {
                raw,
                reason: "ftok gave 0 (IPC_PRIVATE) for this path with project id 0; use another project id",
            });
        }
        Ok(Key(raw, None))
    }

    /// glibc's formula: `(ino & 0xffff) | ((dev & 0xff) << 16) | (proj_id << 24)`.
    fn ftok_bits(ino: u64, dev: u64, proj_id: u8) -> i32 {
        let bits =
            (ino & 0xffff) as u32 | (((dev & 0xff) as u32) << 16) | (u32::from(proj_id) << 24);
        bits as i32
    }

    /// The raw `key_t` value.
    pub fn raw(self) -> i32 {
        self.0
    }

    /// Whether this is `IPC_PRIVATE`.
    pub fn is_private(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            Some(Name {
                text,
                secret: Some(_),
            }) => write!(f, "{text:?} (private namespace, {:#010x})", self.0 as u32),
            Some(Name { text, .. }) => write!(f, "{text:?} ({:#010x})", self.0 as u32),
            None => write!(f, "{:#010x}", self.0 as u32),
        }
    }
}

// The refusal below spells out NAME_MAX.
const _: () = assert!(NAME_MAX == 128);

/// Refuse what cannot be a name: empty, too long, or with a control
/// character.
pub(crate) fn check_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        "a name has at least one byte"
    } else if name.len() > NAME_MAX {
        "a name has at most 128 bytes"
    } else if name.chars().any(char::is_control) {
        "a name has no control character"
    } else {
        return Ok(());
    };
    Err(Error::InvalidName {
        name: name.escape_debug().to_string(),
        reason,
    })
}

/// Key `i` of the sequence of `name` (FORMAT.md, "Names"): 32-bit FNV-1a
/// over the byte `i`, `shmstore:` and the name's bytes, with the top bit
/// set, so that it is never `IPC_PRIVATE` and never an `ftok` key of a
/// project id below 0x80. The probe byte comes first, so that the states
/// of two names' hashes differ from the first byte on for every probe: two
/// names whose key 0 collide do not collide on their other keys.
///
/// In a private namespace, key `i` is the low 32 bits of SipHash-2-4, under
/// the namespace's secret, of the same bytes, with the top bit set.
pub(crate) fn name_key(name: &Name, i: u8) -> i32 {
    let h: u32 = match &name.secret {
        None => fnv_key(name.text, i),
        Some(secret) => {
            let mut bytes = Vec::with_capacity(10 + name.text.len());
            bytes.push(i);
            bytes.extend_from_slice(b"shmstore:");
            bytes.extend_from_slice(name.text.as_bytes());
            siphash::siphash24(secret, &bytes) as u32
        }
    };
    (h | 0x8000_0000) as i32
}

/// 32-bit FNV-1a over the byte `i`, `shmstore:` and the name's bytes.
fn fnv_key(name: &str, i: u8) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in [i].iter().chain(b"shmstore:").chain(name.as_bytes()) {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// The one `&'static` copy of `name` (in the namespace of `secret`) in
/// this process (names are few: each distinct one is kept once).
fn intern(name: &str, secret: Option<[u8; SECRET_LEN]>) -> &'static Name {
    use std::collections::HashSet;
    use std::sync::Mutex;
    static NAMES: Mutex<Option<HashSet<&'static Name>>> = Mutex::new(None);
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    let names = names.get_or_insert_with(HashSet::new);
    if let Some(known) = names.iter().find(|n| n.text == name && n.secret == secret) {
        return known;
    }
    let text: &'static str = Box::leak(name.to_owned().into_boxed_str());
    let leaked: &'static Name = Box::leak(Box::new(Name { text, secret }));
    names.insert(leaked);
    leaked
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_private() {
            f.write_str("Key(IPC_PRIVATE)")
        } else {
            write!(f, "Key({self})")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_matches_ipcs() {
        assert_eq!(Key::new(1).unwrap().to_string(), "0x00000001");
        assert_eq!(Key::new(-1).unwrap().to_string(), "0xffffffff");
        assert_eq!(Key::PRIVATE.to_string(), "0x00000000");
    }

    #[test]
    fn names_make_keys_with_the_top_bit_set() {
        let k = Key::named("acme/config").unwrap();
        assert_eq!(k.name(), Some("acme/config"));
        assert_eq!(k.raw(), (fnv_key("acme/config", 0) | 0x8000_0000) as i32);
        assert!(k.raw() < 0, "top bit set");
        let keys: Vec<i32> = k.candidates().map(Key::raw).collect();
        assert_eq!(keys.len(), NAME_PROBES as usize);
        assert!(keys.iter().all(|&r| r != 0));
        assert_eq!(Key::new(5).unwrap().candidates().count(), 1);
        assert_eq!(
            k.to_string(),
            format!("\"acme/config\" ({:#010x})", k.raw() as u32)
        );
        for bad in ["", "a\0b", "tab\there", "\u{1b}[2K", &"x".repeat(129)] {
            assert!(Key::named(bad).is_err(), "{bad:?}");
        }
        assert!(Key::named(&"é".repeat(64)).is_ok());
    }

    #[test]
    #[cfg_attr(miri, ignore = "a birthday search of some tens of thousands of hashes")]
    fn names_whose_first_keys_collide_differ_in_their_other_keys() {
        // Find two names with the same key 0 (a birthday search over the
        // 32 bits of the hash: some tens of thousands of names).
        let mut seen = std::collections::HashMap::new();
        let (a, b) = (0u32..)
            .find_map(|n| {
                let name = format!("n{n}");
                let k0 = fnv_key(&name, 0);
                seen.insert(k0, name.clone()).map(|other| (other, name))
            })
            .unwrap();
        assert_eq!(fnv_key(&a, 0), fnv_key(&b, 0));
        let same = (1..NAME_PROBES)
            .filter(|&i| fnv_key(&a, i) == fnv_key(&b, i))
            .count();
        assert_eq!(same, 0, "{a:?} and {b:?} collide beyond key 0");
    }

    #[test]
    fn ftok_formula() {
        assert_eq!(Key::ftok_bits(0x1_2345, 0x8_0301, 0x41), 0x4101_2345);
        assert_eq!(Key::ftok_bits(0, 0, 0xff), 0xff00_0000_u32 as i32);
    }
}
