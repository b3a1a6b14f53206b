//! The bridge at its edges: the exporting host's type upgraded, a name
//! handed over from one host to another, entries a peer makes to claim
//! huge objects, values over the server's max_payload, a peer's key with
//! escape sequences, the status of a stopped bridge, the default status
//! file with a link planted beside it, and one local object whose lock is
//! held by a stopped process.

mod common;

use std::time::{Duration, Instant};

use common::objects::{Config, ConfigV2, EXPORT, IMPORT, config, fresh, key, with_bucket};
use common::{Host, Server, child_args, report, report_of, state_of};
use shmstore::{Error, Key, Kind, RegionReader, SharedRegion, TypeDesc};
use shmstore_bridge::Envelope;

#[test]
fn child_entry() {
    let Some(args) = child_args() else { return };
    let (name, ns) = (args[1].as_str(), args[2].as_str());
    match args[0].as_str() {
        "publish" => {
            let seq: u64 = args[3].parse().unwrap();
            let region = SharedRegion::<Config>::creator()
                .with_schema()
                .open_or_create(key(name, ns), 4096)
                .unwrap();
            region.publish(&config(seq)).unwrap();
        }
        // A region of 1 MiB whose archive nearly fills it.
        "publish_big" => {
            let region = SharedRegion::<Config>::creator()
                .with_schema()
                .open_or_create(key(name, ns), 1 << 20)
                .unwrap();
            let mut c = config(args[3].parse().unwrap());
            c.name = "x".repeat((1 << 20) - 100);
            region.publish(&c).unwrap();
        }
        "remove" => {
            if let Ok(r) = shmstore::raw::RawOptions::new().open(key(name, ns)) {
                r.remove().unwrap();
            }
        }
        // The writer upgraded: the name made again with the next type.
        "make_v2" => {
            if let Ok(r) = shmstore::raw::RawOptions::new().open(key(name, ns)) {
                r.remove().unwrap();
            }
            let region = SharedRegion::<ConfigV2>::creator()
                .with_schema()
                .create(key(name, ns), 4096)
                .unwrap();
            region
                .publish(&ConfigV2 {
                    seq: args[3].parse().unwrap(),
                    name: "v2".into(),
                    ports: vec![],
                    weight: 1,
                })
                .unwrap();
        }
        // What the object holds: `absent`, `v1 SEQ`, `v2 SEQ` or `other`.
        "read_any" => {
            let k = key(name, ns);
            let v1 = RegionReader::<Config>::opener().with_schema().open(k);
            let v2 = RegionReader::<ConfigV2>::opener().with_schema().open(k);
            let what = match (v1, v2) {
                (Err(Error::NotFound { .. }), _) => "absent".to_owned(),
                (Ok(r), _) => match r.read() {
                    Ok(v) => format!("v1 {}", v.seq),
                    Err(e) => format!("v1 error {e}"),
                },
                (_, Ok(r)) => match r.read() {
                    Ok(v) => format!("v2 {}", v.seq),
                    Err(e) => format!("v2 error {e}"),
                },
                (Err(e), _) => format!("other {e}"),
            };
            report("holds", what);
        }
        other => panic!("unknown role {other}"),
    }
    std::process::exit(0);
}

fn holds(host: &Host, name: &str) -> String {
    report_of(&host.run(&["read_any", name, &host.ns_arg()]), "holds")
        .unwrap()
        .to_owned()
}

/// Wait up to `within` until `host`'s object `name` holds `want`; what it
/// holds last.
fn wait_holds(host: &Host, name: &str, want: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let got = holds(host, name);
        if got == want || Instant::now() >= deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Wait until the bridge says the server answers (the bucket is made).
fn wait_connected(bridge: &common::Bridge) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while bridge.status().is_none_or(|s| s["connected"] != true) {
        assert!(Instant::now() < deadline, "the bridge never connected");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The exporting host's object made again with the next type (removed
/// and made again while its bridge was stopped, as a deploy does): the
/// importer makes its own object again with the new identity, and its
/// readers open the name again.
#[test]
fn a_type_upgraded_on_the_exporting_host_reaches_the_importers() {
    let Some(server) = Server::start() else {
        return;
    };
    let (a, b) = (Host::new("a", true), Host::new("b", true));
    let name = fresh("upgrade");
    a.run(&["publish", &name, &a.ns_arg(), "1"]);
    let ca = a.config(&server.url(), EXPORT);
    let mut ba = a.bridge(&ca);
    let _bb = b.bridge(&b.config(&server.url(), IMPORT));
    assert_eq!(
        wait_holds(&b, &name, "v1 1", Duration::from_secs(30)),
        "v1 1"
    );
    ba.kill();
    a.run(&["make_v2", &name, &a.ns_arg(), "2"]);
    let _ba = a.bridge(&ca);
    let got = wait_holds(&b, &name, "v2 2", Duration::from_secs(10));
    a.run(&["remove", &name, &a.ns_arg()]);
    assert_eq!(got, "v2 2", "B never got the upgraded object");
}

/// The hand-over the refusal describes: the first host's bridge stopped
/// for good and the key deleted, the refused host takes the name.
#[test]
fn a_refused_exporter_takes_the_name_once_its_key_is_deleted() {
    let Some(server) = Server::start() else {
        return;
    };
    let (a, c, b) = (
        Host::new("a", true),
        Host::new("c", true),
        Host::new("b", true),
    );
    let name = fresh("handover");
    a.run(&["publish", &name, &a.ns_arg(), "1"]);
    let mut ba = a.bridge(&a.config(&server.url(), EXPORT));
    let _bb = b.bridge(&b.config(&server.url(), IMPORT));
    assert_eq!(
        wait_holds(&b, &name, "v1 1", Duration::from_secs(30)),
        "v1 1"
    );
    c.run(&["publish", &name, &c.ns_arg(), "1000"]);
    let bc = c.bridge(&c.config(&server.url(), EXPORT));
    bc.wait_object(&name, "C refused", |o| o["state"] == "refused");
    // The hand-over as the message says: A's bridge stopped for good, the
    // key deleted.
    ba.kill();
    let k = shmstore_bridge::keys::key_of(&name);
    with_bucket(&server, async |kv, _| kv.delete(k.as_str()).await.unwrap());
    c.run(&["publish", &name, &c.ns_arg(), "1001"]);
    let got = wait_holds(&b, &name, "v1 1001", Duration::from_secs(10));
    a.run(&["remove", &name, &a.ns_arg()]);
    c.run(&["remove", &name, &c.ns_arg()]);
    assert_eq!(got, "v1 1001", "C never took the name over");
}

/// Entries a peer may write that claim huge objects (a cell of 0 bytes
/// aligned to 2^31, a region without a schema whose root is 4 GiB, with no
/// value): refused, and no segment of a GiB is made.
#[test]
fn entries_that_claim_huge_objects_make_none() {
    let Some(server) = Server::start() else {
        return;
    };
    // One IPC namespace (a private namespace of names), to look at B's
    // segments from here.
    let b = Host::new("b", false);
    let before: Vec<i32> = segments().into_iter().map(|(id, _)| id).collect();
    let bb = b.bridge(&b.config(&server.url(), IMPORT));
    // The bridge makes the bucket.
    wait_connected(&bb);
    let cell = fresh("huge-cell");
    let region = fresh("huge-region");
    let extra = {
        let r = SharedRegion::<String>::create(Key::PRIVATE, 256).unwrap();
        let e = shmstore::raw::RawReader::open(shmstore::Target::Id(r.id()))
            .unwrap()
            .identity()
            .extra;
        r.remove().unwrap();
        e
    };
    let entries = [
        (
            cell.clone(),
            TypeDesc {
                kind: Kind::Cell,
                name: "peer::Zst".into(),
                size: 0,
                align: 1 << 31,
                schema_version: 0,
                extra: 0,
                schema: None,
            },
        ),
        (
            region.clone(),
            TypeDesc {
                kind: Kind::Region,
                name: "peer::Huge".into(),
                size: 0xffff_ff00,
                align: 16,
                schema_version: 0,
                extra,
                schema: None,
            },
        ),
    ];
    for (name, identity) in entries {
        let e = Envelope {
            identity,
            origin: "peer".into(),
            version: 1,
            read_at_ns: 0,
            capacity: 0,
            bytes: vec![],
        };
        let k = shmstore_bridge::keys::key_of(&name);
        with_bucket(&server, async |kv, _| {
            kv.put(k.as_str(), e.encode().into()).await.unwrap()
        });
    }
    for name in [&cell, &region] {
        bb.wait_object(name, "B looked at the entry", |o| {
            o["state"] == "mirrored" || o["state"] == "refused"
        });
    }
    // Every segment made since the test started, of 1 GiB or more, is
    // removed here (the cell's is refused as corrupt by every open, so
    // by id).
    let big: Vec<(i32, u64)> = segments()
        .into_iter()
        .filter(|(id, size)| *size >= 1 << 30 && !before.contains(id))
        .collect();
    for (id, _) in &big {
        // SAFETY: IPC_RMID of a segment this test's bridge made.
        unsafe { libc::shmctl(*id, libc::IPC_RMID, std::ptr::null_mut()) };
    }
    for name in [&cell, &region] {
        eprintln!("{name}: B's status {:?}", bb.object(name));
    }
    assert!(big.is_empty(), "segments (id, bytes) made by B: {big:?}");
}

/// The segments of this IPC namespace: (id, size).
fn segments() -> Vec<(i32, u64)> {
    std::fs::read_to_string("/proc/sysvipc/shm")
        .unwrap()
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((f.get(1)?.parse().ok()?, f.get(3)?.parse().ok()?))
        })
        .collect()
}

/// A region whose archive nearly fills a MiB: refused for its capacity by
/// default, and with `max_value_bytes` raised, refused at once for the
/// server's `max_payload`, naming the limit, not tried for ever.
#[test]
fn a_value_over_the_servers_max_payload_is_refused_at_once() {
    let Some(server) = Server::start() else {
        return;
    };
    let (a, b) = (Host::new("a", true), Host::new("b", true));
    let name = fresh("big");
    a.run(&["publish_big", &name, &a.ns_arg(), "1"]);
    // Within the default `max_value_bytes` the object is refused for its
    // capacity; a host that raised it meets the server's limit.
    let default = a.bridge(&a.config(&server.url(), EXPORT));
    let o = default.wait_object(&name, "refused for its capacity", |o| {
        o["state"] == "refused"
    });
    assert!(
        o["last_error"]
            .as_str()
            .unwrap()
            .contains("max_value_bytes"),
        "{o}"
    );
    drop(default);
    let raised = format!("max_value_bytes = 4194304\n{EXPORT}");
    let ba = a.bridge(&a.config(&server.url(), &raised));
    let _bb = b.bridge(&b.config(&server.url(), IMPORT));
    let o = ba.wait_object(&name, "refused for the server's limit", |o| {
        o["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("max_payload"))
    });
    assert_eq!(o["state"], "refused");
    // Once, not for ever: the next change is tried, nothing in between.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(ba.object(&name).unwrap()["errors"], o["errors"]);
    assert_eq!(ba.status().unwrap()["connected"], true);
    assert_eq!(holds(&b, &name), "absent");
    a.run(&["remove", &name, &a.ns_arg()]);
}

/// A peer's key whose name would hold escape sequences: refused (no
/// shmstore name holds a control character), and `status` prints nothing
/// of it raw.
#[test]
fn a_peers_key_with_escape_sequences_reaches_no_terminal() {
    let Some(server) = Server::start() else {
        return;
    };
    let b = Host::new("b", true);
    let bb = b.bridge(&b.config(&server.url(), IMPORT));
    wait_connected(&bb);
    let name = "acme/\u{1b}]0;owned\u{7}\u{1b}[2J".to_owned();
    let k = shmstore_bridge::keys::key_of(&name);
    with_bucket(&server, async |kv, _| {
        kv.put(k.as_str(), b"garbage".to_vec().into())
            .await
            .unwrap()
    });
    // Refused as the key of no name: nothing is made, nothing is shown.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(bb.object(&name), None);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_shmstore-bridge"))
        .args(["status", "--config"])
        .arg(&bb.config)
        .output()
        .unwrap();
    assert!(
        !out.stdout.contains(&0x1b),
        "status printed a peer's escape sequence: {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// SIGTERM stops the bridge at once and cleanly, and `status` then says
/// it stopped, not that it is connected.
#[test]
fn the_status_of_a_stopped_bridge_says_so() {
    let Some(server) = Server::start() else {
        return;
    };
    let b = Host::new("b", true);
    let config = b.config(&server.url(), IMPORT);
    let mut child = b
        .command(env!("CARGO_BIN_EXE_shmstore-bridge"))
        .args(["run", "--config"])
        .arg(&config)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let status = config.parent().unwrap().join("status.json");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = std::fs::read(&status).unwrap_or_default();
        if serde_json::from_slice::<serde_json::Value>(&s).is_ok_and(|v| v["connected"] == true) {
            break;
        }
        assert!(Instant::now() < deadline, "never connected");
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let t = Instant::now();
    let code = child.wait().unwrap();
    assert!(t.elapsed() < Duration::from_secs(5), "slow to stop");
    assert!(code.success(), "{code}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_shmstore-bridge"))
        .args(["status", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(": stopped,"),
        "status of a stopped bridge: {text}"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_shmstore-bridge"))
        .args(["status", "--json", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["running"], false);
    assert_eq!(json["stopped"], true);
}

/// Without `status_file` and `XDG_RUNTIME_DIR` the status goes to /tmp:
/// a link planted where the temporary file once was named (from the pid)
/// is never written through.
#[test]
fn the_default_status_file_follows_no_link() {
    let dir = common::TempDir::new("symlink");
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    let bucket = format!("edges_{}", std::process::id());
    let config = dir.path().join("bridge.toml");
    // No server listens there: the status is written anyway.
    std::fs::write(
        &config,
        format!(
            "server = \"nats://127.0.0.1:{}\"\nhost = \"x\"\nbucket = {bucket:?}\n{IMPORT}",
            common::free_port()
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_shmstore-bridge"))
        .args(["run", "--config"])
        .arg(&config)
        .env_remove("XDG_RUNTIME_DIR")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    let tmp = format!("/tmp/shmstore-bridge-{uid}-{bucket}.tmp.{}", child.id());
    let json = format!("/tmp/shmstore-bridge-{uid}-{bucket}.json");
    // What another user would do, having seen the pid.
    std::thread::sleep(Duration::from_millis(100));
    std::os::unix::fs::symlink(&victim, &tmp).unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_file(&tmp);
    let _ = std::fs::remove_file(&json);
    let now = std::fs::read_to_string(&victim).unwrap();
    assert_eq!(now, "precious\n", "the bridge wrote through the symlink");
}

/// A local process on the importing host stopped while it holds the lock
/// of one imported object: that name waits, every other name is still
/// imported.
#[test]
fn one_stuck_local_object_stalls_no_other_name() {
    let Some(server) = Server::start() else {
        return;
    };
    let (a, b) = (Host::new("a", true), Host::new("b", true));
    let (x, y) = (fresh("locked-x"), fresh("locked-y"));
    a.run(&["publish", &x, &a.ns_arg(), "1"]);
    a.run(&["publish", &y, &a.ns_arg(), "1"]);
    let _ba = a.bridge(&a.config(&server.url(), EXPORT));
    let _bb = b.bridge(&b.config(&server.url(), IMPORT));
    assert_eq!(wait_holds(&b, &x, "v1 1", Duration::from_secs(30)), "v1 1");
    assert_eq!(wait_holds(&b, &y, "v1 1", Duration::from_secs(30)), "v1 1");
    // A local process on B stops holding x's lock.
    let mut stopped = b
        .child_command(&["publish", &x, &b.ns_arg(), "500"])
        .env("SHMSTORE_CRASH_AT", "region.after_lock:stop")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while state_of(stopped.id()) != Some('T') {
        assert!(Instant::now() < deadline, "the local writer did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
    a.run(&["publish", &x, &a.ns_arg(), "2"]);
    std::thread::sleep(Duration::from_millis(500));
    a.run(&["publish", &y, &a.ns_arg(), "2"]);
    let got = wait_holds(&b, &y, "v1 2", Duration::from_secs(10));
    let _ = stopped.kill();
    let _ = stopped.wait();
    a.run(&["remove", &x, &a.ns_arg()]);
    a.run(&["remove", &y, &a.ns_arg()]);
    assert_eq!(got, "v1 2", "y was not imported while x's lock was held");
}
