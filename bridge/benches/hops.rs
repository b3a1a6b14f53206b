//! Two hosts on one machine, through a real `nats-server -js`: how long a
//! value takes from a publish on host A to a reader on host B, how many
//! values per second get through when A publishes nonstop, and what a read
//! on B costs next to asking the bucket for the key each time.
//!
//! ```text
//! cargo bench -p shmstore-bridge --bench hops                  # the full run
//! HOPS_QUICK=1 cargo bench -p shmstore-bridge --bench hops     # every row once, briefly
//! ```
//!
//! The run starts its own `nats-server -js` on a free loopback port with
//! its store in a temporary directory (without nats-server it says so and
//! exits 0, or fails if `SHMSTORE_BRIDGE_REQUIRE_NATS=1`), and two bridges
//! in this process, each on its own thread with a current-thread tokio
//! runtime, through [`shmstore_bridge::run`]. The hosts are two private
//! namespaces of names (`Key::named_in`) in one IPC namespace: host A
//! exports `bench/`, host B imports it (`rescan_ms = 50`). The objects: a
//! `SharedRegion<Sample>` with its schema (about 100 bytes archived) and a
//! `SharedCell<[u64; 8]>`, both made on A before the bridges start.
//!
//! Rows:
//!
//! - **publish on A → readable on B**, one way: a thread on B follows the
//!   object with `wait_for_change`; the writer stamps the value with the
//!   time (a monotonic clock this process shares), publishes it, and waits
//!   for B's reader to say it read that seq before it publishes the next
//!   (one value in flight), at once or after a random pause below 5 ms (so
//!   that a publish falls anywhere in the 2 ms a read-only waiter sleeps
//!   between looks). The delay is from the stamp, just before the publish,
//!   to B's reader holding the value. For the region with a
//!   `RegionReader` on B (read-only) and with a read-write handle on B,
//!   and for the cell with a `CellReader`.
//! - **sustained**: the writer publishes nonstop for 5 s (1 s quick) while
//!   B's reader counts the distinct seqs it meets; then B must end on the
//!   last one. Reported: values published on A, the bucket's revisions
//!   (its stream's last sequence, after minus before: the exporter's
//!   puts), the values B's bridge wrote (its status file), the distinct
//!   values B's reader saw. The same three readers.
//! - **a read on B**: one `kv.get` of the key with async-nats in a
//!   current-thread runtime (a round trip to the server), next to
//!   `RegionReader::read()` and two fields of the value, timed in batches
//!   of 100 reads (hdrhistogram, three significant digits).
//!
//! It prints a Markdown report. A row that cannot measure fails the run.
//! Nothing is left behind, on a panic too: the bridges are stopped, every
//! object of both namespaces removed, the server stopped (it also dies
//! with this process, `PR_SET_PDEATHSIG`) and the temporary directory
//! removed.

use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv};
use hdrhistogram::Histogram;
use shmstore::{Access, CellReader, Error, Key, RegionReader, Schema, SharedCell, SharedRegion};
use shmstore_bridge::Config;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer};

/// Set (to anything) for a short run of every row.
const QUICK_ENV: &str = "HOPS_QUICK";
/// Set to 1 to fail, not skip, without nats-server.
const REQUIRE_ENV: &str = "SHMSTORE_BRIDGE_REQUIRE_NATS";

const BUCKET: &str = "hops";
const REGION: &str = "bench/region";
const CELL: &str = "bench/cell";
const CELL_TYPE: &str = "hops.Stamp";
const CAPACITY: usize = 4096;
const RESCAN_MS: u64 = 50;
/// How long one value may take to reach B before its row fails.
const LOST: Duration = Duration::from_secs(10);
/// Reads timed together in the local read row.
const BATCH: u64 = 100;

/// The region's value: about 100 bytes archived.
#[derive(rkyv::Archive, rkyv::Serialize, Schema, Debug)]
#[rkyv(crate = shmstore::rkyv)]
struct Sample {
    seq: u64,
    sent_ns: u64,
    name: String,
    ports: Vec<u16>,
}

fn sample() -> Sample {
    Sample {
        seq: 0,
        sent_ns: now_ns(),
        name: "edge-7.eu-west.hops.example".into(),
        ports: (0..20).map(|i| 8000 + i).collect(),
    }
}

/// The cell's value: seq, stamp, and padding to 64 bytes.
type Stamp = [u64; 8];

fn stamp(seq: u64) -> Stamp {
    [seq, now_ns(), 0, 0, 0, 0, 0, 0]
}

/// Nanoseconds on a monotonic clock every thread of this process reads.
fn now_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// How long and how much each row measures.
struct Settings {
    quick: bool,
}

impl Settings {
    /// Untimed ping-pongs before the timed ones.
    fn warm(&self) -> usize {
        if self.quick { 20 } else { 200 }
    }
    /// Timed ping-pongs, and `kv.get`s.
    fn samples(&self) -> usize {
        if self.quick { 300 } else { 5000 }
    }
    /// How long the writer publishes nonstop.
    fn sustain(&self) -> Duration {
        Duration::from_secs(if self.quick { 1 } else { 5 })
    }
    /// How long local reads are timed.
    fn reads(&self) -> Duration {
        Duration::from_secs_f64(if self.quick { 0.2 } else { 1.0 })
    }
}

// ---------------------------------------------------------------------------
// Logs: the bridges' warnings and errors go to stderr and are counted.

static WARNINGS: AtomicUsize = AtomicUsize::new(0);

/// Counts the events it is shown.
struct Count;

impl<S: tracing::Subscriber> Layer<S> for Count {
    fn on_event(&self, _: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        WARNINGS.fetch_add(1, Ordering::Relaxed);
    }
}

fn init_logs() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(filter),
        )
        .with(Count.with_filter(tracing_subscriber::filter::LevelFilter::WARN))
        .init();
}

// ---------------------------------------------------------------------------
// The world: a server, two hosts, their bridges; taken down on drop.

/// The `nats-server` to run, if installed.
fn nats_server() -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/bin")])
        .map(|d| d.join("nats-server"))
        .find(|p| p.is_file())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

fn private_dir(path: &Path) {
    std::fs::create_dir_all(path).expect("make a temporary directory");
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .expect("make a temporary directory private");
}

/// A host: a private namespace of names and its bridge's files.
struct Host {
    name: &'static str,
    dir: PathBuf,
}

impl Host {
    fn names(&self) -> PathBuf {
        self.dir.join("names")
    }

    fn key(&self, name: &str) -> Key {
        Key::named_in(self.names(), name).expect("a key in the host's namespace")
    }

    fn status_file(&self) -> PathBuf {
        self.dir.join("status.json")
    }

    /// This host's bridge configuration.
    fn config(&self, server: &str, body: &str) -> String {
        format!(
            "server = {server:?}\nbucket = {BUCKET:?}\nhost = {:?}\nnamespace = {:?}\n\
             status_file = {:?}\nrescan_ms = {RESCAN_MS}\n{body}",
            self.name,
            self.names().display().to_string(),
            self.status_file().display().to_string(),
        )
    }

    /// One object's entry in the bridge's status file, if there.
    fn status(&self, name: &str) -> Option<shmstore_bridge::status::ObjectStatus> {
        shmstore_bridge::status::read(&self.status_file())
            .ok()?
            .objects
            .get(name)
            .cloned()
    }
}

/// A bridge running on its own thread.
struct BridgeThread {
    host: &'static str,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<(), String>>>,
}

impl BridgeThread {
    fn start(host: &'static str, text: &str) -> BridgeThread {
        let config = Config::parse(text).unwrap_or_else(|e| panic!("bridge {host}: {e}"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("bridge-{host}"))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| format!("cannot start the runtime: {e}"))?;
                runtime.block_on(shmstore_bridge::run(config, async {
                    let _ = stopped.await;
                }))
            })
            .expect("start a bridge's thread");
        BridgeThread {
            host,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Stop it and wait for it: how its `run` ended.
    fn stop(&mut self) -> Option<Result<(), String>> {
        drop(self.stop.take());
        let thread = self.thread.take()?;
        Some(match thread.join() {
            Ok(r) => r,
            Err(_) => Err("its thread panicked".into()),
        })
    }
}

/// What taking the world down found.
struct Teardown {
    /// Each bridge's host and how its `run` ended.
    bridges: Vec<(&'static str, Result<(), String>)>,
    /// Objects removed, by host.
    removed: Vec<(&'static str, usize)>,
    /// Names still reachable in a host's namespace afterwards.
    left: Vec<String>,
}

struct World {
    root: PathBuf,
    port: u16,
    server: Option<Child>,
    a: Host,
    b: Host,
    bridges: Vec<BridgeThread>,
}

impl World {
    /// A temporary directory, the server up, two hosts without bridges.
    fn start(exe: &Path) -> World {
        let root =
            std::env::temp_dir().join(format!("shmstore-bridge-hops-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        private_dir(&root);
        let host = |name: &'static str| {
            let dir = root.join(name);
            private_dir(&dir.join("names"));
            Host { name, dir }
        };
        let (a, b) = (host("a"), host("b"));
        let mut world = World {
            port: free_port(),
            server: None,
            a,
            b,
            bridges: Vec::new(),
            root,
        };
        let store = world.root.join("nats");
        private_dir(&store);
        let log = std::fs::File::create(world.root.join("nats.log")).expect("the server's log");
        let mut command = Command::new(exe);
        command
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &world.port.to_string(),
                "-sd",
            ])
            .arg(&store)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        // SAFETY: prctl(PR_SET_PDEATHSIG) takes a signal number and no
        // pointer, and is async-signal-safe.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
                Ok(())
            });
        }
        world.server = Some(command.spawn().expect("start nats-server"));
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", world.port)).is_err() {
            let exited = world
                .server
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() > deadline {
                let mut text = String::new();
                let _ = std::fs::File::open(world.root.join("nats.log"))
                    .and_then(|mut f| f.read_to_string(&mut text));
                panic!("nats-server did not listen on port {}: {text}", world.port);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        world
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn start_bridges(&mut self) {
        let url = self.url();
        let export = self.a.config(&url, "[[export]]\nprefix = \"bench/\"\n");
        let import = self.b.config(&url, "[[import]]\nprefix = \"bench/\"\n");
        self.bridges.push(BridgeThread::start("a", &export));
        self.bridges.push(BridgeThread::start("b", &import));
    }

    /// Remove every object `host`'s namespace reaches; how many.
    fn remove_objects(host: &Host) -> usize {
        let mut removed = 0;
        for name in names_of(host) {
            if let Ok(object) = shmstore::raw::RawOptions::new().open(host.key(&name))
                && object.remove().is_ok()
            {
                removed += 1;
            }
        }
        removed
    }

    /// Stop the bridges, remove the objects, stop the server, remove the
    /// directory. Runs once; again it finds nothing to do.
    fn teardown(&mut self) -> Teardown {
        let bridges = self
            .bridges
            .iter_mut()
            .filter_map(|b| Some((b.host, b.stop()?)))
            .collect();
        let removed = vec![
            ("a", World::remove_objects(&self.a)),
            ("b", World::remove_objects(&self.b)),
        ];
        let left = [&self.a, &self.b]
            .into_iter()
            .flat_map(|h| names_of(h).into_iter().map(|n| format!("{}: {n}", h.name)))
            .collect();
        if let Some(mut server) = self.server.take() {
            let _ = server.kill();
            let _ = server.wait();
        }
        let _ = std::fs::remove_dir_all(&self.root);
        Teardown {
            bridges,
            removed,
            left,
        }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// The names of the objects that `host`'s namespace reaches now.
fn names_of(host: &Host) -> Vec<String> {
    let Ok(objects) = shmstore::inspect::objects() else {
        return Vec::new();
    };
    let mut names = Vec::new();
    for o in objects {
        let Some(name) = o.name() else { continue };
        let Ok(key) = Key::named_in(host.names(), name) else {
            continue;
        };
        if let Ok(object) = shmstore::raw::RawOptions::new().open_read_only(key)
            && object.id() == o.info.id
        {
            names.push(name.to_owned());
        }
    }
    names
}

// ---------------------------------------------------------------------------
// Writers on A, readers on B.

/// A writer on A.
trait Source {
    /// Publish `seq`, stamped with the time now.
    fn put(&mut self, seq: u64);
}

struct RegionSource {
    region: SharedRegion<Sample>,
    value: Sample,
}

impl Source for RegionSource {
    fn put(&mut self, seq: u64) {
        self.value.seq = seq;
        self.value.sent_ns = now_ns();
        self.region.publish(&self.value).expect("publish on A");
    }
}

struct CellSource(SharedCell<Stamp>);

impl Source for CellSource {
    fn put(&mut self, seq: u64) {
        self.0.store(stamp(seq)).expect("store on A");
    }
}

/// A reader on B.
trait Observer: Send + 'static {
    fn version(&self) -> u64;
    /// The seq and stamp of the value held now.
    fn stamp(&self) -> (u64, u64);
    fn wait(&self, since: u64, timeout: Duration);
}

impl<A: Access + 'static> Observer for SharedRegion<Sample, A>
where
    SharedRegion<Sample, A>: Send,
{
    fn version(&self) -> u64 {
        SharedRegion::version(self)
    }
    fn stamp(&self) -> (u64, u64) {
        let v = self.read().expect("read on B");
        (v.seq.to_native(), v.sent_ns.to_native())
    }
    fn wait(&self, since: u64, timeout: Duration) {
        self.wait_for_change(since, Some(timeout))
            .expect("wait on B");
    }
}

impl Observer for CellReader<Stamp> {
    fn version(&self) -> u64 {
        SharedCell::version(self)
    }
    fn stamp(&self) -> (u64, u64) {
        let v = self.load();
        (v[0], v[1])
    }
    fn wait(&self, since: u64, timeout: Duration) {
        self.wait_for_change(since, Some(timeout))
            .expect("wait on B");
    }
}

/// Open an object on B once its bridge has made it.
fn on_b<T>(what: &str, mut open: impl FnMut() -> shmstore::Result<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match open() {
            Ok(o) => return o,
            Err(Error::NotFound { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(e) => panic!("{what} on B: {e}"),
        }
    }
}

/// Wait until B's object holds `want`.
fn reach(observer: &impl Observer, want: u64, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let at = observer.version();
        let (seq, _) = observer.stamp();
        if seq == want {
            return;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "B holds seq {seq}, not {want}, after {within:?}"
        );
        observer.wait(at, left.min(Duration::from_millis(100)));
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("a histogram")
}

/// The join of a measuring thread, its panic passed on.
fn join<T>(thread: JoinHandle<T>) -> T {
    thread
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
}

/// A pseudo-random pause below `max` (xorshift, seeded by the clock).
fn pause(max: Duration) -> Duration {
    static STATE: AtomicU64 = AtomicU64::new(0);
    let mut x = STATE.load(Ordering::Relaxed);
    if x == 0 {
        x = now_ns() | 1;
    }
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    STATE.store(x, Ordering::Relaxed);
    Duration::from_nanos(x % max.as_nanos().max(1) as u64)
}

/// Ping-pong `warm + n` values from `source` to `observer` (seqs from
/// `*next` on), each published once B's reader holds the one before, after
/// a random pause below `gap` if given; the delays of the last `n`, in
/// nanoseconds.
fn ping_pong<O: Observer>(
    source: &mut dyn Source,
    next: &mut u64,
    observer: O,
    gap: Option<Duration>,
    warm: usize,
    n: usize,
) -> (O, Histogram<u64>) {
    let first = *next;
    let last = first + (warm + n) as u64 - 1;
    let timed = first + warm as u64;
    let (seen_tx, seen) = mpsc::channel::<u64>();
    let reader = std::thread::spawn(move || {
        let mut h = histogram();
        for want in first..=last {
            let deadline = Instant::now() + LOST;
            loop {
                let at = observer.version();
                let (seq, sent) = observer.stamp();
                if seq == want {
                    let delay = now_ns().saturating_sub(sent);
                    if want >= timed {
                        h.record(delay.max(1)).expect("record a delay");
                    }
                    break;
                }
                assert!(seq < want, "B holds seq {seq} while A published {want}");
                let left = deadline.saturating_duration_since(Instant::now());
                assert!(!left.is_zero(), "seq {want} did not reach B in {LOST:?}");
                observer.wait(at, left.min(Duration::from_secs(1)));
            }
            if seen_tx.send(want).is_err() {
                panic!("the writer is gone");
            }
        }
        (observer, h)
    });
    for seq in first..=last {
        if let Some(gap) = gap {
            std::thread::sleep(pause(gap));
        }
        source.put(seq);
        match seen.recv_timeout(LOST + Duration::from_secs(5)) {
            Ok(s) => assert_eq!(s, seq, "B's reader acknowledged another seq"),
            // The reader failed: its panic says why.
            Err(_) => break,
        }
    }
    *next = last + 1;
    join(reader)
}

/// What a sustained row measured.
struct Flow {
    /// The writer's time.
    writing: Duration,
    /// From its first publish to B's reader holding its last value.
    total: Duration,
    published: u64,
    revisions: u64,
    written_b: u64,
    seen_b: u64,
    last: u64,
}

/// The bucket and a runtime to ask it from this thread.
struct Bucket {
    runtime: tokio::runtime::Runtime,
    js: jetstream::Context,
    kv: kv::Store,
}

impl Bucket {
    fn connect(url: &str) -> Bucket {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime");
        let (js, kv) = runtime.block_on(async {
            let client = async_nats::connect(url)
                .await
                .expect("connect to nats-server");
            let js = jetstream::new(client);
            let kv = js.get_key_value(BUCKET).await.expect("the bridges' bucket");
            (js, kv)
        });
        Bucket { runtime, js, kv }
    }

    /// The bucket's newest revision (of any key): its stream's last
    /// sequence.
    fn revision(&self) -> u64 {
        self.runtime.block_on(async {
            let mut stream = self
                .js
                .get_stream(format!("KV_{BUCKET}"))
                .await
                .expect("the bucket's stream");
            stream
                .info()
                .await
                .expect("the bucket's stream's state")
                .state
                .last_sequence
        })
    }

    /// `warm + n` `get`s of `name`'s key; the last `n`'s times, in ns.
    fn gets(&self, name: &str, warm: usize, n: usize) -> Histogram<u64> {
        let key = shmstore_bridge::keys::key_of(name);
        let mut h = histogram();
        self.runtime.block_on(async {
            for i in 0..warm + n {
                let t = Instant::now();
                let value = self.kv.get(key.as_str()).await.expect("kv.get");
                let took = t.elapsed().as_nanos() as u64;
                assert!(value.is_some(), "kv.get found no value under {key}");
                if i >= warm {
                    h.record(took.max(1)).expect("record a get");
                }
            }
        });
        h
    }
}

/// Publish nonstop from `source` for `how_long` while `observer` counts
/// the distinct values it meets; B must end on the last.
fn sustain<O: Observer>(
    source: &mut dyn Source,
    next: &mut u64,
    observer: O,
    how_long: Duration,
    bucket: &Bucket,
    b: &Host,
    name: &str,
) -> (O, Flow) {
    // The status file is written every 250 ms: this one shows every value
    // of the rows before.
    std::thread::sleep(Duration::from_millis(300));
    let revision_before = bucket.revision();
    let moved_before = b.status(name).map_or(0, |s| s.moved);
    let first = *next;
    let last = Arc::new(AtomicU64::new(u64::MAX));
    let start = Instant::now();
    let reader = {
        let last = last.clone();
        std::thread::spawn(move || {
            let deadline = start + how_long + Duration::from_secs(60);
            let (mut prev, mut seen, mut backwards) = (first - 1, 0u64, 0u64);
            loop {
                let at = observer.version();
                let (seq, _) = observer.stamp();
                if seq != prev {
                    if seq < prev {
                        backwards += 1;
                    }
                    seen += 1;
                    prev = seq;
                }
                let end = last.load(Ordering::SeqCst);
                assert!(seq <= end, "B holds seq {seq}, past A's last, {end}");
                if seq == end {
                    return (observer, seen, backwards, start.elapsed());
                }
                assert!(
                    Instant::now() < deadline,
                    "B is stuck at seq {seq} (A's last is {end})"
                );
                observer.wait(at, Duration::from_millis(100));
            }
        })
    };
    let mut seq = first - 1;
    'writing: loop {
        for _ in 0..64 {
            seq += 1;
            source.put(seq);
        }
        if start.elapsed() >= how_long || reader.is_finished() {
            break 'writing;
        }
    }
    let writing = start.elapsed();
    last.store(seq, Ordering::SeqCst);
    let (observer, seen_b, backwards, total) = join(reader);
    *next = seq + 1;
    let revisions = bucket.revision() - revision_before;
    // Once more, for the status file.
    std::thread::sleep(Duration::from_millis(300));
    let written_b = b.status(name).map_or(0, |s| s.moved) - moved_before;
    assert_eq!(observer.stamp().0, seq, "B does not end on A's last value");
    assert_eq!(backwards, 0, "B's reader met older values after newer ones");
    (
        observer,
        Flow {
            writing,
            total,
            published: seq - first + 1,
            revisions,
            written_b,
            seen_b,
            last: seq,
        },
    )
}

/// Local reads of the imported region on B for `how_long`, in batches of
/// [`BATCH`]: each batch's time, in ns, which is the mean read in
/// hundredths of a ns.
fn local_reads(r: &RegionReader<Sample>, how_long: Duration) -> Histogram<u64> {
    let batch = || {
        let t = Instant::now();
        for _ in 0..BATCH {
            let v = r.read().expect("read on B");
            std::hint::black_box(v.seq.to_native());
            std::hint::black_box(v.name.len());
        }
        t.elapsed().as_nanos() as u64
    };
    let warm = Instant::now();
    while warm.elapsed() < how_long / 10 {
        batch();
    }
    let mut h = histogram();
    let start = Instant::now();
    while start.elapsed() < how_long {
        h.record(batch().max(1)).expect("record a batch");
    }
    h
}

// ---------------------------------------------------------------------------
// The report.

/// Nanoseconds for a table, as in the compare bench's report: two decimals
/// below 100 ns, whole ns below 1 µs, µs with two decimals below 10 µs,
/// then one, ms with two from 1 ms.
fn fmt_ns(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e4 {
        format!("{:.1} µs", ns / 1e3)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else if ns >= 100.0 {
        format!("{ns:.0} ns")
    } else {
        format!("{ns:.2} ns")
    }
}

/// A count or a rate: in millions, thousands, or as it is.
fn fmt_count(x: f64) -> String {
    if x >= 10e6 {
        format!("{:.1} M", x / 1e6)
    } else if x >= 1e6 {
        format!("{:.2} M", x / 1e6)
    } else if x >= 100e3 {
        format!("{:.0} k", x / 1e3)
    } else if x >= 10e3 {
        format!("{:.1} k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

fn fmt_ratio(r: f64) -> String {
    if r >= 100.0 {
        format!("{r:.0}x")
    } else if r >= 10.0 {
        format!("{r:.1}x")
    } else {
        format!("{r:.2}x")
    }
}

/// `| label | samples | p50 | p99 | p99.9 | max |`, values divided by
/// `per` (a batch's size).
fn latency_row(label: &str, h: &Histogram<u64>, per: f64) -> String {
    let q = |q: f64| fmt_ns(h.value_at_quantile(q) as f64 / per);
    format!(
        "| {label} | {} | {} | {} | {} | {} |",
        h.len(),
        q(0.5),
        q(0.99),
        q(0.999),
        fmt_ns(h.max() as f64 / per),
    )
}

fn rate(count: u64, over: Duration) -> String {
    format!(
        "{}/s ({})",
        fmt_count(count as f64 / over.as_secs_f64()),
        fmt_count(count as f64)
    )
}

fn flow_row(label: &str, f: &Flow) -> String {
    format!(
        "| {label} | {} | {} | {} | {} | yes, seq {} | {} |",
        rate(f.published, f.writing),
        rate(f.revisions, f.total),
        rate(f.written_b, f.total),
        rate(f.seen_b, f.total),
        f.last,
        fmt_ns(f.total.saturating_sub(f.writing).as_nanos() as f64),
    )
}

fn command_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

fn cpu() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        info.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
    };
    let vm = field("flags").is_some_and(|f| f.split(' ').any(|x| x == "hypervisor"));
    format!(
        "{}{}",
        field("model name").unwrap_or_else(|| "unknown".into()),
        if vm { " (virtual machine)" } else { "" }
    )
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split(' ').take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Other processes running (state R) now, by name: what competes with the
/// run for the CPUs.
fn busy_processes() -> String {
    let me = std::process::id().to_string();
    let mut names = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let pid = entry.file_name();
        let Some(pid) = pid.to_str() else { continue };
        if !pid.bytes().all(|b| b.is_ascii_digit()) || pid == me {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ...: comm may hold spaces and parentheses.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        if stat[close + 1..].trim_start().starts_with('R') {
            names.push(stat[open + 1..close].to_owned());
        }
    }
    names.sort();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

// ---------------------------------------------------------------------------
// main

/// The longest random pause before a publish in the paused ping-pongs.
const GAP: Duration = Duration::from_millis(5);

/// Everything the rows measured.
struct Measured {
    archive_len: usize,
    mirrored_in: Duration,
    latencies: Vec<(String, Histogram<u64>)>,
    flows: Vec<(String, Flow)>,
    gets: Histogram<u64>,
    reads: Histogram<u64>,
    status: Vec<String>,
}

fn measure(world: &mut World, s: &Settings) -> Measured {
    // The objects on A, then the bridges.
    let mut region = RegionSource {
        region: SharedRegion::<Sample>::creator()
            .with_schema()
            .create(world.a.key(REGION), CAPACITY)
            .expect("make the region on A"),
        value: sample(),
    };
    let archive_len = shmstore::rkyv::to_bytes::<shmstore::rkyv::rancor::Error>(&region.value)
        .expect("archive a sample")
        .len();
    let mut cell = CellSource(
        SharedCell::<Stamp>::creator()
            .type_name(CELL_TYPE)
            .create(world.a.key(CELL), stamp(0))
            .expect("make the cell on A"),
    );
    region.put(0);
    let started = Instant::now();
    world.start_bridges();
    let b = &world.b;
    let mut region_b = on_b("the region", || {
        RegionReader::<Sample>::opener()
            .with_schema()
            .open(b.key(REGION))
    });
    let mut cell_b = on_b("the cell", || {
        CellReader::<Stamp>::opener()
            .type_name(CELL_TYPE)
            .open(b.key(CELL))
    });
    reach(&region_b, 0, Duration::from_secs(30));
    reach(&cell_b, 0, Duration::from_secs(30));
    let mirrored_in = started.elapsed();
    let mut region_b_rw = SharedRegion::<Sample>::opener()
        .with_schema()
        .open(b.key(REGION))
        .expect("open the region on B read-write");
    let (mut region_seq, mut cell_seq) = (1, 1);

    let mut latencies = Vec::new();
    let (warm, n) = (s.warm(), s.samples());
    for (gap, how) in [
        (None, "back to back"),
        (Some(GAP), "each after a random pause below 5 ms"),
    ] {
        let label = |what: &str| format!("{what}, {how}");
        eprintln!("hops: publish on A → readable on B, {how}");
        let h;
        (region_b, h) = ping_pong(&mut region, &mut region_seq, region_b, gap, warm, n);
        latencies.push((label("`SharedRegion`, `RegionReader` on B"), h));
        let h;
        (region_b_rw, h) = ping_pong(&mut region, &mut region_seq, region_b_rw, gap, warm, n);
        latencies.push((label("`SharedRegion`, read-write handle on B"), h));
        let h;
        (cell_b, h) = ping_pong(&mut cell, &mut cell_seq, cell_b, gap, warm, n);
        latencies.push((label("`SharedCell<[u64; 8]>`, `CellReader` on B"), h));
    }

    let bucket = Bucket::connect(&world.url());
    let mut flows = Vec::new();
    eprintln!("hops: sustained");
    let f;
    (region_b, f) = sustain(
        &mut region,
        &mut region_seq,
        region_b,
        s.sustain(),
        &bucket,
        b,
        REGION,
    );
    flows.push(("`SharedRegion`, `RegionReader` on B".to_owned(), f));
    let f;
    (region_b_rw, f) = sustain(
        &mut region,
        &mut region_seq,
        region_b_rw,
        s.sustain(),
        &bucket,
        b,
        REGION,
    );
    flows.push(("`SharedRegion`, read-write handle on B".to_owned(), f));
    let f;
    (cell_b, f) = sustain(
        &mut cell,
        &mut cell_seq,
        cell_b,
        s.sustain(),
        &bucket,
        b,
        CELL,
    );
    flows.push(("`SharedCell<[u64; 8]>`, `CellReader` on B".to_owned(), f));

    eprintln!("hops: a read on B, kv.get and RegionReader::read");
    let gets = bucket.gets(REGION, s.warm(), s.samples());
    let reads = local_reads(&region_b, s.reads());
    let rows = latencies.iter().map(|(what, h)| (what.as_str(), h));
    for (what, h) in rows.chain([("kv.get", &gets), ("local reads", &reads)]) {
        assert!(!h.is_empty(), "{what}: nothing measured");
    }

    let mut status = Vec::new();
    for (host, name) in [(&world.a, REGION), (&world.a, CELL), (b, REGION), (b, CELL)] {
        match host.status(name) {
            Some(o) => status.push(format!(
                "{} `{name}`: {} {}, {} moved, {} errors{}",
                host.name,
                o.direction,
                o.state,
                o.moved,
                o.errors,
                o.last_error
                    .map_or(String::new(), |e| format!(" (last: {e})"))
            )),
            None => status.push(format!("{} `{name}`: not in its status", host.name)),
        }
    }
    drop((region_b, region_b_rw, cell_b, region, cell, bucket));
    Measured {
        archive_len,
        mirrored_in,
        latencies,
        flows,
        gets,
        reads,
        status,
    }
}

fn main() {
    let run_started = Instant::now();
    now_ns();
    let settings = Settings {
        quick: std::env::var_os(QUICK_ENV).is_some(),
    };
    let Some(exe) = nats_server() else {
        if std::env::var_os(REQUIRE_ENV).is_some_and(|v| v == "1") {
            eprintln!("hops: nats-server is not installed, and {REQUIRE_ENV}=1 asks for it");
            std::process::exit(1);
        }
        println!(
            "skipped: nats-server is not installed (apt-get install nats-server; \
             {REQUIRE_ENV}=1 makes this a failure)"
        );
        return;
    };
    init_logs();
    let machine = format!(
        "Machine: {}, {} cores (`available_parallelism`), {} (`uname -srm`), {}",
        cpu(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        command_line("uname", &["-srm"]),
        command_line(exe.to_str().unwrap_or("nats-server"), &["--version"]),
    );
    let (load_before, busy_before) = (load_average(), busy_processes());
    let date = command_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);

    let mut world = World::start(&exe);
    let m = measure(&mut world, &settings);
    let down = world.teardown();
    drop(world);
    let took = run_started.elapsed();

    let mut w = String::new();
    let mut line = |text: String| writeln!(w, "{text}").expect("write to a String");
    line(format!(
        "{machine}. Run on {date}, {:.1} s{}. Load average before the run: {load_before}, after \
         it: {}; other processes running at its start: {busy_before}; at its end: {}.\n",
        took.as_secs_f64(),
        if settings.quick {
            ", QUICK smoke settings (`HOPS_QUICK`)"
        } else {
            ""
        },
        load_average(),
        busy_processes(),
    ));
    line(format!(
        "Two bridges in one process, each on its own thread with a current-thread tokio \
         runtime; host A exports `bench/` from one private namespace of names, host B imports \
         it into another, in one IPC namespace; one `nats-server -js` on loopback; \
         `rescan_ms = {RESCAN_MS}`. The region's value archives to {} bytes; the cell holds \
         `[u64; 8]`. Both objects were on B {} after the bridges started.\n",
        m.archive_len,
        fmt_ns(m.mirrored_in.as_nanos() as f64),
    ));

    line(
        "| publish on A → readable on B, one value in flight | samples | p50 | p99 | p99.9 | max \
         |\n|---|---:|---:|---:|---:|---:|"
            .into(),
    );
    for (label, h) in &m.latencies {
        line(latency_row(label, h, 1.0));
    }
    line(format!(
        "\nFrom the writer's clock read just before its publish on A to B's reader holding the \
         value, woken by `wait_for_change`. The writer publishes the next value once B's reader \
         holds this one: at once (*back to back*), or after a pause drawn uniformly below \
         {} ms; {} untimed first.\n",
        GAP.as_millis(),
        settings.warm()
    ));

    line(format!(
        "| writer on A publishing nonstop for {} s | published on A | bucket revisions | \
         written on B by its bridge | distinct values B's reader saw | B ends on A's last | \
         B caught up after the writer stopped |\n|---|---:|---:|---:|---:|---|---:|",
        settings.sustain().as_secs()
    ));
    for (label, f) in &m.flows {
        line(flow_row(label, f));
    }
    line(
        "\nPer second (and in all): on A, of the writer's time; the others, of the time from \
         its first publish to B's reader holding its last value. *Bucket revisions*: the \
         bucket's stream's last sequence after, minus before (the exporter's puts); *written on \
         B*: the values B's bridge wrote into the local object (its status file); B's reader \
         waits with `wait_for_change` and reads the value each time it wakes (none it read \
         was older than one before it).\n"
            .into(),
    );

    let per_read = |q: f64| m.reads.value_at_quantile(q) as f64 / BATCH as f64;
    let get = |q: f64| m.gets.value_at_quantile(q) as f64;
    line(
        "| a read on B | samples | p50 | p99 | p99.9 | max |\n|---|---:|---:|---:|---:|---:|"
            .into(),
    );
    line(latency_row(
        "NATS KV `get` of the key (async-nats, current-thread runtime, loopback)",
        &m.gets,
        1.0,
    ));
    line(latency_row(
        &format!("`RegionReader::read()` of the imported region + two fields (batches of {BATCH})"),
        &m.reads,
        BATCH as f64,
    ));
    line(format!(
        "| `get` / local read | | {} | {} | {} | |",
        fmt_ratio(get(0.5) / per_read(0.5)),
        fmt_ratio(get(0.99) / per_read(0.99)),
        fmt_ratio(get(0.999) / per_read(0.999)),
    ));
    line(format!(
        "\nA local read is timed in batches of {BATCH} between two clock reads, each batch \
         recorded as its mean per read; a `get` is timed alone. hdrhistogram, three \
         significant digits.\n"
    ));

    line(format!(
        "Bridges: {} warnings or errors logged; status: {}. Torn down: {}; objects removed: \
         {}; server stopped.",
        WARNINGS.load(Ordering::Relaxed),
        m.status.join("; "),
        down.bridges
            .iter()
            .map(|(h, r)| match r {
                Ok(()) => format!("bridge {h} stopped"),
                Err(e) => format!("bridge {h} failed: {e}"),
            })
            .collect::<Vec<_>>()
            .join(", "),
        down.removed
            .iter()
            .map(|(h, n)| format!("{n} on {h}"))
            .collect::<Vec<_>>()
            .join(", "),
    ));
    print!("{w}");
    let _ = std::io::stdout().flush();
    assert!(down.left.is_empty(), "objects left behind: {:?}", down.left);
    for (host, r) in &down.bridges {
        if let Err(e) = r {
            panic!("bridge {host} failed: {e}");
        }
    }
}
