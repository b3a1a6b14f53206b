//! System V IPC keys: `IPC_PRIVATE`, raw values and `ftok`.

use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::error::{Error, Result};

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
pub struct Key(i32);

impl Key {
    /// `IPC_PRIVATE`: every create with it makes a new segment, reachable by
    /// other processes only through its id.
    pub const PRIVATE: Key = Key(0);

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
        Ok(Key(raw))
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
        Ok(Key(raw))
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
        write!(f, "{:#010x}", self.0 as u32)
    }
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
    fn ftok_formula() {
        assert_eq!(Key::ftok_bits(0x1_2345, 0x8_0301, 0x41), 0x4101_2345);
        assert_eq!(Key::ftok_bits(0, 0, 0xff), 0xff00_0000_u32 as i32);
    }
}
