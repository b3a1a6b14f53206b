//! Entry points for the fuzz targets in `fuzz/` and for the corpus replay
//! in `tests/fuzz_corpus.rs`: each takes arbitrary bytes and panics only if
//! shmstore breaks a promise (an invariant check below fails). They run on
//! private heap images (`store/heap.rs`), never on System V segments, so a
//! run leaves nothing on the system and no other process can disturb it.
//!
//! Not part of the stable API.

use std::collections::HashMap;
use std::sync::Arc;

use crate::cell::SharedCell;
use crate::error::{Error, Result, Target};
use crate::format::{self, Current, Kind, Layout, TypeDesc};
use crate::region::RegionSettings;
use crate::region::{RegionReader, SharedRegion};
use crate::store::heap::HeapImage;
use crate::store::options::Common;
use crate::store::{Flavor, Memory, Options, Store};

/// Reads a fuzzer's bytes as a stream of small values; runs dry as zeros.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        for x in &mut b {
            *x = self.u8();
        }
        u64::from_le_bytes(b)
    }

    fn bytes(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head
    }
}

fn heap(len: usize) -> Arc<HeapImage> {
    HeapImage::new(len).expect("a small heap image")
}

fn spec() -> Common {
    Common {
        init_timeout: std::time::Duration::ZERO,
        ..Common::default()
    }
}

fn view(image: &Arc<HeapImage>, len: usize) -> Memory {
    Memory::Heap {
        image: image.clone(),
        len,
    }
}

/// Whether an open of a damaged image failed the way validation should
/// (never a system-call error, never a panic).
fn is_validation_error(e: &Error) -> bool {
    matches!(
        e,
        Error::NotShmstore { .. }
            | Error::Corrupt { .. }
            | Error::IncompatibleFormat { .. }
            | Error::AbiMismatch { .. }
            | Error::TypeMismatch { .. }
            | Error::CreatorDied { .. }
    )
}

/// Target `header`: arbitrary bytes as a whole segment image.
///
/// When `validate` accepts the image, every slot it declares must lie inside
/// it and be consistent with the declared sizes.
pub fn header(data: &[u8]) {
    let image = heap(data.len());
    image.write_at(0, data);
    // (An empty input makes an image of one byte, too short for a header
    // either way.)
    let Ok(h) = format::header_of(&*image) else {
        return;
    };
    if let Ok(v) = format::validate(h, data.len()) {
        let l = v.layout;
        assert!(l.slot_count >= 2, "{l:?}");
        assert!(l.value_size <= l.slot_stride, "{l:?}");
        assert!(l.slot_stride % 8 == 0, "{l:?}");
        assert!(l.data_offset >= format::HEADER_SIZE, "{l:?}");
        let end = l.slot_stride * l.slot_count + l.data_offset;
        assert!(
            end == l.used_len && end <= data.len(),
            "{l:?} in {}",
            data.len()
        );
        if v.kind == Kind::Cell {
            assert!(l.slot_count.is_power_of_two(), "{l:?}");
        }
        if v.kind == Kind::Region {
            assert!(l.data_offset >= format::HEADER_SIZE + format::REGION_CONTROL_SIZE);
        }
        let _ = h.stored_type().to_string();
    }
}

/// The value type of the region targets: strings, a vector and a map.
#[derive(rkyv::Archive, rkyv::Serialize, Debug, Clone, PartialEq)]
pub struct FuzzConfig {
    /// A number.
    pub version: u64,
    /// A string.
    pub name: String,
    /// A vector.
    pub items: Vec<u32>,
    /// A map.
    pub map: HashMap<String, u64>,
}

impl FuzzConfig {
    fn of(seed: u64) -> FuzzConfig {
        let n = (seed % 11) as usize;
        FuzzConfig {
            version: seed,
            name: format!("cfg-{seed}"),
            items: (0..n as u32).map(|i| i ^ seed as u32).collect(),
            map: (0..n)
                .map(|i| (format!("k{i}"), seed.wrapping_add(i as u64)))
                .collect(),
        }
    }
}

/// Touch every byte an archived config refers to, as a user would.
fn walk(c: &ArchivedFuzzConfig) -> u64 {
    let mut h = c.version.to_native();
    h = h.wrapping_add(c.name.as_str().bytes().map(u64::from).sum::<u64>());
    h = h.wrapping_add(
        c.items
            .iter()
            .map(|x| u64::from(x.to_native()))
            .sum::<u64>(),
    );
    for (k, v) in c.map.iter() {
        h = h.wrapping_add(k.len() as u64).wrapping_add(v.to_native());
    }
    h
}

fn matches(c: &ArchivedFuzzConfig, want: &FuzzConfig) -> bool {
    c.version.to_native() == want.version
        && c.name.as_str() == want.name
        && c.items
            .iter()
            .map(|x| x.to_native())
            .eq(want.items.iter().copied())
        && c.map.len() == want.map.len()
        && want
            .map
            .iter()
            .all(|(k, v)| c.map.get(k.as_str()).map(|x| x.to_native()) == Some(*v))
}

const REGION_CAPACITY: usize = 1024;

fn new_region(buffers: usize) -> (Arc<HeapImage>, SharedRegion<FuzzConfig>) {
    let mut options = SharedRegion::<FuzzConfig>::creator();
    options
        .buffers(buffers)
        .publish_timeout(std::time::Duration::ZERO);
    let layout = Layout::for_region(
        REGION_CAPACITY,
        buffers,
        align_of::<ArchivedFuzzConfig>(),
        0,
    )
    .expect("region layout");
    let image = heap(layout.used_len);
    let raw = Store::create_in(
        view(&image, layout.used_len),
        None,
        &spec(),
        &region_type(&options),
        &layout,
        |_| Ok(()),
    )
    .expect("create a region in a heap image");
    (image, SharedRegion::wrap(raw, &options.kind))
}

fn region_type<M>(options: &Options<FuzzConfig, RegionSettings, M>) -> TypeDesc {
    <RegionSettings as Flavor<FuzzConfig>>::type_desc(&options.common).expect("no schema given")
}

fn open_region(image: &Arc<HeapImage>, len: usize) -> Result<SharedRegion<FuzzConfig>> {
    let options = SharedRegion::<FuzzConfig>::opener();
    let raw = Store::open_in(
        view(image, len),
        Target::Id(-1),
        &spec(),
        &region_type(&options),
    )?;
    Ok(SharedRegion::wrap(raw, &options.kind))
}

fn open_region_reader(image: &Arc<HeapImage>, len: usize) -> Result<RegionReader<FuzzConfig>> {
    let options = RegionReader::<FuzzConfig>::opener();
    let raw = Store::open_in(
        view(image, len),
        Target::Id(-1),
        &spec(),
        &region_type(&options),
    )?;
    Ok(RegionReader::wrap(raw, &options.kind))
}

/// Target `region_archive`: a valid region header whose current-buffer word,
/// archive length and buffer bytes come from the fuzzer. Reading returns a
/// value or a typed error; a returned value can be walked safely.
pub fn region_archive(data: &[u8]) {
    let mut input = Input(data);
    let (image, region) = new_region(4);
    let stride = region.capacity();
    let ctl = region.control();
    let buffer = input.u8();
    let version = input.u16() as u64 + 1;
    let len = input.u16() as u64;
    let bytes = input.bytes(stride).to_vec();
    let target = (buffer as usize) % 4;
    // Buffer `target` (< 4) holds `stride` bytes inside the image; no reader
    // is active.
    let layout = region.store().layout();
    image.write_at(layout.data_offset + target * layout.slot_stride, &bytes);
    ctl.buffers[target]
        .len
        .store(len, std::sync::atomic::Ordering::SeqCst);
    ctl.buffers[target]
        .version
        .store(version, std::sync::atomic::Ordering::SeqCst);
    ctl.current.store(
        Current::new(version, usize::from(buffer)).raw(),
        std::sync::atomic::Ordering::SeqCst,
    );
    match region.read() {
        Ok(c) => {
            walk(&c);
        }
        Err(e) => assert!(matches!(e, Error::Corrupt { .. }), "{e}"),
    }
    let reader = open_region_reader(&image, image.len()).expect("reopen read-only");
    match reader.read() {
        Ok(c) => {
            walk(&c);
        }
        Err(e) => assert!(matches!(e, Error::Corrupt { .. }), "{e}"),
    }
}

/// Target `cell_ops`: a sequence of operations on one cell image through
/// several handles: store, update, load, open with the right and a wrong
/// type, corrupt a byte, scribble on a layout field of the header, open a
/// truncated view. Until a byte is corrupted, every load returns the last
/// committed value; after, only reading operations run (writers are trusted
/// to be bug-free, readers are not) and none may panic. A scribble on the
/// layout fields changes nothing for handles opened before it: they keep
/// the layout they validated, and go on loading and storing the model's
/// values.
pub fn cell_ops(data: &[u8]) {
    type V = [u64; 4];
    let ty = |name: &str, size: u32| TypeDesc {
        kind: Kind::Cell,
        name: name.to_owned(),
        size,
        align: 8,
        schema_version: 0,
        extra: 0,
        schema: None,
    };
    let right = ty(std::any::type_name::<V>(), 32);
    // The slot count comes from the input's length, so that the bytes keep
    // their meaning as operations.
    let slots = 2 << (data.len() % 3);
    let layout = Layout::for_value(32, 8, slots, 0).expect("cell layout");
    let image = heap(layout.used_len);
    let first = Store::create_in(
        view(&image, layout.used_len),
        None,
        &spec(),
        &right,
        &layout,
        |raw| {
            crate::cell::init(raw, &[0u64; 4]);
            Ok(())
        },
    )
    .expect("create a cell in a heap image");
    let mut handles = vec![SharedCell::<V>::wrap(first)];
    // Per handle: opened before any layout scribble, so its layout is the
    // creator's.
    let mut trusted = vec![true];
    let (mut model, mut version, mut corrupted) = ([0u64; 4], 0u64, false);
    let mut layout_scribbled = false;
    let mut input = Input(data);
    while !input.is_empty() && handles.len() < 16 {
        let h = input.u8() as usize % handles.len();
        match input.u8() % 8 {
            0 | 1 if !trusted[h] => {}
            0 if !corrupted => {
                let v = [input.u64(), input.u64(), input.u64(), input.u64()];
                handles[h].store(v).expect("store");
                model = v;
                version += 1;
            }
            1 if !corrupted => {
                let add = input.u64();
                let seen = handles[h].update(|v| {
                    v[0] = v[0].wrapping_add(add);
                    v[3] ^= add;
                    *v
                });
                model[0] = model[0].wrapping_add(add);
                model[3] ^= add;
                assert_eq!(seen.expect("update"), model);
                version += 1;
            }
            2 => {
                let v = handles[h].load();
                let n = handles[h].version();
                if !corrupted && trusted[h] {
                    assert_eq!(v, model);
                    assert_eq!(n, version);
                }
            }
            3 => match Store::open_in(view(&image, image.len()), Target::Id(-1), &spec(), &right) {
                Ok(raw) => {
                    handles.push(SharedCell::<V>::wrap(raw));
                    trusted.push(!layout_scribbled);
                }
                Err(e) => assert!(
                    (corrupted || layout_scribbled) && is_validation_error(&e),
                    "{e}"
                ),
            },
            4 => {
                let wrong = if input.u8() % 2 == 0 {
                    ty("[u32; 8]", 32)
                } else {
                    ty("u64", 8)
                };
                match Store::open_in(view(&image, image.len()), Target::Id(-1), &spec(), &wrong) {
                    Ok(_) => panic!("a cell of {right} opened as {wrong}"),
                    Err(e) => assert!(is_validation_error(&e), "{e}"),
                }
            }
            5 => {
                let offset = input.u16() as usize % image.len();
                let byte = input.u8();
                // The fuzz input plays a buggy peer scribbling on the image.
                if image.swap(offset, byte) != byte {
                    corrupted = true;
                }
            }
            6 => {
                let len = input.u16() as usize % (layout.used_len + 1);
                match Store::open_in(view(&image, len), Target::Id(-1), &spec(), &right) {
                    Ok(raw) => {
                        assert!(
                            len >= layout.used_len || corrupted || layout_scribbled,
                            "a {len}-byte view opened"
                        );
                        handles.push(SharedCell::<V>::wrap(raw));
                        trusted.push(!layout_scribbled);
                    }
                    Err(e) => assert!(is_validation_error(&e), "{e}"),
                }
            }
            7 => {
                // FORMAT.md: value_size, slot_count, data_offset,
                // slot_stride, used_len.
                const FIELDS: [(usize, usize); 5] = [(44, 4), (76, 4), (80, 8), (88, 8), (96, 8)];
                let (offset, width) = FIELDS[input.u8() as usize % FIELDS.len()];
                let value = input.u64().to_le_bytes();
                for (i, &byte) in value.iter().take(width).enumerate() {
                    // The fields lie within the 512-byte header of the
                    // image; a buggy peer's scribble.
                    if image.swap(offset + i, byte) != byte {
                        layout_scribbled = true;
                    }
                }
            }
            _ => {}
        }
    }
}

/// Target `region_ops`: publish, read (also through read-only handles),
/// open, corrupt and truncate on one region image. Until a byte is
/// corrupted, reads return the last published value; after, only reads run,
/// and they return a value that can be walked or a typed error. A handle
/// keeps what it validated: after scribbles that spared the buffers' bytes
/// (header, control block: `len`, `current`, pins), a handle that reads
/// the archive it validated last reads exactly what it read before.
pub fn region_ops(data: &[u8]) {
    let mut input = Input(data);
    let buffers = 2 + input.u8() as usize % 3;
    let (image, first) = new_region(buffers);
    let data_offset = first.store().layout().data_offset;
    let mut writers = vec![first];
    // Per writer handle: the `current` word of its last read and what the
    // read saw.
    let mut last: Vec<Option<(u64, u64)>> = vec![None];
    let mut readers: Vec<RegionReader<FuzzConfig>> = Vec::new();
    let (mut model, mut corrupted): (Option<FuzzConfig>, bool) = (None, false);
    let mut buffers_scribbled = false;
    while !input.is_empty() && writers.len() + readers.len() < 16 {
        let w = input.u8() as usize % writers.len();
        let op = input.u8() % 7;
        match op {
            0 if !corrupted => {
                let mut value = FuzzConfig::of(input.u64());
                if input.u8() % 8 == 0 {
                    value.name = "x".repeat(REGION_CAPACITY * 2);
                }
                match writers[w].publish(&value) {
                    Ok(_) => model = Some(value),
                    Err(Error::CapacityExceeded { .. }) => {}
                    Err(e) => panic!("publish: {e}"),
                }
            }
            1 | 2 if corrupted && !buffers_scribbled && op == 2 => {
                // The archive this handle validated last, read again after
                // the control block was scribbled on: the same bytes at the
                // same kept length, so the same value.
                let current = writers[w]
                    .control()
                    .current
                    .load(std::sync::atomic::Ordering::SeqCst);
                match (writers[w].read(), last[w]) {
                    (Ok(c), Some((seen, hash))) if seen == current => {
                        assert_eq!(walk(&c), hash, "a kept archive changed");
                    }
                    (Ok(c), _) => {
                        walk(&c);
                    }
                    (Err(e), _) => assert!(
                        matches!(e, Error::Corrupt { .. } | Error::NothingPublished),
                        "{e}"
                    ),
                }
            }
            1 | 2 => {
                // A handle validates each version once; after a scribble on
                // bytes it already validated only a fresh handle checks them
                // again (writers are trusted not to scribble: `region/mod.rs`
                // and ARCHITECTURE.md, "Guarantees and their limits").
                let fresh;
                let current = writers[w]
                    .control()
                    .current
                    .load(std::sync::atomic::Ordering::SeqCst);
                let through_writer = !corrupted && (op != 2 || readers.is_empty());
                let value = if corrupted {
                    match open_region(&image, image.len()) {
                        Ok(r) => {
                            fresh = r;
                            fresh.read()
                        }
                        Err(e) => {
                            assert!(is_validation_error(&e), "{e}");
                            continue;
                        }
                    }
                } else if op == 2 && !readers.is_empty() {
                    readers[w % readers.len()].read()
                } else {
                    writers[w].read()
                };
                if through_writer && let Ok(c) = &value {
                    last[w] = Some((current, walk(c)));
                }
                match (value, &model) {
                    (Ok(c), Some(m)) if !corrupted => assert!(matches(&c, m)),
                    (Ok(c), _) => assert!(corrupted, "read {} before any publish", walk(&c)),
                    (Err(Error::NothingPublished), None) => {}
                    (Err(e), _) => assert!(
                        corrupted && matches!(e, Error::Corrupt { .. } | Error::NothingPublished),
                        "{e}"
                    ),
                }
            }
            3 => match open_region(&image, image.len()) {
                Ok(r) => {
                    writers.push(r);
                    last.push(None);
                }
                Err(e) => assert!(corrupted && is_validation_error(&e), "{e}"),
            },
            4 => match open_region_reader(&image, image.len()) {
                Ok(r) => readers.push(r),
                Err(e) => assert!(corrupted && is_validation_error(&e), "{e}"),
            },
            5 => {
                let offset = (input.u16() as usize * 7) % image.len();
                let byte = input.u8();
                // A buggy peer's scribble.
                if image.swap(offset, byte) != byte {
                    corrupted = true;
                    buffers_scribbled |= offset >= data_offset;
                }
            }
            6 => {
                let len = input.u16() as usize * 4 % (image.len() + 1);
                match open_region(&image, len) {
                    Ok(_) => assert!(len >= image.len() || corrupted, "a {len}-byte view opened"),
                    Err(e) => assert!(is_validation_error(&e), "{e}"),
                }
            }
            _ => {}
        }
    }
}

/// Target `cli_inspect`: the decoding the `shmstore` command prints, over an
/// arbitrary snapshot and a claimed segment length (the first 8 bytes).
/// Whatever the bytes, it describes them without panicking, and a
/// description without a problem names the stored type.
pub fn cli_inspect(data: &[u8]) {
    let mut input = Input(data);
    let claimed = input.u64() as usize;
    let d = crate::inspect::describe(input.0, claimed);
    assert!(d.problem.is_some() || d.stored.is_some(), "{d:?}");
    let _ = d.to_string();
    let _ = d.summary();
}

/// Schemas a `schema` input may pick instead of giving its own text, so
/// that the decoder's deep paths (maps, B-trees, enums, nested pointers)
/// are reached from the first input.
const KNOWN_SCHEMAS: [&str; 4] = [
    "Config{name:str,limits:Limits{max_conn:u32,timeout_ms:u64},tags:vec<str>,\
     backup:option<u64>,weights:hash_map<str,f64>,order:btree_map<u32,str>,\
     mode:enum Mode{Off=0,On=1(u32),Custom=2{level:u8,note:str}},pair:(u8,i16),\
     grid:[i8;3],flag:bool,initial:char}",
    "btree_map<u32,vec<btree_set<u16>>>",
    "hash_map<str,option<box<(char,result<u8,box<str>>)>>>",
    "Stats{requests:u64,errors:u32,load:f32,hist:[u16;8]}",
];

/// Target `schema`: a stored schema and the bytes it describes, both from
/// the fuzzer (a peer can write anything into either). The first byte
/// picks the form (cell or region) and whether the schema is the input's
/// own text (a `u16` length, then the text) or one of [`KNOWN_SCHEMAS`];
/// the rest is the value or archive. Parsing refuses or accepts without a
/// panic, an accepted text prints back to itself, and decoding returns a
/// value or an error, whose output stays within its budget.
pub fn schema(data: &[u8]) {
    use crate::schema::{Form, Shape, decode};
    let mut input = Input(data);
    let mode = input.u8();
    let form = if mode & 1 == 0 {
        Form::Cell
    } else {
        Form::Region
    };
    let text: Vec<u8> = if mode & 2 == 0 {
        let len = input.u16() as usize;
        input.bytes(len).to_vec()
    } else {
        KNOWN_SCHEMAS[usize::from(input.u8()) % KNOWN_SCHEMAS.len()]
            .as_bytes()
            .to_vec()
    };
    let bytes = input.bytes(usize::MAX).to_vec();
    let Ok(shape) = Shape::parse(&text) else {
        return;
    };
    assert_eq!(
        shape.to_string().as_bytes(),
        &text[..],
        "an accepted schema prints back to its text"
    );
    if shape.layout(form).is_err() {
        return;
    }
    if let Ok(value) = decode(&shape, form, &bytes) {
        // Lines and text of a decoded value are made without a panic.
        let _ = value.lines();
        let _ = value.to_string();
    }
}
