//! `shmstore-bridge`: named shmstore objects mirrored between hosts through
//! a NATS JetStream key-value bucket. On the host that writes an object, the
//! bridge exports it: each new value goes into the bucket under the name's
//! key. On every other host, the bridge imports it: each entry is written
//! into the local object of the same name and identity, made if missing, so
//! that local readers read at local speed and wait with `wait_for_change`
//! as on a local writer.
//!
//! # Why it is correct
//!
//! The bridge moves values between two things that order them: a local
//! object (its version only grows, and a reader never sees a value older
//! than one it saw) and a key's revisions in the bucket (JetStream numbers
//! a stream's messages in the order it stores them, and checks a
//! compare-and-set against the newest revision of a key atomically).
//!
//! 1. **One writer per key.** An exporter's first write to a key is a
//!    `create`, which the server refuses if the key holds a value, or,
//!    when the key holds an entry whose origin is this host (a bridge
//!    restarted) or bytes that are no host's entry, an `update` at that
//!    entry's revision. Every later write is an `update` at the revision it
//!    wrote last. So between two writes of one exporter no other write
//!    lands; an exporter that finds another host's entry refuses the name,
//!    says which host holds it (`status`), and writes it only once the key
//!    is deleted (the name handed over). Two hosts racing to create a key:
//!    the server accepts one create.
//! 2. **Values leave in the order they were committed.** One task per
//!    name reads the object's newest value and puts it, then waits for the
//!    next change. A read returns the newest committed value, so what a
//!    task sends is a subsequence of the object's versions in their order;
//!    values committed during a put are coalesced into the next read. A
//!    replacement object (the name removed and made again) is read only
//!    after the old one's removal was seen, so its values come after.
//! 3. **They arrive in that order.** The importer reads one watch of the
//!    bucket, which delivers entries in revision order, and hands each to
//!    the task of its name, which writes the newest it was handed, one at
//!    a time (so a name whose local object is stuck stalls no other name).
//!    A watch resumes by itself
//!    after the server restarts or the connection drops (async-nats makes
//!    its consumer again from the last revision it delivered); one started
//!    again by the importer begins with the newest entry of every key,
//!    never an older one. Each applied value is one local write, so the
//!    local versions follow the revisions.
//! 4. **Nothing lost.** A watch starts with the newest entry of every key:
//!    an importer started again, or reconnected, catches up to the newest
//!    revision. An exporter whose put fails waits and puts the object's
//!    newest value then, making the bucket again if it was deleted. An
//!    exporter started again reads the entry of its own origin and goes on
//!    from its revision. A removal is put as a delete, tried until the
//!    server answers (however long it is away); a key of a name removed
//!    while the bridge was down is deleted at its start.
//! 5. **Nothing duplicated.** An importer writes a value only if it differs
//!    from the local object's bytes. An exporter puts each version once
//!    (the version it put is the one it remembers, also after a put tried
//!    again), and an exporter started again does not put a value its own
//!    entry already holds.
//! 6. **Nothing unchecked.** An entry is read by [`Envelope::decode`],
//!    which trusts none of it, then written through
//!    [`shmstore::raw::RawObject::write`], which checks the value against
//!    the identity (a region by its stored schema, so regions without one
//!    are not mirrored). A local object of another identity is not written.
//!    A refused entry is reported (log and `status`) and nothing is
//!    written.
//!
//! What is not promised: a bucket deleted and made again while an
//! importer runs is watched again only once its revisions pass those the
//! importer saw (async-nats resumes from the last one): restart the
//! importers then. A reader on an importing host sees a subsequence
//! of the source's values (coalescing), later than the source's readers;
//! an importing host's objects under an import prefix belong to the
//! bridge (a local writer's values there are overwritten by the next
//! entry); clocks of different hosts make `lag_us` approximate.

#![forbid(unsafe_code)]

pub mod config;
pub mod envelope;
mod export;
mod import;
pub mod keys;
mod nats;
pub mod status;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use async_nats::jetstream::kv;
use futures::TryStreamExt;
use shmstore::raw::{RawObject, RawOptions, RawReader};
use shmstore::{Error, Key};

pub use config::{Config, Direction};

/// Die or stop here if a test armed this step (feature `crash-points`;
/// nothing otherwise).
#[inline(always)]
fn step(_name: &'static str) {
    #[cfg(feature = "crash-points")]
    shmstore::crash::point(_name);
}
pub use envelope::Envelope;

/// What the bridge's tasks share.
pub struct Bridge {
    /// The configuration.
    pub config: Config,
    /// This host's name, the origin of what it exports.
    pub host: String,
    /// The connection.
    client: async_nats::Client,
    /// The bucket.
    kv: kv::Store,
    /// What `status` shows.
    pub status: status::Shared,
}

impl Bridge {
    /// The key of the local object `name` (in the configured namespace).
    pub fn key(&self, name: &str) -> shmstore::Result<Key> {
        match &self.config.namespace {
            Some(dir) => Key::named_in(dir, name),
            None => Key::named(name),
        }
    }

    fn options(&self) -> RawOptions {
        let mut options = RawOptions::new();
        if let Some(uid) = self.config.trust_user {
            options.trust_user(uid);
        }
        if let Some(gid) = self.config.trust_group {
            options.trust_group(gid);
        }
        options
    }

    /// The local object `name`, read-only.
    fn open_local(&self, name: &str) -> shmstore::Result<RawReader> {
        self.options().open_read_only(self.key(name)?)
    }

    /// The local object `name`, read-write.
    fn open_local_rw(&self, name: &str) -> shmstore::Result<RawObject> {
        self.options().open(self.key(name)?)
    }
}

/// Run the bridge until `shutdown` completes.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), String> {
    if let Some(dir) = &config.namespace {
        // Checked once at the start, so that a namespace that cannot be
        // used stops the bridge with the reason instead of every import.
        Key::named_in(dir, "shmstore-bridge").map_err(|e| format!("`namespace`: {e}"))?;
    }
    let host = config.host();
    let status = status::Shared::new(status::Status {
        host: host.clone(),
        pid: std::process::id(),
        server: config.server.clone(),
        bucket: config.bucket.clone(),
        ..Default::default()
    });
    let status_path = config.status_path();
    let writer = {
        let status = status.clone();
        let path = status_path.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = status.write(&path) {
                    tracing::warn!("cannot write the status file {}: {e}", path.display());
                }
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
        })
    };
    let work = async {
        let client = nats::connect(&config).await?;
        tracing::info!(server = %config.server, bucket = %config.bucket, %host, "connecting");
        let kv = nats::bucket_when_up(&client, &config, &status).await;
        tracing::info!("the bucket is ready");
        let bridge = Arc::new(Bridge {
            config,
            host,
            client,
            kv,
            status: status.clone(),
        });
        if !bridge.config.imports.is_empty() {
            tokio::spawn(import::run(bridge.clone()));
        }
        if !bridge.config.export.is_empty() {
            exports(bridge).await;
        }
        std::future::pending::<Result<(), String>>().await
    };
    let result = tokio::select! {
        r = work => r,
        () = shutdown => Ok(()),
    };
    writer.abort();
    status.stopped();
    let _ = status.write(&status_path);
    result
}

/// Start an export task for every local name under an export prefix, and
/// for every key of this host's whose object is gone (so that it is
/// deleted); then look for new names every `rescan_ms`.
async fn exports(bridge: Arc<Bridge>) {
    // The tasks by name, with the segment each was started for.
    let mut tasks: HashMap<String, (tokio::task::JoinHandle<()>, Option<i32>)> = HashMap::new();
    let spawn = |name: String, id: Option<i32>, tasks: &mut HashMap<_, _>| {
        let task = tokio::spawn(export::run(bridge.clone(), name.clone()));
        tasks.insert(name, (task, id));
    };
    // Keys of this host whose objects went while the bridge was away.
    match bridge.kv.keys().await {
        Ok(keys) => {
            let keys: Vec<String> = keys.try_collect().await.unwrap_or_default();
            for key in keys {
                let Ok(name) = keys::name_of(&key) else {
                    continue;
                };
                if bridge.config.direction(&name) == Some(Direction::Export)
                    && matches!(bridge.open_local(&name), Err(Error::NotFound { .. }))
                {
                    spawn(name, None, &mut tasks);
                }
            }
        }
        Err(e) => tracing::warn!("cannot list the bucket's keys: {e}"),
    }
    loop {
        match shmstore::inspect::objects() {
            Ok(objects) => {
                for object in objects {
                    let Some(name) = object.name() else { continue };
                    if bridge.config.direction(name) != Some(Direction::Export) {
                        continue;
                    }
                    let id = Some(object.info.id);
                    let start = match tasks.get(name) {
                        None => true,
                        Some((task, seen)) => task.is_finished() && *seen != id,
                    };
                    if start {
                        spawn(name.to_owned(), id, &mut tasks);
                    }
                }
            }
            Err(e) => tracing::warn!("cannot list the local objects: {e}"),
        }
        tokio::time::sleep(bridge.config.rescan()).await;
    }
}
