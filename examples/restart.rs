//! A supervisor killed with `kill -9` and started again continues on the
//! same object, and a new release replaces it in one call.
//!
//! The recipe: open the object by name with `open_or_create` (not `create`,
//! and without `remove_on_drop`), so that a restarted process finds what
//! the killed one left: its value and its version. A release whose type
//! changed uses `open_or_replace`, which removes the old object and creates
//! the new one; processes still attached to the old one see their
//! `wait_for_change` return `Error::Removed` and open the name again.
//!
//! This program plays both roles. The parent starts a supervisor (this
//! program again), which counts in a `SharedCell` named
//! `shmstore-example/restart-PID/count`; the parent watches it through a
//! read-only attachment, kills the supervisor with SIGKILL, starts it again
//! and checks that the count goes on from where it was, then starts a "new
//! release" with another type and checks that its own waiter learns that
//! the object was replaced. Nothing is left in `ipcs -m`.
//!
//! ```text
//! cargo run --example restart
//! ```

use std::process::{Child, Command, ExitCode};
use std::time::Duration;

use shmstore::{Error, Key, SharedCell};

/// The first release's value: a count and the pid that made it.
type V1 = [u64; 2];
/// The next release's value: one more field.
type V2 = [u64; 3];

/// The longest the parent waits for one change of the count.
const WAIT: Option<Duration> = Some(Duration::from_secs(10));
/// How long a supervisor sleeps between two increments.
const TICK: Duration = Duration::from_millis(1);
/// How many times the parent tries to open the cell before it gives up,
/// and how long it sleeps between two tries.
const OPEN_TRIES: usize = 1000;
const OPEN_RETRY_PAUSE: Duration = Duration::from_millis(10);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let result = match args.get(1).map(String::as_str) {
        Some("supervisor") => supervisor(&args[2], &args[3]),
        _ => parent(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("restart: {e}");
            ExitCode::FAILURE
        }
    }
}

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Count forever, one increment every `TICK`, until killed.
fn supervisor(name: &str, release: &str) -> Res<()> {
    let key = Key::named(name)?;
    let me = u64::from(std::process::id());
    if release == "1" {
        let cell = SharedCell::<V1>::open_or_create(key, [0, me])?;
        loop {
            cell.update(|v| *v = [v[0] + 1, me])?;
            std::thread::sleep(TICK);
        }
    }
    let cell = SharedCell::<V2>::open_or_replace(key, [0, me, 2])?;
    loop {
        cell.update(|v| *v = [v[0] + 1, me, 2])?;
        std::thread::sleep(TICK);
    }
}

/// A supervisor process, killed when dropped.
struct Supervisor(Child);

impl Supervisor {
    fn start(name: &str, release: &str) -> Res<Supervisor> {
        let exe = std::env::current_exe()?;
        Ok(Supervisor(
            Command::new(exe)
                .args(["supervisor", name, release])
                .spawn()?,
        ))
    }

    /// `kill -9`.
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Removes this run's objects when dropped, whatever happened: every
/// object under the run's own prefix `shmstore-example/restart-PID/`
/// (`inspect::remove_prefix`), and nothing of another run.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = shmstore::inspect::remove_prefix(&self.0);
    }
}

fn parent() -> Res<()> {
    let prefix = format!("shmstore-example/restart-{}/", std::process::id());
    let name = format!("{prefix}count");
    let key = Key::named(&name)?;
    let _cleanup = Cleanup(prefix);

    let mut first = Supervisor::start(&name, "1")?;
    let cell = wait_open::<V1>(key)?;
    let at_kill = wait_count(&cell, 100)?;
    first.kill();
    let (value, version) = (cell.load(), cell.version());
    println!(
        "killed supervisor {} with SIGKILL at count {} (version {version})",
        value[1], value[0]
    );
    assert!(value[0] >= at_kill);

    let _second = Supervisor::start(&name, "1")?;
    let after = wait_count(&cell, value[0] + 100)?;
    let now = cell.load();
    println!(
        "supervisor {} went on: count {} (version {}), never back",
        now[1],
        after,
        cell.version()
    );
    if now[1] == value[1] || cell.version() <= version {
        return Err("the restarted supervisor did not continue the same object".into());
    }
    drop(_second);

    // A new release with another type replaces the object; this process,
    // still attached to the old one, learns it while waiting.
    let _third = Supervisor::start(&name, "2")?;
    let since = cell.version();
    loop {
        match cell.wait_for_change(since, WAIT) {
            Err(Error::Removed { .. }) => break,
            Ok(v) if v == since => return Err("the old object was never removed".into()),
            Ok(_) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let new = wait_open::<V2>(key)?;
    let count = wait_count2(&new, 10)?;
    println!("the new release replaced the object: waiters saw Removed, count {count}");
    Ok(())
}

/// Open the cell read-only once its supervisor made it (of type `T`).
fn wait_open<T: shmstore::bytemuck::Pod>(key: Key) -> Res<shmstore::CellReader<T>> {
    for _ in 0..OPEN_TRIES {
        match shmstore::CellReader::<T>::open(key) {
            Ok(cell) => return Ok(cell),
            Err(Error::NotFound { .. } | Error::TypeMismatch { .. }) => {
                std::thread::sleep(OPEN_RETRY_PAUSE)
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err("the supervisor never made the object".into())
}

/// Wait until the count reaches `n`; the count never goes back.
fn wait_count(cell: &shmstore::CellReader<V1>, n: u64) -> Res<u64> {
    let mut last = 0;
    loop {
        let v = cell.load();
        if v[0] < last {
            return Err(format!("the count went back from {last} to {}", v[0]).into());
        }
        last = v[0];
        if last >= n {
            return Ok(last);
        }
        wait_change(cell)?;
    }
}

/// Wait until the new release's count reaches `n`.
fn wait_count2(cell: &shmstore::CellReader<V2>, n: u64) -> Res<u64> {
    loop {
        let v = cell.load();
        if v[0] >= n {
            return Ok(v[0]);
        }
        wait_change(cell)?;
    }
}

/// Wait for the next change, up to `WAIT`: a supervisor that counts every
/// `TICK` and made no change in that time has stopped.
fn wait_change<T: shmstore::bytemuck::Pod>(cell: &shmstore::CellReader<T>) -> Res<()> {
    let since = cell.version();
    if cell.wait_for_change(since, WAIT)? == since {
        return Err(format!("the supervisor stopped counting at version {since}").into());
    }
    Ok(())
}
