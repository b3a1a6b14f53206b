//! A plain epoll loop learns of changes to two objects through one
//! descriptor: a `Subscription` on a command cell and a configuration
//! region, registered with `epoll_ctl` like a socket.
//!
//! The recipe: add each object to a `Subscription` (each `add` returns a
//! token), register the subscription's descriptor for `EPOLLIN`, and when
//! epoll says it is readable call `changes()`, which says, without
//! blocking, which objects moved and their versions (or that one was
//! removed). Changes that come faster than the loop looks are folded into
//! one: the loop always reads the latest value.
//!
//! This program plays both roles. The parent creates a `SharedCell<u64>`
//! named `shmstore-example/epoll-watch-PID/command` and a `SharedRegion`
//! named `.../config`, and watches both from its epoll loop; a writer (this
//! program again, in another process) publishes configurations and stores
//! commands, the last of them `QUIT`. Nothing is left in `ipcs -m`.
//!
//! ```text
//! cargo run --example epoll_watch
//! ```

use std::os::fd::{AsRawFd, RawFd};
use std::process::{Child, Command, ExitCode};
use std::time::Duration;

use shmstore::watch::Subscription;
use shmstore::{Key, SharedCell, SharedRegion};

/// The configuration the writer publishes.
#[derive(rkyv::Archive, rkyv::Serialize)]
struct Config {
    generation: u64,
    listen: String,
}

/// The command that ends the loop.
const QUIT: u64 = u64::MAX;
/// How many configurations and commands the writer sends.
const ROUNDS: u64 = 5;
/// How long the writer pauses between two sends.
const PAUSE: Duration = Duration::from_millis(20);
/// How long the loop waits for a descriptor before it gives up.
const PATIENCE_MS: i32 = 10_000;
/// The region's capacity.
const CAPACITY: usize = 4096;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let result = match args.get(1).map(String::as_str) {
        Some("writer") => writer(&args[2]),
        _ => watch(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("epoll_watch: {e}");
            ExitCode::FAILURE
        }
    }
}

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// The other process: configurations and commands, then `QUIT`.
fn writer(prefix: &str) -> Res<()> {
    let command = SharedCell::<u64>::open(Key::named(&format!("{prefix}command"))?)?;
    let config = SharedRegion::<Config>::open(Key::named(&format!("{prefix}config"))?)?;
    for round in 1..=ROUNDS {
        config.publish(&Config {
            generation: round,
            listen: format!("0.0.0.0:{}", 8000 + round),
        })?;
        std::thread::sleep(PAUSE);
        command.store(if round == ROUNDS { QUIT } else { round })?;
        std::thread::sleep(PAUSE);
    }
    Ok(())
}

/// An epoll instance, closed when dropped.
struct Epoll(RawFd);

impl Epoll {
    fn new() -> Res<Epoll> {
        // SAFETY: epoll_create1 takes no pointers; a negative result is an
        // error, checked here.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        Ok(Epoll(fd))
    }

    /// Watch `fd` for readability, reported with `data`.
    fn add(&self, fd: RawFd, data: u64) -> Res<()> {
        let mut event = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: data,
        };
        // SAFETY: `self.0` is this epoll instance's descriptor, `fd` an
        // open descriptor the caller keeps open while it is registered, and
        // `event` a valid epoll_event that the call only reads.
        if unsafe { libc::epoll_ctl(self.0, libc::EPOLL_CTL_ADD, fd, &mut event) } < 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        Ok(())
    }

    /// The data of the descriptors readable now, waiting at most
    /// `timeout_ms`.
    fn wait(&self, timeout_ms: i32) -> Res<Vec<u64>> {
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 8];
        let n = loop {
            // SAFETY: `events` is a writable array of `events.len()`
            // epoll_event, which the kernel fills up to the count returned.
            let n = unsafe {
                libc::epoll_wait(self.0, events.as_mut_ptr(), events.len() as i32, timeout_ms)
            };
            if n >= 0 {
                break n as usize;
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e.into());
            }
        };
        Ok(events[..n].iter().map(|e| e.u64).collect())
    }
}

impl Drop for Epoll {
    fn drop(&mut self) {
        // SAFETY: the descriptor is this instance's own, closed once.
        unsafe { libc::close(self.0) };
    }
}

/// The writer's process, killed if still running when dropped.
struct Writer(Child);

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Removes this run's objects when dropped, whatever happened.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = shmstore::inspect::remove_prefix(&self.0);
    }
}

/// The data epoll reports for the subscription's descriptor.
const SUBSCRIPTION: u64 = 1;

fn watch() -> Res<()> {
    let prefix = format!("shmstore-example/epoll-watch-{}/", std::process::id());
    let _cleanup = Cleanup(prefix.clone());
    let command = SharedCell::<u64>::create(Key::named(&format!("{prefix}command"))?, 0)?;
    let config = SharedRegion::<Config>::create(Key::named(&format!("{prefix}config"))?, CAPACITY)?;

    let mut sub = Subscription::new()?;
    let command_token = sub.add(&command)?;
    let config_token = sub.add(&config)?;
    let epoll = Epoll::new()?;
    epoll.add(sub.as_raw_fd(), SUBSCRIPTION)?;

    let _writer = Writer(
        Command::new(std::env::current_exe()?)
            .args(["writer", &prefix])
            .spawn()?,
    );

    let (mut wakes, mut last_generation, mut quit) = (0, 0, false);
    while !quit {
        let ready = epoll.wait(PATIENCE_MS)?;
        if ready.is_empty() {
            return Err("no change for too long: is the writer stuck?".into());
        }
        wakes += 1;
        // One readiness may report both objects (in token order): act on a
        // QUIT only once the whole batch is applied.
        for change in sub.changes()? {
            let version = change.version?;
            if change.token == config_token {
                let c = config.read()?;
                last_generation = c.generation.to_native();
                println!(
                    "config: version {version}, generation {last_generation}, listen on {}",
                    c.listen
                );
            } else if change.token == command_token {
                let c = command.load();
                quit = c == QUIT;
                if quit {
                    println!("command: version {version}, QUIT");
                } else {
                    println!("command: version {version}, {c}");
                }
            }
        }
    }
    if last_generation != ROUNDS {
        return Err("QUIT came before the last configuration".into());
    }
    println!("{wakes} wake-ups of one descriptor for two objects; done");
    Ok(())
}
