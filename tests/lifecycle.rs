//! The life of an object seen from other processes: removal reaches every
//! waiter, read-write and read-only, whoever removes it (a handle, the
//! `shmstore` command, `ipcrm`).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Kid, SegGuard, child_args, key_arg, report, unique_key};
use shmstore::{Error, Key, Segment, SharedCell, SharedRegion};

#[derive(rkyv::Archive, rkyv::Serialize)]
struct Note {
    text: String,
}

#[test]
fn child_entry() {
    let Some(args) = child_args() else { return };
    let outcome = match args[0].as_str() {
        "cell_wait" if args[2] == "ro" => {
            let key = key_arg(&args, 1);
            let cell = SharedCell::<u64>::open_read_only(key).unwrap();
            wait(|| cell.wait_for_change(cell.version(), None))
        }
        "cell_wait" => {
            let cell = SharedCell::<u64>::open(key_arg(&args, 1)).unwrap();
            wait(|| cell.wait_for_change(cell.version(), None))
        }
        "region_wait" if args[2] == "ro" => {
            let region = SharedRegion::<Note>::open_read_only(key_arg(&args, 1)).unwrap();
            wait(|| region.wait_for_change(region.version(), None))
        }
        "region_wait" => {
            let region = SharedRegion::<Note>::open(key_arg(&args, 1)).unwrap();
            wait(|| region.wait_for_change(region.version(), None))
        }
        // Open or create the counter at this name, report what it found,
        // then count until killed.
        "supervisor" => {
            let name = &args[1];
            let cell =
                SharedCell::<[u64; 2]>::open_or_create(Key::named(name).unwrap(), [0, 0]).unwrap();
            report("found", format!("{:?}@{}", cell.load(), cell.version()));
            loop {
                cell.update(|v| v[0] += 1).unwrap();
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        // Create a cell and exit without removing it: garbage once gone.
        "make_and_exit" => {
            if args.get(2).is_some_and(|a| a == "nobody") {
                common::drop_to_nobody();
            }
            let cell = SharedCell::<u64>::create(key_arg(&args, 1), 1).unwrap();
            report("id", cell.id());
            std::process::exit(0);
        }
        // Create a cell and stay.
        "make_and_stay" => {
            let cell = SharedCell::<u64>::create(key_arg(&args, 1), 1).unwrap();
            report("id", cell.id());
            let _ = common::read_command();
            std::process::exit(0);
        }
        // Run `shmstore gc --remove` as uid 65534.
        "gc_as_nobody" => {
            common::drop_to_nobody();
            let out = Command::new(&args[1])
                .args(["gc", "--remove"])
                .output()
                .unwrap();
            report("ok", out.status.success());
            report(
                "out",
                String::from_utf8_lossy(&out.stdout).replace('\n', " | "),
            );
            std::process::exit(0);
        }
        other => panic!("unknown role {other}"),
    };
    report("outcome", outcome);
    std::process::exit(0);
}

/// Report `waiting`, wait, and say how the wait ended.
fn wait(f: impl FnOnce() -> shmstore::Result<u64>) -> String {
    report("waiting", 1);
    match f() {
        Err(Error::Removed { .. }) => "removed".into(),
        other => format!("{other:?}"),
    }
}

/// How an object is removed.
#[derive(Clone, Copy, Debug)]
enum Remover {
    Handle,
    Command,
    Ipcrm,
}

fn remove(how: Remover, id: i32, by_handle: impl FnOnce() -> shmstore::Result<()>) {
    match how {
        Remover::Handle => by_handle().unwrap(),
        Remover::Command => {
            let out = Command::new(env!("CARGO_BIN_EXE_shmstore"))
                .args(["remove", &id.to_string()])
                .output()
                .unwrap();
            assert!(out.status.success(), "shmstore remove: {out:?}");
        }
        Remover::Ipcrm => {
            let out = Command::new("ipcrm")
                .args(["-m", &id.to_string()])
                .output()
                .unwrap();
            assert!(out.status.success(), "ipcrm: {out:?}");
        }
    }
}

/// Every waiter returns `Removed` soon after the removal, however it was
/// removed, for cells and regions, read-write and read-only waiters.
#[test]
fn waiters_learn_that_their_object_was_removed() {
    for how in [Remover::Handle, Remover::Command, Remover::Ipcrm] {
        for kind in ["cell", "region"] {
            let key = unique_key();
            let (id, by_handle): (i32, Box<dyn FnOnce() -> shmstore::Result<()>>) =
                if kind == "cell" {
                    let cell = SharedCell::<u64>::create(key, 1).unwrap();
                    (cell.id(), Box::new(move || cell.remove()))
                } else {
                    let region = SharedRegion::<Note>::create(key, 1024).unwrap();
                    region
                        .publish(&Note {
                            text: "first".into(),
                        })
                        .unwrap();
                    (region.id(), Box::new(move || region.remove()))
                };
            let _g = SegGuard(id);
            let raw = key.raw().to_string();
            let role = format!("{kind}_wait");
            let mut waiters: Vec<Kid> = ["rw", "ro"]
                .iter()
                .map(|access| Kid::spawn(&[&role, &raw, access]))
                .collect();
            for w in &mut waiters {
                w.expect("waiting");
            }
            // Let them fall asleep.
            std::thread::sleep(Duration::from_millis(50));
            let removed_at = Instant::now();
            remove(how, id, by_handle);
            for (w, access) in waiters.iter_mut().zip(["rw", "ro"]) {
                assert_eq!(
                    w.expect("outcome"),
                    "removed",
                    "{how:?} of a {kind}, {access} waiter"
                );
                let took = removed_at.elapsed();
                assert!(
                    took < Duration::from_secs(5),
                    "{how:?} of a {kind}: the {access} waiter took {took:?}"
                );
                w.wait();
            }
            assert!(matches!(
                SharedCell::<u64>::open(key),
                Err(Error::NotFound { .. })
            ));
        }
    }
}

/// A handle can ask whether its object is still the one its key reaches,
/// and waiting on a removed object fails at once.
#[test]
fn handles_know_their_object_was_removed() {
    let key = unique_key();
    let cell = SharedCell::<u64>::create(key, 7).unwrap();
    let _g = SegGuard(cell.id());
    let reader = SharedCell::<u64>::open_read_only(key).unwrap();
    assert!(!cell.is_removed().unwrap() && !reader.is_removed().unwrap());
    cell.remove().unwrap();
    assert!(cell.is_removed().unwrap() && reader.is_removed().unwrap());
    assert_eq!(reader.load(), 7, "the last value stays readable");
    assert!(matches!(
        reader.wait_for_change(0, Some(Duration::from_secs(10))),
        Err(Error::Removed { .. })
    ));
    assert!(matches!(
        cell.wait_for_change(0, Some(Duration::ZERO)),
        Err(Error::Removed { .. })
    ));
    // A new object at the key is another one.
    let new = SharedCell::<u64>::create(key, 8).unwrap();
    let _g2 = SegGuard(new.id());
    assert!(cell.is_removed().unwrap() && !new.is_removed().unwrap());
    assert_eq!(SharedCell::<u64>::open(key).unwrap().load(), 8);
}

/// A supervisor killed with SIGKILL and started again with the same code
/// continues on the same object: its value and version are kept.
#[test]
fn a_supervisor_killed_and_restarted_keeps_value_and_version() {
    let name = format!("shmstore-test/{}-restart", std::process::id());
    let key = Key::named(&name).unwrap();
    let mut first = Kid::spawn(&["supervisor", &name]);
    assert_eq!(first.expect("found"), "[0, 0]@0");
    let reader = SharedCell::<[u64; 2]>::open_read_only(key).unwrap();
    let _g = SegGuard(reader.id());
    while reader.load()[0] < 20 {
        reader
            .wait_for_change(reader.version(), Some(Duration::from_secs(10)))
            .unwrap();
    }
    first.kill();
    let (value, version) = (reader.load(), reader.version());
    assert!(value[0] >= 20 && version == value[0], "{value:?}@{version}");
    let mut second = Kid::spawn(&["supervisor", &name]);
    assert_eq!(second.expect("found"), format!("{value:?}@{version}"));
    while reader.version() < version + 5 {
        reader
            .wait_for_change(reader.version(), Some(Duration::from_secs(10)))
            .unwrap();
    }
    second.kill();
    assert!(reader.load()[0] >= value[0] + 5);
    assert_eq!(SharedCell::<[u64; 2]>::open(key).unwrap().id(), reader.id());
}

/// A new release replaces an object of another type in one call; the old
/// one's waiters see Removed. Another program's segment is never replaced.
#[test]
fn open_or_replace_replaces_only_shmstore_objects_of_another_type() {
    let key = unique_key();
    let old = SharedCell::<u64>::create(key, 1).unwrap();
    let _g = SegGuard(old.id());
    let reader = SharedCell::<u64>::open_read_only(key).unwrap();
    let new = SharedCell::<[u64; 2]>::open_or_replace(key, [2, 2]).unwrap();
    let _g2 = SegGuard(new.id());
    assert_ne!(new.id(), old.id());
    assert!(matches!(
        reader.wait_for_change(reader.version(), Some(Duration::from_secs(10))),
        Err(Error::Removed { .. })
    ));
    // The same type: opened, not replaced.
    let again = SharedCell::<[u64; 2]>::open_or_replace(key, [9, 9]).unwrap();
    assert_eq!((again.id(), again.load()), (new.id(), [2, 2]));

    let foreign_key = unique_key();
    let foreign = Segment::options()
        .size(4096)
        .create(true)
        .open(foreign_key)
        .unwrap();
    let _g3 = SegGuard(foreign.id());
    foreign.write_at(0, b"not ours").unwrap();
    assert!(matches!(
        SharedCell::<u64>::open_or_replace(foreign_key, 0),
        Err(Error::NotShmstore { .. })
    ));
    assert!(!foreign.info().unwrap().marked_for_removal);
}

/// `shmstore gc` lists the objects nobody uses (no process attached, the
/// creator gone), and not the others; with `--remove` it removes them, only
/// the caller's own unless root.
#[test]
fn gc_finds_what_nobody_uses() {
    let (dead_key, live_key, held_key) = (unique_key(), unique_key(), unique_key());
    let mut dead = Kid::spawn(&["make_and_exit", &dead_key.raw().to_string(), "self"]);
    let dead_id: i32 = dead.expect("id").parse().unwrap();
    dead.wait();
    let _g1 = SegGuard(dead_id);
    let mut live = Kid::spawn(&["make_and_stay", &live_key.raw().to_string()]);
    let live_id: i32 = live.expect("id").parse().unwrap();
    let _g2 = SegGuard(live_id);
    let mut held = Kid::spawn(&["make_and_exit", &held_key.raw().to_string(), "self"]);
    let held_id: i32 = held.expect("id").parse().unwrap();
    held.wait();
    let _g3 = SegGuard(held_id);
    let holder = SharedCell::<u64>::opener()
        .open(shmstore::Target::Id(held_id))
        .unwrap();

    let garbage: Vec<i32> = shmstore::inspect::garbage()
        .unwrap()
        .iter()
        .map(|o| o.info.id)
        .collect();
    assert!(garbage.contains(&dead_id), "{garbage:?}");
    assert!(!garbage.contains(&live_id), "the creator runs");
    assert!(!garbage.contains(&held_id), "a process is attached");
    let out = Command::new(env!("CARGO_BIN_EXE_shmstore"))
        .arg("gc")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.contains(&format!("would remove segment {dead_id} ")),
        "{text}"
    );
    assert!(!text.contains(&format!("segment {live_id} ")), "{text}");
    assert!(
        SharedCell::<u64>::opener()
            .open(shmstore::Target::Id(dead_id))
            .is_ok(),
        "a dry run removes nothing"
    );
    live.send("stop");
    live.wait();
    drop(holder);

    if !common::root_or_skip("gc --remove as another user") {
        return;
    }
    let nobody_key = unique_key();
    let mut made = Kid::spawn(&["make_and_exit", &nobody_key.raw().to_string(), "nobody"]);
    let nobody_id: i32 = made.expect("id").parse().unwrap();
    made.wait();
    let _g4 = SegGuard(nobody_id);
    let mut gc = Kid::spawn(&["gc_as_nobody", env!("CARGO_BIN_EXE_shmstore")]);
    assert_eq!(gc.expect("ok"), "true");
    let text = gc.expect("out");
    gc.wait();
    assert!(
        text.contains(&format!("removed segment {nobody_id} ")),
        "{text}"
    );
    assert!(
        !text.contains(&format!("segment {dead_id} ")),
        "nobody removed root's segment: {text}"
    );
    assert!(
        shmstore::Segment::info_by_id(nobody_id).is_err()
            || shmstore::Segment::info_by_id(nobody_id)
                .unwrap()
                .marked_for_removal
    );
    assert!(
        !shmstore::Segment::info_by_id(dead_id)
            .unwrap()
            .marked_for_removal
    );
}
