//! Export: one task per local name under an export prefix, which puts the
//! object's newest value into the bucket each time it changes (the
//! argument is in `lib.rs`).
//!
//! The task waits on the object (`changed().await`), then reads its newest
//! value: values committed while a put was under way are skipped, never
//! sent out of order. Every put is a compare-and-set on the revision the
//! task wrote last; its first is a `create`, or an `update` of an entry of
//! this host's own (a restart) or of an entry no host's (bytes that do not
//! decode). An entry of another host is left alone and the name is
//! reported refused until the key is deleted (then the task takes it) or
//! the object is removed. When the object is removed and no object of the
//! name is left, the task deletes the key (if the entry there is still its
//! own), trying until it can, and ends.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv;
use bytes::Bytes;
use futures::StreamExt;
use shmstore::raw::{RawObject, RawReader, RawValue};
use shmstore::{Error, Kind, TypeDesc};

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

/// How putting an object's newest value ended.
enum Sent {
    /// The bucket holds the value of this version.
    Version(u64),
    /// This version cannot be sent (too large for the server): the next
    /// one is tried.
    Skipped(u64),
    /// The key holds another host's entry.
    Refused,
}

/// What ended a wait of a refused name.
enum Freed {
    /// The object was removed.
    Removed,
    /// The key was deleted: the name can be taken.
    Key,
    /// Waiting failed.
    Failed,
}

/// The object exported: attached read-write where this user may, only to
/// wait as a writer's peer (a read-write waiter is woken at a commit; a
/// read-only one looks every few milliseconds); the bridge never writes
/// it.
enum Source {
    ReadWrite(RawObject),
    ReadOnly(RawReader),
}

impl Source {
    fn open(bridge: &Bridge, name: &str) -> shmstore::Result<Source> {
        match bridge.open_local_rw(name) {
            Ok(o) => Ok(Source::ReadWrite(o)),
            Err(Error::PermissionDenied { .. } | Error::ReadOnly { .. }) => {
                bridge.open_local(name).map(Source::ReadOnly)
            }
            Err(e) => Err(e),
        }
    }

    fn identity(&self) -> &TypeDesc {
        match self {
            Source::ReadWrite(o) => o.identity(),
            Source::ReadOnly(o) => o.identity(),
        }
    }

    fn read(&self) -> shmstore::Result<RawValue> {
        match self {
            Source::ReadWrite(o) => o.read(),
            Source::ReadOnly(o) => o.read(),
        }
    }

    fn version(&self) -> u64 {
        match self {
            Source::ReadWrite(o) => o.version(),
            Source::ReadOnly(o) => o.version(),
        }
    }

    fn capacity(&self) -> usize {
        match self {
            Source::ReadWrite(o) => o.capacity(),
            Source::ReadOnly(o) => o.capacity(),
        }
    }

    fn id(&self) -> i32 {
        match self {
            Source::ReadWrite(o) => o.id(),
            Source::ReadOnly(o) => o.id(),
        }
    }

    async fn changed(&self, since: u64) -> shmstore::Result<u64> {
        match self {
            Source::ReadWrite(o) => o.changed(since).await,
            Source::ReadOnly(o) => o.changed(since).await,
        }
    }
}

/// Export `name` until no object of that name is left.
pub async fn run(bridge: Arc<Bridge>, name: String) {
    let key = crate::keys::key_of(&name);
    // The revision this task wrote last: every later write is a
    // compare-and-set on it.
    let mut revision: Option<u64> = None;
    loop {
        let object = match Source::open(&bridge, &name) {
            Ok(o) => o,
            Err(Error::NotFound { .. }) => {
                if delete_if_ours(&bridge, &name, &key, revision).await {
                    // Made again meanwhile: exported.
                    continue;
                }
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
                    match put_newest(&bridge, &name, &key, &object, v, &mut revision).await {
                        Sent::Version(version) | Sent::Skipped(version) => {
                            sent = Some(version);
                            version
                        }
                        Sent::Refused => match freed(&bridge, &object, &key).await {
                            Freed::Key => {
                                revision = None;
                                sent = None;
                                continue;
                            }
                            Freed::Removed => break,
                            Freed::Failed => return,
                        },
                    }
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
fn exportable(bridge: &Bridge, object: &Source) -> Result<(), String> {
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
async fn wait_removed(object: &Source) -> bool {
    let mut at = object.version();
    loop {
        match object.changed(at).await {
            Ok(v) => at = v,
            Err(Error::Removed { .. }) => return true,
            Err(_) => return false,
        }
    }
}

/// Wait, for a refused name, until its key is deleted or its object
/// removed.
async fn freed(bridge: &Bridge, object: &Source, key: &str) -> Freed {
    let key_deleted = async {
        loop {
            // The watch first, then the look: a delete between the two is
            // seen by one of them.
            let mut watch = match bridge.kv.watch(key).await {
                Ok(w) => w,
                Err(_) => {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            match bridge.kv.entry(key).await {
                Ok(None) => return,
                Ok(Some(e)) if e.operation != kv::Operation::Put => return,
                _ => {}
            }
            while let Some(entry) = watch.next().await {
                if entry.is_ok_and(|e| e.operation != kv::Operation::Put) {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    };
    tokio::select! {
        removed = wait_removed(object) => if removed { Freed::Removed } else { Freed::Failed },
        () = key_deleted => {
            tracing::info!(key, "the key was deleted: taking the name");
            Freed::Key
        }
    }
}

/// Put `value`, or a newer one of `object` if the put must be tried again
/// (the server down).
async fn put_newest(
    bridge: &Bridge,
    name: &str,
    key: &str,
    object: &Source,
    mut value: RawValue,
    revision: &mut Option<u64>,
) -> Sent {
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
        let encoded = envelope.encode();
        let limit = bridge.client.server_info().max_payload;
        if limit > 0 && encoded.len() > limit {
            bridge.status.error(
                name,
                DIRECTION,
                "refused",
                &format!(
                    "version {} not exported: its entry takes {} bytes, over the server's \
                     max_payload ({limit}); raise max_payload on the server or keep values \
                     smaller",
                    envelope.version,
                    encoded.len()
                ),
            );
            return Sent::Skipped(envelope.version);
        }
        match put(bridge, key, &envelope, encoded, revision).await {
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
                return Sent::Version(envelope.version);
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
                return Sent::Refused;
            }
            Err(e) => {
                bridge.status.connected(false);
                bridge
                    .status
                    .error(name, DIRECTION, "waiting", &format!("cannot put it: {e}"));
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(1));
                // The bucket may have been deleted: made again.
                if let Err(e) = crate::nats::bucket(&bridge.client, &bridge.config).await {
                    tracing::warn!("{e}");
                }
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

/// One put of `envelope` (encoded as `bytes`) at `key` (see the module's
/// docs).
async fn put(
    bridge: &Bridge,
    key: &str,
    envelope: &Envelope,
    bytes: Vec<u8>,
    revision: &mut Option<u64>,
) -> Result<Put, String> {
    let bytes = Bytes::from(bytes);
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
                }
                Ok(there) => return Ok(Put::Refused(there.origin)),
                // No host's entry (a peer's bad bytes): written over.
                Err(e) => {
                    tracing::warn!(key, "the entry there is not readable ({e}): written over")
                }
            }
            match bridge.kv.update(key, bytes, entry.revision).await {
                Ok(r) => Ok(Put::Done(r)),
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                    Err("the key changed while it was judged".into())
                }
                Err(e) => Err(e.to_string()),
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
/// this task wrote last, or, after a restart, its origin is this host),
/// trying until the server answers. `true` if an object of the name was
/// made again meanwhile (it is to be exported instead).
async fn delete_if_ours(bridge: &Bridge, name: &str, key: &str, revision: Option<u64>) -> bool {
    let mut wait = Duration::from_millis(50);
    loop {
        if bridge.open_local(name).is_ok() {
            return true;
        }
        let entry = match bridge.kv.entry(key).await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(object = name, "cannot look at the key to delete it: {e}");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        let Some(entry) = entry.filter(|e| e.operation == kv::Operation::Put) else {
            return false;
        };
        let ours = revision == Some(entry.revision)
            || Envelope::decode(&entry.value).is_ok_and(|e| e.origin == bridge.host);
        if !ours {
            return false;
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
                return false;
            }
            Err(e) => {
                tracing::warn!(object = name, "cannot delete the key: {e}");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(2));
            }
        }
    }
}
