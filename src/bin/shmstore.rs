//! `shmstore`: list, inspect, remove and watch System V shared-memory
//! segments, decoding the ones shmstore made.
//!
//! ```text
//! shmstore list                         every segment; shmstore ones decoded
//! shmstore inspect ID|KEY|NAME          header, layout, version, pins
//! shmstore remove ID|KEY|NAME...        IPC_RMID (gone after the last detach)
//! shmstore remove --prefix PREFIX       every object whose name starts so
//! shmstore watch ID|KEY|NAME [--count N] [--timeout SECS]
//!                                       print each new version
//! shmstore gc [--remove]                objects nobody uses (creator gone,
//!                                       nothing attached); --remove them
//! ```
//!
//! A segment is named by its id (decimal, as `ipcs -m` prints it), by its
//! key (hex with `0x`, as `ipcs -m` prints it), or by the name of the object
//! in it (`acme/config`). Segments are attached read-only, whoever owns
//! them; their bytes are validated, never trusted.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use shmstore::inspect::{self, Description};
use shmstore::{Error, Key, Segment, list_segments};

const USAGE: &str = "usage:
  shmstore list
  shmstore inspect ID|KEY|NAME
  shmstore remove ID|KEY|NAME...
  shmstore remove --prefix PREFIX
  shmstore watch ID|KEY|NAME [--count N] [--timeout SECS]
  shmstore gc [--remove]
ID is decimal (as `ipcs -m` prints it), KEY is hex with 0x, NAME is an
object's name (acme/config).";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("list") if args.len() == 1 => list(),
        Some("inspect") if args.len() == 2 => inspect(&args[1]),
        Some("remove") if args.len() == 3 && args[1] == "--prefix" => remove_prefix(&args[2]),
        Some("remove") if args.len() >= 2 => remove(&args[1..]),
        Some("watch") if args.len() >= 2 => watch(&args[1], &args[2..]),
        Some("gc") if args.len() == 1 => gc(false),
        Some("gc") if args.len() == 2 && args[1] == "--remove" => gc(true),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shmstore: {e}");
            ExitCode::FAILURE
        }
    }
}

type CliResult = Result<(), Box<dyn std::error::Error>>;

/// The id of the segment named by `arg`: a decimal id or a `0x` key.
fn resolve(arg: &str) -> Result<i32, Box<dyn std::error::Error>> {
    if let Some(hex) = arg.strip_prefix("0x").or_else(|| arg.strip_prefix("0X")) {
        let raw = u32::from_str_radix(hex, 16).map_err(|e| format!("bad key {arg}: {e}"))? as i32;
        let key = Key::new(raw)?;
        let found = list_segments()?.into_iter().find(|s| s.key == key);
        return found
            .map(|s| s.id)
            .ok_or_else(|| Error::NotFound { key }.into());
    }
    if arg.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(arg
            .parse()
            .map_err(|e| format!("bad id {arg}: {e} (a key needs 0x)"))?);
    }
    match inspect::find_named(arg)?.first() {
        Some(object) => Ok(object.info.id),
        None => Err(format!("no object is named {arg:?} (`shmstore list` shows the names)").into()),
    }
}

fn remove_prefix(prefix: &str) -> CliResult {
    let mut failed = false;
    for (object, removed) in inspect::remove_prefix(prefix)? {
        let name = object.name().unwrap_or_default();
        match removed {
            Ok(()) => println!("removed {name} (segment {})", object.info.id),
            Err(e) => {
                failed = true;
                eprintln!("shmstore: {name} (segment {}): {e}", object.info.id);
            }
        }
    }
    if failed {
        return Err("some objects could not be removed".into());
    }
    Ok(())
}

/// Attach read-only and describe; a segment this user cannot read says so.
fn describe_id(id: i32) -> Result<Description, Error> {
    let seg = Segment::options()
        .read_only(true)
        .allow_foreign_owner(true)
        .attach_id(id)?;
    inspect::describe_segment(&seg)
}

fn list() -> CliResult {
    println!(
        "{:<10} {:>10} {:>5} {:>10} {:>6} {:>7} {:>7}  contents",
        "key", "id", "mode", "bytes", "nattch", "cpid", "lpid"
    );
    for o in inspect::objects()? {
        let s = &o.info;
        let mut contents = match &o.description {
            Ok(d) => d.summary(),
            Err(e) => format!("(cannot read: {e})"),
        };
        if let Some(l) = &o.liveness {
            if !l.creator.1 {
                contents.push_str(" [creator gone]");
            }
            let dead = l.readers.iter().filter(|r| !r.2).count();
            if dead > 0 {
                contents.push_str(&format!(" [{dead} dead reader pins]"));
            }
        }
        let dest = if s.marked_for_removal {
            " [removed]"
        } else {
            ""
        };
        println!(
            "{:<10} {:>10} {:>5o} {:>10} {:>6} {:>7} {:>7}  {contents}{dest}",
            s.key.to_string(),
            s.id,
            s.mode,
            s.size,
            s.nattch,
            s.cpid,
            s.lpid
        );
    }
    Ok(())
}

fn inspect(arg: &str) -> CliResult {
    let id = resolve(arg)?;
    let info = Segment::info_by_id(id)?;
    println!("segment:     id {id}, key {}", info.key);
    println!(
        "kernel:      {} bytes, mode {:o}, owner {}:{}, creator {}:{} (pid {}), last pid {}, {} attached{}",
        info.size,
        info.mode,
        info.uid,
        info.gid,
        info.cuid,
        info.cgid,
        info.cpid,
        info.lpid,
        info.nattch,
        if info.marked_for_removal {
            ", marked for removal"
        } else {
            ""
        }
    );
    print!("{}", describe_id(id)?);
    let seg = Segment::options()
        .read_only(true)
        .allow_foreign_owner(true)
        .attach_id(id)?;
    if let Some(l) = inspect::liveness(&seg) {
        let alive = |yes: bool| if yes { "running" } else { "gone" };
        println!("creator:     pid {} ({})", l.creator.0, alive(l.creator.1));
        for (pid, buffer, running) in &l.readers {
            match buffer {
                Some(b) => println!(
                    "reader:      pid {pid} ({}), pins buffer {b}",
                    alive(*running)
                ),
                None => println!("reader:      pid {pid} ({}), pins nothing", alive(*running)),
            }
        }
    }
    println!();
    Ok(())
}

/// The objects nobody uses; removed with `--remove`.
fn gc(remove: bool) -> CliResult {
    let garbage = inspect::garbage()?;
    if garbage.is_empty() {
        println!("nothing to collect");
    }
    let mut failed = false;
    for o in garbage {
        let what = o
            .description
            .as_ref()
            .map(Description::summary)
            .unwrap_or_default();
        if !remove {
            println!("would remove segment {} ({what})", o.info.id);
            continue;
        }
        match Segment::remove_by_id(o.info.id) {
            Ok(()) => println!("removed segment {} ({what})", o.info.id),
            Err(e) => {
                failed = true;
                eprintln!("shmstore: segment {}: {e}", o.info.id);
            }
        }
    }
    if failed {
        return Err("some segments could not be removed".into());
    }
    Ok(())
}

fn remove(args: &[String]) -> CliResult {
    for arg in args {
        let id = resolve(arg)?;
        Segment::remove_by_id(id)?;
        println!("removed segment {id} (gone once every process has detached)");
    }
    Ok(())
}

fn watch(arg: &str, opts: &[String]) -> CliResult {
    let mut count = u64::MAX;
    let mut timeout = None;
    let mut it = opts.iter();
    while let Some(opt) = it.next() {
        let value = it.next().ok_or_else(|| format!("{opt} needs a value"))?;
        match opt.as_str() {
            "--count" => count = value.parse()?,
            "--timeout" => timeout = Some(Duration::from_secs_f64(value.parse()?)),
            other => return Err(format!("unknown option {other}\n{USAGE}").into()),
        }
    }
    let id = resolve(arg)?;
    let seg = Segment::options()
        .read_only(true)
        .allow_foreign_owner(true)
        .attach_id(id)?;
    let start = Instant::now();
    let mut last = inspect::describe_segment(&seg)?;
    println!("{}", last.summary());
    let mut seen = 0;
    while seen < count {
        if timeout.is_some_and(|t| start.elapsed() >= t) {
            return Err(format!("no change within {:?}", timeout.unwrap_or_default()).into());
        }
        std::thread::sleep(Duration::from_millis(20));
        let now = inspect::describe_segment(&seg)?;
        if now.version != last.version || now.problem != last.problem {
            println!("{}", now.summary());
            last = now;
            seen += 1;
        }
    }
    Ok(())
}
