//! `shmstore-bridge`: `run --config FILE` mirrors named objects between
//! this host and a NATS JetStream key-value bucket; `status --config FILE`
//! shows what a running bridge moved (README.md).

#![forbid(unsafe_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use shmstore_bridge::{Config, status};

#[derive(Parser)]
#[command(
    name = "shmstore-bridge",
    version,
    about = "Mirror named shmstore objects between hosts through NATS JetStream key-value"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the bridge until SIGINT or SIGTERM.
    Run {
        /// The configuration (TOML).
        #[arg(long)]
        config: PathBuf,
    },
    /// Show what the bridge running with this configuration moved.
    Status {
        /// The configuration (TOML) the bridge runs with.
        #[arg(long)]
        config: PathBuf,
        /// Print the status as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run { config } => run(config),
        Command::Status { config, json } => show(config, json),
    }
}

fn run(path: PathBuf) -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let config = match Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("shmstore-bridge: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("shmstore-bridge: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(shmstore_bridge::run(config, async {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("stopping");
    }));
    // A write stuck on a local object's lock held by a stopped process is
    // not waited for.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shmstore-bridge: {e}");
            ExitCode::FAILURE
        }
    }
}

fn show(path: PathBuf, json: bool) -> ExitCode {
    let status = match Config::load(&path).and_then(|c| status::read(&c.status_path())) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("shmstore-bridge: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout().lock();
    let written = if json {
        let mut value = serde_json::to_value(&status).unwrap_or_default();
        value["running"] = status::running(&status).into();
        serde_json::to_string_pretty(&value)
            .map_err(std::io::Error::other)
            .and_then(|s| writeln!(out, "{s}"))
    } else {
        print_table(&mut out, &status)
    };
    match written {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`| head`) is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shmstore-bridge: cannot write: {e}");
            ExitCode::FAILURE
        }
    }
}

fn print_table(out: &mut impl Write, s: &status::Status) -> std::io::Result<()> {
    let age_ms = status::now_ns() / 1_000_000;
    let state = if status::running(s) {
        if s.connected {
            "connected"
        } else {
            "not connected"
        }
    } else if s.stopped {
        "stopped"
    } else {
        "not running (it died, or is paused)"
    };
    writeln!(
        out,
        "host {} (pid {}), bucket {} on {}: {state}, status written {} ms ago",
        s.host.escape_debug(),
        s.pid,
        s.bucket,
        s.server.escape_debug(),
        age_ms.saturating_sub(s.written_ms)
    )?;
    writeln!(
        out,
        "{:<32} {:<6} {:<8} {:>9} {:>9} {:>9} {:>10} {:>6}  LAST ERROR",
        "NAME", "DIR", "STATE", "REVISION", "VERSION", "MOVED", "LAG_US", "ERRORS"
    )?;
    for (name, o) in &s.objects {
        writeln!(
            out,
            "{:<32} {:<6} {:<8} {:>9} {:>9} {:>9} {:>10} {:>6}  {}",
            name.escape_debug().to_string(),
            o.direction,
            o.state,
            o.revision,
            o.version,
            o.moved,
            o.lag_us,
            o.errors,
            o.last_error.as_deref().unwrap_or("-").escape_debug()
        )?;
    }
    Ok(())
}
