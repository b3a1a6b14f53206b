//! Every named step of every protocol, a process killed exactly there
//! (`SHMSTORE_CRASH_AT`, feature `crash-points`, see src/crash.rs), and what
//! must hold afterwards. The tables below list the steps; a test at the end
//! checks that together they cover every step the library names.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use common::{Kid, SegGuard, Stamped, child, child_args, key_arg, report, unique_key};
use shmstore::{Key, Segment, SharedCell, SharedRegion};

type Value = Stamped<5>;

/// A region's value: every field derives from `version`.
#[derive(rkyv::Archive, rkyv::Serialize, Debug, Clone, PartialEq)]
struct Text {
    version: u64,
    words: Vec<String>,
}

impl Text {
    fn of(version: u64) -> Text {
        Text {
            version,
            words: (0..version % 7 + 1)
                .map(|i| format!("w{i}-{version}"))
                .collect(),
        }
    }
}

fn is_whole(t: &ArchivedText) -> bool {
    let want = Text::of(t.version.to_native());
    t.words.len() == want.words.len()
        && t.words
            .iter()
            .zip(&want.words)
            .all(|(a, b)| a.as_str() == b)
}

#[test]
fn child_entry() {
    let Some(args) = child_args() else { return };
    let key = key_arg(&args, 1);
    match args[0].as_str() {
        "cell_create" => {
            SharedCell::<Value>::open_or_create(key, Value::of(100)).unwrap();
        }
        "cell_store" => {
            let cell = SharedCell::<Value>::open(key).unwrap();
            let v = cell.version();
            cell.store(Value::of(v + 1)).unwrap();
        }
        // Take a lease and store three versions through it.
        "cell_lease" => {
            let cell = SharedCell::<Value>::open(key).unwrap();
            let v = cell.version();
            let mut lease = cell.lease().unwrap();
            for i in 1..=3 {
                lease.store(Value::of(v + i)).unwrap();
            }
        }
        "cell_wait" => {
            let cell = SharedCell::<Value>::open(key).unwrap();
            let since: u64 = args[2].parse().unwrap();
            report("waiting", since);
            report("woke", cell.wait_for_change(since, None).unwrap());
        }
        "region_create" => {
            SharedRegion::<Text>::open_or_create(key, 4096).unwrap();
        }
        "region_publish" => {
            let region = SharedRegion::<Text>::open(key).unwrap();
            let v = region.version();
            region.publish(&Text::of(v + 1)).unwrap();
        }
        "region_wait" => {
            let region = SharedRegion::<Text>::open(key).unwrap();
            let since: u64 = args[2].parse().unwrap();
            report("waiting", since);
            report("woke", region.wait_for_change(since, None).unwrap());
        }
        "region_read" => {
            let region = SharedRegion::<Text>::open(key).unwrap();
            let g = region.read().unwrap();
            report("read", g.version());
            std::thread::sleep(Duration::from_secs(60));
        }
        // Hold a guard in every pin slot this process can get: the last
        // claim finds none free and reclaims.
        "region_exhaust" => {
            let region = SharedRegion::<Text>::open(key).unwrap();
            let mut guards = Vec::new();
            while guards.len() < 128 {
                match region.read() {
                    Ok(g) => guards.push(g),
                    Err(shmstore::Error::PinsExhausted { .. }) => break,
                    Err(e) => panic!("{e}"),
                }
            }
            report("held", guards.len());
        }
        other => panic!("unknown role {other}"),
    }
    std::process::exit(0);
}

/// Run child `role` with `SHMSTORE_CRASH_AT=step`; it must die of SIGKILL
/// there.
fn die_at(step: &str, args: &[&str]) {
    let mut cmd = child(args);
    cmd.env("SHMSTORE_CRASH_AT", step);
    let mut kid = Kid::start(cmd);
    let status = kid.wait();
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "{step}: the child did not die there ({status})"
    );
}

/// Whether the `WAITING` bit of the `notify` word (FORMAT.md: offset 264)
/// is set.
fn waiting(key: Key) -> bool {
    let seg = Segment::options().read_only(true).open(key).unwrap();
    let mut b = [0u8; 4];
    seg.read_at(264, &mut b).unwrap();
    u32::from_le_bytes(b) & 1 == 1
}

/// Start a waiter child on version `since` and wait until it announced
/// itself, so that the next commit must wake it.
fn announced_waiter(role: &str, key: Key, since: u64) -> Kid {
    let mut w = Kid::spawn(&[role, &key.raw().to_string(), &since.to_string()]);
    assert_eq!(w.expect("waiting"), since.to_string());
    let start = std::time::Instant::now();
    while !waiting(key) {
        assert!(start.elapsed() < Duration::from_secs(10), "never announced");
        std::thread::sleep(Duration::from_millis(1));
    }
    w
}

/// Creation: a creator killed at each step before READY. Afterwards an
/// open reports the dead creator, and `open_or_create` takes the segment
/// over and holds its own first value.
const CREATE_STEPS: &[&str] = &[
    "create.after_shmget",
    "create.after_header",
    "create.after_mutex",
    "create.after_value",
];

#[test]
fn creators_killed_at_every_step_are_taken_over() {
    for &step in CREATE_STEPS {
        for kind in ["cell", "region"] {
            let key = unique_key();
            let raw = key.raw().to_string();
            die_at(step, &[&format!("{kind}_create"), &raw]);
            let id = Segment::options().open(key).unwrap().id();
            let _dead = SegGuard(id);
            let fresh = match kind {
                "cell" => {
                    match SharedCell::<Value>::opener()
                        .init_timeout(Duration::from_secs(5))
                        .open(key)
                    {
                        Err(shmstore::Error::CreatorDied { .. }) => {}
                        other => panic!("{step} {kind}: open gave {other:?}"),
                    }
                    let cell = SharedCell::<Value>::open_or_create(key, Value::of(7)).unwrap();
                    assert_eq!(cell.load(), Value::of(7), "{step}");
                    assert_eq!(cell.version(), 0);
                    cell.id()
                }
                _ => {
                    let region = SharedRegion::<Text>::open_or_create(key, 4096).unwrap();
                    assert_eq!(region.version(), 0);
                    assert_eq!(region.publish(&Text::of(1)).unwrap(), 1, "{step}");
                    region.id()
                }
            };
            let _fresh = SegGuard(fresh);
            assert_ne!(
                fresh, id,
                "{step} {kind}: the dead creator's segment was kept"
            );
        }
    }
}

/// A cell's store, its writer killed at each step: (step, committed). The
/// lock is held at every one of them.
const CELL_STEPS: &[(&str, bool)] = &[
    ("cell.after_lock", false),
    ("cell.after_announce", false),
    ("cell.after_slot", false),
    ("cell.after_commit", true),
    ("notify.before_wake", true),
];

/// Afterwards: the value is whole and is the committed version's; a waiter
/// announced before the store wakes with the dead writer's commit if it was
/// made (without any other commit), else with the next one; the next store
/// recovers the lock and commits the next version.
#[test]
fn cell_writers_killed_at_every_step() {
    for &(step, committed) in CELL_STEPS {
        let key = unique_key();
        let cell = SharedCell::<Value>::create(key, Value::of(0)).unwrap();
        let _g = SegGuard(cell.id());
        cell.store(Value::of(1)).unwrap();
        let mut waiter = announced_waiter("cell_wait", key, 1);
        die_at(step, &["cell_store", &key.raw().to_string()]);
        let v = if committed { 2 } else { 1 };
        assert_eq!(cell.version(), v, "{step}");
        assert_eq!(cell.load(), Value::of(v), "{step}");
        if committed {
            assert_eq!(waiter.expect("woke"), "2", "{step}: the waiter slept on");
        }
        cell.store(Value::of(v + 1)).unwrap();
        assert_eq!(cell.recoveries(), 1, "{step}");
        if !committed {
            assert_eq!(waiter.expect("woke"), "2", "{step}");
        }
        waiter.wait();
        assert_eq!(cell.load(), Value::of(v + 1), "{step}");
        assert!(!waiting(key), "{step}: the waiter's announcement stayed");
    }
}

/// A leaseholder killed at each step: (step, versions it committed). It
/// takes the lease, then stores three versions without locking; `@3` is a
/// step of its third store.
const LEASE_STEPS: &[(&str, u64)] = &[
    ("lease.after_lock", 0),
    ("cell.after_announce", 0),
    ("cell.after_slot", 0),
    ("cell.after_commit", 1),
    ("notify.before_wake", 1),
    ("cell.after_announce@3", 2),
    ("cell.after_slot@3", 2),
    ("cell.after_commit@3", 3),
];

/// Afterwards, as for a store: the value is whole and is the last
/// committed version's; a waiter announced before the lease wakes at the
/// first commit (the dead leaseholder's, or the next writer's) and reports
/// the version it then finds; the next store recovers the lock.
#[test]
fn leaseholders_killed_at_every_step() {
    for &(step, committed) in LEASE_STEPS {
        let key = unique_key();
        let cell = SharedCell::<Value>::create(key, Value::of(0)).unwrap();
        let _g = SegGuard(cell.id());
        cell.store(Value::of(1)).unwrap();
        let mut waiter = announced_waiter("cell_wait", key, 1);
        die_at(step, &["cell_lease", &key.raw().to_string()]);
        let v = 1 + committed;
        assert_eq!(cell.version(), v, "{step}");
        assert_eq!(cell.load(), Value::of(v), "{step}");
        if committed > 0 {
            // Woken by the first commit, it reports the version it then
            // finds: the first or a later one.
            let woke: u64 = waiter.expect("woke").parse().unwrap();
            assert!((2..=v).contains(&woke), "{step}: woke with {woke}");
        }
        cell.store(Value::of(v + 1)).unwrap();
        assert_eq!(cell.recoveries(), 1, "{step}");
        if committed == 0 {
            assert_eq!(waiter.expect("woke"), "2", "{step}");
        }
        waiter.wait();
        assert_eq!(cell.load(), Value::of(v + 1), "{step}");
        assert!(!waiting(key), "{step}: the waiter's announcement stayed");
    }
}

/// A region's publish, its writer killed at each step: (step, committed).
const REGION_STEPS: &[(&str, bool)] = &[
    ("region.after_lock", false),
    ("region.after_choose", false),
    ("region.after_announce", false),
    ("region.after_write", false),
    ("region.after_len", false),
    ("region.after_commit", true),
    ("notify.before_wake", true),
];

/// Afterwards: a read gives a whole value of the version `version()` says;
/// waiting on that version does not return at once (the commit point and
/// what waiters compare are one word); a waiter announced before wakes as
/// for a cell; the next publish recovers and commits the next version.
#[test]
fn region_writers_killed_at_every_step() {
    for &(step, committed) in REGION_STEPS {
        let key = unique_key();
        let region = SharedRegion::<Text>::options()
            .buffers(2)
            .create(key, 4096)
            .unwrap();
        let _g = SegGuard(region.id());
        region.publish(&Text::of(1)).unwrap();
        let mut waiter = announced_waiter("region_wait", key, 1);
        die_at(step, &["region_publish", &key.raw().to_string()]);
        let v = if committed { 2 } else { 1 };
        assert_eq!(region.version(), v, "{step}");
        {
            let g = region.read().unwrap();
            assert!(is_whole(&g), "{step}");
            assert_eq!((g.version(), g.version.to_native()), (v, v), "{step}");
        }
        if committed {
            assert_eq!(waiter.expect("woke"), "2", "{step}: the waiter slept on");
        }
        assert_eq!(
            region
                .wait_for_change(v, Some(Duration::from_millis(30)))
                .unwrap(),
            v,
            "{step}: waiting on the current version returned at once"
        );
        assert_eq!(region.publish(&Text::of(v + 1)).unwrap(), v + 1, "{step}");
        assert_eq!(region.recoveries(), 1, "{step}");
        if !committed {
            assert_eq!(waiter.expect("woke"), "2", "{step}");
        }
        waiter.wait();
        assert!(is_whole(&region.read().unwrap()), "{step}");
    }
}

/// A reader killed at each step of its pin: (step, pins a buffer). Its slot
/// must come back: this process then holds a guard in every other slot and
/// still gets one more, and with two buffers a publisher still finds one.
const PIN_STEPS: &[(&str, bool)] = &[
    ("pin.after_claim", false),
    ("pin.after_start", false),
    ("pin.after_pin", true),
];

#[test]
fn readers_killed_at_every_step_of_a_pin() {
    for &(step, pins) in PIN_STEPS {
        let key = unique_key();
        let region = SharedRegion::<Text>::options()
            .buffers(2)
            .publish_timeout(Duration::from_secs(5))
            .create(key, 4096)
            .unwrap();
        let _g = SegGuard(region.id());
        region.publish(&Text::of(1)).unwrap();
        die_at(step, &["region_read", &key.raw().to_string()]);
        if pins {
            // Buffer 0 is pinned by the dead reader, buffer 1 becomes
            // current: the next publish must reclaim the pin.
            region.publish(&Text::of(2)).unwrap();
            region.publish(&Text::of(3)).unwrap();
        }
        let guards: Vec<_> = (0..128).map(|_| region.read()).collect();
        let got = guards.iter().filter(|g| g.is_ok()).count();
        assert_eq!(got, 128, "{step}: the dead reader's slot was not reclaimed");
        drop(guards);
        assert!(is_whole(&region.read().unwrap()), "{step}");
    }
}

/// A reclaimer killed after judging a dead reader's claim, before its
/// compare-and-swap: the claim stays reclaimable by the next one.
#[test]
fn reclaimer_killed_between_judging_and_freeing() {
    let key = unique_key();
    let region = SharedRegion::<Text>::create(key, 4096).unwrap();
    let _g = SegGuard(region.id());
    region.publish(&Text::of(1)).unwrap();
    let raw = key.raw().to_string();
    die_at("pin.after_pin", &["region_read", &raw]);
    die_at("reclaim.after_judge", &["region_exhaust", &raw]);
    let guards: Vec<_> = (0..128).map(|_| region.read()).collect();
    assert!(
        guards.iter().all(|g| g.is_ok()),
        "slots of the dead reader and the dead reclaimer stayed taken"
    );
}

/// A waiter killed after announcing itself, before it sleeps: later
/// commits clear its announcement (one wake call) and go on.
#[test]
fn waiter_killed_after_announcing() {
    let key = unique_key();
    let cell = SharedCell::<Value>::create(key, Value::of(0)).unwrap();
    let _g = SegGuard(cell.id());
    let raw = key.raw().to_string();
    let mut cmd = child(&["cell_wait", &raw, "0"]);
    cmd.env("SHMSTORE_CRASH_AT", "notify.before_sleep");
    let mut kid = Kid::start(cmd);
    assert_eq!(kid.expect("waiting"), "0");
    assert_eq!(kid.wait().signal(), Some(libc::SIGKILL));
    assert!(waiting(key), "the dead waiter's announcement");
    cell.store(Value::of(1)).unwrap();
    assert!(!waiting(key), "the commit cleared it");
    cell.store(Value::of(2)).unwrap();
    assert_eq!(cell.load(), Value::of(2));
}

/// The tables above name every step the library has, and each once.
#[test]
fn every_step_is_in_a_table() {
    let mut tabled: Vec<&str> = CREATE_STEPS.to_vec();
    tabled.extend(CELL_STEPS.iter().map(|s| s.0));
    tabled.extend(LEASE_STEPS.iter().map(|s| s.0.split('@').next().unwrap()));
    tabled.extend(REGION_STEPS.iter().map(|s| s.0));
    tabled.extend(PIN_STEPS.iter().map(|s| s.0));
    tabled.extend(["reclaim.after_judge", "notify.before_sleep"]);
    // Killed and stopped at in tests/watch.rs.
    tabled.push("notify.before_sleep_any");
    // The bridge's steps are killed and stopped at in bridge/tests/bridge.rs.
    tabled.extend(
        shmstore::crash::STEPS
            .iter()
            .filter(|s| s.starts_with("bridge.")),
    );
    // The life of an object's steps are killed and stopped at in
    // tests/life.rs.
    tabled.extend(common::life_steps().filter(|s| !CREATE_STEPS.contains(s)));
    for step in shmstore::crash::STEPS {
        assert!(tabled.contains(step), "no crash test for {step}");
    }
    for step in &tabled {
        assert!(shmstore::crash::STEPS.contains(step), "{step} is no step");
    }
}
