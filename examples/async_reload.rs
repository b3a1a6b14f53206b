//! Tokio tasks reload a named configuration each time a supervisor
//! publishes one, with no thread of their own, and stop cleanly when the
//! supervisor removes it.
//!
//! The recipe: each task keeps a `region.changes()` stream and loops on
//! its `changed().await`, which returns the new version (or
//! `Error::Removed` once the object is gone), then takes what it needs out
//! of the region inside a block, so that no `RegionRef` (which is not
//! `Send`) is held across an `.await`:
//!
//! ```text
//! let config = { region.read()?.deserialize()? };
//! ```
//!
//! This program plays both roles. The parent, the supervisor, creates a
//! `SharedRegion` named `shmstore-example/async-reload-PID/config`, starts
//! the service (this program again), publishes a few generations of the
//! configuration, and once every task has applied the last one removes the
//! object; the service's tasks see `Error::Removed`, stop, and the service
//! exits. Nothing is left in `ipcs -m`.
//!
//! ```text
//! cargo run --example async_reload
//! ```

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use shmstore::{Error, Key, RegionReader, SharedRegion};

/// The configuration the supervisor publishes.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug)]
struct Config {
    generation: u64,
    greeting: String,
    workers: Vec<String>,
}

impl Config {
    fn generation(generation: u64) -> Config {
        Config {
            generation,
            greeting: format!("hello from generation {generation}"),
            workers: (0..generation).map(|i| format!("worker-{i}")).collect(),
        }
    }
}

/// How many tasks of the service reload the configuration.
const TASKS: usize = 4;
/// How many generations the supervisor publishes after the first.
const LAST_GENERATION: u64 = 4;
/// How long the supervisor waits for one line of the service's output,
/// and for the service to exit once the configuration is removed.
const PATIENCE: Duration = Duration::from_secs(10);
/// The capacity of the region, ample for every generation.
const CAPACITY: usize = 4096;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let result = match args.get(1).map(String::as_str) {
        Some("service") => service(&args[2]),
        _ => supervisor(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("async_reload: {e}");
            ExitCode::FAILURE
        }
    }
}

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The service: `TASKS` tasks on a multi-threaded runtime, each reloading
/// the configuration on every change until it is removed.
fn service(name: &str) -> Res<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        // A read-only attachment: the service only reads its configuration.
        let region = Arc::new(RegionReader::<Config>::open(Key::named(name)?)?);
        println!("ready");
        let mut tasks = tokio::task::JoinSet::new();
        for task in 0..TASKS {
            tasks.spawn(reload(task, region.clone()));
        }
        while let Some(done) = tasks.join_next().await {
            done??;
        }
        println!("service: every task stopped");
        Ok(())
    })
}

/// One task: apply the configuration now, then every one it is told of,
/// until the object is removed.
async fn reload(task: usize, region: Arc<RegionReader<Config>>) -> Res<()> {
    // The stream's first `changed()` waits for a version other than the
    // one now, which the loop applies first.
    let mut changes = region.changes()?;
    let mut next = Ok(region.version());
    loop {
        match next {
            Ok(_) => {
                // The guard stays inside this block: what crosses the next
                // `.await` is the owned `Config`.
                let (version, config) = {
                    let r = region.read()?;
                    (r.version(), r.deserialize()?)
                };
                println!(
                    "task {task}: applied version {version}, generation {} ({:?}, {} workers)",
                    config.generation,
                    config.greeting,
                    config.workers.len()
                );
            }
            Err(Error::Removed { .. }) => {
                println!("task {task}: the configuration was removed; stopping");
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        }
        next = changes.changed().await;
    }
}

/// The service's process, killed if still running when dropped.
struct Service {
    child: Child,
    lines: Receiver<String>,
}

impl Service {
    fn start(name: &str) -> Res<Service> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["service", name])
            .stdout(Stdio::piped())
            .spawn()?;
        let out = child.stdout.take().ok_or("the service has no stdout")?;
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Service { child, lines })
    }

    /// The service's next line of output, shown with a prefix; an error if
    /// it says nothing for `PATIENCE`, or exits.
    fn next_line(&self) -> Res<String> {
        match self.lines.recv_timeout(PATIENCE) {
            Ok(line) => {
                println!("  service| {line}");
                Ok(line)
            }
            Err(RecvTimeoutError::Timeout) => Err("the service said nothing for too long".into()),
            Err(RecvTimeoutError::Disconnected) => Err("the service exited early".into()),
        }
    }

    /// Wait for the service to exit by itself, and for its success.
    fn wait(&mut self) -> Res<()> {
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                return if status.success() {
                    Ok(())
                } else {
                    Err(format!("the service failed: {status}").into())
                };
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Err("the service did not stop after its configuration was removed".into())
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Removes this run's objects when dropped, whatever happened: every
/// object under the run's own prefix `shmstore-example/async-reload-PID/`.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = shmstore::inspect::remove_prefix(&self.0);
    }
}

fn supervisor() -> Res<()> {
    let prefix = format!("shmstore-example/async-reload-{}/", std::process::id());
    let name = format!("{prefix}config");
    let _cleanup = Cleanup(prefix);
    let region = SharedRegion::<Config>::create(Key::named(&name)?, CAPACITY)?;
    region.publish(&Config::generation(1))?;

    let mut service = Service::start(&name)?;
    while service.next_line()? != "ready" {}

    // Publish each generation once every task applied the one before.
    let mut applied = [0u64; TASKS];
    for generation in 2..=LAST_GENERATION + 1 {
        while applied.iter().any(|&g| g < generation - 1) {
            let line = service.next_line()?;
            if let Some((task, g)) = parse_applied(&line) {
                applied[task] = applied[task].max(g);
            }
        }
        if generation <= LAST_GENERATION {
            let version = region.publish(&Config::generation(generation))?;
            println!("supervisor: published generation {generation} as version {version}");
        }
    }

    println!(
        "supervisor: every task runs generation {LAST_GENERATION}; removing the configuration"
    );
    region.remove()?;
    let mut stopped = 0;
    while stopped < TASKS {
        if service.next_line()?.ends_with("stopping") {
            stopped += 1;
        }
    }
    service.wait()?;
    println!("supervisor: the service stopped by itself");
    Ok(())
}

/// `(task, generation)` of a line "task T: applied version V, generation G ...".
fn parse_applied(line: &str) -> Option<(usize, u64)> {
    let rest = line.strip_prefix("task ")?;
    let (task, rest) = rest.split_once(": applied version ")?;
    let (_, rest) = rest.split_once(", generation ")?;
    let generation = rest.split_whitespace().next()?;
    let task: usize = task.parse().ok()?;
    (task < TASKS).then_some(())?;
    Some((task, generation.parse().ok()?))
}
