//! Two hosts share named objects through a real `nats-server -js`: a
//! writer on host A, a reader on host B, a bridge on each. Every fault the
//! bridge promises to survive is made here: the server down at start and
//! during the run, restarted; a bridge killed with -9 and started again; a
//! writer killed in the middle of a publish; two hosts exporting one name;
//! a local object of another type; bad bytes put in the bucket by a peer; a
//! key deleted. Without nats-server these tests skip, saying why; as an
//! ordinary user, hosts are private namespaces of names in one IPC
//! namespace (root gives each host its own, `unshare --ipc`).

mod common;

use std::time::{Duration, Instant};

use common::objects::{Config, ConfigV2, EXPORT, IMPORT, config, fresh, key, with_bucket};
use common::{Host, Server, child_args, report, report_of, state_of, stdin_closed_flag};
use shmstore::{Error, RegionReader, SharedCell, SharedRegion};

fn open_reader(name: &str, ns: &str, within: Duration) -> Option<RegionReader<Config>> {
    let deadline = Instant::now() + within;
    loop {
        match RegionReader::<Config>::opener()
            .with_schema()
            .open(key(name, ns))
        {
            Ok(r) => return Some(r),
            Err(Error::NotFound { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(Error::NotFound { .. }) => return None,
            Err(e) => panic!("open {name}: {e}"),
        }
    }
}

#[test]
fn child_entry() {
    let Some(args) = child_args() else { return };
    let (name, ns) = (args[1].as_str(), args[2].as_str());
    match args[0].as_str() {
        // Publish seq FROM..=TO into the region (made if missing).
        "publish" => {
            let (from, to): (u64, u64) = (args[3].parse().unwrap(), args[4].parse().unwrap());
            let region = SharedRegion::<Config>::creator()
                .with_schema()
                .open_or_create(key(name, ns), 4096)
                .unwrap();
            for seq in from..=to {
                region.publish(&config(seq)).unwrap();
            }
            report("last", to);
            report("version", region.version());
        }
        // Publish seq 1 with the crash point armed by the parent.
        "publish_and_die" => {
            let region = SharedRegion::<Config>::creator()
                .with_schema()
                .open_or_create(key(name, ns), 4096)
                .unwrap();
            report("ready", 1);
            region.publish(&config(args[3].parse().unwrap())).unwrap();
            report("survived", 1);
        }
        // What the region holds now.
        "read" => match open_reader(name, ns, Duration::ZERO) {
            None => report("seq", "absent"),
            Some(r) => match r.read() {
                Ok(v) => {
                    report("seq", v.seq);
                    report("version", r.version());
                }
                Err(e) => report("seq", format!("error {e}")),
            },
        },
        // Follow the region until it holds seq LAST: every value read is
        // checked to be no older than the one before.
        "follow" => {
            let last: u64 = args[3].parse().unwrap();
            let r = open_reader(name, ns, Duration::from_secs(60)).expect("the object appears");
            let (mut prev, mut seen, mut backwards, mut repeats) = (0u64, 0u64, 0u64, 0u64);
            let mut at = 0;
            let mut last_version = 0;
            let deadline = Instant::now() + Duration::from_secs(120);
            loop {
                if let Ok(v) = r.read() {
                    let seq = v.seq.to_native();
                    if seq < prev {
                        backwards += 1;
                    }
                    if seq != prev {
                        seen += 1;
                    } else if r.version() != last_version && last_version != 0 {
                        // A new version of the same value: written twice.
                        repeats += 1;
                    }
                    last_version = r.version();
                    prev = seq;
                    if prev >= last {
                        break;
                    }
                }
                assert!(Instant::now() < deadline, "stuck at seq {prev}");
                at = r.wait_for_change(at, Some(Duration::from_secs(1))).unwrap();
            }
            report("seq", prev);
            report("seen", seen);
            report("backwards", backwards);
            report("repeats", repeats);
            report("version", r.version());
        }
        // Wait until the object is removed.
        "wait_removed" => {
            let r = open_reader(name, ns, Duration::from_secs(30)).expect("the object");
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut at = r.version();
            loop {
                match r.wait_for_change(at, Some(Duration::from_secs(1))) {
                    Ok(v) => at = v,
                    Err(Error::Removed { .. }) => break,
                    Err(e) => panic!("{e}"),
                }
                assert!(Instant::now() < deadline, "not removed");
            }
            report("removed", 1);
        }
        "capacity" => {
            let r = open_reader(name, ns, Duration::from_secs(30)).expect("the object");
            report("capacity", r.capacity());
        }
        "remove" => {
            if let Ok(r) = SharedRegion::<Config>::opener()
                .with_schema()
                .open(key(name, ns))
            {
                r.remove().unwrap();
            }
            report("removed", 1);
        }
        // Make the name hold another type, and stay until stdin closes.
        "squat_v2" => {
            let region = SharedRegion::<ConfigV2>::creator()
                .with_schema()
                .create(key(name, ns), 4096)
                .unwrap();
            region
                .publish(&ConfigV2 {
                    seq: 99,
                    name: "local".into(),
                    ports: vec![],
                    weight: 1,
                })
                .unwrap();
            report("made", 1);
            let closed = stdin_closed_flag();
            while !closed.load(std::sync::atomic::Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(20));
            }
            report("seq_after", region.read().unwrap().seq);
            region.remove().unwrap();
        }
        "cell" => {
            let cell = SharedCell::<[u64; 2]>::creator()
                .type_name("acme.Pair")
                .open_or_create(key(name, ns), [0, 0])
                .unwrap();
            cell.store([args[3].parse().unwrap(), 7]).unwrap();
            report("stored", 1);
        }
        "read_cell" => {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                match SharedCell::<[u64; 2], shmstore::ReadOnly>::opener()
                    .type_name("acme.Pair")
                    .open(key(name, ns))
                {
                    Ok(c) => {
                        let want: u64 = args[3].parse().unwrap();
                        while c.load()[0] != want {
                            assert!(Instant::now() < deadline, "cell holds {:?}", c.load());
                            c.wait_for_change(c.version(), Some(Duration::from_millis(200)))
                                .unwrap();
                        }
                        report("value", format!("{:?}", c.load()));
                        break;
                    }
                    Err(Error::NotFound { .. }) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(10))
                    }
                    Err(e) => panic!("{e}"),
                }
            }
        }
        "cell_as" => {
            let cell = SharedCell::<[u64; 2]>::creator()
                .type_name(args[3].as_str())
                .create(key(name, ns), [args[4].parse().unwrap(), 7])
                .unwrap();
            report("stored", cell.version());
        }
        "read_cell_as" => {
            let cell = SharedCell::<[u64; 2], shmstore::ReadOnly>::opener()
                .type_name(args[3].as_str())
                .open(key(name, ns))
                .unwrap();
            report("value", format!("{:?}", cell.load()));
        }
        "remove_cell_as" => {
            SharedCell::<[u64; 2]>::opener()
                .type_name(args[3].as_str())
                .open(key(name, ns))
                .unwrap()
                .remove()
                .unwrap();
        }
        "remove_cell" => {
            SharedCell::<[u64; 2]>::opener()
                .type_name("acme.Pair")
                .open(key(name, ns))
                .unwrap()
                .remove()
                .unwrap();
        }
        // Wait until no cell has the name.
        "cell_removed" => {
            let deadline = Instant::now() + Duration::from_secs(30);
            while SharedCell::<[u64; 2], shmstore::ReadOnly>::opener()
                .type_name("acme.Pair")
                .open(key(name, ns))
                .is_ok()
            {
                assert!(Instant::now() < deadline, "the cell is still there");
                std::thread::sleep(Duration::from_millis(20));
            }
            report("removed", 1);
        }
        other => panic!("unknown role {other}"),
    }
    std::process::exit(0);
}

/// The seq the region `name` holds on `host`, or `absent`.
fn seq_on(host: &Host, name: &str) -> String {
    report_of(&host.run(&["read", name, &host.ns_arg()]), "seq")
        .unwrap()
        .to_owned()
}

/// Wait until `host`'s region `name` holds `want`.
fn wait_seq(host: &Host, name: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = seq_on(host, name);
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "host {} holds {got}, not {want}",
            host.name
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn two_hosts_share_a_configuration_through_ten_thousand_updates() {
    let Some(server) = Server::start() else {
        return;
    };
    if !common::is_root() {
        eprintln!(
            "note: not root, so the two hosts are private namespaces of names in one IPC \
             namespace rather than two IPC namespaces"
        );
    }
    let (a, b) = (Host::new("a", true), Host::new("b", true));
    let name = fresh("config");
    a.run(&["publish", &name, &a.ns_arg(), "1", "1"]);
    let bridge_a = a.bridge(&a.config(&server.url(), EXPORT));
    let bridge_b = b.bridge(&b.config(&server.url(), IMPORT));
    wait_seq(&b, &name, "1");

    // 10,000 updates on A; B's reader never goes back and ends on the last.
    let mut follower = b.child(&["follow", &name, &b.ns_arg(), "10001"]);
    a.run(&["publish", &name, &a.ns_arg(), "2", "10001"]);
    assert_eq!(follower.expect("seq"), "10001");
    let seen: u64 = follower.expect("seen").parse().unwrap();
    assert_eq!(follower.expect("backwards"), "0");
    assert_eq!(follower.expect("repeats"), "0");
    assert!(seen >= 1, "{seen}");
    assert!(follower.wait().success());

    let o = bridge_b.wait_object(&name, "B mirrored the last value", |o| {
        o["state"] == "mirrored" && o["version"] == 10001
    });
    assert_eq!(o["direction"], "import");
    let o = bridge_a.wait_object(&name, "A exported it", |o| o["version"] == 10001);
    assert_eq!(o["direction"], "export");
    assert_eq!(o["errors"], 0);

    // `status` shows it, as a table and as JSON.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_shmstore-bridge"))
        .args(["status", "--json", "--config"])
        .arg(&bridge_b.config)
        .output()
        .unwrap();
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["host"], "b");
    assert_eq!(json["objects"][&name]["state"], "mirrored");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_shmstore-bridge"))
        .args(["status", "--config"])
        .arg(&bridge_b.config)
        .output()
        .unwrap();
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        table.contains(&name) && table.contains("mirrored"),
        "{table}"
    );

    // Removed on A: removed on B, and B's readers see it.
    let mut waiter = b.child(&["wait_removed", &name, &b.ns_arg()]);
    std::thread::sleep(Duration::from_millis(200));
    a.run(&["remove", &name, &a.ns_arg()]);
    assert_eq!(waiter.expect("removed"), "1");
    wait_seq(&b, &name, "absent");
    drop(server);
}

#[test]
fn the_server_down_at_start_and_during_the_run_then_caught_up() {
    let Some(mut server) = Server::start() else {
        return;
    };
    server.down();
    let (a, b) = (Host::new("a", true), Host::new("b", true));
    let name = fresh("outage");
    a.run(&["publish", &name, &a.ns_arg(), "1", "1"]);
    let _ba = a.bridge(&a.config(&server.url(), EXPORT));
    let bb = b.bridge(&b.config(&server.url(), IMPORT));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(seq_on(&b, &name), "absent");
    let s = bb.status().expect("a status while the server is down");
    assert_eq!(s["connected"], false);

    server.up();
    wait_seq(&b, &name, "1");

    // Down during the run: B's readers keep the last value.
    server.down();
    a.run(&["publish", &name, &a.ns_arg(), "2", "50"]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(seq_on(&b, &name), "1");
    // Up again, with the same store: B catches up to the newest.
    server.up();
    wait_seq(&b, &name, "50");
    a.run(&["remove", &name, &a.ns_arg()]);
    wait_seq(&b, &name, "absent");
}

#[test]
fn bridges_killed_and_started_again_catch_up_without_writing_twice() {
    let Some(server) = Server::start() else {
        return;
    };
    let (a, b) = (Host::new("a", true), Host::new("b", true));
    let name = fresh("restart");
    a.run(&["publish", &name, &a.ns_arg(), "1", "1"]);
    let (ca, cb) = (
        a.config(&server.url(), EXPORT),
        b.config(&server.url(), IMPORT),
    );
    let mut ba = a.bridge(&ca);
    let mut bb = b.bridge(&cb);
    wait_seq(&b, &name, "1");

    // B killed while A goes on; B started again catches up.
    bb.kill();
    a.run(&["publish", &name, &a.ns_arg(), "2", "300"]);
    bb = b.bridge(&cb);
    wait_seq(&b, &name, "300");
    let version = |h: &Host| {
        report_of(&h.run(&["read", &name, &h.ns_arg()]), "version")
            .unwrap()
            .to_owned()
    };
    let before = version(&b);

    // Both killed and started again with nothing new: nothing is written
    // twice, on B or in the bucket.
    let revision =
        bb.wait_object(&name, "B wrote the last value", |o| o["version"] == 300)["revision"]
            .clone();
    ba.kill();
    bb.kill();
    let ba = a.bridge(&ca);
    let bb = b.bridge(&cb);
    bb.wait_object(&name, "B looked at the entry again", |o| {
        o["revision"] == revision
    });
    ba.wait_object(&name, "A looked at its entry again", |o| {
        o["revision"] == revision
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(version(&b), before, "B wrote a value twice");
    assert_eq!(
        ba.object(&name).unwrap()["revision"],
        revision,
        "A put a value twice"
    );

    // A killed, the object changed and removed while A was away: the key
    // is deleted when A starts again, and B's object is removed.
    let mut ba = ba;
    ba.kill();
    a.run(&["publish", &name, &a.ns_arg(), "301", "301"]);
    a.run(&["remove", &name, &a.ns_arg()]);
    let _ba = a.bridge(&ca);
    wait_seq(&b, &name, "absent");
}

#[test]
fn a_writer_killed_in_the_middle_of_a_publish_loses_nothing_committed() {
    let Some(server) = Server::start() else {
        return;
    };
    let (a, b) = (Host::new("a", true), Host::new("b", true));
    let name = fresh("crash");
    a.run(&["publish", &name, &a.ns_arg(), "1", "5"]);
    let _ba = a.bridge(&a.config(&server.url(), EXPORT));
    let _bb = b.bridge(&b.config(&server.url(), IMPORT));
    wait_seq(&b, &name, "5");
    for step in [
        "region.after_lock",
        "region.after_write",
        "region.after_len",
        "region.after_commit",
    ] {
        let status = a
            .child_command(&["publish_and_die", &name, &a.ns_arg(), "6"])
            .env("SHMSTORE_CRASH_AT", step)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(!status.success(), "the writer survived {step}");
        // Committed (after_commit) or not, B ends where A is, and a new
        // writer's values follow.
        let on_a = seq_on(&a, &name);
        wait_seq(&b, &name, &on_a);
        a.run(&["publish", &name, &a.ns_arg(), "5", "5"]);
        wait_seq(&b, &name, "5");
    }
    a.run(&["remove", &name, &a.ns_arg()]);
}

#[test]
fn a_second_host_exporting_a_name_is_refused() {
    let Some(server) = Server::start() else {
        return;
    };
    let (a, c, b) = (
        Host::new("a", true),
        Host::new("c", true),
        Host::new("b", true),
    );
    let name = fresh("twice");
    a.run(&["publish", &name, &a.ns_arg(), "1", "1"]);
    let ba = a.bridge(&a.config(&server.url(), EXPORT));
    let _bb = b.bridge(&b.config(&server.url(), IMPORT));
    wait_seq(&b, &name, "1");
    c.run(&["publish", &name, &c.ns_arg(), "1000", "1000"]);
    let bc = c.bridge(&c.config(&server.url(), EXPORT));
    let o = bc.wait_object(&name, "C refused", |o| o["state"] == "refused");
    let why = o["last_error"].as_str().unwrap();
    assert!(why.contains("host \"a\" exports this name"), "{why}");
    // B keeps A's values only.
    a.run(&["publish", &name, &a.ns_arg(), "2", "2"]);
    wait_seq(&b, &name, "2");
    c.run(&["publish", &name, &c.ns_arg(), "1001", "1001"]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(seq_on(&b, &name), "2");

    // A peer writes the key while A exports it (a host misconfigured, an
    // operator): A's next put finds the key changed under it and stops,
    // leaving the peer's entry.
    let key = shmstore_bridge::keys::key_of(&name);
    let mut foreign = kv_entry(&server, &key);
    foreign.origin = "z".into();
    kv_put(&server, &key, foreign.encode());
    a.run(&["publish", &name, &a.ns_arg(), "3", "3"]);
    let o = ba.wait_object(&name, "A refused", |o| o["state"] == "refused");
    assert!(
        o["last_error"].as_str().unwrap().contains("host \"z\""),
        "{o}"
    );
    assert_eq!(kv_entry(&server, &key).origin, "z");
    a.run(&["remove", &name, &a.ns_arg()]);
    c.run(&["remove", &name, &c.ns_arg()]);
    b.run(&["remove", &name, &b.ns_arg()]);
}

/// The entry at `key`, decoded.
fn kv_entry(server: &Server, key: &str) -> shmstore_bridge::Envelope {
    let bytes = with_bucket(server, async |kv, _| {
        kv.entry(key).await.unwrap().unwrap().value.to_vec()
    });
    shmstore_bridge::Envelope::decode(&bytes).unwrap()
}

/// Put `bytes` at `key`, as a peer would.
fn kv_put(server: &Server, key: &str, bytes: Vec<u8>) {
    with_bucket(server, async |kv, _| {
        kv.put(key, bytes.into()).await.unwrap();
    });
}

#[test]
fn a_local_object_of_another_type_is_never_written() {
    let Some(server) = Server::start() else {
        return;
    };
    let (a, b) = (Host::new("a", true), Host::new("b", true));
    let name = fresh("mismatch");
    let mut squatter = b.child(&["squat_v2", &name, &b.ns_arg()]);
    squatter.expect("made");
    a.run(&["publish", &name, &a.ns_arg(), "1", "1"]);
    let _ba = a.bridge(&a.config(&server.url(), EXPORT));
    let bb = b.bridge(&b.config(&server.url(), IMPORT));
    let o = bb.wait_object(&name, "B refused", |o| o["state"] == "refused");
    let why = o["last_error"].as_str().unwrap();
    assert!(why.contains("not written"), "{why}");
    squatter.stop();
    assert_eq!(squatter.expect("seq_after"), "99");
    assert!(squatter.wait().success());
    a.run(&["remove", &name, &a.ns_arg()]);

    // A cell of the same size under another type name: its bytes would
    // fit, and are still not written.
    let cell = fresh("mismatch-cell");
    b.run(&["cell_as", &cell, &b.ns_arg(), "acme.Other", "5"]);
    a.run(&["cell", &cell, &a.ns_arg(), "41"]);
    let o = bb.wait_object(&cell, "B refused the cell", |o| o["state"] == "refused");
    assert!(
        o["last_error"].as_str().unwrap().contains("acme.Other"),
        "{o}"
    );
    let r = b.run(&["read_cell_as", &cell, &b.ns_arg(), "acme.Other"]);
    assert_eq!(report_of(&r, "value"), Some("[5, 7]"));
    // The key deleted: B's cell is not what the key held, and stays.
    a.run(&["remove_cell", &cell, &a.ns_arg()]);
    bb.wait_object(&cell, "B left its own cell", |o| {
        o["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("not known to hold"))
    });
    let r = b.run(&["read_cell_as", &cell, &b.ns_arg(), "acme.Other"]);
    assert_eq!(report_of(&r, "value"), Some("[5, 7]"));
    b.run(&["remove_cell_as", &cell, &b.ns_arg(), "acme.Other"]);
}

#[test]
fn bad_bytes_in_the_bucket_are_refused_and_never_written() {
    let Some(server) = Server::start() else {
        return;
    };
    let (a, b) = (Host::new("a", true), Host::new("b", true));
    let name = fresh("bad");
    a.run(&["publish", &name, &a.ns_arg(), "1", "1"]);
    let ba = a.bridge(&a.config(&server.url(), EXPORT));
    let bb = b.bridge(&b.config(&server.url(), IMPORT));
    wait_seq(&b, &name, "1");
    ba.wait_object(&name, "A exported", |o| o["state"] == "mirrored");
    drop(ba);

    // A peer writes the key: garbage, a cut entry, an entry whose archive
    // points outside itself, one whose identity was changed.
    let key = shmstore_bridge::keys::key_of(&name);
    let good = kv_entry(&server, &key);
    let mut bad_archive = good.clone();
    let n = bad_archive.bytes.len();
    // `ports`' relative pointer, out of the archive (the root is seq,
    // name, ports, 8 bytes each).
    bad_archive.bytes[n - 8..n - 4].copy_from_slice(&0x7fff_0000i32.to_le_bytes());
    let mut other_size = good.clone();
    other_size.identity.size += 8;
    let mut cut = good.encode();
    cut.truncate(cut.len() - 1);
    let entries: Vec<Vec<u8>> = vec![
        b"not an entry".to_vec(),
        cut,
        bad_archive.encode(),
        other_size.encode(),
    ];
    for (i, bytes) in entries.into_iter().enumerate() {
        kv_put(&server, &key, bytes);
        bb.wait_object(&name, "B refused the entry", |o| {
            o["errors"].as_u64() == Some(i as u64 + 1)
        });
        assert_eq!(seq_on(&b, &name), "1", "entry {i} was written");
    }
    // An entry that claims a huge capacity makes an object of the
    // bridge's largest value at most.
    let huge = fresh("huge");
    let mut claim = good.clone();
    claim.capacity = u32::MAX;
    kv_put(
        &server,
        &shmstore_bridge::keys::key_of(&huge),
        claim.encode(),
    );
    let r = b.run(&["capacity", &huge, &b.ns_arg()]);
    let capacity: usize = report_of(&r, "capacity").unwrap().parse().unwrap();
    assert!(capacity <= (1 << 20) + 64, "{capacity}");
    b.run(&["remove", &huge, &b.ns_arg()]);

    // A good entry after them is written.
    a.run(&["publish", &name, &a.ns_arg(), "2", "2"]);
    let _ba = a.bridge(&a.config(&server.url(), EXPORT));
    wait_seq(&b, &name, "2");
    a.run(&["remove", &name, &a.ns_arg()]);
    wait_seq(&b, &name, "absent");
}

#[test]
fn a_deleted_key_removes_the_local_object_unless_told_not_to() {
    let Some(server) = Server::start() else {
        return;
    };
    let (a, b, c) = (
        Host::new("a", true),
        Host::new("b", true),
        Host::new("c", true),
    );
    let name = fresh("deleted");
    a.run(&["publish", &name, &a.ns_arg(), "1", "1"]);
    let _ba = a.bridge(&a.config(&server.url(), EXPORT));
    let cb = b.config(&server.url(), IMPORT);
    let mut bb = b.bridge(&cb);
    let keep = format!("remove_on_delete = false\n{IMPORT}");
    let _bc = c.bridge(&c.config(&server.url(), &keep));
    wait_seq(&b, &name, "1");
    wait_seq(&c, &name, "1");
    // B is away when the key is deleted: started again, it first sees the
    // key deleted, and still knows what it held.
    bb.kill();
    let k = shmstore_bridge::keys::key_of(&name);
    with_bucket(&server, async |kv, _| kv.delete(k.as_str()).await.unwrap());
    let _bb = b.bridge(&cb);
    wait_seq(&b, &name, "absent");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(seq_on(&c, &name), "1");
    a.run(&["remove", &name, &a.ns_arg()]);
    c.run(&["remove", &name, &c.ns_arg()]);
}

#[test]
fn a_cell_without_a_schema_is_mirrored_by_its_type_name() {
    let Some(server) = Server::start() else {
        return;
    };
    let (a, b) = (Host::new("a", true), Host::new("b", true));
    let name = fresh("pair");
    a.run(&["cell", &name, &a.ns_arg(), "41"]);
    let _ba = a.bridge(&a.config(&server.url(), EXPORT));
    let _bb = b.bridge(&b.config(&server.url(), IMPORT));
    let r = b.run(&["read_cell", &name, &b.ns_arg(), "41"]);
    assert_eq!(report_of(&r, "value"), Some("[41, 7]"));
    a.run(&["cell", &name, &a.ns_arg(), "42"]);
    let r = b.run(&["read_cell", &name, &b.ns_arg(), "42"]);
    assert_eq!(report_of(&r, "value"), Some("[42, 7]"));
    a.run(&["remove_cell", &name, &a.ns_arg()]);
    let r = b.run(&["cell_removed", &name, &b.ns_arg()]);
    assert_eq!(report_of(&r, "removed"), Some("1"));
}

/// Each step of the bridge where it may die or pause: killed there, the
/// bridge started again catches up; stopped there for a while, it goes on.
/// Either way the reader on B never sees a value go back or written twice,
/// and ends on the last.
#[test]
fn a_bridge_killed_or_paused_at_each_step_catches_up() {
    let Some(server) = Server::start() else {
        return;
    };
    let steps = shmstore::crash::STEPS
        .iter()
        .filter(|s| s.starts_with("bridge."));
    for (i, &step) in steps.enumerate() {
        for stop in [false, true] {
            let (a, b) = (Host::new("a", true), Host::new("b", true));
            let name = fresh(&format!("step{i}{}", if stop { "s" } else { "k" }));
            a.run(&["publish", &name, &a.ns_arg(), "1", "1"]);
            let (ca, cb) = (
                a.config(&server.url(), EXPORT),
                b.config(&server.url(), IMPORT),
            );
            let arm = format!("{step}@3{}", if stop { ":stop" } else { "" });
            let env = [("SHMSTORE_CRASH_AT", arm.as_str())];
            let export_step = step.starts_with("bridge.export");
            let mut ba = if export_step {
                a.bridge_with(&ca, &env)
            } else {
                a.bridge(&ca)
            };
            let mut bb = if export_step {
                b.bridge(&cb)
            } else {
                b.bridge_with(&cb, &env)
            };
            let mut follower = b.child(&["follow", &name, &b.ns_arg(), "60"]);
            // One value at a time until the armed bridge reaches its step.
            let armed = if export_step { &mut ba } else { &mut bb };
            let mut seq = 2;
            let exited = loop {
                a.run(&[
                    "publish",
                    &name,
                    &a.ns_arg(),
                    &seq.to_string(),
                    &seq.to_string(),
                ]);
                seq += 1;
                std::thread::sleep(Duration::from_millis(30));
                if !matches!(state_of(armed.pid()), Some('R' | 'S' | 'D')) {
                    break armed.wait_dead_or_stopped();
                }
                assert!(seq < 40, "{step}: the bridge never reached its step");
            };
            assert_eq!(exited, !stop, "{step}");
            // Values published while it is dead or stopped.
            a.run(&["publish", &name, &a.ns_arg(), &seq.to_string(), "59"]);
            std::thread::sleep(Duration::from_millis(300));
            if stop {
                armed.resume();
            } else if export_step {
                ba = a.bridge(&ca);
            } else {
                bb = b.bridge(&cb);
            }
            a.run(&["publish", &name, &a.ns_arg(), "60", "60"]);
            assert_eq!(follower.expect("seq"), "60", "{step}");
            follower.expect("seen");
            assert_eq!(follower.expect("backwards"), "0", "{step}");
            assert_eq!(follower.expect("repeats"), "0", "{step}");
            assert!(follower.wait().success());
            a.run(&["remove", &name, &a.ns_arg()]);
            wait_seq(&b, &name, "absent");
            drop((ba, bb));
        }
    }
}
