//! `shmstore`: list, inspect, get, watch, remove and collect System V
//! shared-memory segments, decoding the ones shmstore made.
//!
//! A segment is named by its id (decimal, as `ipcs -m` prints it), by its
//! key (hex with `0x`, as `ipcs -m` prints it), or by the name of the object
//! in it (`acme/config`; in the private namespace of a directory with
//! `--namespace DIR`). Decoding attaches the segment read-only (which
//! the kernel records as an attach: the kernel fields shown are those read
//! before); `--no-attach` shows the kernel's view only. Every string that
//! comes from a segment is escaped before it is printed.
//!
//! Exit codes: 0 everything done, 1 something failed (each failure is
//! reported), 2 a usage error. Nothing is printed with `println!`, which
//! panics when its reader has gone: a closed standard output ends `list`,
//! `inspect` and `watch` quietly with 0, and `remove` and `gc` finish what
//! they were asked without printing.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

mod gc;
mod get;
mod inspect;
mod list;
mod out;
mod remove;
mod resolve;
mod watch;

/// Lists, inspects, watches, removes and collects System V shared-memory
/// segments, decoding the ones shmstore made.
///
/// A TARGET is a segment id (decimal, as `ipcs -m` prints it), a key (hex
/// with 0x) or an object's name (acme/config; with --namespace DIR, in the
/// private namespace of DIR). Decoding attaches segments read-only; the
/// kernel fields shown are those read before attaching. Exit codes: 0 all
/// done, 1 something failed, 2 usage error.
#[derive(Parser, Debug)]
#[command(name = "shmstore", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Also trust objects of this user when finding one by name (beside
    /// this user and root).
    #[arg(long, global = true, value_name = "UID")]
    trust_user: Option<u32>,
    /// Also trust objects of members of this group when finding one by name.
    #[arg(long, global = true, value_name = "GID")]
    trust_group: Option<u32>,
    /// Trust objects of every user when finding one by name (any local user
    /// can make a segment at a name's keys).
    #[arg(long, global = true)]
    allow_foreign_owner: bool,
    /// Find a TARGET that is a name in the private namespace of this
    /// directory (`Key::named_in`), whose keys come from its secret,
    /// DIR/shmstore.secret (read, never made). Ids, keys, --prefix, list and
    /// gc are not affected: they go by segments and the names stored in them.
    #[arg(long, global = true, value_name = "DIR")]
    namespace: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Every segment on the system; shmstore ones decoded.
    List {
        /// One JSON array of objects instead of a table.
        #[arg(long)]
        json: bool,
        /// Show only what the kernel says: attach nothing.
        #[arg(long)]
        no_attach: bool,
    },
    /// The value an object holds now, field by field, decoded by the
    /// schema stored in it (one line per field, `path = value`).
    Get {
        /// The object: a name, an id, or a key in hex.
        target: String,
        /// Print the bytes in words instead (objects without a schema).
        #[arg(long, value_enum)]
        format: Option<Words>,
        /// One JSON object: id, kind, version, schema and value.
        #[arg(long)]
        json: bool,
    },
    /// One segment: the kernel's view, the header's, and who still runs.
    Inspect {
        /// The segment: id, 0x key or name.
        target: String,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// Show only what the kernel says: attach nothing.
        #[arg(long)]
        no_attach: bool,
    },
    /// Print each new version of an object until COUNT lines or TIMEOUT.
    Watch {
        /// The segment: id, 0x key or name.
        target: String,
        /// Stop after this many lines (the first one included).
        #[arg(long, value_name = "N")]
        count: Option<u64>,
        /// Fail if no new version comes within this many seconds.
        #[arg(long, value_name = "SECS", value_parser = parse_seconds, allow_negative_numbers = true)]
        timeout: Option<Duration>,
        /// How to print a cell's value: its bytes in hex, or as words.
        /// Without it, an object that stores a schema is shown by field,
        /// any other cell in hex.
        #[arg(long, value_enum)]
        format: Option<Words>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Remove segments (IPC_RMID: gone once every process has detached).
    Remove {
        /// The segments: ids, 0x keys or names. Each is removed or reported
        /// on its own.
        targets: Vec<String>,
        /// Remove every object whose name starts with PREFIX (the
        /// --expect-* checks apply to the TARGETS only).
        #[arg(long, value_name = "PREFIX")]
        prefix: Option<String>,
        /// Remove only if the segment still has this key (0x...).
        #[arg(long, value_name = "KEY")]
        expect_key: Option<String>,
        /// Remove only if the object still has this name.
        #[arg(long, value_name = "NAME")]
        expect_name: Option<String>,
        /// Remove only if the segment was still created by this pid.
        #[arg(long, value_name = "PID")]
        expect_cpid: Option<i32>,
        /// Remove only if the segment's change time is still this (seconds
        /// since the epoch, as `list --json` gives it).
        #[arg(long, value_name = "SECS")]
        expect_ctime: Option<u64>,
        /// One JSON array of results.
        #[arg(long)]
        json: bool,
    },
    /// The shmstore objects nobody uses (nothing attached, creator gone),
    /// the caller's own unless root; a dry run unless --remove.
    Gc {
        /// Remove them.
        #[arg(long)]
        remove: bool,
        /// Only objects whose name starts with PREFIX.
        #[arg(long, value_name = "PREFIX")]
        prefix: Option<String>,
        /// One JSON array of results.
        #[arg(long)]
        json: bool,
    },
}

/// How `watch` prints a cell's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Words {
    /// The bytes, in hex.
    Hex,
    /// Little-endian unsigned 64-bit words.
    U64,
    /// Little-endian signed 32-bit words.
    I32,
    /// Little-endian 64-bit floats.
    F64,
}

/// A number of seconds: finite, not negative, at most a billion.
fn parse_seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
        return Err(format!(
            "{s} is not a number of seconds from 0 to 1000000000"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// What a subcommand did: every part done, or some failed (and said so).
pub enum Outcome {
    Done,
    SomeFailed,
}

/// A failure that ends a subcommand; it is printed on stderr.
pub type Failure = Box<dyn std::error::Error>;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version print and succeed; anything else is a
            // usage error (exit code 2), naming the argument.
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let lookup = resolve::Lookup {
        trust: shmstore::inspect::Trust {
            user: cli.trust_user,
            group: cli.trust_group,
            any: cli.allow_foreign_owner,
        },
        namespace: cli.namespace,
    };
    let result = match cli.command {
        Command::List { json, no_attach } => list::run(json, no_attach, &lookup.trust),
        Command::Inspect {
            target,
            json,
            no_attach,
        } => inspect::run(&target, &lookup, json, no_attach),
        Command::Get {
            target,
            format,
            json,
        } => get::run(&target, &lookup, format, json),
        Command::Watch {
            target,
            count,
            timeout,
            format,
            json,
        } => watch::run(&target, &lookup, count, timeout, format, json),
        Command::Remove {
            targets,
            prefix,
            expect_key,
            expect_name,
            expect_cpid,
            expect_ctime,
            json,
        } => remove::run(
            &targets,
            &lookup,
            prefix.as_deref(),
            &remove::Expect {
                key: expect_key,
                name: expect_name,
                cpid: expect_cpid,
                ctime: expect_ctime,
            },
            json,
        ),
        Command::Gc {
            remove,
            prefix,
            json,
        } => gc::run(remove, prefix.as_deref(), json),
    };
    match result {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::SomeFailed) => ExitCode::FAILURE,
        // Nobody reads any more (`| head -1`): nothing went wrong.
        Err(e) if e.is::<out::Closed>() => ExitCode::SUCCESS,
        Err(e) => {
            out::warn(out::clean(&e.to_string()));
            ExitCode::FAILURE
        }
    }
}
