//! What is checked at every open: what a segment holds (its kind), the
//! platform it was made on (its ABI), and the stored type's identity and
//! fingerprint.

use std::fmt;

/// What a segment holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
#[non_exhaustive]
pub enum Kind {
    /// A `SharedCell`: a plain-data value in a ring of slots.
    Cell = 1,
    /// A `SharedRegion`: an rkyv archive in several buffers.
    Region = 2,
}

impl Kind {
    pub(crate) fn from_raw(raw: u32) -> Option<Kind> {
        match raw {
            1 => Some(Kind::Cell),
            2 => Some(Kind::Region),
            _ => None,
        }
    }

    /// The name users know this kind by.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Cell => "SharedCell",
            Kind::Region => "SharedRegion",
        }
    }
}

/// The platform facts two processes must share to use one segment: the
/// architecture, pointer width, C library and the size of its mutex.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Abi {
    /// 1 x86_64, 2 aarch64, 3 riscv64, 4 x86, 5 arm, 0 other.
    pub arch: u32,
    /// Pointer width in bits.
    pub pointer_width: u32,
    /// 1 glibc, 2 musl, 0 other.
    pub libc: u32,
    /// `size_of::<pthread_mutex_t>()`.
    pub mutex_size: u32,
}

impl Abi {
    /// The ABI of this build.
    pub const fn current() -> Abi {
        let arch = if cfg!(target_arch = "x86_64") {
            1
        } else if cfg!(target_arch = "aarch64") {
            2
        } else if cfg!(target_arch = "riscv64") {
            3
        } else if cfg!(target_arch = "x86") {
            4
        } else if cfg!(target_arch = "arm") {
            5
        } else {
            0
        };
        let libc = if cfg!(target_env = "gnu") {
            1
        } else if cfg!(target_env = "musl") {
            2
        } else {
            0
        };
        Abi {
            arch,
            pointer_width: usize::BITS,
            libc,
            mutex_size: crate::sys::mutex::SIZE as u32,
        }
    }
}

impl fmt::Display for Abi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let arch = match self.arch {
            1 => "x86_64",
            2 => "aarch64",
            3 => "riscv64",
            4 => "x86",
            5 => "arm",
            _ => "unknown arch",
        };
        let libc = match self.libc {
            1 => "glibc",
            2 => "musl",
            _ => "unknown libc",
        };
        write!(
            f,
            "{arch}, {}-bit, {libc}, {}-byte pthread mutex",
            self.pointer_width, self.mutex_size
        )
    }
}

/// The identity of a stored type: what is checked at every open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeDesc {
    /// What the segment holds.
    pub kind: Kind,
    /// The type's name (by default `std::any::type_name`).
    pub name: String,
    /// `size_of` the stored value.
    pub size: u32,
    /// `align_of` the stored value.
    pub align: u32,
    /// A version the user bumps when the meaning of the type changes.
    pub schema_version: u32,
    /// Further facts of the stored form (for regions: rkyv's format).
    pub extra: u64,
    /// The type's schema (`schema/`), if it describes itself: when both
    /// the object and the opener have one, it is compared instead of the
    /// name.
    pub schema: Option<String>,
}

impl TypeDesc {
    /// The fingerprint stored in the header: FNV-1a over every field but
    /// the schema (the whole name, even past the 128 bytes of it the
    /// header keeps).
    pub fn fingerprint(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |bytes: &[u8]| {
            for b in bytes {
                h ^= u64::from(*b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        };
        eat(&(self.kind as u32).to_le_bytes());
        eat(&(self.name.len() as u64).to_le_bytes());
        eat(self.name.as_bytes());
        eat(&self.size.to_le_bytes());
        eat(&self.align.to_le_bytes());
        eat(&self.schema_version.to_le_bytes());
        eat(&self.extra.to_le_bytes());
        h
    }
}

impl fmt::Display for TypeDesc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}<{}> ({} bytes, align {}, schema {}",
            self.kind.name(),
            self.name,
            self.size,
            self.align,
            self.schema_version
        )?;
        if self.extra != 0 {
            write!(f, ", format {:#x}", self.extra)?;
        }
        f.write_str(")")
    }
}
