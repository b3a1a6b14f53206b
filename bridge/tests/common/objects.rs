//! The objects the bridge's tests mirror, their names and keys, the
//! configurations' prefixes, and the bucket as a peer reaches it.
#![allow(dead_code)]

use shmstore::{Key, Schema};

use super::Server;

/// A configuration, stored with its schema (a region).
#[derive(rkyv::Archive, rkyv::Serialize, Schema, Debug)]
#[rkyv(crate = shmstore::rkyv)]
pub struct Config {
    pub seq: u64,
    pub name: String,
    pub ports: Vec<u16>,
}

/// The next version of the writer's type (a field added).
#[derive(rkyv::Archive, rkyv::Serialize, Schema, Debug)]
#[rkyv(crate = shmstore::rkyv)]
pub struct ConfigV2 {
    pub seq: u64,
    pub name: String,
    pub ports: Vec<u16>,
    pub weight: u32,
}

/// The configuration numbered `seq`.
pub fn config(seq: u64) -> Config {
    Config {
        seq,
        name: format!("edge-{seq}"),
        ports: vec![80, 443, (seq % 60000) as u16],
    }
}

/// The key of `name` on a host whose namespace argument is `ns` (`-`:
/// the public names of the host's own IPC namespace).
pub fn key(name: &str, ns: &str) -> Key {
    if ns == "-" {
        Key::named(name).unwrap()
    } else {
        Key::named_in(ns, name).unwrap()
    }
}

/// A name no other test of this process uses.
pub fn fresh(what: &str) -> String {
    format!("acme/{what}-{}", std::process::id())
}

/// A configuration's body that exports the tests' names.
pub const EXPORT: &str = "[[export]]\nprefix = \"acme/\"\n";
/// A configuration's body that imports them.
pub const IMPORT: &str = "[[import]]\nprefix = \"acme/\"\n";

/// Run `f` with the tests' bucket and its JetStream context, as a peer
/// that writes the bucket directly would.
pub fn with_bucket<T>(
    server: &Server,
    f: impl AsyncFnOnce(async_nats::jetstream::kv::Store, async_nats::jetstream::Context) -> T,
) -> T {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = async_nats::connect(server.url()).await.unwrap();
        let js = async_nats::jetstream::new(client);
        let kv = js.get_key_value("test").await.unwrap();
        f(kv, js).await
    })
}
