//! Objects handled by an identity known at run time (`shmstore::raw`): an
//! object is copied from its identity and bytes alone into another that
//! typed handles open as their own, in another process; bytes that do not
//! check are refused and never written; identities that cannot be read
//! back are refused at open.

mod common;

use std::time::Duration;

use common::names::{NameGuard, fresh_name};
use common::{Kid, child_args, report};
use shmstore::raw::{RawObject, RawOptions, RawReader};
use shmstore::{Error, Key, ReadOnly, RegionReader, Schema, SharedCell, SharedRegion, Target};

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
    let e = RawReader::open(Target::Id(cell.id())).unwrap_err();
    assert!(matches!(e, Error::Unsupported { .. }), "{e}");
    cell.remove().unwrap();
}

#[test]
fn a_raw_handle_waits_and_sees_removal() {
    let cell = SharedCell::<u64>::create(Key::PRIVATE, 0).unwrap();
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
