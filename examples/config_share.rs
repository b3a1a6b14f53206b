//! A supervisor publishes its configuration to worker processes, which read
//! it in place.
//!
//! The supervisor creates a `SharedRegion<Config>` (strings, a `Vec` and a
//! `BTreeMap`, archived with rkyv), publishes version 1 and starts three
//! workers, all copies of this program. Each worker opens the region and
//! calls `read`, whose guard derefs to the `ArchivedConfig` in the segment
//! itself: nothing is copied or deserialised. It prints what it sees,
//! acknowledges the version in a `SharedCell<[u64; 3]>` (one slot per
//! worker), then sleeps in `wait_for_change` and prints each new version it
//! wakes to. Once every worker has acknowledged version 1, the supervisor
//! publishes two updates back to back, the second marked final. A worker
//! reads whatever is current when it wakes, so it may skip the middle
//! version, but it must see the final one: only then does it exit with
//! status 0. The supervisor checks every exit status and acknowledgement,
//! prints a summary, and both segments go when it drops them.
//!
//! Every wait has a timeout, and on any failure the supervisor kills the
//! workers still running, so the example neither hangs nor leaves a segment
//! behind (`ipcs -m`).
//!
//! ```text
//! cargo run --example config_share
//! ```

use std::collections::BTreeMap;
use std::process::{Child, Command, ExitCode, ExitStatus};
use std::time::{Duration, Instant};

use shmstore::{Key, SharedCell, SharedRegion};

const WORKERS: usize = 3;
/// The version of the configuration marked final: 1, then two updates.
const FINAL_VERSION: u64 = 3;
/// The longest the supervisor waits for any one step: every worker's
/// acknowledgement of a version, or every worker's exit.
const STEP_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a worker waits for a new version. Longer than the
/// supervisor's timeout, so the supervisor names a stuck worker first; it
/// only ends the workers of a supervisor that went away.
const WORKER_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest the supervisor sleeps for an acknowledgement before it
/// looks whether a worker died.
const ACK_SLICE: Duration = Duration::from_millis(50);
/// How often the supervisor looks whether every worker has exited.
const EXIT_POLL: Duration = Duration::from_millis(10);

/// The configuration the supervisor shares with its workers.
#[derive(rkyv::Archive, rkyv::Serialize)]
struct Config {
    service: String,
    log_level: String,
    upstreams: Vec<String>,
    limits: BTreeMap<String, u32>,
    /// The last configuration of this run: workers exit once they see it.
    last: bool,
}

/// The version each worker last saw, by worker index.
type Acks = [u64; WORKERS];

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (role, result) = match args.get(1).map(String::as_str) {
        Some("worker") if args.len() == 5 => {
            let role = format!("worker {}", args[4]);
            (role, worker_main(&args[2], &args[3], &args[4]))
        }
        None => ("supervisor".to_owned(), supervisor()),
        Some(_) => (
            "config_share".to_owned(),
            Err("usage: config_share (the worker arguments are internal)".into()),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{role}: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn key_arg(name: &str) -> BoxResult<Key> {
    Ok(Key::named(name)?)
}

/// The configuration published as `version`.
fn config(version: u64) -> Config {
    let mut config = Config {
        service: "edge-proxy".into(),
        log_level: "info".into(),
        upstreams: vec!["10.0.0.11:8080".into(), "10.0.0.12:8080".into()],
        limits: BTreeMap::from([
            ("max_connections".into(), 1024),
            ("timeout_ms".into(), 2500),
        ]),
        last: version == FINAL_VERSION,
    };
    if version >= 2 {
        config.upstreams.push("10.0.0.13:8080".into());
        config.limits.insert("max_connections".into(), 4096);
    }
    if version >= 3 {
        config.log_level = "debug".into();
        config.limits.insert("retries".into(), 3);
    }
    config
}

fn supervisor() -> BoxResult<()> {
    // Names of our own: the workers find the objects by them.
    let prefix = format!("shmstore-example/config-share-{}", std::process::id());
    let (region_name, acks_name) = (format!("{prefix}/config"), format!("{prefix}/acks"));
    let region_key = key_arg(&region_name)?;
    let acks_key = key_arg(&acks_name)?;
    let region = SharedRegion::<Config>::creator()
        .remove_on_drop(true) // gone once every process has detached
        .create(region_key, 16 * 1024)?;
    let acks = SharedCell::<Acks>::creator()
        .remove_on_drop(true)
        .create(acks_key, [0; WORKERS])?;
    println!(
        "supervisor: region {region_key} (segment id {}), acks {acks_key} (segment id {})",
        region.id(),
        acks.id()
    );
    let version = region.publish(&config(1))?;
    println!("supervisor: published version {version}");

    // Declared after the segments, so dropped (children killed) before them.
    let mut workers = Workers(Vec::new());
    let me = std::env::current_exe()?;
    for i in 0..WORKERS {
        let child = Command::new(&me)
            .args(["worker", &region_name, &acks_name, &i.to_string()])
            .spawn()?;
        workers.0.push(child);
    }

    wait_for_acks(&acks, &mut workers, version)?;
    println!("supervisor: all {WORKERS} workers have version {version}; publishing two updates");
    for expected in version + 1..=FINAL_VERSION {
        let version = region.publish(&config(expected))?;
        println!("supervisor: published version {version}");
        if version != expected {
            return Err(format!("published version {version}, expected {expected}").into());
        }
    }

    let statuses = workers.wait_all(STEP_TIMEOUT)?;
    let seen = acks.load();
    let mut failures = Vec::new();
    for (i, (status, seen)) in statuses.iter().zip(seen).enumerate() {
        println!("supervisor: worker {i}: {status}, last version seen {seen}");
        if !status.success() {
            failures.push(format!("worker {i} failed ({status})"));
        }
        if seen != FINAL_VERSION {
            failures.push(format!("worker {i} last saw version {seen}"));
        }
    }
    if !failures.is_empty() {
        return Err(failures.join("; ").into());
    }
    println!(
        "ok: {WORKERS} workers read every configuration in place and all saw the final \
         version {FINAL_VERSION}"
    );
    Ok(())
}

/// Wait until every worker has acknowledged `version`, failing early if a
/// worker exits first and after [`STEP_TIMEOUT`] at most.
fn wait_for_acks(acks: &SharedCell<Acks>, workers: &mut Workers, version: u64) -> BoxResult<()> {
    let deadline = Instant::now() + STEP_TIMEOUT;
    // Read the version before the value, so no acknowledgement is missed.
    let mut seen = acks.version();
    loop {
        let now = acks.load();
        if now.iter().all(|&v| v >= version) {
            return Ok(());
        }
        workers.check_running()?;
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            return Err(format!(
                "the workers did not all acknowledge version {version} within \
                 {STEP_TIMEOUT:?} (acknowledged: {now:?})"
            )
            .into());
        };
        // Short slices, so a worker that dies is noticed promptly.
        seen = acks.wait_for_change(seen, Some(left.min(ACK_SLICE)))?;
    }
}

/// The worker processes; those still running when this is dropped (on any
/// error path) are killed and reaped.
struct Workers(Vec<Child>);

impl Workers {
    /// Fail if any worker has exited already.
    fn check_running(&mut self) -> BoxResult<()> {
        for (i, child) in self.0.iter_mut().enumerate() {
            if let Some(status) = child.try_wait()? {
                return Err(format!("worker {i} exited early ({status})").into());
            }
        }
        Ok(())
    }

    /// Wait for every worker to exit, for `timeout` at most.
    fn wait_all(&mut self, timeout: Duration) -> BoxResult<Vec<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        loop {
            let statuses = self
                .0
                .iter_mut()
                .map(Child::try_wait)
                .collect::<std::io::Result<Option<Vec<_>>>>()?;
            if let Some(statuses) = statuses {
                return Ok(statuses);
            }
            if Instant::now() >= deadline {
                let running: Vec<usize> = (0..self.0.len())
                    .filter(|&i| matches!(self.0[i].try_wait(), Ok(None)))
                    .collect();
                return Err(format!("workers {running:?} did not exit within {timeout:?}").into());
            }
            std::thread::sleep(EXIT_POLL);
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

fn worker_main(region_key: &str, acks_key: &str, index: &str) -> BoxResult<()> {
    let index: usize = index.parse()?;
    if index >= WORKERS {
        return Err(format!("worker index {index} out of range").into());
    }
    worker(key_arg(region_key)?, key_arg(acks_key)?, index)
}

fn worker(region_key: Key, acks_key: Key, index: usize) -> BoxResult<()> {
    let region = SharedRegion::<Config>::open(region_key)?;
    let acks = SharedCell::<Acks>::open(acks_key)?;
    let mut seen = 0;
    loop {
        let now = region.wait_for_change(seen, Some(WORKER_TIMEOUT))?;
        if now == seen {
            return Err(format!(
                "no version after {seen} within {WORKER_TIMEOUT:?}, and version \
                 {seen} was not the final one"
            )
            .into());
        }
        // Zero-copy: `config` derefs to the ArchivedConfig inside the
        // segment; the guard pins its buffer until it is dropped.
        let config = region.read()?;
        let version = config.version();
        let upstreams: Vec<&str> = config.upstreams.iter().map(|u| u.as_str()).collect();
        let limits: Vec<String> = config
            .limits
            .iter()
            .map(|(name, value)| format!("{}={}", name.as_str(), value.to_native()))
            .collect();
        println!(
            "worker {index}: version {version}{}: {} log={} upstreams=[{}] limits={{{}}}",
            if config.last { " (final)" } else { "" },
            config.service.as_str(),
            config.log_level.as_str(),
            upstreams.join(", "),
            limits.join(", "),
        );
        let last = config.last;
        drop(config); // never hold a pin while waiting
        acks.update(|a| a[index] = version)?;
        if last {
            return Ok(());
        }
        seen = version;
    }
}
