//! Publish a configuration under `acme/demo/config` (with its schema, so
//! that the bridge mirrors it and `shmstore get` reads it by field), one
//! new value every 200 ms, ten times. The object stays after the program
//! ends; `shmstore remove acme/demo/config` removes it, and the bridge
//! removes it on the other hosts.
//!
//! ```text
//! cargo run -p shmstore-bridge --example demo
//! ```

use std::time::Duration;

use shmstore::{Key, Schema, SharedRegion};

#[derive(rkyv::Archive, rkyv::Serialize, Schema)]
#[rkyv(crate = shmstore::rkyv)]
struct Config {
    generation: u64,
    service: String,
    ports: Vec<u16>,
}

fn main() -> shmstore::Result<()> {
    let region = SharedRegion::<Config>::creator()
        .with_schema()
        .open_or_create(Key::named("acme/demo/config")?, 4096)?;
    let start = region.version();
    for i in 1..=10 {
        let generation = start + i;
        region.publish(&Config {
            generation,
            service: "edge".into(),
            ports: vec![80, 443, 8000 + generation as u16 % 1000],
        })?;
        println!("published generation {generation}");
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}
