//! The `shmstore` command, run as a separate process against real segments.

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::{SegGuard, unique_key};
use shmstore::{Key, Segment, SharedCell, SharedRegion};

fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shmstore"))
        .args(args)
        .output()
        .expect("run shmstore")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[derive(rkyv::Archive, rkyv::Serialize)]
struct Config {
    name: String,
}

#[test]
fn list_and_inspect_decode_cells_and_regions() {
    let key = unique_key();
    let cell = SharedCell::options()
        .type_name("acme.Counter")
        .create(key, 5u64)
        .unwrap();
    let _g = SegGuard(cell.id());
    cell.store(6).unwrap();
    let region = SharedRegion::<Config>::create(Key::PRIVATE, 1024).unwrap();
    let _g2 = SegGuard(region.id());
    region
        .publish(&Config {
            name: "edge".into(),
        })
        .unwrap();
    let guard = region.read().unwrap();

    let out = cli(&["list"]);
    assert!(out.status.success());
    let text = stdout(&out);
    let line = text
        .lines()
        .find(|l| l.starts_with(&key.to_string()))
        .expect("cell listed");
    assert!(
        line.contains("SharedCell<acme.Counter>") && line.contains("v1"),
        "{line}"
    );
    let line = text
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(&region.id().to_string()))
        .expect("region listed");
    assert!(
        line.contains("SharedRegion<") && line.contains("v1"),
        "{line}"
    );

    let out = cli(&["inspect", &key.to_string()]);
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(
        text.contains("holds:       SharedCell<acme.Counter>"),
        "{text}"
    );
    assert!(text.contains("version:     1"), "{text}");

    let out = cli(&["inspect", &region.id().to_string()]);
    let text = stdout(&out);
    let buffer = text
        .lines()
        .find_map(|l| l.strip_prefix("current:     version 1 in buffer "))
        .unwrap_or_else(|| panic!("no current line: {text}"));
    let pin = format!(
        "pin:         pid {} reads buffer {buffer}",
        std::process::id()
    );
    assert!(text.contains(&pin), "{text}");
    drop(guard);
    let text = stdout(&cli(&["inspect", &region.id().to_string()]));
    assert!(text.contains("pins:        none"), "{text}");
}

#[test]
fn foreign_bytes_are_described_not_trusted() {
    let seg = Segment::options()
        .size(4096)
        .create(true)
        .open(Key::PRIVATE)
        .unwrap();
    let _g = SegGuard(seg.id());
    seg.write_at(0, b"shmstore but not really, just some bytes")
        .unwrap();
    let out = cli(&["inspect", &seg.id().to_string()]);
    assert!(out.status.success());
    assert!(
        stdout(&out).contains("not a valid shmstore segment"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn remove_by_key_and_id() {
    let key = unique_key();
    let a = SharedCell::create(key, 1u32).unwrap();
    let _g = SegGuard(a.id());
    let out = cli(&["remove", &key.to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(a.info().unwrap().marked_for_removal);
    assert!(matches!(
        SharedCell::<u32>::open(key),
        Err(shmstore::Error::NotFound { .. })
    ));
    let out = cli(&["remove", "0x7fffff01"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no segment exists"));
}

/// `watch --count 3` prints three lines: the version it starts from and the
/// next two, each with the time and the cell's value.
#[test]
fn watch_prints_each_new_version() {
    let cell = SharedCell::create(Key::PRIVATE, 0u64).unwrap();
    let _g = SegGuard(cell.id());
    let child = Command::new(env!("CARGO_BIN_EXE_shmstore"))
        .args([
            "watch",
            &cell.id().to_string(),
            "--count",
            "3",
            "--timeout",
            "20",
            "--format",
            "u64",
            "--json",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    cell.store(1).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    cell.store(2).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = stdout(&out);
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let versions: Vec<u64> = lines
        .iter()
        .map(|l| l["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, [0, 1, 2], "{text}");
    let values: Vec<&str> = lines
        .iter()
        .map(|l| l["value"][0].as_str().unwrap())
        .collect();
    assert_eq!(values, ["0", "1", "2"], "{text}");
    assert!(lines.iter().all(|l| l["time"].as_f64().unwrap() > 1e9));
}

#[test]
fn bad_usage_exits_2() {
    assert_eq!(cli(&[]).status.code(), Some(2));
    assert_eq!(cli(&["inspect"]).status.code(), Some(2));
    assert_eq!(cli(&["frobnicate", "1"]).status.code(), Some(2));
    assert_eq!(cli(&["inspect", "notanumber"]).status.code(), Some(1));
}

/// A name or type name holding format characters (a right-to-left override,
/// an isolate, a zero-width joiner) or a line separator is printed escaped,
/// so that it cannot show as another name in a terminal.
#[test]
fn format_characters_in_names_are_escaped() {
    let name = format!("cli/\u{202e}gnp.exe-{}", std::process::id());
    let cell = SharedCell::options()
        .type_name("acme.\u{2066}Counter\u{200d}\u{2028}")
        .create(Key::named(&name).unwrap(), 5u64)
        .unwrap();
    let _g = SegGuard(cell.id());
    let shown_name = format!("cli/\\u{{202e}}gnp.exe-{}", std::process::id());
    let shown_type = "acme.\\u{2066}Counter\\u{200d}\\u{2028}";
    let raw = ["\u{202e}", "\u{2066}", "\u{200d}", "\u{2028}"];
    let id = cell.id().to_string();
    for args in [
        &["list"][..],
        &["list", "--json"],
        &["inspect", &id],
        &["inspect", &id, "--json"],
    ] {
        let out = cli(args);
        assert!(out.status.success(), "{args:?}: {}", stdout(&out));
        let all = [out.stdout.as_slice(), out.stderr.as_slice()].concat();
        let text = String::from_utf8_lossy(&all);
        for c in raw {
            assert!(!text.contains(c), "{args:?} printed {c:?}: {text}");
        }
        if args.contains(&"--json") {
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            let object = match v.as_array() {
                Some(rows) => rows
                    .iter()
                    .find(|r| r["kernel"]["id"] == cell.id())
                    .expect("the cell listed")["object"]
                    .clone(),
                None => v["object"].clone(),
            };
            assert_eq!(object["name"], shown_name.as_str(), "{args:?}");
            let holds = object["holds"].as_str().unwrap();
            assert!(
                holds.starts_with(&format!("SharedCell<{shown_type}>")),
                "{args:?}: {holds}"
            );
        } else {
            assert!(text.contains(&shown_name), "{args:?}: {text}");
            assert!(text.contains(shown_type), "{args:?}: {text}");
        }
    }
}

/// `inspect::rfc3339` against dates known from elsewhere (`date -u -d @N`),
/// and against a calendar counted day by day from 1970 to 2401.
#[test]
fn rfc3339_of_known_dates() {
    use shmstore::inspect::{rfc3339, rfc3339_millis};
    use std::time::{Duration, UNIX_EPOCH};
    let at = |secs: i64| {
        if secs >= 0 {
            UNIX_EPOCH + Duration::from_secs(secs as u64)
        } else {
            UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
        }
    };
    for (secs, shown) in [
        (0, "1970-01-01T00:00:00Z"),
        (951_782_400, "2000-02-29T00:00:00Z"),
        (1_796_512_831, "2026-12-05T23:20:31Z"),
        (1_709_210_096, "2024-02-29T12:34:56Z"),
        (4_107_542_400, "2100-03-01T00:00:00Z"),
        (253_402_300_799, "9999-12-31T23:59:59Z"),
        (-1, "1969-12-31T23:59:59Z"),
        (-62_135_596_800, "0001-01-01T00:00:00Z"),
    ] {
        assert_eq!(rfc3339(at(secs)), shown, "{secs}");
    }
    assert_eq!(
        rfc3339_millis(at(1_796_512_831) + Duration::from_millis(1234)),
        "2026-12-05T23:20:32.234Z"
    );
    assert_eq!(
        rfc3339_millis(at(0) - Duration::from_millis(1)),
        "1969-12-31T23:59:59.999Z"
    );
    // Far beyond what a kernel or a clock gives: no panic.
    let _ = rfc3339(UNIX_EPOCH + Duration::from_secs(u64::MAX / 4));

    let (mut y, mut m, mut d) = (1970, 1, 1);
    for day in 0..(431 * 366) {
        let shown = format!("{y:04}-{m:02}-{d:02}T00:00:00Z");
        assert_eq!(rfc3339(at(day * 86_400)), shown, "day {day}");
        let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let days_in = [
            31,
            if leap { 29 } else { 28 },
            31,
            30,
            31,
            30,
            31,
            31,
            30,
            31,
            30,
            31,
        ];
        d += 1;
        if d > days_in[m - 1] {
            d = 1;
            m += 1;
            if m > 12 {
                m = 1;
                y += 1;
            }
        }
    }
}
