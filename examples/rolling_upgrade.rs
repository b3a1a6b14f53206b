//! A rolling upgrade: release 2 changes the configuration's type while
//! workers of release 1 still read the old one.
//!
//! The recipe: each version of a type gets its own name (`.../config@1`,
//! `.../config@2`), and objects store their schema (`with_schema()`), so
//! that opening a name with the wrong release's type is refused with what
//! differs. During the roll-out the new supervisor publishes both: the new
//! type under the new name, and the old one under the old name for the
//! workers not yet restarted. When nobody but the supervisor is attached
//! to the old object any more (`info().nattch`), it removes it.
//!
//! This program plays every role. The parent starts a release-1
//! supervisor and an old worker, then replaces the supervisor with a
//! release-2 one and starts a new worker; it checks that the old worker
//! goes on reading revisions the new supervisor publishes, that the new
//! type is refused at the old name with the added field named, and, once
//! the old worker has gone, that the supervisor retires the old object.
//! Nothing is left in `ipcs -m`.
//!
//! ```text
//! cargo run --example rolling_upgrade
//! ```

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdout, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use shmstore::{Error, Key, RegionReader, Schema, SharedRegion};

/// Release 1's configuration.
#[derive(rkyv::Archive, rkyv::Serialize, Schema)]
struct Config {
    name: String,
    max_conn: u32,
    revision: u64,
}

/// Release 2 adds a field.
mod v2 {
    #[derive(rkyv::Archive, rkyv::Serialize, shmstore::Schema)]
    pub struct Config {
        pub name: String,
        pub max_conn: u32,
        pub max_idle_s: u32,
        pub revision: u64,
    }
}

const CAPACITY: usize = 4096;
/// How often a supervisor publishes a revision.
const TICK: Duration = Duration::from_millis(5);
/// The longest the parent waits for a child's line.
const PATIENCE: Duration = Duration::from_secs(20);

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let result = match (args.get(1).map(String::as_str), args.get(2)) {
        (Some("supervisor-1"), Some(base)) => supervisor_1(base),
        (Some("supervisor-2"), Some(base)) => supervisor_2(base),
        (Some("old-worker"), Some(base)) => old_worker(base),
        (Some("new-worker"), Some(base)) => new_worker(base),
        _ => parent(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rolling_upgrade: {e}");
            ExitCode::FAILURE
        }
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn key(base: &str, version: u32) -> Res<Key> {
    Ok(Key::named(&format!("{base}@{version}"))?)
}

fn old_config(revision: u64) -> Config {
    Config {
        name: "db.example.org".into(),
        max_conn: 100,
        revision,
    }
}

/// Release 1: publish the old type under `@1`, a revision every tick.
fn supervisor_1(base: &str) -> Res<()> {
    let old = SharedRegion::<Config>::creator()
        .with_schema()
        .open_or_create(key(base, 1)?, CAPACITY)?;
    let mut revision = 0;
    loop {
        revision += 1;
        old.publish(&old_config(revision))?;
        if revision == 1 {
            say("published");
        }
        std::thread::sleep(TICK);
    }
}

/// Release 2: publish the new type under `@2` and, while anyone else is
/// attached to it, the old type under `@1`; then retire `@1`.
fn supervisor_2(base: &str) -> Res<()> {
    let new = SharedRegion::<v2::Config>::creator()
        .with_schema()
        .open_or_create(key(base, 2)?, CAPACITY)?;
    let mut old = Some(
        SharedRegion::<Config>::creator()
            .with_schema()
            .open_or_create(key(base, 1)?, CAPACITY)?,
    );
    // Continue the revisions where release 1 stopped.
    let mut revision = old
        .as_ref()
        .and_then(|o| o.read().ok().map(|c| c.revision.to_native()))
        .unwrap_or(0);
    loop {
        revision += 1;
        new.publish(&v2::Config {
            name: "db.example.org".into(),
            max_conn: 200,
            max_idle_s: 30,
            revision,
        })?;
        if let Some(o) = &old {
            o.publish(&Config {
                max_conn: 200,
                ..old_config(revision)
            })?;
            if o.info()?.nattch == 1 {
                o.remove()?;
                old = None;
                say("retired @1");
            }
        }
        if revision % 20 == 0 {
            say(&format!("revision {revision}"));
        }
        std::thread::sleep(TICK);
    }
}

/// A worker of release 1: read `@1` until told to stop (restarted).
fn old_worker(base: &str) -> Res<()> {
    let config = RegionReader::<Config>::opener()
        .with_schema()
        .open(key(base, 1)?)?;
    let stop = std::thread::spawn(|| {
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
    });
    let mut seen = 0;
    while !stop.is_finished() {
        let version = config.wait_for_change(seen, Some(Duration::from_millis(50)))?;
        if version != seen {
            seen = version;
            let c = config.read()?;
            say(&format!(
                "old worker: revision {} max_conn {}",
                c.revision, c.max_conn
            ));
        }
    }
    Ok(())
}

/// A worker of release 2: the old name is refused with what differs; the
/// new name reads.
fn new_worker(base: &str) -> Res<()> {
    match RegionReader::<v2::Config>::opener()
        .with_schema()
        .open(key(base, 1)?)
    {
        Err(Error::TypeMismatch { differences, .. }) => {
            say(&format!(
                "new worker at @1: refused: {}",
                differences.join("; ")
            ));
        }
        Err(e) => return Err(e.into()),
        Ok(_) => return Err("the new type opened the old object".into()),
    }
    let config = RegionReader::<v2::Config>::opener()
        .with_schema()
        .open(key(base, 2)?)?;
    let c = config.read()?;
    say(&format!(
        "new worker: revision {} max_conn {} max_idle_s {}",
        c.revision, c.max_conn, c.max_idle_s
    ));
    Ok(())
}

/// A child process whose lines the parent reads; killed when dropped.
struct Role {
    child: Child,
    lines: std::io::Lines<BufReader<ChildStdout>>,
}

impl Role {
    fn start(role: &str, base: &str) -> Res<Role> {
        let mut child = Command::new(std::env::current_exe()?)
            .args([role, base])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let out = child.stdout.take().ok_or("no stdout")?;
        Ok(Role {
            child,
            lines: BufReader::new(out).lines(),
        })
    }

    /// The next line that starts with `prefix` (the lines' reader blocks;
    /// a child that dies ends them).
    fn until(&mut self, prefix: &str) -> Res<String> {
        let start = Instant::now();
        for line in self.lines.by_ref() {
            let line = line?;
            if line.starts_with(prefix) {
                return Ok(line);
            }
            if start.elapsed() > PATIENCE {
                break;
            }
        }
        Err(format!("no line {prefix:?} from the child").into())
    }
}

impl Drop for Role {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn parent() -> Res<()> {
    let base = format!("shmstore-example/upgrade-{}/config", std::process::id());
    let result = roll_out(&base);
    // Whatever happened, remove what the roles left.
    for version in [1, 2] {
        if let Ok(k) = key(&base, version) {
            let _ = SharedRegion::<Config>::open(k).map(|r| r.remove());
            let _ = SharedRegion::<v2::Config>::open(k).map(|r| r.remove());
        }
    }
    result
}

fn roll_out(base: &str) -> Res<()> {
    let mut supervisor = Role::start("supervisor-1", base)?;
    supervisor.until("published")?;
    let mut old_worker = Role::start("old-worker", base)?;
    println!("{}", old_worker.until("old worker: revision")?);

    // Release 2 replaces the supervisor; the old worker keeps running.
    drop(supervisor);
    let mut supervisor = Role::start("supervisor-2", base)?;
    supervisor.until("revision")?;
    let line = old_worker.until("old worker: revision")?;
    let line = if line.ends_with("max_conn 100") {
        // A revision release 1 published before it stopped: the next ones
        // are release 2's.
        old_worker.until("old worker: revision")?
    } else {
        line
    };
    println!("{line}");
    if !line.ends_with("max_conn 200") {
        return Err(format!("the old worker did not see release 2's revisions: {line}").into());
    }

    let mut new_worker = Role::start("new-worker", base)?;
    let refused = new_worker.until("new worker at @1")?;
    println!("{refused}");
    if !refused.contains("field `max_idle_s` added") {
        return Err(format!("the refusal does not name the new field: {refused}").into());
    }
    println!("{}", new_worker.until("new worker: revision")?);

    // The old worker is restarted with release 2 (here: it stops); the
    // supervisor then retires the old object.
    if let Some(stdin) = old_worker.child.stdin.as_mut() {
        writeln!(stdin, "stop")?;
    }
    old_worker.child.wait()?;
    println!("{}", supervisor.until("retired @1")?);
    match RegionReader::<Config>::open(key(base, 1)?) {
        Err(Error::NotFound { .. }) => println!("@1 is gone; @2 serves every worker"),
        Err(e) => return Err(e.into()),
        Ok(_) => return Err("@1 is still there".into()),
    }
    Ok(())
}
