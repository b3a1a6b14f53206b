//! Worker processes count into one `SharedCell`; a monitor process watches.
//!
//! The parent creates the cell and starts four workers and a monitor, all
//! copies of this program. Each worker adds to its own counter and to the
//! total with `update` (under the robust write lock). The monitor never takes
//! the lock: it sleeps in `wait_for_change`, loads a snapshot at each wake
//! and prints one every `PRINT_EVERY` at most, until the total is complete.
//! The parent checks that the total is exactly what the workers added,
//! prints it, and removes the segment.
//!
//! ```text
//! cargo run --example counters
//! ```

use std::process::{Child, Command};
use std::time::Duration;

use bytemuck::{Pod, Zeroable};
use shmstore::{Key, Schema, SharedCell};

const WORKERS: usize = 4;
const INCREMENTS: u64 = 25_000;
/// The monitor prints a snapshot at most this often.
const PRINT_EVERY: Duration = Duration::from_millis(20);
/// The longest the monitor sleeps for a change before it looks again.
const MONITOR_WAIT: Duration = Duration::from_secs(10);

/// The shared state: one counter per worker and their total. Its schema
/// is stored, so `shmstore get NAME` prints it by field while it runs.
#[derive(Clone, Copy, Debug, Pod, Zeroable, Schema)]
#[repr(C)]
struct Counters {
    per_worker: [u64; WORKERS],
    total: u64,
}

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> BoxResult<()> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("worker") => worker(key_arg(&args[2])?, args[3].parse()?),
        Some("monitor") => monitor(key_arg(&args[2])?),
        _ => parent(),
    }
}

fn key_arg(name: &str) -> BoxResult<Key> {
    Ok(Key::named(name)?)
}

fn parent() -> BoxResult<()> {
    // A name of our own: the children find the cell by it.
    let name = format!("shmstore-example/counters-{}", std::process::id());
    let key = key_arg(&name)?;
    let cell = SharedCell::<Counters>::creator()
        .with_schema()
        .remove_on_drop(true) // gone once every process has detached
        .create(key, Counters::zeroed())?;
    println!("cell {key} (segment id {}) created", cell.id());

    let me = std::env::current_exe()?;
    let spawn = |args: &[String]| -> BoxResult<Child> { Ok(Command::new(&me).args(args).spawn()?) };
    let monitor = spawn(&["monitor".into(), name.clone()])?;
    let workers = (0..WORKERS)
        .map(|i| spawn(&["worker".into(), name.clone(), i.to_string()]))
        .collect::<BoxResult<Vec<_>>>()?;

    for mut w in workers {
        let status = w.wait()?;
        if !status.success() {
            return Err(format!("a worker failed: {status}").into());
        }
    }
    let status = { monitor }.wait()?;
    if !status.success() {
        return Err(format!("the monitor failed: {status}").into());
    }

    let end = cell.load();
    let expected = WORKERS as u64 * INCREMENTS;
    println!(
        "final: {:?}, total {} after {} writes",
        end.per_worker,
        end.total,
        cell.version()
    );
    if end.total != expected || end.per_worker.iter().any(|&n| n != INCREMENTS) {
        return Err(format!("expected a total of {expected}, found {}", end.total).into());
    }
    println!("ok: {WORKERS} processes x {INCREMENTS} increments = {expected}, none lost");
    Ok(())
}

fn worker(key: Key, index: usize) -> BoxResult<()> {
    let cell = SharedCell::<Counters>::opener().with_schema().open(key)?;
    for _ in 0..INCREMENTS {
        cell.update(|c| {
            c.per_worker[index] += 1;
            c.total += 1;
        })?;
    }
    Ok(())
}

fn monitor(key: Key) -> BoxResult<()> {
    let cell = SharedCell::<Counters>::opener().with_schema().open(key)?;
    let expected = WORKERS as u64 * INCREMENTS;
    let mut seen = cell.version();
    let mut last_print = std::time::Instant::now();
    loop {
        let c = cell.load();
        if c.total == expected {
            println!("monitor: all {expected} increments seen");
            return Ok(());
        }
        if last_print.elapsed() >= PRINT_EVERY {
            println!(
                "monitor: total {:>6}  per worker {:?}",
                c.total, c.per_worker
            );
            last_print = std::time::Instant::now();
        }
        seen = cell.wait_for_change(seen, Some(MONITOR_WAIT))?;
    }
}
