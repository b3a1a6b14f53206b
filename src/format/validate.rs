//! What a segment's header declares, checked before anything is trusted:
//! [`validate`] reads every field once, checks it against the segment's real
//! length and this build, and returns what it checked ([`Validated`]):
//! callers keep that copy and never read those fields again, since another
//! process may change them between two reads. It makes no system call, so
//! that it can be fuzzed and run under Miri.

use std::sync::atomic::Ordering::Relaxed;

use std::sync::atomic::Ordering;

use super::header::{
    FORMAT_VERSION, HEADER_SIZE, Header, MAGIC, MAX_ALIGN, MAX_SLOTS, NAME_MAX, SCHEMA_MAX,
    STATE_READY, TYPE_NAME_MAX, fnv1a, schema_offset,
};
use super::identity::{Abi, Kind, TypeDesc};
use super::mapping::{Mapping, bytes_of, header_of};
use crate::error::{Error, Result};

/// Where the data lies, as a validated header declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Offset of slot 0.
    pub data_offset: usize,
    /// Distance between slots (a multiple of 8).
    pub slot_stride: usize,
    /// Number of slots.
    pub slot_count: usize,
    /// Bytes of the value in each slot (at most `slot_stride`).
    pub value_size: usize,
    /// `data_offset + slot_count * slot_stride`, within the image.
    pub used_len: usize,
}

impl Layout {
    /// The layout of a new cell for values of `size` bytes aligned to
    /// `align`, in `slot_count` slots, after a schema of `schema_len`
    /// bytes.
    pub fn for_value(
        size: usize,
        align: usize,
        slot_count: usize,
        schema_len: usize,
    ) -> Result<Layout> {
        Self::with_prefix(
            schema_offset(Kind::Cell) + schema_len,
            size,
            align,
            slot_count,
        )
    }

    /// The layout of a new region: a control block after the header, then
    /// `buffers` buffers of `capacity` bytes, each aligned to 64 or to the
    /// archived root's `align` if that is more (rkyv aligns an archive's
    /// parts relative to its start).
    pub fn for_region(
        capacity: usize,
        buffers: usize,
        align: usize,
        schema_len: usize,
    ) -> Result<Layout> {
        Self::with_prefix(
            schema_offset(Kind::Region) + schema_len,
            capacity,
            align.max(64),
            buffers,
        )
    }

    fn with_prefix(prefix: usize, size: usize, align: usize, slot_count: usize) -> Result<Layout> {
        let align = align.max(8);
        let too_big = || Error::InvalidLayout {
            reason: format!("{slot_count} slots of {size} bytes do not fit in a segment"),
        };
        let data_offset = prefix.next_multiple_of(align.max(64));
        let slot_stride = size
            .max(1)
            .checked_next_multiple_of(align.max(8))
            .ok_or_else(too_big)?;
        let used_len = slot_stride
            .checked_mul(slot_count)
            .and_then(|n| n.checked_add(data_offset))
            .filter(|&n| n <= isize::MAX as usize)
            .ok_or_else(too_big)?;
        Ok(Layout {
            data_offset,
            slot_stride,
            slot_count,
            value_size: size,
            used_len,
        })
    }
}

fn corrupt(reason: impl Into<String>) -> Error {
    Error::Corrupt {
        reason: reason.into(),
    }
}

/// Check a header against the length of its segment and return the layout
/// it declares.
///
/// Every field is read once, checked, and the checked values are what is
/// returned: the magic, format version, state, kind, ABI, and the layout
/// (slot count, stride, offsets and alignment). When this returns `Ok`,
/// every slot of the [`Layout`] lies inside `segment_len` bytes from the
/// header, and a region's control block fits before its data. It never
/// panics and makes no system call. The type is checked separately with
/// [`Validated::check_type`], on the values read here.
///
/// Errors: [`Error::NotShmstore`] when the bytes are not a shmstore segment
/// at all, [`Error::IncompatibleFormat`] for another format version,
/// [`Error::AbiMismatch`] for a segment made on another platform, and
/// [`Error::Corrupt`] for anything inconsistent.
pub fn validate(header: &Header, segment_len: usize) -> Result<Validated> {
    let magic = header.magic.load(Relaxed);
    if magic != MAGIC {
        return Err(Error::NotShmstore {
            reason: format!("magic {magic:#018x} is not shmstore's"),
        });
    }
    let version = header.format_version.load(Relaxed);
    if version != FORMAT_VERSION {
        return Err(Error::IncompatibleFormat {
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    let state = header.state();
    if state != STATE_READY {
        return Err(corrupt(format!(
            "state {state} is not READY ({STATE_READY})"
        )));
    }
    let raw_kind = header.kind.load(Relaxed);
    let Some(kind) = Kind::from_raw(raw_kind) else {
        return Err(corrupt(format!("unknown kind {raw_kind}")));
    };
    let header_size = header.header_size.load(Relaxed);
    if header_size as usize != HEADER_SIZE {
        return Err(corrupt(format!(
            "header size {header_size}, expected {HEADER_SIZE}"
        )));
    }
    let abi = header.abi();
    if abi != Abi::current() {
        return Err(Error::AbiMismatch {
            stored: abi.to_string(),
            ours: Abi::current().to_string(),
        });
    }
    let value_align = header.value_align.load(Relaxed);
    let schema_version = header.schema_version.load(Relaxed);
    let type_hash = header.type_hash.load(Relaxed);
    let type_extra = header.type_extra.load(Relaxed);
    let name_len = header.type_name_len.load(Relaxed);
    if name_len as usize > TYPE_NAME_MAX {
        return Err(corrupt(format!(
            "type name length {name_len} > {TYPE_NAME_MAX}"
        )));
    }
    let schema_len = header.schema_len.load(Relaxed);
    if schema_len as usize > SCHEMA_MAX {
        return Err(corrupt(format!(
            "schema length {schema_len} > {SCHEMA_MAX}"
        )));
    }
    let schema_hash = header.schema_hash.load(Relaxed);
    let object_name_len = header.name_len.load(Relaxed);
    if object_name_len as usize > NAME_MAX {
        return Err(corrupt(format!(
            "name length {object_name_len} > {NAME_MAX}"
        )));
    }
    let align = value_align;
    if !align.is_power_of_two() || align > MAX_ALIGN {
        return Err(corrupt(format!("value alignment {align}")));
    }
    let count = header.slot_count.load(Relaxed);
    if !(2..=MAX_SLOTS).contains(&count) {
        return Err(corrupt(format!("{count} slots (2 to {MAX_SLOTS} allowed)")));
    }
    if kind == Kind::Cell && !count.is_power_of_two() {
        return Err(corrupt(format!(
            "{count} slots in a cell (a power of two is required)"
        )));
    }
    let data_offset = header.data_offset.load(Relaxed);
    let stride = header.slot_stride.load(Relaxed);
    let prefix = schema_offset(kind) + schema_len as usize;
    let value_size = header.value_size.load(Relaxed);
    let size = u64::from(value_size);
    // A cell's slots are read as 8-byte words; a region's buffers start on
    // cache lines, and at its root's alignment (rkyv aligns within an
    // archive relative to its start).
    let unit = u64::from(match kind {
        Kind::Cell => align.max(8),
        Kind::Region => align.max(64),
    });
    if data_offset < prefix as u64
        || !data_offset.is_multiple_of(unit)
        || stride == 0
        || !stride.is_multiple_of(8)
        || (kind == Kind::Region && !stride.is_multiple_of(unit))
        || size > stride
    {
        return Err(corrupt(format!(
            "inconsistent layout: data at {data_offset}, stride {stride}, value {size} bytes, align {align}"
        )));
    }
    let needed = stride
        .checked_mul(u64::from(count))
        .and_then(|n| n.checked_add(data_offset));
    let used = header.used_len.load(Relaxed);
    match needed {
        Some(n) if n == used && n <= segment_len as u64 => Ok(Validated {
            kind,
            value_size,
            value_align,
            schema_version,
            type_hash,
            type_extra,
            schema_len,
            schema_hash,
            layout: Layout {
                data_offset: data_offset as usize,
                slot_stride: stride as usize,
                slot_count: count as usize,
                value_size: size as usize,
                used_len: n as usize,
            },
        }),
        _ => Err(corrupt(format!(
            "{count} slots of {stride} bytes from {data_offset} need {} bytes; header says {used}, segment has {}",
            needed.map_or("too many".to_owned(), |n| n.to_string()),
            segment_len
        ))),
    }
}

/// What [`validate`] read and checked: the values to keep and use, never
/// to read from the header again (another process may change the header
/// between two reads).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validated {
    /// What the segment holds.
    pub kind: Kind,
    /// The stored value's size: at most `layout.slot_stride`.
    pub value_size: u32,
    /// The stored value's alignment.
    pub value_align: u32,
    /// The stored type's schema version.
    pub schema_version: u32,
    /// The stored type's fingerprint.
    pub type_hash: u64,
    /// Further facts of the stored form.
    pub type_extra: u64,
    /// The length of the stored schema (0: none), which lies inside the
    /// segment, before the data.
    pub schema_len: u32,
    /// The stored schema's FNV-1a.
    pub schema_hash: u64,
    /// Where its data lies, every slot inside the segment.
    pub layout: Layout,
}

impl Validated {
    /// The stored schema, copied once and checked against its hash; `None`
    /// when there is none. A copy whose hash differs (a peer wrote over
    /// it) is [`Error::Corrupt`].
    pub fn schema(&self, m: &impl Mapping) -> Result<Option<Vec<u8>>> {
        if self.schema_len == 0 {
            return Ok(None);
        }
        let at = schema_offset(self.kind);
        let bytes = bytes_of(m, at, self.schema_len as usize)
            .ok_or_else(|| corrupt("the schema lies outside the segment"))?;
        let copy: Vec<u8> = bytes.iter().map(|b| b.load(Relaxed)).collect();
        if fnv1a(&copy) != self.schema_hash {
            return Err(corrupt(format!(
                "the schema's bytes do not match its hash {:#x}",
                self.schema_hash
            )));
        }
        Ok(Some(copy))
    }

    /// Fail with [`Error::TypeMismatch`] unless the type validated is
    /// `want`, compared on the values validated (so the kind and the size
    /// that the layout was checked against are the ones matched). When
    /// both the object and `want` have a schema, the schemas are compared
    /// instead of the names (FORMAT.md, "Identity with a schema"), and a
    /// mismatch lists what differs; otherwise the fingerprint is. The
    /// header is read again only for the error's description.
    pub fn check_type(&self, m: &impl Mapping, want: &TypeDesc) -> Result<()> {
        let header = header_of(m)?;
        let same_form = self.kind == want.kind
            && self.value_size == want.size
            && self.value_align == want.align
            && self.schema_version == want.schema_version
            && self.type_extra == want.extra;
        let stored_schema = match (&want.schema, self.schema_len) {
            (Some(_), 1..) => self.schema(m)?,
            _ => None,
        };
        let matches = match (&want.schema, &stored_schema) {
            (Some(ours), Some(theirs)) => same_form && ours.as_bytes() == theirs.as_slice(),
            _ => same_form && self.type_hash == want.fingerprint(),
        };
        if matches {
            return Ok(());
        }
        let mut stored = header.stored_type();
        stored.schema = stored_schema.map(|s| String::from_utf8_lossy(&s).into_owned());
        let differences = match (&stored.schema, &want.schema) {
            (Some(theirs), Some(ours)) => {
                match (
                    crate::schema::Shape::parse(theirs.as_bytes()),
                    crate::schema::Shape::parse(ours.as_bytes()),
                ) {
                    (Ok(a), Ok(b)) => crate::schema::differences(&a, &b),
                    (Err(e), _) => vec![format!("the stored schema is not readable: {e}")],
                    (_, Err(e)) => vec![format!("the schema asked for is not readable: {e}")],
                }
            }
            (None, Some(_)) if self.schema_len == 0 => {
                vec!["the object stores no schema; its type is compared by name".into()]
            }
            _ => Vec::new(),
        };
        Err(Error::TypeMismatch {
            stored: stored.to_string(),
            requested: want.to_string(),
            differences,
        })
    }
}

/// Write `schema` where a segment of `kind` keeps it (before READY: the
/// header's `schema_len` and `schema_hash` say how long it is and what it
/// hashes to). Fails if the mapping cannot hold it.
pub fn write_schema(m: &impl Mapping, kind: Kind, schema: &str) -> Result<()> {
    let bytes = bytes_of(m, schema_offset(kind), schema.len())
        .ok_or_else(|| corrupt("the schema does not fit before the data"))?;
    for (slot, b) in bytes.iter().zip(schema.as_bytes()) {
        slot.store(*b, Ordering::Relaxed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::mapping::{Snapshot, header_of};
    use super::*;

    /// A fresh, valid cell header in a private image of 4096 bytes.
    fn fresh() -> Snapshot {
        with_schema("")
    }

    /// A fresh, valid cell of `u64` in a private image of 4096 bytes, with
    /// the schema `text` stored (none if it is empty).
    fn with_schema(text: &str) -> Snapshot {
        cell_in(4096, text, text.len())
    }

    /// A fresh, valid cell of `u64` in a private image of `len` bytes, its
    /// data `room` bytes after the header, the schema `text` stored (none
    /// if it is empty).
    fn cell_in(len: usize, text: &str, room: usize) -> Snapshot {
        let img = Snapshot::zeroed(len);
        let h = header_of(&img).unwrap();
        let ty = TypeDesc {
            kind: Kind::Cell,
            name: "u64".into(),
            size: 8,
            align: 8,
            schema_version: 0,
            extra: 0,
            schema: (!text.is_empty()).then(|| text.into()),
        };
        let layout = Layout::for_value(8, 8, 2, room).unwrap();
        h.write_creator(1, 0, None);
        h.write_fresh(&ty, &layout);
        write_schema(&img, Kind::Cell, text).unwrap();
        h.state.store(STATE_READY, Relaxed);
        img
    }

    /// Validate the first `len` bytes of the image as a segment of `len`
    /// bytes.
    fn check(img: &Snapshot, len: usize) -> Result<Validated> {
        let first = Snapshot::of(&img.to_vec()[..len]);
        validate(header_of(&first)?, len)
    }

    #[test]
    fn fresh_header_validates() {
        let img = fresh();
        let v = check(&img, 4096).unwrap();
        assert_eq!(v.kind, Kind::Cell);
        assert_eq!(v.layout.data_offset, 512);
        assert_eq!(v.layout.slot_stride, 8);
        let h = header_of(&img).unwrap();
        assert_eq!(h.stored_type().name, "u64");
    }

    #[test]
    fn each_broken_field_is_refused() {
        let cases: [(usize, u8); 8] = [
            (0, b'x'),  // magic
            (8, 9),     // format version
            (12, 7),    // kind
            (16, 1),    // state
            (28, 99),   // arch
            (76, 0),    // slot count
            (88, 3),    // stride not a multiple of 8
            (96, 0xff), // used_len
        ];
        for (offset, byte) in cases {
            let img = fresh();
            img.set(offset, byte);
            assert!(
                check(&img, 4096).is_err(),
                "byte {offset} = {byte} accepted"
            );
        }
        let img = fresh();
        assert!(check(&img, HEADER_SIZE + 8).is_err(), "truncated slots");
        assert!(check(&img, 100).is_err());
    }

    #[test]
    fn a_stored_schema_is_read_back_and_checked_against_its_hash() {
        let img = with_schema("u64");
        let v = check(&img, 4096).unwrap();
        assert_eq!(v.schema_len, 3);
        assert!(v.layout.data_offset >= HEADER_SIZE + 3);
        assert_eq!(v.schema(&img).unwrap().as_deref(), Some(&b"u64"[..]));
        // A peer wrote over it: refused, not parsed.
        img.set(HEADER_SIZE + 1, b'8');
        assert!(matches!(v.schema(&img), Err(Error::Corrupt { .. })));
    }

    #[test]
    fn data_over_the_schema_is_refused() {
        let img = with_schema("u64");
        let h = header_of(&img).unwrap();
        // The data moved back onto the schema's bytes.
        h.data_offset.store(HEADER_SIZE as u64, Relaxed);
        h.used_len.store(HEADER_SIZE as u64 + 16, Relaxed);
        assert!(check(&img, 4096).is_err());
    }

    #[test]
    fn a_schema_longer_than_the_limit_is_refused_even_with_room() {
        let len = SCHEMA_MAX + 8;
        let layout = Layout::for_value(8, 8, 2, len).unwrap();
        let img = cell_in(layout.used_len, "", len);
        let h = header_of(&img).unwrap();
        h.schema_len.store(len as u32, Relaxed);
        let e = validate(h, img.len()).unwrap_err();
        assert!(e.to_string().contains("schema length"), "{e}");
    }

    #[test]
    fn region_buffers_lie_at_the_roots_alignment_and_on_cache_lines() {
        for align in [8usize, 64, 128] {
            let img = fresh();
            let h = header_of(&img).unwrap();
            let ty = TypeDesc {
                kind: Kind::Region,
                name: "Config".into(),
                size: 16,
                align: align as u32,
                schema_version: 0,
                extra: 0,
                schema: None,
            };
            let layout = Layout::for_region(1000, 2, align, 0).unwrap();
            assert_eq!(layout.data_offset % align.max(64), 0);
            assert_eq!(layout.slot_stride % align.max(64), 0);
            h.write_fresh(&ty, &layout);
            // Only the header is read: the length says how long the segment is.
            assert!(validate(h, layout.used_len).is_ok(), "align {align}");
            for (field, shift) in [(&h.data_offset, 8u64), (&h.slot_stride, 8)] {
                let good = field.load(Relaxed);
                field.store(good + shift, Relaxed);
                let used = h.data_offset.load(Relaxed) + 2 * h.slot_stride.load(Relaxed);
                h.used_len.store(used, Relaxed);
                assert!(
                    validate(h, used as usize).is_err(),
                    "align {align}: {good} + {shift} accepted"
                );
                field.store(good, Relaxed);
            }
            h.used_len.store(layout.used_len as u64, Relaxed);
            assert!(validate(h, layout.used_len).is_ok());
        }
    }
}
