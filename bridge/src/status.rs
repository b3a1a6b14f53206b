//! What a running bridge tells its operator: per object, which way it goes,
//! the last revision and version it moved, how far behind it is, and its
//! errors. `run` keeps it in memory and writes it to the status file
//! (written whole to a temporary file, then renamed, so a reader never sees
//! half of it); `status` reads the file.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// The whole status.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Status {
    /// This host's name.
    pub host: String,
    /// The bridge's process id.
    pub pid: u32,
    /// The server's URL.
    pub server: String,
    /// The bucket.
    pub bucket: String,
    /// Whether the server answered the last request.
    pub connected: bool,
    /// Whether the bridge stopped (SIGINT, SIGTERM): the status is its
    /// last.
    #[serde(default)]
    pub stopped: bool,
    /// When this status was written, in milliseconds since the epoch.
    pub written_ms: u64,
    /// Every object the bridge moved or refused, by name.
    pub objects: BTreeMap<String, ObjectStatus>,
}

/// One object's status.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ObjectStatus {
    /// `export` or `import`.
    pub direction: String,
    /// `mirrored`, `waiting` (for the server), `refused`, `removed`.
    pub state: String,
    /// The bucket's revision of the last value moved.
    pub revision: u64,
    /// The source object's version of the last value moved.
    pub version: u64,
    /// An import's local object's version after the last write.
    pub local_version: u64,
    /// Values moved since the bridge started.
    pub moved: u64,
    /// An import's delay: from the exporter's read to this host's write,
    /// in microseconds (across hosts, clock offsets count).
    pub lag_us: u64,
    /// Errors met since the bridge started.
    pub errors: u64,
    /// The last error, if any.
    pub last_error: Option<String>,
    /// When the last value moved, in milliseconds since the epoch.
    pub moved_ms: u64,
}

/// The status a running bridge keeps, shared by its tasks.
#[derive(Debug, Clone, Default)]
pub struct Shared(Arc<Mutex<Status>>);

/// Now, in nanoseconds since the epoch.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

impl Shared {
    /// A fresh status.
    pub fn new(status: Status) -> Shared {
        Shared(Arc::new(Mutex::new(status)))
    }

    /// Change `name`'s entry.
    pub fn object(&self, name: &str, f: impl FnOnce(&mut ObjectStatus)) {
        let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f(s.objects.entry(name.to_owned()).or_default());
    }

    /// Record an error of `name` (and log it).
    pub fn error(&self, name: &str, direction: &str, state: &str, error: &str) {
        tracing::warn!(object = name, direction, "{error}");
        self.object(name, |o| {
            o.direction = direction.into();
            o.state = state.into();
            o.errors += 1;
            o.last_error = Some(error.into());
        });
    }

    /// Say whether the server answers.
    pub fn connected(&self, yes: bool) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).connected = yes;
    }

    /// Say that the bridge stopped.
    pub fn stopped(&self) {
        let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        s.stopped = true;
        s.connected = false;
    }

    /// A copy of the status now.
    pub fn snapshot(&self) -> Status {
        let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        s.written_ms = now_ns() / 1_000_000;
        s
    }

    /// Write the status to `path`, whole: into a file made afresh beside
    /// it (`create_new`, which follows no link, under a name no other
    /// process can tell ahead), then renamed over it (a rename replaces a
    /// link planted there, never its target).
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        use std::io::Write;
        let json = serde_json::to_vec_pretty(&self.snapshot()).map_err(std::io::Error::other)?;
        let tmp = path.with_extension(format!("tmp.{}.{}", std::process::id(), now_ns()));
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .and_then(|mut f| f.write_all(&json))
            .and_then(|()| std::fs::rename(&tmp, path));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written
    }
}

/// Whether the bridge that wrote `status` still runs: it did not say it
/// stopped, its process is there, and its status is fresh (written every
/// 250 ms).
pub fn running(status: &Status) -> bool {
    let age_ms = (now_ns() / 1_000_000).saturating_sub(status.written_ms);
    !status.stopped && Path::new(&format!("/proc/{}", status.pid)).exists() && age_ms < 5_000
}

/// Read the status file at `path`.
pub fn read(path: &Path) -> Result<Status, String> {
    let bytes = std::fs::read(path).map_err(|e| {
        format!(
            "cannot read the status file {}: {e} (is `shmstore-bridge run` running with this \
             configuration?)",
            path.display()
        )
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| format!("{}: not a status file: {e}", path.display()))
}
