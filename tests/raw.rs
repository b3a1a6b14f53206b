//! Objects handled by an identity known at run time (`shmstore::raw`): an
//! object is copied from its identity and bytes alone into another that
//! typed handles open as their own, in another process; bytes that do not
//! check are refused and never written; identities that cannot be read
//! back are refused at open.

mod common;

use std::time::Duration;

use common::names::{NameGuard, fresh_name};
use common::{Kid, SegGuard, child_args, report};
use shmstore::raw::{RawObject, RawOptions, RawReader};
use shmstore::{
    Error, Key, Kind, ReadOnly, RegionReader, Schema, SharedCell, SharedRegion, Target, TypeDesc,
};

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Schema, Debug, PartialEq)]
#[rkyv(crate = shmstore::rkyv)]
struct Config {
    name: String,
    ports: Vec<u16>,
    limit: Option<u32>,
}

fn config(n: u32) -> Config {
    Config {
        name: format!("edge-{n}"),
        ports: vec![80, 443, n as u16],
        limit: Some(n),
    }
}

#[test]
fn child_entry() {
    let Some(args) = child_args() else { return };
    match args[0].as_str() {
        // Open the region by name as its own type and report what it holds.
        "read_config" => {
            let key = Key::named(&args[1]).unwrap();
            let region = RegionReader::<Config>::opener()
                .with_schema()
                .open(key)
                .unwrap();
            let v = region.read().unwrap();
            report("name", v.name.as_str());
            report("ports", format!("{:?}", v.ports.as_slice()));
            report("version", region.version());
        }
        // Open the cell by name with its type name (no schema).
        "read_counter" => {
            let key = Key::named(&args[1]).unwrap();
            let cell = SharedCell::<[u64; 2], ReadOnly>::opener()
                .type_name("acme.Counter")
                .open(key)
                .unwrap();
            report("value", format!("{:?}", cell.load()));
        }
        other => panic!("unknown role {other}"),
    }
    std::process::exit(0);
}

#[test]
fn a_region_copied_from_its_identity_and_bytes_opens_as_its_type_elsewhere() {
    let source_name = fresh_name("raw-src");
    let copy_name = fresh_name("raw-copy");
    let _g = (NameGuard::of(&source_name), NameGuard::of(&copy_name));
    let source = SharedRegion::<Config>::creator()
        .with_schema()
        .create(Key::named(&source_name).unwrap(), 4096)
        .unwrap();
    source.publish(&config(7)).unwrap();

    let raw = RawReader::open(Key::named(&source_name).unwrap()).unwrap();
    assert_eq!(
        raw.identity().schema.as_deref(),
        Some(describe_config().as_str())
    );
    let value = raw.read().unwrap();
    assert_eq!(value.version, 1);

    let copy = RawOptions::new()
        .create(
            Key::named(&copy_name).unwrap(),
            raw.identity(),
            raw.capacity(),
            &value.bytes,
        )
        .unwrap();
    assert_eq!(copy.version(), 1);

    let mut kid = Kid::spawn(&["read_config", &copy_name]);
    assert_eq!(kid.expect("name"), "edge-7");
    assert_eq!(kid.expect("ports"), "[80, 443, 7]");
    assert_eq!(kid.expect("version"), "1");
    assert!(kid.wait().success());

    // Later values follow, and the copy's readers see each.
    source.publish(&config(8)).unwrap();
    copy.write(&raw.read().unwrap().bytes).unwrap();
    let mut kid = Kid::spawn(&["read_config", &copy_name]);
    assert_eq!(kid.expect("name"), "edge-8");
    assert_eq!(kid.expect("ports"), "[80, 443, 8]");
    assert_eq!(kid.expect("version"), "2");
    assert!(kid.wait().success());
    copy.remove().unwrap();
    source.remove().unwrap();
}

fn describe_config() -> String {
    shmstore::schema::describe::<Config>().unwrap()
}

#[test]
fn a_cell_without_a_schema_keeps_its_type_name_through_a_copy() {
    let source_name = fresh_name("raw-cell");
    let copy_name = fresh_name("raw-cell-copy");
    let _g = (NameGuard::of(&source_name), NameGuard::of(&copy_name));
    let source = SharedCell::<[u64; 2]>::creator()
        .type_name("acme.Counter")
        .create(Key::named(&source_name).unwrap(), [3, 4])
        .unwrap();
    let raw = RawReader::open(Key::named(&source_name).unwrap()).unwrap();
    assert_eq!(raw.identity().name, "acme.Counter");
    assert_eq!(raw.identity().schema, None);
    let copy = RawOptions::new()
        .open_or_create(
            Key::named(&copy_name).unwrap(),
            raw.identity(),
            0,
            &raw.read().unwrap().bytes,
        )
        .unwrap();
    let mut kid = Kid::spawn(&["read_counter", &copy_name]);
    assert_eq!(kid.expect("value"), "[3, 4]");
    assert!(kid.wait().success());
    // Opened again, an existing object is left as it was.
    let again = RawOptions::new()
        .open_or_create(
            Key::named(&copy_name).unwrap(),
            raw.identity(),
            0,
            &[0u8; 16],
        )
        .unwrap();
    assert_eq!(again.read().unwrap().bytes, raw.read().unwrap().bytes);
    copy.remove().unwrap();
    source.remove().unwrap();
}

#[test]
fn bytes_that_do_not_check_are_refused_and_never_written() {
    let region = SharedRegion::<Config>::creator()
        .with_schema()
        .create(Key::PRIVATE, 4096)
        .unwrap();
    let _g = SegGuard(region.id());
    region.publish(&config(1)).unwrap();
    let raw = RawOptions::new().open(Target::Id(region.id())).unwrap();
    let good = raw.read().unwrap().bytes;

    // Garbage, a truncated archive, the vector's pointer moved out of the
    // archive (the root is `name`, `ports`, `limit`, 8 bytes each).
    let mut out_of_bounds = good.clone();
    let n = out_of_bounds.len();
    out_of_bounds[n - 16..n - 12].copy_from_slice(&0x7fff_0000i32.to_le_bytes());
    for (what, bad) in [
        ("garbage", vec![0xffu8; 64]),
        ("truncated", good[4..].to_vec()),
        ("out of bounds", out_of_bounds),
    ] {
        let e = raw.write(&bad).expect_err(what);
        assert!(matches!(e, Error::Corrupt { .. }), "{what}: {e}");
    }
    assert_eq!(raw.version(), 1);
    assert_eq!(region.read().unwrap().name.as_str(), "edge-1");
    raw.write(&good).unwrap();
    assert_eq!(region.version(), 2);

    // A cell's value of the wrong size.
    let cell = SharedCell::<u64>::create(Key::PRIVATE, 5).unwrap();
    let _gc = SegGuard(cell.id());
    let raw_cell = RawOptions::new().open(Target::Id(cell.id())).unwrap();
    let e = raw_cell.write(&[1, 2, 3]).unwrap_err();
    assert!(matches!(e, Error::Corrupt { .. }), "{e}");
    assert_eq!(cell.load(), 5);
    raw_cell.write(&6u64.to_ne_bytes()).unwrap();
    assert_eq!(cell.load(), 6);

    // An identity whose schema does not imply its size is refused.
    let mut ty = raw_cell.identity().clone();
    ty.schema = Some("S{a:u32}".into());
    let e = RawOptions::new()
        .create(Key::PRIVATE, &ty, 0, &7u64.to_ne_bytes())
        .unwrap_err();
    assert!(matches!(e, Error::InvalidLayout { .. }), "{e}");
    cell.remove().unwrap();
    region.remove().unwrap();
}

#[test]
fn a_region_without_a_schema_is_not_written_from_bytes() {
    let region = SharedRegion::<String>::create(Key::PRIVATE, 256).unwrap();
    let _g = SegGuard(region.id());
    region.publish(&"hello".to_string()).unwrap();
    let raw = RawOptions::new().open(Target::Id(region.id())).unwrap();
    let bytes = raw.read().unwrap().bytes;
    let e = raw.write(&bytes).unwrap_err();
    assert!(matches!(e, Error::Unsupported { .. }), "{e}");
    assert!(e.to_string().contains("with_schema"), "{e}");
    assert_eq!(region.version(), 1);
    let e = RawOptions::new()
        .create(Key::PRIVATE, raw.identity(), 256, &bytes)
        .unwrap_err();
    assert!(matches!(e, Error::Unsupported { .. }), "{e}");
    region.remove().unwrap();
}

#[test]
fn another_identity_at_the_name_is_refused() {
    let name = fresh_name("raw-other");
    let _g = NameGuard::of(&name);
    let cell = SharedCell::<u64>::creator()
        .type_name("acme.A")
        .create(Key::named(&name).unwrap(), 1)
        .unwrap();
    let mut other = RawReader::open(Key::named(&name).unwrap())
        .unwrap()
        .identity()
        .clone();
    other.name = "acme.B".into();
    let e = RawOptions::new()
        .open_or_create(Key::named(&name).unwrap(), &other, 0, &2u64.to_ne_bytes())
        .unwrap_err();
    assert!(matches!(e, Error::TypeMismatch { .. }), "{e}");
    assert_eq!(cell.load(), 1);
    cell.remove().unwrap();
}

#[test]
fn a_type_name_cut_in_the_header_cannot_be_opened_raw() {
    let long = "x".repeat(200);
    let cell = SharedCell::<u64>::creator()
        .type_name(long.as_str())
        .create(Key::PRIVATE, 1)
        .unwrap();
    let _g = SegGuard(cell.id());
    let e = RawReader::open(Target::Id(cell.id())).unwrap_err();
    assert!(matches!(e, Error::Unsupported { .. }), "{e}");
    cell.remove().unwrap();
}

#[test]
fn a_raw_handle_waits_and_sees_removal() {
    let cell = SharedCell::<u64>::create(Key::PRIVATE, 0).unwrap();
    let _g = SegGuard(cell.id());
    let raw = RawObject::<ReadOnly>::open(Target::Id(cell.id())).unwrap();
    assert_eq!(raw.wait_for_change(0, Some(Duration::ZERO)).unwrap(), 0);
    cell.store(1).unwrap();
    assert_eq!(
        raw.wait_for_change(0, Some(Duration::from_secs(5)))
            .unwrap(),
        1
    );
    cell.remove().unwrap();
    let e = raw
        .wait_for_change(1, Some(Duration::from_secs(5)))
        .unwrap_err();
    assert!(matches!(e, Error::Removed { .. }), "{e}");
}

/// rkyv's format of this build, as a region's identity holds it.
fn rkyv_format() -> u64 {
    let region = shmstore::SharedRegion::<String>::create(Key::PRIVATE, 256).unwrap();
    let extra = RawReader::open(Target::Id(region.id()))
        .unwrap()
        .identity()
        .extra;
    region.remove().unwrap();
    extra
}

fn segment_bytes(raw: &RawObject) -> u64 {
    raw.info().unwrap().size as u64
}

/// A cell of size 0 with an alignment of 2^31 (an identity a peer may
/// send) would lay out 4 slots of 2 GiB each, which no open accepts.
#[test]
fn a_cell_of_a_huge_alignment_is_refused() {
    let ty = TypeDesc {
        kind: Kind::Cell,
        name: "peer::Zst".into(),
        size: 0,
        align: 1 << 31,
        schema_version: 0,
        extra: 0,
        schema: None,
    };
    match RawOptions::new().create(Key::PRIVATE, &ty, 0, &[]) {
        Ok(raw) => {
            let bytes = segment_bytes(&raw);
            raw.remove().unwrap();
            panic!("a cell of 0 bytes made a segment of {bytes} bytes");
        }
        Err(e) => assert!(matches!(e, Error::InvalidLayout { .. }), "{e}"),
    }
}

/// A region whose root is larger than the capacity asked for: its size (up
/// to 4 GiB) must not become the buffers' capacity.
#[test]
fn a_root_larger_than_the_capacity_is_refused() {
    let ty = TypeDesc {
        kind: Kind::Region,
        name: "peer::Huge".into(),
        size: 0xffff_ff00,
        align: 16,
        schema_version: 0,
        extra: rkyv_format(),
        schema: None,
    };
    match RawOptions::new().create(Key::PRIVATE, &ty, 0, &[]) {
        Ok(raw) => {
            let bytes = segment_bytes(&raw);
            raw.remove().unwrap();
            panic!("an empty region made a segment of {bytes} bytes");
        }
        Err(e) => assert!(matches!(e, Error::InvalidLayout { .. }), "{e}"),
    }
}

/// An open reads the identity on one attachment, then opens the name
/// again, which compares schemas rather than names when both have one: an
/// object of the same schema but another type name swapped in between must
/// not be opened under the first one's identity.
#[test]
fn a_raw_handle_holds_its_own_objects_identity() {
    use shmstore::SharedCell;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let name = fresh_name("raw-race");
    let _g = NameGuard::of(&name);
    let key = Key::named(&name).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let type_name = if i.is_multiple_of(2) {
                    "acme.Celsius"
                } else {
                    "acme.Fahrenheit"
                };
                if let Ok(c) = SharedCell::<u64>::creator()
                    .type_name(type_name)
                    .with_schema()
                    .create(key, i)
                {
                    let _ = c.remove();
                }
                i += 1;
            }
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut found = None;
    let mut opened = 0u64;
    while std::time::Instant::now() < deadline && found.is_none() {
        let Ok(raw) = RawReader::open(key) else {
            continue;
        };
        opened += 1;
        // The identity of the segment the handle holds, read from it.
        if let Ok(real) = RawReader::open(Target::Id(raw.id()))
            && real.identity().name != raw.identity().name
        {
            found = Some((raw.identity().name.clone(), real.identity().name.clone()));
        }
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    if let Ok(c) = RawOptions::new().open(key) {
        let _ = c.remove();
    }
    eprintln!("{opened} opens");
    assert_eq!(found, None, "(handle's type name, its object's type name)");
}
