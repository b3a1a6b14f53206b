//! Decoding a segment for display (the `shmstore` command's `list`,
//! `inspect` and `watch`). It works on a snapshot of the segment's first
//! bytes, treats every byte as hostile, and never panics: whatever the bytes,
//! it returns a [`Description`] that says what it found.
//!
//! Also the objects on the system as the command sees them (`catalog.rs`):
//! every segment described ([`objects`]), one found by name ([`locate`]),
//! removed ([`remove_attached`], [`remove_prefix`]) or collected
//! ([`garbage`], [`collect`]).

use std::fmt;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::Result;
use crate::format::{self, Current, HEADER_SIZE, Kind, REGION_CONTROL_SIZE, RegionControl};
use crate::region::pin_slot::{buffer_of, pid_of};
use crate::sync::notify::WAITING;
use crate::sys::shm::Segment;

pub use crate::sys::pipe::reader_gone;

pub use crate::catalog::{
    Collection, Contents, Liveness, Object, Trust, attach_for_removal, cell_value, claimants,
    collect, contents, garbage, liveness, locate, objects, remove_attached, remove_prefix,
};

/// The most bytes a description looks at: the header, a region's control
/// block and the longest schema.
pub const SNAPSHOT_LEN: usize = HEADER_SIZE + REGION_CONTROL_SIZE + crate::schema::SCHEMA_MAX;

/// Describe an attached segment from a snapshot of its first bytes.
pub fn describe_segment(seg: &Segment) -> Result<Description> {
    let mut bytes = vec![0u8; seg.len().min(SNAPSHOT_LEN)];
    seg.read_at(0, &mut bytes)?;
    Ok(describe(&bytes, seg.len()))
}

/// What a segment's first bytes say, for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description {
    /// The length of the snapshot given (of which at most
    /// [`SNAPSHOT_LEN`] bytes are looked at).
    pub len: usize,
    /// Why the bytes are not a valid shmstore segment, if they are not.
    pub problem: Option<String>,
    /// The object's name (`Key::named`), if it has one, escaped as
    /// [`escape`] says (bytes that are not UTF-8 as `\xNN`); control
    /// characters and bytes that are not UTF-8 are also flagged in
    /// `warnings`.
    pub name: Option<String>,
    /// Fields that disagree with each other or with the format, each said
    /// in a sentence: the description shows them, but they are not to be
    /// trusted.
    pub warnings: Vec<String>,
    /// The header's `state` word: 0 FRESH, 1 INITIALIZING, 2 READY.
    pub state: u32,
    /// The stored type, when valid.
    pub stored: Option<String>,
    /// The stored schema (FORMAT.md, "Schema"), escaped, when there is one
    /// and its bytes match their hash; what is wrong with it is in
    /// `warnings`.
    pub schema: Option<String>,
    /// `Cell` or `Region`, when valid.
    pub kind: Option<Kind>,
    /// The version: a cell's commit counter, a region's current version.
    pub version: u64,
    /// Recoveries from dead writers.
    pub recoveries: u64,
    /// Whether a read-write waiter announced itself since the last commit
    /// (it may have died since).
    pub waiting: bool,
    /// The pid that initialised the segment.
    pub creator_pid: i32,
    /// Where the slots lie, when valid.
    pub layout: Option<SlotLayout>,
    /// For a region: the current version and buffer, each buffer's archive
    /// length and version, and the live pins (pid, buffer).
    pub region: Option<RegionState>,
}

/// Where a segment's data slots lie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotLayout {
    /// The offset of slot 0.
    pub data_offset: usize,
    /// The distance between slots.
    pub slot_stride: usize,
    /// The number of slots (a region's buffers).
    pub slot_count: usize,
}

/// A region buffer's description.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferState {
    /// The length of the archive in it.
    pub len: u64,
    /// The version it holds.
    pub version: u64,
}

/// A reader's pin on a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PinState {
    /// The reading process.
    pub pid: i32,
    /// The buffer it pins.
    pub buffer: u32,
}

/// The state of a region's control block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionState {
    /// The version of the current archive (0: none yet).
    pub current_version: u64,
    /// The buffer that holds it.
    pub current_buffer: usize,
    /// Each buffer's archive length and version.
    pub buffers: Vec<BufferState>,
    /// The pins held.
    pub pins: Vec<PinState>,
}

/// Decode a snapshot of the first bytes of a segment of `segment_len` bytes
/// (at most [`SNAPSHOT_LEN`] bytes of the snapshot are looked at).
pub fn describe(bytes: &[u8], segment_len: usize) -> Description {
    let len = bytes.len().min(SNAPSHOT_LEN);
    // An aligned copy, reached as a mapping, never through a reference to
    // its bytes.
    let snapshot = format::Snapshot::of(&bytes[..len]);
    let mut d = Description {
        len: bytes.len(),
        problem: None,
        name: None,
        warnings: Vec::new(),
        state: 0,
        stored: None,
        schema: None,
        kind: None,
        version: 0,
        recoveries: 0,
        waiting: false,
        creator_pid: 0,
        layout: None,
        region: None,
    };
    let h = match format::header_of(&snapshot) {
        Ok(h) => h,
        Err(e) => {
            d.problem = Some(e.to_string());
            return d;
        }
    };
    let magic = h.magic.load(Relaxed);
    d.state = h.state.load(Relaxed);
    if magic == 0 && bytes[..len.min(HEADER_SIZE)].iter().all(|&b| b == 0) {
        d.problem = Some(
            "all zeros: not initialised yet (a creator may be at work) or another program's segment"
                .into(),
        );
        return d;
    }
    if magic == format::MAGIC && d.state != format::STATE_READY {
        d.problem = Some(format!(
            "being initialised (state {}): its creator is at work, or died before it finished",
            d.state
        ));
        d.creator_pid = h.creator_pid.load(Relaxed);
        return d;
    }
    // The slots lie beyond the snapshot: the layout is checked against the
    // segment's length.
    let valid = match format::validate(h, segment_len.max(len)) {
        Ok(v) => v,
        Err(e) => {
            d.problem = Some(e.to_string());
            return d;
        }
    };
    let layout = valid.layout;
    let stored = h.stored_type();
    d.stored = Some(escape(&stored.to_string()));
    check_type(h, &stored, &mut d.warnings);
    check_schema(&valid, &snapshot, &mut d);
    if let Some(name) = h.stored_name().filter(|n| !n.is_empty()) {
        match String::from_utf8(name) {
            Ok(n) => {
                if crate::key::check_name(&n).is_err() {
                    d.warnings.push("the name holds control characters".into());
                }
                d.name = Some(escape(&n));
            }
            Err(e) => {
                d.warnings.push("the name is not UTF-8".into());
                d.name = Some(escape_bytes(e.as_bytes()));
            }
        }
    }
    d.kind = Some(valid.kind);
    d.version = h.seq.load(Relaxed);
    d.recoveries = h.recoveries.load(Relaxed);
    d.waiting = h.notify.load(Relaxed) & WAITING != 0;
    d.creator_pid = h.creator_pid.load(Relaxed);
    d.layout = Some(SlotLayout {
        data_offset: layout.data_offset,
        slot_stride: layout.slot_stride,
        slot_count: layout.slot_count,
    });
    if valid.kind == Kind::Cell {
        let writing = h.writing.load(Relaxed);
        if writing.wrapping_sub(d.version) > 1 {
            d.warnings.push(format!(
                "writing is {writing}, not the version ({}) or the next",
                d.version
            ));
        }
    }
    if valid.kind == Kind::Region {
        if valid.type_extra >> 24 != 0x72 {
            d.warnings.push(format!(
                "a region's format word is {:#x}, not rkyv's (0x72......)",
                valid.type_extra
            ));
        }
        match format::region_control_of(&snapshot) {
            None => {
                d.problem = Some("the snapshot does not reach the region's control block".into());
            }
            Some(ctl) => {
                let state = region_state(ctl, layout.slot_count);
                check_region(&state, &layout, &mut d.warnings);
                d.version = state.current_version;
                d.region = Some(state);
            }
        }
    }
    d
}

/// Take the stored schema if it is whole and matches its hash and the
/// value's layout; say what is wrong with it otherwise.
fn check_schema(valid: &format::Validated, snapshot: &format::Snapshot, d: &mut Description) {
    use crate::schema::{Form, Shape};
    let text = match valid.schema(snapshot) {
        Ok(None) => return,
        Ok(Some(t)) => t,
        Err(_)
            if format::Mapping::len(snapshot)
                < format::schema_offset(valid.kind) + valid.schema_len as usize =>
        {
            d.warnings
                .push("the snapshot does not reach the whole schema".into());
            return;
        }
        Err(e) => {
            d.warnings.push(format!("schema: {e}"));
            return;
        }
    };
    let form = match valid.kind {
        Kind::Cell => Form::Cell,
        Kind::Region => Form::Region,
    };
    match Shape::parse(&text)
        .map_err(|e| e.to_string())
        .and_then(|s| s.layout(form))
    {
        Ok(l) if l.size == valid.value_size as usize && l.align == valid.value_align as usize => {}
        Ok(l) => d.warnings.push(format!(
            "the schema implies {} bytes aligned to {}, the header {} aligned to {}",
            l.size, l.align, valid.value_size, valid.value_align
        )),
        Err(e) => d.warnings.push(format!("the schema is not readable: {e}")),
    }
    d.schema = Some(escape(&String::from_utf8_lossy(&text)));
}

/// Flag a type description whose fingerprint does not match its fields
/// (checkable when the name is too short to have been cut to fit the
/// header: a cut, at a character boundary, keeps at least
/// `TYPE_NAME_MAX - 3` bytes), or whose name is not UTF-8 or holds control
/// characters.
fn check_type(h: &format::Header, stored: &format::TypeDesc, warnings: &mut Vec<String>) {
    let len = h.type_name_len.load(Relaxed) as usize;
    let bytes: Vec<u8> = h.type_name[..len.min(format::TYPE_NAME_MAX)]
        .iter()
        .map(|b| b.load(Relaxed))
        .collect();
    if std::str::from_utf8(&bytes).is_err() {
        warnings.push("the type name is not UTF-8".into());
        return;
    }
    if stored.name.chars().any(char::is_control) {
        warnings.push("the type name holds control characters".into());
    }
    if len < format::TYPE_NAME_MAX - 3 && stored.fingerprint() != h.type_hash.load(Relaxed) {
        warnings.push(
            "the type fingerprint does not match the type's name, size, alignment and schema"
                .into(),
        );
    }
}

/// Flag region values that cannot be: a buffer out of range, an archive
/// longer than its buffer, a version ahead of the current one.
fn check_region(r: &RegionState, layout: &format::Layout, warnings: &mut Vec<String>) {
    if r.current_version != 0 && r.current_buffer >= layout.slot_count {
        warnings.push(format!(
            "the current buffer {} is not one of the {}",
            r.current_buffer, layout.slot_count
        ));
    }
    for (i, b) in r.buffers.iter().enumerate() {
        if b.len > layout.slot_stride as u64 {
            warnings.push(format!(
                "buffer {i} says {} bytes, it holds {}",
                b.len, layout.slot_stride
            ));
        }
        if b.version > r.current_version {
            warnings.push(format!(
                "buffer {i} holds version {}, after the current {}",
                b.version, r.current_version
            ));
        }
    }
    if r.current_version != 0
        && let Some(b) = r.buffers.get(r.current_buffer)
        && b.version != r.current_version
    {
        warnings.push(format!(
            "the current buffer {} holds version {}, not the current {}",
            r.current_buffer, b.version, r.current_version
        ));
    }
    for p in &r.pins {
        if p.buffer as usize >= layout.slot_count {
            warnings.push(format!(
                "pid {} pins buffer {}, out of range",
                p.pid, p.buffer
            ));
        }
    }
}

/// `s` with every control character (Unicode category Cc), format
/// character (Cf: bidirectional overrides, isolates and marks, zero-width
/// joiners, tags, ...) and line or paragraph separator (U+2028, U+2029)
/// escaped (`\u{1b}`, `\r`, `\u{202e}`, ...), so that nothing read from a
/// segment can drive a terminal or show as other text than it is.
pub fn escape(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() || is_format(c) || matches!(c, '\u{2028}' | '\u{2029}') {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// The code points of Unicode's general category Cf (format), as sorted,
/// disjoint, inclusive ranges: those of Unicode 16.0.0, listed by Python's
/// `unicodedata2` 16.0.0 as every code point `c` whose
/// `unicodedata2.category(chr(c))` is `"Cf"`, consecutive ones merged.
/// `unicodedata2` 18.0.0 (Unicode 18.0.0) lists the same ranges.
const FORMAT: &[(u32, u32)] = &[
    (0x00ad, 0x00ad),
    (0x0600, 0x0605),
    (0x061c, 0x061c),
    (0x06dd, 0x06dd),
    (0x070f, 0x070f),
    (0x0890, 0x0891),
    (0x08e2, 0x08e2),
    (0x180e, 0x180e),
    (0x200b, 0x200f),
    (0x202a, 0x202e),
    (0x2060, 0x2064),
    (0x2066, 0x206f),
    (0xfeff, 0xfeff),
    (0xfff9, 0xfffb),
    (0x110bd, 0x110bd),
    (0x110cd, 0x110cd),
    (0x13430, 0x1343f),
    (0x1bca0, 0x1bca3),
    (0x1d173, 0x1d17a),
    (0xe0001, 0xe0001),
    (0xe0020, 0xe007f),
];

/// Whether `c` is a format character (Unicode category Cf).
fn is_format(c: char) -> bool {
    let c = u32::from(c);
    FORMAT
        .binary_search_by(|&(lo, hi)| {
            if hi < c {
                std::cmp::Ordering::Less
            } else if lo > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// `t` in UTC as RFC 3339, to the second: `2026-12-06T22:54:56Z`. A time
/// before 1970 is shown too; a year past 9999 with more digits.
pub fn rfc3339(t: SystemTime) -> String {
    let (secs, _) = since_epoch(t);
    utc(secs, None)
}

/// `t` in UTC as RFC 3339, to the millisecond: `2026-12-06T22:54:56.123Z`.
pub fn rfc3339_millis(t: SystemTime) -> String {
    let (secs, nanos) = since_epoch(t);
    utc(secs, Some(nanos / 1_000_000))
}

/// The whole seconds from the epoch to `t` (rounded down: negative before
/// it, saturated far from it) and the nanoseconds past them.
fn since_epoch(t: SystemTime) -> (i64, u32) {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (
            i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            d.subsec_nanos(),
        ),
        Err(before) => {
            let d = before.duration();
            let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            match d.subsec_nanos() {
                0 => (-secs, 0),
                n => (-secs - 1, 1_000_000_000 - n),
            }
        }
    }
}

/// `secs` since the epoch as `YYYY-MM-DDTHH:MM:SS`, then `.mmm` if
/// `millis` is given, then `Z`: the proleptic Gregorian calendar, no leap
/// seconds (as the kernel and `date -u` count).
fn utc(secs: i64, millis: Option<u32>) -> String {
    let (days, in_day) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (in_day / 3600, in_day / 60 % 60, in_day % 60);
    match millis {
        Some(ms) => format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{ms:03}Z"),
        None => format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z"),
    }
}

/// The date (year, month 1 to 12, day 1 to 31) `days` after 1970-01-01:
/// Howard Hinnant's `civil_from_days`, which counts in 400-year eras of
/// 146097 days, each year from March 1 so that the leap day is a year's
/// last. Exact for every `i64` day count a second count gives.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Days from 0000-03-01, the start of an era.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], from March
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Bytes that are not UTF-8, shown with `\xNN` escapes where they fail.
fn escape_bytes(bytes: &[u8]) -> String {
    bytes
        .utf8_chunks()
        .map(|chunk| {
            let mut out = escape(chunk.valid());
            for b in chunk.invalid() {
                out.push_str(&format!("\\x{b:02x}"));
            }
            out
        })
        .collect()
}

fn region_state(ctl: &RegionControl, count: usize) -> RegionState {
    let current = Current::from_raw(ctl.current.load(Relaxed));
    RegionState {
        current_version: current.version(),
        current_buffer: current.buffer(),
        buffers: ctl
            .buffers
            .iter()
            .take(count)
            .map(|b| BufferState {
                len: b.len.load(Relaxed),
                version: b.version.load(Relaxed),
            })
            .collect(),
        pins: ctl
            .pins
            .iter()
            .map(|p| p.word.load(Relaxed))
            .filter_map(|w| {
                Some(PinState {
                    pid: pid_of(w),
                    buffer: buffer_of(w)? as u32,
                })
            })
            .filter(|p| p.pid != 0)
            .collect(),
    }
}

impl fmt::Display for Description {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let (Some(problem), None) = (&self.problem, &self.stored) {
            return write!(f, "not a valid shmstore segment: {problem}");
        }
        if let Some(name) = &self.name {
            writeln!(f, "name:        {name}")?;
        }
        writeln!(f, "holds:       {}", self.stored.as_deref().unwrap_or("?"))?;
        if let Some(schema) = &self.schema {
            writeln!(f, "schema:      {schema}")?;
        }
        writeln!(f, "version:     {}", self.version)?;
        writeln!(
            f,
            "recoveries:  {} (writers that died holding the lock)",
            self.recoveries
        )?;
        writeln!(
            f,
            "waiting:     {}",
            if self.waiting { "yes" } else { "no" }
        )?;
        writeln!(f, "initialised: by pid {}", self.creator_pid)?;
        if let Some(l) = self.layout {
            writeln!(
                f,
                "layout:      {} slots of {} bytes from offset {}",
                l.slot_count, l.slot_stride, l.data_offset
            )?;
        }
        if let Some(r) = &self.region {
            writeln!(
                f,
                "current:     version {} in buffer {}",
                r.current_version, r.current_buffer
            )?;
            for (i, b) in r.buffers.iter().enumerate() {
                writeln!(f, "buffer {i}:    {} bytes, version {}", b.len, b.version)?;
            }
            if r.pins.is_empty() {
                writeln!(f, "pins:        none")?;
            }
            for p in &r.pins {
                writeln!(f, "pin:         pid {} reads buffer {}", p.pid, p.buffer)?;
            }
        }
        for w in &self.warnings {
            writeln!(f, "warning:     {w}")?;
        }
        if let Some(problem) = &self.problem {
            writeln!(f, "problem:     {problem}")?;
        }
        Ok(())
    }
}

impl Description {
    /// The header's `state` word by name: `fresh` (zero-filled by the
    /// kernel), `initializing` (a creator writes the header), `ready`, or
    /// `unknown(N)` for any other value.
    pub fn state_name(&self) -> String {
        match self.state {
            format::STATE_FRESH => "fresh".into(),
            format::STATE_INITIALIZING => "initializing".into(),
            format::STATE_READY => "ready".into(),
            other => format!("unknown({other})"),
        }
    }

    /// A one-line summary: kind, type and version, or why it is not ours.
    pub fn summary(&self) -> String {
        match (&self.stored, &self.problem) {
            (Some(stored), _) => match &self.name {
                Some(name) => format!("{name}: {stored} v{}", self.version),
                None => format!("{stored} v{}", self.version),
            },
            (None, Some(problem)) => format!("({problem})"),
            (None, None) => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_shows_control_format_and_separator_characters() {
        // Bidirectional overrides, isolates and marks: what makes a name
        // show as another in a terminal.
        assert_eq!(escape("abc\u{202e}txt.exe"), "abc\\u{202e}txt.exe");
        for (c, shown) in [
            ('\u{2066}', "\\u{2066}"),
            ('\u{2069}', "\\u{2069}"),
            ('\u{200e}', "\\u{200e}"),
            ('\u{200f}', "\\u{200f}"),
            ('\u{61c}', "\\u{61c}"),
            ('\u{200d}', "\\u{200d}"),
            ('\u{feff}', "\\u{feff}"),
            ('\u{ad}', "\\u{ad}"),
            ('\u{2060}', "\\u{2060}"),
            ('\u{e0001}', "\\u{e0001}"),
            ('\u{e007f}', "\\u{e007f}"),
            ('\u{2028}', "\\u{2028}"),
            ('\u{2029}', "\\u{2029}"),
            ('\u{1b}', "\\u{1b}"),
            ('\r', "\\r"),
            ('\u{9b}', "\\u{9b}"),
        ] {
            assert_eq!(escape(&format!("a{c}b")), format!("a{shown}b"), "{c:?}");
        }
        // Printable text, spaces and marks that are not format characters
        // stay as they are.
        let plain = "acme/config é 🎉 \u{a0}\u{200a}\u{301}\u{ac}\u{2065}";
        assert_eq!(escape(plain), plain);
    }

    #[test]
    fn the_format_table_is_sorted_and_knows_known_points() {
        for w in FORMAT.windows(2) {
            assert!(w[0].0 <= w[0].1 && w[0].1 + 1 < w[1].0, "{w:x?}");
        }
        let format = [
            0xad, 0x600, 0x605, 0x61c, 0x6dd, 0x70f, 0x890, 0x891, 0x8e2, 0x180e, 0x200b, 0x200f,
            0x202a, 0x202e, 0x2060, 0x2064, 0x2066, 0x206f, 0xfeff, 0xfff9, 0xfffb, 0x110bd,
            0x110cd, 0x13430, 0x1343f, 0x1bca0, 0x1bca3, 0x1d173, 0x1d17a, 0xe0001, 0xe0020,
            0xe007f,
        ];
        let not_format = [
            0x0, 0x20, 0x41, 0xac, 0xae, 0x5ff, 0x606, 0x61b, 0x61d, 0x892, 0x180f, 0x200a, 0x2010,
            0x2028, 0x2029, 0x2065, 0x2070, 0xfefe, 0xff00, 0xfffc, 0x13440, 0x1d17b, 0xe0000,
            0xe0002, 0xe001f, 0xe0080, 0x10ffff,
        ];
        for c in format {
            assert!(is_format(char::from_u32(c).unwrap()), "{c:#x}");
        }
        for c in not_format {
            assert!(!is_format(char::from_u32(c).unwrap()), "{c:#x}");
        }
    }

    #[test]
    fn hostile_bytes_never_panic() {
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        for len in [
            0,
            1,
            7,
            8,
            100,
            511,
            512,
            600,
            SNAPSHOT_LEN,
            SNAPSHOT_LEN + 10,
        ] {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    rng as u8
                })
                .collect();
            let d = describe(&bytes, len * 3);
            assert!(d.problem.is_some());
            assert!(!d.to_string().is_empty());
        }
    }
}
