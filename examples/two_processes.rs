//! Two processes share one System V segment.
//!
//! The parent creates a private segment, writes a greeting, and starts a copy
//! of this program as a child, giving it the segment's id. The child attaches
//! by id, reads the greeting and writes a reply. The parent reads the reply,
//! prints what the kernel knows of the segment, and removes it.
//!
//! ```text
//! cargo run --example two_processes
//! ```

use std::process::Command;

use shmstore::{Key, Segment};

const GREETING: &[u8; 17] = b"hello from parent";
const REPLY_AT: usize = 64;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("child") {
        return child(args[2].parse()?);
    }

    let seg = Segment::options()
        .size(4096)
        .create(true)
        .open(Key::PRIVATE)?;
    // Mark it for removal now: it stays usable until both processes detach,
    // and nothing is left behind whatever happens next.
    seg.remove()?;
    seg.write_at(0, GREETING)?;
    println!(
        "parent {}: created segment id {}",
        std::process::id(),
        seg.id()
    );

    let status = Command::new(std::env::current_exe()?)
        .args(["child", &seg.id().to_string()])
        .status()?;
    if !status.success() {
        return Err(format!("child failed: {status}").into());
    }

    let mut reply = [0u8; 32];
    seg.read_at(REPLY_AT, &mut reply)?;
    let reply = String::from_utf8_lossy(&reply);
    println!("parent: the child wrote {:?}", reply.trim_end_matches('\0'));
    let info = seg.info()?;
    println!(
        "parent: segment {} has {} bytes, mode {:o}, created by pid {}, last touched by pid {}, \
         {} attached, marked for removal: {}",
        info.id, info.size, info.mode, info.cpid, info.lpid, info.nattch, info.marked_for_removal
    );
    Ok(())
}

fn child(id: i32) -> Result<(), Box<dyn std::error::Error>> {
    // The segment was marked for removal, so its key is gone; its id still
    // reaches it until the last detach.
    let seg = Segment::attach_id(id)?;
    let mut greeting = [0u8; 17];
    seg.read_at(0, &mut greeting)?;
    println!(
        "child {}: read {:?}",
        std::process::id(),
        String::from_utf8_lossy(&greeting)
    );
    let reply = format!("hello back from {}", std::process::id());
    seg.write_at(REPLY_AT, reply.as_bytes())?;
    Ok(())
}
