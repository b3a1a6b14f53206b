//! Import: one task that watches the whole bucket and writes each entry
//! under an import prefix into the local object of its name (the argument
//! is in `lib.rs`).
//!
//! A watch starts with the newest entry of every key, then every later one
//! in revision order. An entry is written only if its bytes differ from the
//! local object's: a watch started again (the connection lost for good) or
//! a bridge restarted catches up to the newest value without writing any
//! value twice. An entry that does not decode, or whose
//! value does not check against its identity, is refused with the reason,
//! never written; so is one whose identity differs from the local object's.
//! A deleted key removes the local object (unless `remove_on_delete` is
//! off).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv;
use futures::StreamExt;
use shmstore::raw::{RawObject, RawOptions};
use shmstore::{Error, TypeDesc};

use crate::Bridge;
use crate::config::Direction;
use crate::envelope::Envelope;
use crate::status::now_ns;

const DIRECTION: &str = "import";

/// What the task keeps per key.
#[derive(Default)]
struct Local {
    /// The local object written last.
    object: Option<RawObject>,
    /// The identity of the last value written (or found there already):
    /// a deleted key removes only a local object of this identity.
    identity: Option<TypeDesc>,
}

/// Import for ever: watch, apply, and watch again when a watch ends.
pub async fn run(bridge: Arc<Bridge>) {
    let mut locals: HashMap<String, Local> = HashMap::new();
    let mut wait = Duration::from_millis(50);
    loop {
        // The newest entry of every key (deletes included), then every
        // later one. (`watch_all` gives only later ones.)
        let mut watch = match bridge.kv.watch_with_history(">").await {
            Ok(w) => w,
            Err(e) => {
                bridge.status.connected(false);
                tracing::warn!("cannot watch the bucket: {e}; trying again in {wait:?}");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        bridge.status.connected(true);
        wait = Duration::from_millis(50);
        while let Some(entry) = watch.next().await {
            match entry {
                Ok(entry) => apply(&bridge, &mut locals, entry).await,
                Err(e) => {
                    tracing::warn!("the watch of the bucket failed: {e}; watching again");
                    break;
                }
            }
        }
        tokio::time::sleep(wait).await;
    }
}

/// Apply one entry.
async fn apply(bridge: &Bridge, locals: &mut HashMap<String, Local>, entry: kv::Entry) {
    let name = match crate::keys::name_of(&entry.key) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!("entry {:?} refused: {e}", entry.key);
            return;
        }
    };
    if bridge.config.direction(&name) != Some(Direction::Import) {
        return;
    }
    let local = locals.entry(name.clone()).or_default();
    match entry.operation {
        kv::Operation::Delete | kv::Operation::Purge => {
            remove(bridge, &name, local, &entry.key).await
        }
        kv::Operation::Put => write(bridge, &name, local, &entry),
    }
}

/// The key was deleted: remove the local object, if it holds what the
/// bucket held. The identity of the value the key held is the one this
/// task wrote last, or, for a key first seen deleted (the bridge started
/// after the delete), that of the value before the delete, which the
/// bucket keeps (two entries per key).
async fn remove(bridge: &Bridge, name: &str, local: &mut Local, key: &str) {
    let object = local.object.take();
    if !bridge.config.remove_on_delete {
        return;
    }
    let identity = match local.identity.take() {
        Some(id) => Some(id),
        None => held_before_delete(bridge, key).await,
    };
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

/// The identity of the last value `key` held before it was deleted, if
/// the bucket still keeps it and it decodes.
async fn held_before_delete(bridge: &Bridge, key: &str) -> Option<TypeDesc> {
    let history = bridge.kv.history(key).await.ok()?;
    let entries: Vec<kv::Entry> = history
        .take(HISTORY)
        .filter_map(|e| async { e.ok() })
        .collect()
        .await;
    entries
        .iter()
        .rev()
        .find(|e| e.operation == kv::Operation::Put)
        .and_then(|e| Envelope::decode(&e.value).ok())
        .map(|e| e.identity)
}

/// How many entries per key the bucket keeps.
const HISTORY: usize = crate::nats::HISTORY as usize;

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
    if envelope.bytes.len() > bridge.config.max_value_bytes {
        bridge.status.error(
            name,
            DIRECTION,
            "refused",
            &format!(
                "revision {} refused, not written: a value of {} bytes, over `max_value_bytes` \
                 ({})",
                entry.revision,
                envelope.bytes.len(),
                bridge.config.max_value_bytes
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
/// identity if missing.
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
            let e = format!(
                "the local object holds {}, the entry {}: it is not written (remove the local                  object, or give one of them another name)",
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
            Err(e @ Error::CapacityExceeded { .. }) => {
                local.object = Some(object);
                return Err(format!(
                    "{e}: the local object's buffers are smaller than the source's; remove it \
                     and the bridge makes it again at the source's capacity"
                ));
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
