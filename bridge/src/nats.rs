//! The connection to NATS and the bucket: a client that retries its first
//! connection and reconnects for ever (async-nats does both), and the
//! key-value bucket, made on first use.

use std::time::Duration;

use async_nats::jetstream::{self, kv};

use crate::config::Config;

/// Connect to the configured server. Returns at once even if the server
/// is down: the client connects when it comes up, and every request
/// before that fails (the caller retries).
pub async fn connect(config: &Config) -> Result<async_nats::Client, String> {
    let mut options = async_nats::ConnectOptions::new()
        .name(format!("shmstore-bridge {}", config.host()))
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(2))
        .request_timeout(Some(Duration::from_secs(5)));
    if let Some(creds) = &config.credentials {
        options = options
            .credentials_file(creds)
            .await
            .map_err(|e| format!("cannot read the credentials {}: {e}", creds.display()))?;
    }
    options
        .connect(config.server.as_str())
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", config.server))
}

/// How many entries per key the bucket keeps: the newest, and the one
/// before, so that an importer that first sees a key deleted knows what
/// the key held (`import.rs`).
pub const HISTORY: i64 = 2;

/// The bucket, made if missing.
///
/// async-nats's `create_key_value` cannot read the answer of a 2.9 server
/// (Debian's) to the stream it asks for; the bucket is made as the stream a
/// key-value bucket is (ADR-8: `KV_<bucket>` over `$KV.<bucket>.>`, roll-ups
/// allowed, deletes of messages denied, direct gets allowed, new messages
/// discarded when full), which every server version answers.
pub async fn bucket(client: &async_nats::Client, config: &Config) -> Result<kv::Store, String> {
    let js = jetstream::new(client.clone());
    if let Ok(store) = js.get_key_value(config.bucket.as_str()).await {
        return Ok(store);
    }
    let max_value =
        i32::try_from(config.max_value_bytes + crate::envelope::overhead()).unwrap_or(i32::MAX);
    js.get_or_create_stream(jetstream::stream::Config {
        name: format!("KV_{}", config.bucket),
        subjects: vec![format!("$KV.{}.>", config.bucket)],
        max_messages_per_subject: HISTORY,
        max_message_size: max_value,
        storage: jetstream::stream::StorageType::File,
        allow_rollup: true,
        deny_delete: true,
        deny_purge: false,
        allow_direct: true,
        num_replicas: 1,
        discard: jetstream::stream::DiscardPolicy::New,
        ..Default::default()
    })
    .await
    .map_err(|e| format!("cannot make the bucket {}: {e}", config.bucket))?;
    js.get_key_value(config.bucket.as_str())
        .await
        .map_err(|e| format!("cannot open the bucket {}: {e}", config.bucket))
}

/// The bucket, waited for while the server cannot be reached (every
/// `retry`, up to `retry * 16` between tries).
pub async fn bucket_when_up(
    client: &async_nats::Client,
    config: &Config,
    status: &crate::status::Shared,
) -> kv::Store {
    let mut wait = Duration::from_millis(100);
    loop {
        match bucket(client, config).await {
            Ok(store) => {
                status.connected(true);
                return store;
            }
            Err(e) => {
                status.connected(false);
                tracing::warn!("{e}; trying again in {wait:?}");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(2));
            }
        }
    }
}
