//! What the bridge's tests share: a real `nats-server -js` on a free
//! loopback port with its store in a temporary directory; hosts (two IPC
//! namespaces as root, `unshare --ipc`; else private name namespaces of one
//! IPC namespace, which give a name other keys); bridges run as processes
//! of the built binary; and the test binary re-executed as a writer or a
//! reader on a host.
#![allow(dead_code)]

pub mod objects;

use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const ARGS_ENV: &str = "SHMSTORE_BRIDGE_TEST_CHILD";
const SEP: char = '\u{1f}';

/// A fresh directory under the system's temporary one, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(what: &str) -> TempDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "shmstore-bridge-{what}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The `nats-server` to run, or `None` (the caller skips, saying why).
pub fn nats_server() -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/bin")])
        .map(|d| d.join("nats-server"))
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var_os("SHMSTORE_BRIDGE_REQUIRE_NATS").is_none(),
            "nats-server is not installed, and SHMSTORE_BRIDGE_REQUIRE_NATS says the bridge's \
             tests must run (apt-get install nats-server)"
        );
        eprintln!(
            "skipped: nats-server is not installed (apt-get install nats-server; .ci/run installs \
             it)"
        );
    }
    found
}

/// A running `nats-server -js`, stopped on drop.
pub struct Server {
    exe: PathBuf,
    pub port: u16,
    store: TempDir,
    child: Option<Child>,
}

impl Server {
    /// Start one on a free port, or `None` if nats-server is missing.
    pub fn start() -> Option<Server> {
        let exe = nats_server()?;
        let port = free_port();
        let mut s = Server {
            exe,
            port,
            store: TempDir::new("nats"),
            child: None,
        };
        s.up();
        Some(s)
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Start it again (same port, same store).
    pub fn up(&mut self) {
        assert!(self.child.is_none(), "the server runs already");
        let child = Command::new(&self.exe)
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(self.store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stop it (SIGKILL: a crash, not a clean shutdown).
    pub fn down(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.down();
    }
}

/// A port no one listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The state of process `pid` (`R`, `S`, `D`, `T` stopped, `Z`...), as
/// `/proc/PID/stat` gives it; `None` once it is gone.
pub fn state_of(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The state follows the command's closing parenthesis.
    stat.rsplit_once(") ")?.1.chars().next()
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A host: its own IPC namespace (root: a process holds it, and every
/// process of the host enters it), or, as an ordinary user, a private
/// namespace of names in this IPC namespace.
pub struct Host {
    pub name: String,
    /// The process that holds the IPC namespace (root).
    holder: Option<Child>,
    /// The private namespace of names (not root), also the host's scratch.
    pub dir: TempDir,
}

impl Host {
    /// A host named `name`: its own IPC namespace when `separate` and
    /// root, else a private namespace of names.
    pub fn new(name: &str, separate: bool) -> Host {
        let holder = (separate && is_root()).then(|| {
            let mut c = Command::new("unshare")
                .args(["--ipc", "--", "sh", "-c", "echo up; exec sleep 100000"])
                .stdout(Stdio::piped())
                .spawn()
                .expect("unshare --ipc");
            let mut line = String::new();
            BufReader::new(c.stdout.take().unwrap())
                .read_line(&mut line)
                .unwrap();
            assert_eq!(line.trim(), "up", "unshare --ipc did not start");
            c
        });
        let dir = TempDir::new(name);
        let names = dir.path().join("names");
        std::fs::create_dir(&names).unwrap();
        std::fs::set_permissions(&names, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .unwrap();
        Host {
            name: name.into(),
            holder,
            dir,
        }
    }

    /// Whether the host has an IPC namespace of its own.
    pub fn separate(&self) -> bool {
        self.holder.is_some()
    }

    /// The namespace directory argument of the children: `-` for the
    /// public names of the host's own IPC namespace.
    pub fn ns_arg(&self) -> String {
        if self.separate() {
            "-".into()
        } else {
            self.dir.path().join("names").display().to_string()
        }
    }

    /// A command that runs `program` on this host.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        match &self.holder {
            Some(h) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--ipc=/proc/{}/ns/ipc", h.id()))
                    .arg("--")
                    .arg(program);
                c
            }
            None => Command::new(program),
        }
    }

    /// The bridge's configuration on this host.
    pub fn config(&self, server: &str, body: &str) -> PathBuf {
        let path = self.dir.path().join("bridge.toml");
        let ns = if self.separate() {
            String::new()
        } else {
            format!("namespace = {:?}\n", self.ns_arg())
        };
        let status = self.dir.path().join("status.json");
        std::fs::write(
            &path,
            format!(
                "server = {server:?}\nhost = {:?}\nbucket = \"test\"\nrescan_ms = 100\nstatus_file \
                 = {:?}\n{ns}{body}",
                self.name,
                status.display().to_string()
            ),
        )
        .unwrap();
        path
    }

    /// A command that runs the test binary's `child_entry` on this host
    /// with `args`.
    pub fn child_command(&self, args: &[&str]) -> Command {
        let exe = std::env::current_exe().unwrap();
        let mut c = self.command(exe);
        c.args([
            "child_entry",
            "--exact",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env(ARGS_ENV, args.join(&SEP.to_string()));
        c
    }

    /// Run the test binary's `child_entry` on this host with `args`.
    pub fn child(&self, args: &[&str]) -> Kid {
        let mut c = self.child_command(args);
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        Kid::start(c)
    }

    /// Run `child_entry` with `args` to its end; its reports.
    pub fn run(&self, args: &[&str]) -> Vec<(String, String)> {
        let mut kid = self.child(args);
        let status = kid.wait();
        assert!(status.success(), "child {args:?} failed: {status}");
        kid.reports.clone()
    }

    /// Start a bridge on this host with the configuration at `config`.
    pub fn bridge(&self, config: &Path) -> Bridge {
        self.bridge_with(config, &[])
    }

    /// Start a bridge with `env` added to its environment.
    pub fn bridge_with(&self, config: &Path, env: &[(&str, &str)]) -> Bridge {
        let mut c = self.command(env!("CARGO_BIN_EXE_shmstore-bridge"));
        c.envs(env.iter().copied());
        c.args(["run", "--config"])
            .arg(config)
            .env("RUST_LOG", "shmstore_bridge=debug,warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = c.spawn().expect("start shmstore-bridge");
        let err = child.stderr.take().unwrap();
        let host = self.name.clone();
        // Its log, prefixed by the host, for failures.
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                eprintln!("[bridge {host}] {line}");
            }
        });
        Bridge {
            child,
            status: config.parent().unwrap().join("status.json"),
            config: config.to_owned(),
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        // What a failed test left in this host's namespace of names.
        if self.holder.is_none()
            && let Ok(objects) = shmstore::inspect::objects()
        {
            let dir = self.dir.path().join("names");
            for o in objects {
                let Some(name) = o.name() else { continue };
                let Ok(key) = shmstore::Key::named_in(&dir, name) else {
                    continue;
                };
                if let Ok(object) = shmstore::raw::RawOptions::new().open(key)
                    && object.id() == o.info.id
                {
                    let _ = object.remove();
                }
            }
        }
        if let Some(mut h) = self.holder.take() {
            let _ = h.kill();
            let _ = h.wait();
        }
    }
}

/// A running bridge, killed (SIGKILL) on drop.
pub struct Bridge {
    child: Child,
    pub status: PathBuf,
    pub config: PathBuf,
}

impl Bridge {
    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Wait until it exited or stopped itself (`SIGSTOP`): `true` if it
    /// exited.
    pub fn wait_dead_or_stopped(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if self.child.try_wait().unwrap().is_some() {
                return true;
            }
            if state_of(self.child.id()) == Some('T') {
                return false;
            }
            assert!(
                Instant::now() < deadline,
                "the bridge neither died nor stopped"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Continue it after a stop.
    pub fn resume(&self) {
        // SAFETY: kill has no memory preconditions; the pid is our child's,
        // not yet waited for.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGCONT);
        }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Its status file, parsed, once it exists.
    pub fn status(&self) -> Option<serde_json::Value> {
        let bytes = std::fs::read(&self.status).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// One object's entry in the status, once it exists.
    pub fn object(&self, name: &str) -> Option<serde_json::Value> {
        self.status()?.get("objects")?.get(name).cloned()
    }

    /// Wait until `check` holds of the object's status entry.
    pub fn wait_object(
        &self,
        name: &str,
        what: &str,
        check: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(o) = self.object(name)
                && check(&o)
            {
                return o;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: status of {name} is {:?}",
                self.object(name)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The arguments of this process if it is a child, else `None`.
pub fn child_args() -> Option<Vec<String>> {
    let raw = std::env::var(ARGS_ENV).ok()?;
    Some(raw.split(SEP).map(str::to_owned).collect())
}

/// Print a `@name=value` line for the parent.
pub fn report(name: &str, value: impl std::fmt::Display) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "@{name}={value}").unwrap();
    out.flush().unwrap();
}

/// A child of the test binary, killed on drop.
pub struct Kid {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    pub reports: Vec<(String, String)>,
}

impl Kid {
    fn start(mut c: Command) -> Kid {
        let mut child = c.spawn().expect("start a child");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(out);
            let mut line = String::new();
            while r.read_line(&mut line).unwrap_or(0) > 0 {
                if tx.send(std::mem::take(&mut line)).is_err() {
                    break;
                }
            }
        });
        Kid {
            child,
            lines: rx,
            reports: Vec::new(),
        }
    }

    /// The next report, which must be `name`; waits up to a minute.
    pub fn expect(&mut self, name: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no report {name} from the child"));
            if let Some((k, v)) = line
                .trim_end()
                .strip_prefix('@')
                .and_then(|l| l.split_once('='))
            {
                self.reports.push((k.into(), v.into()));
                assert_eq!(k, name, "report {k}={v} while {name} was expected");
                return v.into();
            }
        }
    }

    /// Close its stdin (the children that run until told stop then).
    pub fn stop(&mut self) {
        drop(self.child.stdin.take());
    }

    pub fn wait(&mut self) -> std::process::ExitStatus {
        let status = self.child.wait().unwrap();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            if let Some((k, v)) = line
                .trim_end()
                .strip_prefix('@')
                .and_then(|l| l.split_once('='))
            {
                self.reports.push((k.into(), v.into()));
            }
        }
        status
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether stdin was closed (for children told to stop by it).
pub fn stdin_closed_flag() -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let f = flag.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        while std::io::stdin().read(&mut buf).unwrap_or(0) > 0 {}
        f.store(true, Ordering::SeqCst);
    });
    flag
}

/// The report `name`'s value among `reports`.
pub fn report_of<'a>(reports: &'a [(String, String)], name: &str) -> Option<&'a str> {
    reports
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}
