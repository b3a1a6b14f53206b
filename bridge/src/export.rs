//! Export: one task per local name under an export prefix, which puts the
//! object's newest value into the bucket each time it changes (the
//! argument is in `lib.rs`).
//!
//! The task waits on the object (`changed().await`), then reads its newest
//! value: values committed while a put was under way are skipped, never
//! sent out of order. Every put is a compare-and-set on the revision the
//! task wrote last; its first is a `create`, or an `update` of an entry of
//! this host's own (a restart). An entry of another host is left alone and
//! the name is reported refused. When the object is removed and no object
//! of the name is left, the task deletes the key (if the entry there is
//! still its own) and ends.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv;
use bytes::Bytes;
use shmstore::raw::{RawReader, RawValue};
use shmstore::{Error, Kind};

use crate::Bridge;
use crate::envelope::Envelope;
use crate::status::now_ns;

const DIRECTION: &str = "export";

/// How a put ended.
enum Put {
    /// The bucket holds the value at this revision.
    Done(u64),
    /// The bucket already held this value (of this host): nothing written.
    Same(u64),
    /// The key holds another host's entry.
    Refused(String),
}

/// Export `name` until no object of that name is left.
pub async fn run(bridge: Arc<Bridge>, name: String) {
    let key = crate::keys::key_of(&name);
    // The revision this task wrote last: every later write is a
    // compare-and-set on it.
    let mut revision: Option<u64> = None;
    loop {
        let object = match bridge.open_local(&name) {
            Ok(o) => o,
            Err(Error::NotFound { .. }) => {
                delete_if_ours(&bridge, &name, &key, revision).await;
                return;
            }
            Err(e) => {
                bridge
                    .status
                    .error(&name, DIRECTION, "refused", &format!("cannot open it: {e}"));
                // Looked at again when the object changes (a rescan).
                return;
            }
        };
        if let Err(why) = exportable(&bridge, &object) {
            bridge.status.error(&name, DIRECTION, "refused", &why);
            // Not exported until it is removed (and maybe made again).
            if wait_removed(&object).await {
                continue;
            }
            return;
        }
        tracing::info!(object = %name, id = object.id(), "exporting");
        // Go on with this object until it is removed.
        let mut sent: Option<u64> = None;
        loop {
            let value = match object.read() {
                Ok(v) => Some(v),
                Err(Error::NothingPublished) => None,
                Err(e) => {
                    bridge.status.error(
                        &name,
                        DIRECTION,
                        "refused",
                        &format!("cannot read it: {e}"),
                    );
                    None
                }
            };
            let at = match value {
                Some(v) if sent != Some(v.version) => {
                    let version = v.version;
                    match put_newest(&bridge, &name, &key, &object, v, &mut revision).await {
                        Some(()) => sent = Some(version),
                        None => {
                            // Refused: wait for the object's removal.
                            if wait_removed(&object).await {
                                break;
                            }
                            return;
                        }
                    }
                    version
                }
                Some(v) => v.version,
                None => object.version(),
            };
            match object.changed(at).await {
                Ok(_) => {}
                Err(Error::Removed { .. }) => break,
                Err(e) => {
                    bridge.status.error(
                        &name,
                        DIRECTION,
                        "waiting",
                        &format!("cannot wait on it: {e}"),
                    );
                    tokio::time::sleep(bridge.config.rescan()).await;
                }
            }
        }
        tracing::info!(object = %name, "removed locally");
    }
}

/// Whether `object` can be exported as it is.
fn exportable(bridge: &Bridge, object: &RawReader) -> Result<(), String> {
    let id = object.identity();
    if id.kind == Kind::Region && id.schema.is_none() {
        return Err(
            "a region that stores no schema is not exported: its bytes could not be \
                    checked on the importing hosts (create it with `with_schema()`)"
                .into(),
        );
    }
    if object.capacity() > bridge.config.max_value_bytes {
        return Err(format!(
            "its values may take {} bytes, over `max_value_bytes` ({})",
            object.capacity(),
            bridge.config.max_value_bytes
        ));
    }
    Ok(())
}

/// Wait until `object` is removed; `true` then, `false` if waiting fails.
async fn wait_removed(object: &RawReader) -> bool {
    let mut at = object.version();
    loop {
        match object.changed(at).await {
            Ok(v) => at = v,
            Err(Error::Removed { .. }) => return true,
            Err(_) => return false,
        }
    }
}

/// Put `value`, or a newer one of `object` if the put must be tried again
/// (the server down): `None` if another host holds the key.
async fn put_newest(
    bridge: &Bridge,
    name: &str,
    key: &str,
    object: &RawReader,
    mut value: RawValue,
    revision: &mut Option<u64>,
) -> Option<()> {
    let mut wait = Duration::from_millis(50);
    loop {
        crate::step("bridge.export.after_read");
        let envelope = Envelope {
            identity: object.identity().clone(),
            origin: bridge.host.clone(),
            version: value.version,
            read_at_ns: now_ns(),
            capacity: object.capacity() as u32,
            bytes: value.bytes,
        };
        match put(bridge, key, &envelope, revision).await {
            Ok(Put::Done(r)) | Ok(Put::Same(r)) => {
                crate::step("bridge.export.after_put");
                *revision = Some(r);
                bridge.status.connected(true);
                bridge.status.object(name, |o| {
                    o.direction = DIRECTION.into();
                    o.state = "mirrored".into();
                    o.revision = r;
                    o.version = envelope.version;
                    o.moved += 1;
                    o.moved_ms = now_ns() / 1_000_000;
                });
                return Some(());
            }
            Ok(Put::Refused(other)) => {
                bridge.status.error(
                    name,
                    DIRECTION,
                    "refused",
                    &format!(
                        "not exported: host {other:?} exports this name (one host exports a \
                         name; delete the key in bucket {:?} to hand it over)",
                        bridge.config.bucket
                    ),
                );
                return None;
            }
            Err(e) => {
                bridge.status.connected(false);
                bridge
                    .status
                    .error(name, DIRECTION, "waiting", &format!("cannot put it: {e}"));
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(1));
                // Only the newest value matters.
                value = match object.read() {
                    Ok(v) => v,
                    Err(_) => RawValue {
                        version: envelope.version,
                        bytes: envelope.bytes,
                    },
                };
            }
        }
    }
}

/// One put of `envelope` at `key` (see the module's docs).
async fn put(
    bridge: &Bridge,
    key: &str,
    envelope: &Envelope,
    revision: &mut Option<u64>,
) -> Result<Put, String> {
    let bytes = Bytes::from(envelope.encode());
    if let Some(r) = *revision {
        match bridge.kv.update(key, bytes.clone(), r).await {
            Ok(r) => return Ok(Put::Done(r)),
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                // Someone else wrote or deleted the key (or our own write
                // landed and its answer was lost): judge the entry there.
                *revision = None;
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    let entry = bridge.kv.entry(key).await.map_err(|e| e.to_string())?;
    match entry {
        Some(entry) if entry.operation == kv::Operation::Put => {
            match Envelope::decode(&entry.value) {
                Ok(there) if there.origin == bridge.host => {
                    if there.identity == envelope.identity && there.bytes == envelope.bytes {
                        return Ok(Put::Same(entry.revision));
                    }
                    match bridge.kv.update(key, bytes, entry.revision).await {
                        Ok(r) => Ok(Put::Done(r)),
                        Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                            Err("the key changed while it was judged".into())
                        }
                        Err(e) => Err(e.to_string()),
                    }
                }
                Ok(there) => Ok(Put::Refused(there.origin)),
                Err(_) => Ok(Put::Refused(
                    "unknown (the entry there is not readable)".into(),
                )),
            }
        }
        // No entry, or a deleted one: a create, which fails if another
        // host created it meanwhile.
        _ => match bridge.kv.create(key, bytes).await {
            Ok(r) => Ok(Put::Done(r)),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                Err("another host created the key meanwhile".into())
            }
            Err(e) => Err(e.to_string()),
        },
    }
}

/// Delete `key` if the entry there is this host's (its revision is the one
/// this task wrote last, or, after a restart, its origin is this host).
async fn delete_if_ours(bridge: &Bridge, name: &str, key: &str, revision: Option<u64>) {
    let mut wait = Duration::from_millis(50);
    for _ in 0..20 {
        let entry = match bridge.kv.entry(key).await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(object = name, "cannot look at the key to delete it: {e}");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let Some(entry) = entry.filter(|e| e.operation == kv::Operation::Put) else {
            return;
        };
        let ours = revision == Some(entry.revision)
            || Envelope::decode(&entry.value).is_ok_and(|e| e.origin == bridge.host);
        if !ours {
            return;
        }
        match bridge
            .kv
            .delete_expect_revision(key, Some(entry.revision))
            .await
        {
            Ok(()) => {
                tracing::info!(object = name, "deleted from the bucket");
                bridge.status.object(name, |o| {
                    o.direction = DIRECTION.into();
                    o.state = "removed".into();
                });
                return;
            }
            Err(e) => {
                tracing::warn!(object = name, "cannot delete the key: {e}");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(1));
            }
        }
    }
}
