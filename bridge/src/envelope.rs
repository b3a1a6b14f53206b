//! What one key-value entry holds: an object's identity, where its value
//! came from, and its bytes (README.md, "Wire format"). Every integer is
//! little-endian; the variable parts follow the fixed ones in order.
//!
//! ```text
//! offset size  field
//!      0    8  magic "shmsbr\0\x01"
//!      8    4  kind: 1 cell, 2 region
//!     12    4  the value's size       (the identity, as the segment's
//!     16    4  the value's alignment   header holds it: FORMAT.md)
//!     20    4  schema version
//!     24    8  type extra (a region's rkyv format)
//!     32    8  the type's fingerprint (FNV-1a, FORMAT.md "Identity")
//!     40    8  the source object's version
//!     48    8  when the exporter read it: nanoseconds since the epoch
//!     56    4  the source's capacity (a region's buffer size)
//!     60    2  type name length  (at most 128)
//!     62    2  origin length     (at most 255)
//!     64    4  schema length     (at most 16384)
//!     68    4  value length
//!     72       type name, origin, schema, value
//! ```
//!
//! An entry comes from the network, written by any peer that may write the
//! bucket: [`Envelope::decode`] trusts none of it. Lengths must add up to
//! the entry's exact size, strings must be UTF-8 (a type name without
//! control characters), the fingerprint must be the one the identity
//! implies (so the identity is whole: a name cut at 128 bytes does not
//! pass), the alignment a power of two up to 4096, a region must carry a
//! schema and at least its root, and the value must fit the identity
//! (checked again, by the stored schema, when it is written:
//! `shmstore::raw`).

use shmstore::{Kind, TypeDesc};

/// The first bytes of every entry.
pub const MAGIC: [u8; 8] = *b"shmsbr\0\x01";
/// The fixed part's length.
pub const FIXED: usize = 72;
/// The longest type name a segment's header keeps.
pub const TYPE_NAME_MAX: usize = 128;
/// The longest origin.
pub const ORIGIN_MAX: usize = 255;
/// The longest schema (FORMAT.md, "Schema").
pub const SCHEMA_MAX: usize = 16384;

/// The most bytes an entry takes besides its value.
pub const fn overhead() -> usize {
    FIXED + TYPE_NAME_MAX + ORIGIN_MAX + SCHEMA_MAX
}

/// One object's value as the bucket holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The object's identity.
    pub identity: TypeDesc,
    /// The host (the exporting bridge's `host`) it came from.
    pub origin: String,
    /// The source object's version.
    pub version: u64,
    /// When the exporter read it, in nanoseconds since the epoch.
    pub read_at_ns: u64,
    /// The source's capacity: a region's buffer size, a cell's value size.
    pub capacity: u32,
    /// The value: a cell's bytes or a region's archive.
    pub bytes: Vec<u8>,
}

impl Envelope {
    /// The entry's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let id = &self.identity;
        let schema = id.schema.as_deref().unwrap_or("");
        let mut out = Vec::with_capacity(
            FIXED + id.name.len() + self.origin.len() + schema.len() + self.bytes.len(),
        );
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&(id.kind as u32).to_le_bytes());
        out.extend_from_slice(&id.size.to_le_bytes());
        out.extend_from_slice(&id.align.to_le_bytes());
        out.extend_from_slice(&id.schema_version.to_le_bytes());
        out.extend_from_slice(&id.extra.to_le_bytes());
        out.extend_from_slice(&id.fingerprint().to_le_bytes());
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&self.read_at_ns.to_le_bytes());
        out.extend_from_slice(&self.capacity.to_le_bytes());
        out.extend_from_slice(&(id.name.len() as u16).to_le_bytes());
        out.extend_from_slice(&(self.origin.len() as u16).to_le_bytes());
        out.extend_from_slice(&(schema.len() as u32).to_le_bytes());
        out.extend_from_slice(&(self.bytes.len() as u32).to_le_bytes());
        debug_assert_eq!(out.len(), FIXED);
        out.extend_from_slice(id.name.as_bytes());
        out.extend_from_slice(self.origin.as_bytes());
        out.extend_from_slice(schema.as_bytes());
        out.extend_from_slice(&self.bytes);
        out
    }

    /// Whether [`encode`](Self::encode) can write this envelope so that
    /// [`decode`](Self::decode) reads it back.
    pub fn check(&self) -> Result<(), String> {
        let id = &self.identity;
        if id.name.len() > TYPE_NAME_MAX {
            return Err(format!(
                "a type name of {} bytes (at most {TYPE_NAME_MAX})",
                id.name.len()
            ));
        }
        if self.origin.len() > ORIGIN_MAX {
            return Err(format!(
                "an origin of {} bytes (at most {ORIGIN_MAX})",
                self.origin.len()
            ));
        }
        if id
            .schema
            .as_ref()
            .is_some_and(|s| s.is_empty() || s.len() > SCHEMA_MAX)
        {
            return Err(format!("a schema empty or longer than {SCHEMA_MAX} bytes"));
        }
        if u32::try_from(self.bytes.len()).is_err() {
            return Err("a value of 4 GiB or more".into());
        }
        Ok(())
    }

    /// Read an entry, trusting nothing in it (see the module's docs).
    pub fn decode(entry: &[u8]) -> Result<Envelope, String> {
        if entry.len() < FIXED {
            return Err(format!(
                "{} bytes, fewer than an entry's fixed {FIXED}",
                entry.len()
            ));
        }
        if entry[..8] != MAGIC {
            return Err("not a shmstore-bridge entry (its magic differs)".into());
        }
        let u16_at = |at: usize| u16::from_le_bytes([entry[at], entry[at + 1]]) as usize;
        let u32_at = |at: usize| u32::from_le_bytes(entry[at..at + 4].try_into().unwrap());
        let u64_at = |at: usize| u64::from_le_bytes(entry[at..at + 8].try_into().unwrap());
        let kind = match u32_at(8) {
            1 => Kind::Cell,
            2 => Kind::Region,
            k => return Err(format!("kind {k} is neither a cell (1) nor a region (2)")),
        };
        let (name_len, origin_len) = (u16_at(60), u16_at(62));
        let (schema_len, value_len) = (u32_at(64) as usize, u32_at(68) as usize);
        if name_len > TYPE_NAME_MAX || origin_len > ORIGIN_MAX || schema_len > SCHEMA_MAX {
            return Err(format!(
                "lengths out of range: type name {name_len} (at most {TYPE_NAME_MAX}), origin \
                 {origin_len} (at most {ORIGIN_MAX}), schema {schema_len} (at most {SCHEMA_MAX})"
            ));
        }
        let total = FIXED + name_len + origin_len + schema_len + value_len;
        if entry.len() != total {
            return Err(format!(
                "{} bytes where its lengths add up to {total}",
                entry.len()
            ));
        }
        let mut at = FIXED;
        let mut take = |n: usize| {
            let part = &entry[at..at + n];
            at += n;
            part
        };
        let text = |bytes: &[u8], what: &str| {
            String::from_utf8(bytes.to_vec()).map_err(|_| format!("its {what} is not UTF-8"))
        };
        let name = text(take(name_len), "type name")?;
        if name.chars().any(char::is_control) {
            return Err("its type name holds a control character".into());
        }
        let origin = text(take(origin_len), "origin")?;
        let schema = take(schema_len);
        let schema = if schema.is_empty() {
            None
        } else {
            Some(text(schema, "schema")?)
        };
        let bytes = take(value_len).to_vec();
        let identity = TypeDesc {
            kind,
            name,
            size: u32_at(12),
            align: u32_at(16),
            schema_version: u32_at(20),
            extra: u64_at(24),
            schema,
        };
        if identity.fingerprint() != u64_at(32) {
            return Err("its fingerprint is not the one its identity implies".into());
        }
        // FORMAT.md: a value is aligned to a power of two up to 4096.
        if !identity.align.is_power_of_two() || identity.align > 4096 {
            return Err(format!("an alignment of {}", identity.align));
        }
        match kind {
            Kind::Cell if bytes.len() != identity.size as usize => {
                return Err(format!(
                    "a cell's value of {} bytes where its size is {}",
                    bytes.len(),
                    identity.size
                ));
            }
            Kind::Region if identity.schema.is_none() => {
                return Err("a region without a schema (its bytes could not be checked)".into());
            }
            Kind::Region if bytes.len() < identity.size as usize => {
                return Err(format!(
                    "an archive of {} bytes, shorter than its root ({})",
                    bytes.len(),
                    identity.size
                ));
            }
            _ => {}
        }
        let capacity = u32_at(56);
        if (bytes.len() as u64) > u64::from(capacity) {
            return Err(format!(
                "a value of {} bytes over its source's capacity of {capacity}",
                bytes.len()
            ));
        }
        Ok(Envelope {
            identity,
            origin,
            version: u64_at(40),
            read_at_ns: u64_at(48),
            capacity,
            bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Envelope {
        Envelope {
            identity: TypeDesc {
                kind: Kind::Region,
                name: "acme::Config".into(),
                size: 24,
                align: 4,
                schema_version: 3,
                extra: 0x1234,
                schema: Some("Config{name:str}".into()),
            },
            origin: "host-a".into(),
            version: 42,
            read_at_ns: 7,
            capacity: 4096,
            bytes: (0..28).collect(),
        }
    }

    #[test]
    fn an_envelope_round_trips() {
        let e = sample();
        assert_eq!(e.check(), Ok(()));
        let bytes = e.encode();
        assert_eq!(bytes.len(), FIXED + 12 + 6 + 16 + 28);
        assert_eq!(Envelope::decode(&bytes).unwrap(), e);
        let mut cell = sample();
        cell.identity.kind = Kind::Cell;
        cell.identity.schema = None;
        cell.identity.size = 28;
        assert_eq!(Envelope::decode(&cell.encode()).unwrap(), cell);
    }

    #[test]
    fn every_cut_and_every_flipped_fixed_byte_is_refused_or_read_whole() {
        let bytes = sample().encode();
        for n in 0..bytes.len() {
            assert!(Envelope::decode(&bytes[..n]).is_err(), "cut at {n}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Envelope::decode(&longer).is_err());
        // A changed identity breaks the fingerprint; a changed length
        // breaks the total; a changed version or time reads as given.
        for at in 0..FIXED {
            let mut b = bytes.clone();
            b[at] ^= 0x40;
            match Envelope::decode(&b) {
                Err(_) => {}
                Ok(e) => assert!((40..60).contains(&at), "byte {at} changed unseen: {e:?}"),
            }
        }
    }

    #[test]
    fn identities_that_cannot_be_made_are_refused() {
        let mut cell = sample();
        cell.identity.kind = Kind::Cell;
        cell.identity.size = 8;
        assert!(
            Envelope::decode(&cell.encode())
                .unwrap_err()
                .contains("size is 8")
        );
        let mut named = sample();
        named.identity.name = "a\nb".into();
        assert!(
            Envelope::decode(&named.encode())
                .unwrap_err()
                .contains("control")
        );
        let mut over = sample();
        over.capacity = 2;
        let refused = |e: Envelope| Envelope::decode(&e.encode()).unwrap_err();
        assert!(refused(over).contains("capacity"));
        let mut aligned = sample();
        aligned.identity.align = 8192;
        assert!(refused(aligned).contains("alignment"));
        let mut schemaless = sample();
        schemaless.identity.schema = None;
        assert!(refused(schemaless).contains("schema"));
        let mut short = sample();
        short.bytes.truncate(23);
        assert!(refused(short).contains("root"));
    }
}
