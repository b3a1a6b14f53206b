//! Import: one task watches the whole bucket and hands each entry under an
//! import prefix to the task of its name, which writes it into the local
//! object of that name (the argument is in `lib.rs`).
//!
//! A watch starts with the newest entry of every key, then every later one
//! in revision order. A name's task takes the newest entry handed to it
//! (entries that came while it wrote are coalesced, never reordered) and
//! writes it on a blocking thread: a local object whose write lock is held
//! by a stopped process stalls its own name only. An entry is written only
//! if its bytes differ from the local object's, so a watch started again
//! or a bridge restarted catches up without writing any value twice. An
//! entry that does not decode, or whose value does not check against its
//! identity, is refused with the reason and never written; so is one whose
//! identity differs from a local object the bridge did not make. A local
//! object the bridge made for the name (it holds the identity of the value
//! the key held before) is made again when the identity or the capacity
//! changes at the source (a new release, larger buffers): its readers see
//! `Removed` and open the name again. A deleted key removes the local
//! object, if it holds what the key held (unless `remove_on_delete` is off).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv;
use futures::StreamExt;
use shmstore::raw::{RawObject, RawOptions};
use shmstore::{Error, TypeDesc};
use tokio::sync::watch;

use crate::Bridge;
use crate::config::Direction;
use crate::envelope::Envelope;
use crate::status::now_ns;

const DIRECTION: &str = "import";

/// What a name's task keeps.
#[derive(Default)]
struct Local {
    /// The local object written last.
    object: Option<RawObject>,
    /// The identity of the last value written (or found there already).
    identity: Option<TypeDesc>,
}

/// Import for ever: watch, hand each entry to its name's task, and watch
/// again when a watch ends.
pub async fn run(bridge: Arc<Bridge>) {
    let mut names: HashMap<String, watch::Sender<Option<kv::Entry>>> = HashMap::new();
    let mut wait = Duration::from_millis(50);
    loop {
        // The newest entry of every key (deletes included), then every
        // later one. (`watch_all` gives only later ones.)
        let mut stream = match bridge.kv.watch_with_history(">").await {
            Ok(w) => w,
            Err(e) => {
                bridge.status.connected(false);
                tracing::warn!("cannot watch the bucket: {e}; trying again in {wait:?}");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(2));
                // The bucket may have been deleted: made again.
                if let Err(e) = crate::nats::bucket(&bridge.client, &bridge.config).await {
                    tracing::warn!("{e}");
                }
                continue;
            }
        };
        bridge.status.connected(true);
        wait = Duration::from_millis(50);
        while let Some(entry) = stream.next().await {
            match entry {
                Ok(entry) => dispatch(&bridge, &mut names, entry),
                Err(e) => {
                    tracing::warn!("the watch of the bucket failed: {e}; watching again");
                    break;
                }
            }
        }
        tokio::time::sleep(wait).await;
    }
}

/// Hand `entry` to the task of its name, started if there is none.
fn dispatch(
    bridge: &Arc<Bridge>,
    names: &mut HashMap<String, watch::Sender<Option<kv::Entry>>>,
    entry: kv::Entry,
) {
    let name = match crate::keys::name_of(&entry.key) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(
                "entry {:?} refused: {e}",
                entry.key.escape_debug().to_string()
            );
            return;
        }
    };
    if bridge.config.direction(&name) != Some(Direction::Import) {
        return;
    }
    if let Some(tx) = names.get(&name)
        && !tx.is_closed()
    {
        tx.send_replace(Some(entry));
        return;
    }
    let (tx, rx) = watch::channel(Some(entry));
    tokio::spawn(follow(bridge.clone(), name.clone(), rx));
    names.insert(name, tx);
}

/// A name's task: apply the newest entry handed to it, one at a time.
async fn follow(bridge: Arc<Bridge>, name: String, mut rx: watch::Receiver<Option<kv::Entry>>) {
    let mut local = Local::default();
    loop {
        let entry = rx.borrow_and_update().clone();
        if let Some(entry) = entry {
            local = apply(&bridge, &name, local, entry).await;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Apply one entry: look up in the bucket what the key held before if
/// this task does not know, then do the local work on a blocking thread.
async fn apply(bridge: &Arc<Bridge>, name: &str, mut local: Local, entry: kv::Entry) -> Local {
    if local.identity.is_none() {
        local.identity = held_before(bridge, &entry.key, entry.revision).await;
    }
    let (b, n) = (bridge.clone(), name.to_owned());
    let done = tokio::task::spawn_blocking(move || {
        match entry.operation {
            kv::Operation::Delete | kv::Operation::Purge => remove(&b, &n, &mut local),
            kv::Operation::Put => write(&b, &n, &mut local, &entry),
        }
        local
    })
    .await;
    match done {
        Ok(local) => local,
        Err(e) => {
            bridge.status.error(
                name,
                DIRECTION,
                "refused",
                &format!("the write failed: {e}"),
            );
            Local::default()
        }
    }
}

/// The identity of the value `key` held before `revision`, if the bucket
/// still keeps it (two entries per key) and it decodes.
async fn held_before(bridge: &Bridge, key: &str, revision: u64) -> Option<TypeDesc> {
    let history = bridge.kv.history(key).await.ok()?;
    let entries: Vec<kv::Entry> = history
        .take(crate::nats::HISTORY as usize)
        .filter_map(|e| async { e.ok() })
        .collect()
        .await;
    entries
        .iter()
        .rev()
        .find(|e| e.revision < revision && e.operation == kv::Operation::Put)
        .and_then(|e| Envelope::decode(&e.value).ok())
        .map(|e| e.identity)
}

/// The key was deleted: remove the local object, if it holds what the key
/// held.
fn remove(bridge: &Bridge, name: &str, local: &mut Local) {
    let object = local.object.take();
    let identity = local.identity.take();
    if !bridge.config.remove_on_delete {
        return;
    }
    let object = match object {
        Some(o) => o,
        None => match bridge.open_local_rw(name) {
            Ok(o) => o,
            Err(Error::NotFound { .. }) => return,
            Err(e) => {
                bridge.status.error(
                    name,
                    DIRECTION,
                    "refused",
                    &format!("its key was deleted, but it cannot be opened to be removed: {e}"),
                );
                return;
            }
        },
    };
    if identity.as_ref() != Some(object.identity()) {
        bridge.status.error(
            name,
            DIRECTION,
            "refused",
            &format!(
                "its key was deleted, but the local object ({}) is not known to hold what the \
                 key held: it is left (remove it with `shmstore remove` if it should go)",
                object.identity()
            ),
        );
        return;
    }
    match object.remove() {
        Ok(()) | Err(Error::Removed { .. }) => {
            tracing::info!(object = name, "removed: its key was deleted");
            bridge.status.object(name, |o| {
                o.direction = DIRECTION.into();
                o.state = "removed".into();
            });
        }
        Err(e) => bridge.status.error(
            name,
            DIRECTION,
            "refused",
            &format!("its key was deleted, but it cannot be removed: {e}"),
        ),
    }
}

/// Write the entry's value into the local object.
fn write(bridge: &Bridge, name: &str, local: &mut Local, entry: &kv::Entry) {
    let envelope = match Envelope::decode(&entry.value) {
        Ok(e) => e,
        Err(e) => {
            bridge.status.error(
                name,
                DIRECTION,
                "refused",
                &format!("revision {} refused, not written: {e}", entry.revision),
            );
            return;
        }
    };
    crate::step("bridge.import.after_decode");
    let largest = (envelope.bytes.len() as u64).max(u64::from(envelope.identity.size));
    if largest > bridge.config.max_value_bytes as u64 {
        bridge.status.error(
            name,
            DIRECTION,
            "refused",
            &format!(
                "revision {} refused, not written: a value of {largest} bytes, over \
                 `max_value_bytes` ({})",
                entry.revision, bridge.config.max_value_bytes
            ),
        );
        return;
    }
    match write_value(bridge, name, local, &envelope) {
        Ok(written) => {
            crate::step("bridge.import.after_write");
            local.identity = Some(envelope.identity.clone());
            let lag_us = now_ns().saturating_sub(envelope.read_at_ns) / 1000;
            bridge.status.object(name, |o| {
                o.direction = DIRECTION.into();
                o.state = "mirrored".into();
                o.revision = entry.revision;
                o.version = envelope.version;
                o.local_version = written.version;
                if written.wrote {
                    o.moved += 1;
                    o.lag_us = lag_us;
                    o.moved_ms = now_ns() / 1_000_000;
                }
            });
        }
        Err(e) => bridge.status.error(
            name,
            DIRECTION,
            "refused",
            &format!("revision {} refused, not written: {e}", entry.revision),
        ),
    }
}

/// What a write did.
struct Written {
    /// The local object's version after it.
    version: u64,
    /// Whether it wrote (or made the object): `false` if the object held
    /// these bytes already.
    wrote: bool,
}

/// Write `envelope`'s value into the object of `name`, made with its
/// identity if missing, or made again if the bridge made it for an
/// earlier identity or a smaller capacity.
fn write_value(
    bridge: &Bridge,
    name: &str,
    local: &mut Local,
    envelope: &Envelope,
) -> Result<Written, String> {
    for _ in 0..3 {
        let (object, created) = match local.object.take() {
            Some(o) if !o.is_removed().unwrap_or(true) => (o, false),
            _ => match bridge.open_local_rw(name) {
                Ok(o) => (o, false),
                Err(Error::NotFound { .. }) => match create(bridge, name, envelope) {
                    Ok(o) => (o, true),
                    Err(Error::AlreadyExists { .. }) => continue,
                    Err(e) => return Err(format!("cannot make the local object: {e}")),
                },
                Err(e) => return Err(format!("cannot open the local object: {e}")),
            },
        };
        if object.identity() != &envelope.identity {
            // Made by the bridge for what the key held before: the source
            // changed its type (a new release); made again.
            if local.identity.as_ref() == Some(object.identity()) {
                // Only if the new one can be made: a value that does not
                // check leaves the old object as it was.
                if let Err(e) = shmstore::raw::check(&envelope.identity, &envelope.bytes) {
                    local.object = Some(object);
                    return Err(e.to_string());
                }
                tracing::info!(
                    object = name,
                    "made again: its type changed at the source ({} now)",
                    envelope.identity
                );
                let _ = object.remove();
                continue;
            }
            let e = format!(
                "the local object holds {}, the entry {}: it is not written (remove the local \
                 object, or give one of them another name)",
                object.identity(),
                envelope.identity
            );
            local.object = Some(object);
            return Err(e);
        }
        let unchanged = object.read().is_ok_and(|v| v.bytes == envelope.bytes);
        if created || unchanged {
            let version = object.version();
            local.object = Some(object);
            return Ok(Written {
                version,
                wrote: created,
            });
        }
        match object.write(&envelope.bytes) {
            Ok(version) => {
                local.object = Some(object);
                return Ok(Written {
                    version,
                    wrote: true,
                });
            }
            // Removed locally meanwhile: made again.
            Err(Error::Removed { .. }) => continue,
            // The source's buffers grew: made again at their size (the
            // object has the identity of the names the bridge imports).
            Err(Error::CapacityExceeded { .. }) => {
                tracing::info!(object = name, "made again: its buffers grew at the source");
                let _ = object.remove();
                continue;
            }
            Err(e) => {
                local.object = Some(object);
                return Err(e.to_string());
            }
        }
    }
    Err("the local object was removed each time it was written".into())
}

/// Make the object of `name` with the entry's identity, holding its value.
fn create(bridge: &Bridge, name: &str, envelope: &Envelope) -> Result<RawObject, Error> {
    let mut options = RawOptions::new();
    options.mode(bridge.config.mode);
    // The source's capacity, within the bridge's limit (a peer may claim
    // any).
    let capacity = (envelope.capacity as usize)
        .min(bridge.config.max_value_bytes)
        .max(envelope.bytes.len());
    options.create(
        bridge.key(name)?,
        &envelope.identity,
        capacity,
        &envelope.bytes,
    )
}
