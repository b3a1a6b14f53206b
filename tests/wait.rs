//! Waiting for a change (`wait_for_change`) across processes: a commit
//! wakes waiters in other processes, read-write and read-only; a wait ends
//! at its timeout, a zero timeout looks once, and one too large for a
//! deadline waits for as long as it takes; a waiter killed while it waits
//! breaks nothing. A removal seen by waiters is in `tests/life.rs`.

mod common;

use std::time::{Duration, Instant};

use common::values::Text;
use common::{
    Kid, Live, SegGuard, child, child_args, key_arg, new_cell, report, report_of, unique_key,
};
use shmstore::{Key, Segment, SharedCell, SharedRegion};

#[test]
fn child_entry() {
    let Some(args) = child_args() else { return };
    match args[0].as_str() {
        "wait" => {
            let cell = SharedCell::<u64>::open(key_arg(&args, 1)).unwrap();
            let timeout_ms: u64 = args[2].parse().unwrap();
            let since = cell.version();
            report("waiting", since);
            let start = Instant::now();
            let now = cell
                .wait_for_change(since, Some(Duration::from_millis(timeout_ms)))
                .unwrap();
            report("woke", now);
            report("elapsed_ms", start.elapsed().as_millis());
            report("value", cell.load());
        }
        "wait_ro" => {
            let cell = SharedCell::<u64>::open_read_only(key_arg(&args, 1)).unwrap();
            let since = cell.version();
            report("waiting", since);
            let now = cell
                .wait_for_change(since, Some(Duration::from_secs(10)))
                .unwrap();
            report("woke", now);
            report("value", cell.load());
        }
        "wait_huge" => wait_huge(key_arg(&args, 1), &args[2], &args[3]),
        other => panic!("unknown role {other}"),
    }
    std::process::exit(0);
}

#[test]
fn wait_for_change_wakes_another_process() {
    let (cell, key, _g) = new_cell(0u64);
    let mut waiter = Live::spawn(&["wait", &key.raw().to_string(), "10000"]);
    assert_eq!(waiter.expect("waiting"), "0");
    std::thread::sleep(Duration::from_millis(50));
    cell.store(7).unwrap();
    assert_eq!(waiter.expect("woke"), "1");
    let elapsed: u64 = waiter.expect("elapsed_ms").parse().unwrap();
    assert!(elapsed < 10_000, "woke only at the timeout");
    assert_eq!(waiter.expect("value"), "7");
    waiter.finish();
}

#[test]
fn wait_for_change_times_out_cleanly() {
    let (_cell, key, _g) = new_cell(0u64);
    let out = child(&["wait", &key.raw().to_string(), "150"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(report_of(&out.stdout, "woke").as_deref(), Some("0"));
    let elapsed: u64 = report_of(&out.stdout, "elapsed_ms")
        .unwrap()
        .parse()
        .unwrap();
    assert!(elapsed >= 150, "returned after {elapsed} ms");
}

#[test]
fn read_only_waiter_wakes_too() {
    let (cell, key, _g) = new_cell(0u64);
    let mut waiter = Live::spawn(&["wait_ro", &key.raw().to_string()]);
    waiter.expect("waiting");
    cell.store(3).unwrap();
    assert_eq!(waiter.expect("woke"), "1");
    assert_eq!(waiter.expect("value"), "3");
    waiter.finish();
}

#[test]
fn waiter_killed_while_waiting_breaks_nothing() {
    let (cell, key, _g) = new_cell(0u64);
    let raw = key.raw().to_string();
    let seg = Segment::options().open(key).unwrap();
    // FORMAT.md: bit 0 (WAITING) of the `notify` word at 264.
    let waiters = || {
        let mut b = [0u8; 4];
        seg.read_at(264, &mut b).unwrap();
        u32::from_le_bytes(b) & 1
    };
    let mut doomed = Live::spawn(&["wait", &raw, "60000"]);
    doomed.expect("waiting");
    let start = Instant::now();
    while waiters() == 0 && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(20)); // let it fall asleep
    doomed.child.kill().unwrap();
    doomed.child.wait().unwrap();
    assert_eq!(waiters(), 1, "the dead waiter's announcement stays");
    cell.store(1).unwrap();
    assert_eq!(
        waiters(),
        0,
        "the store cleared the dead waiter's announcement"
    );
    let mut waiter = Live::spawn(&["wait", &raw, "10000"]);
    assert_eq!(waiter.expect("waiting"), "1");
    cell.store(2).unwrap();
    assert_eq!(waiter.expect("woke"), "2");
    waiter.finish();
    assert_eq!(cell.load(), 2);
}

// ---------------------------------------------------------------------------
// wait_for_change with a zero (or tiny) timeout looks at the version once.

#[test]
fn a_zero_timeout_sees_a_change() {
    let cell = SharedCell::<u64>::options()
        .remove_on_drop(true)
        .create(Key::PRIVATE, 0)
        .unwrap();
    cell.store(1).unwrap();
    assert_eq!(cell.version(), 1);
    let got = cell.wait_for_change(0, Some(Duration::ZERO)).unwrap();
    let got_1ns = cell
        .wait_for_change(0, Some(Duration::from_nanos(1)))
        .unwrap();
    eprintln!("version 1; wait_for_change(0, 0) = {got}, (0, 1ns) = {got_1ns}");
    assert_eq!(got, 1, "the version had changed already");
}

// ---------------------------------------------------------------------------
// Huge timeouts.

/// Child role: open the cell (`SharedCell<u64>`) or region at `key` as
/// `what` says and wait for a change with a huge timeout. Reports
/// `waiting` (the version), then `woke` (the version then, or the error).
fn wait_huge(key: Key, what: &str, timeout: &str) {
    let timeout = match timeout {
        "max" => Duration::MAX,
        "half" => Duration::from_secs(u64::MAX / 2),
        other => panic!("unknown timeout {other}"),
    };
    type Wait = Box<dyn Fn(u64) -> shmstore::Result<u64>>;
    let (since, wait): (u64, Wait) = match what {
        "cell" => {
            let c = SharedCell::<u64>::open(key).unwrap();
            (
                c.version(),
                Box::new(move |s| c.wait_for_change(s, Some(timeout))),
            )
        }
        "cell_ro" => {
            let c = SharedCell::<u64>::open_read_only(key).unwrap();
            (
                c.version(),
                Box::new(move |s| c.wait_for_change(s, Some(timeout))),
            )
        }
        "region" => {
            let r = SharedRegion::<Text>::open(key).unwrap();
            (
                r.version(),
                Box::new(move |s| r.wait_for_change(s, Some(timeout))),
            )
        }
        "region_ro" => {
            let r = SharedRegion::<Text>::open_read_only(key).unwrap();
            (
                r.version(),
                Box::new(move |s| r.wait_for_change(s, Some(timeout))),
            )
        }
        other => panic!("unknown store {other}"),
    };
    report("waiting", since);
    let woke = wait(since);
    report(
        "woke",
        woke.map_or_else(|e| format!("error {e:?}"), |v| v.to_string()),
    );
}

/// `wait_for_change` with a timeout too large for a deadline
/// (`Duration::MAX`) waits without one: it returns the new version once
/// another process writes, about 100 ms later.
#[test]
fn a_huge_timeout_means_no_timeout() {
    enum Store {
        Cell(SharedCell<u64>),
        Region(SharedRegion<Text>),
    }
    let cases = [
        ("cell", "max"),
        ("cell", "half"),
        ("cell_ro", "max"),
        ("region", "max"),
        ("region_ro", "max"),
    ];
    let mut waiting = Vec::new();
    for (what, timeout) in cases {
        let key = unique_key();
        let (store, guard) = if what.starts_with("cell") {
            let c = SharedCell::<u64>::create(key, 0).unwrap();
            let g = SegGuard(c.id());
            (Store::Cell(c), g)
        } else {
            let r = SharedRegion::<Text>::create(key, 4096).unwrap();
            r.publish(&Text::of(1)).unwrap();
            let g = SegGuard(r.id());
            (Store::Region(r), g)
        };
        let mut kid = Kid::spawn(&["wait_huge", &key.raw().to_string(), what, timeout]);
        let since: u64 = kid.expect("waiting").parse().unwrap();
        waiting.push((what, timeout, store, guard, kid, since));
    }
    std::thread::sleep(Duration::from_millis(100));
    let mut failures = Vec::new();
    for (what, timeout, store, _guard, mut kid, since) in waiting {
        match &store {
            Store::Cell(c) => c.store(7).unwrap(),
            Store::Region(r) => {
                r.publish(&Text::of(2)).unwrap();
            }
        }
        let woke = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let woke = kid.expect("woke");
            (woke, kid.wait())
        })) {
            Ok((woke, status)) if status.success() => woke,
            Ok((woke, status)) => format!("{woke}, then the child ended by {status}"),
            Err(panic) => panic
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_else(|| "a panic".into()),
        };
        if woke != (since + 1).to_string() {
            failures.push(format!(
                "{what}.wait_for_change({since}, Some({timeout} duration)): expected {}, got: {woke}",
                since + 1
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A handle that waits again right after a wait asked the kernel whether
/// its object was removed does not ask again at once, yet still learns of
/// an `ipcrm` made in between: within the removal check's interval and a
/// slice, not never. Both for cells and regions' read-write handles.
#[test]
fn a_wait_right_after_another_still_learns_of_an_ipcrm() {
    let (cell, _key, _g) = new_cell(0u64);
    let region = SharedRegion::<Text>::create(Key::PRIVATE, 1024).unwrap();
    let _gr = SegGuard(region.id());
    region.publish(&Text::of(1)).unwrap();
    type Wait<'a> = Box<dyn Fn(Option<Duration>) -> shmstore::Result<u64> + 'a>;
    let waits: [(i32, Wait); 2] = [
        (cell.id(), Box::new(|t| cell.wait_for_change(0, t))),
        (region.id(), Box::new(|t| region.wait_for_change(1, t))),
    ];
    for (id, wait) in waits {
        // Asks the kernel (present), then times out.
        wait(Some(Duration::from_millis(1))).unwrap();
        Segment::remove_by_id(id).unwrap();
        let start = Instant::now();
        assert!(
            matches!(
                wait(Some(Duration::from_secs(10))),
                Err(shmstore::Error::Removed { .. })
            ),
            "segment {id}"
        );
        let took = start.elapsed();
        // The interval (100 ms) and a slice (250 ms), with room to spare.
        assert!(
            took < Duration::from_secs(3),
            "segment {id}: learnt of the ipcrm after {took:?}"
        );
    }
}

/// A version committed before a removal is still reported by a wait that
/// starts after the removal (`Ok` with the new version, not
/// `Err(Removed)`), as the doc of `wait_for_change` says, even when the
/// handle asked the kernel about an `ipcrm` moments before: the check it
/// skips then must not skip reading the version too.
#[test]
fn a_version_before_a_removal_is_reported_right_after_a_kernel_check() {
    for ask_first in [false, true] {
        let (cell, _key, _g) = new_cell(0u64);
        if ask_first {
            // Asks the kernel (present), then times out.
            assert_eq!(cell.wait_for_change(0, Some(Duration::ZERO)).unwrap(), 0);
            assert_eq!(
                cell.wait_for_change(0, Some(Duration::from_millis(1)))
                    .unwrap(),
                0
            );
        }
        cell.store(1).unwrap();
        cell.remove().unwrap();
        for timeout in [Duration::ZERO, Duration::from_secs(10)] {
            match cell.wait_for_change(0, Some(timeout)) {
                Ok(1) => {}
                other => {
                    panic!("asked the kernel first: {ask_first}, timeout {timeout:?}: {other:?}")
                }
            }
        }
    }
}
