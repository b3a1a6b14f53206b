//! The life of an object across processes (store/life/): creating,
//! naming, opening, replacing, removing and collecting, with other
//! processes racing, killed or stopped at each named step. What must hold:
//! at most one object per name; a creator that died before READY is taken
//! over, and one still at work is waited for; replacers converge on one
//! object and never remove one they did not find of the wrong type;
//! nothing but shmstore's own objects is removed (not by `open_or_create`,
//! not by a failed open with `remove_on_drop`); a removal is seen by
//! writers and waiters, whoever made it (a handle, the `shmstore` command,
//! `ipcrm`); and `shmstore gc` removes only what nobody uses.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::names::{NameGuard, at_keys, fresh_name, objects_of};
use common::values::{Text, describe_read};
use common::{
    Kid, Live, SPAWNING, SegGuard, child, child_args, key_arg, read_command, report, report_of,
    start_stopped, unique_key,
};
use shmstore::{Error, Key, Segment, SharedCell, SharedRegion, Target};

/// A child's key argument: a name, or `#RAW` for a plain key.
fn key_of(arg: &str) -> Key {
    match arg.strip_prefix('#') {
        Some(raw) => Key::new(raw.parse().unwrap()).unwrap(),
        None => Key::named(arg).unwrap(),
    }
}

fn arg_of(key: Key) -> String {
    match key.name() {
        Some(name) => name.to_owned(),
        None => format!("#{}", key.raw()),
    }
}

/// `ok:ID`, or `err:` and the error's variant.
fn outcome<T: bytemuck::Pod>(r: &shmstore::Result<SharedCell<T>>) -> String {
    match r {
        Ok(c) => format!("ok:{}", c.id()),
        Err(e) => format!("err:{}", variant(e)),
    }
}

fn variant(e: &Error) -> String {
    let debug = format!("{e:?}");
    debug
        .split([' ', '{', '('])
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn options(timeout_ms: &str) -> shmstore::CellCreator<u64> {
    let mut o = SharedCell::<u64>::options();
    o.init_timeout(Duration::from_millis(timeout_ms.parse().unwrap()));
    o
}

#[test]
fn child_entry() {
    let Some(args) = child_args() else { return };
    // The key argument of the roles of the races below.
    let key = || key_of(&args[1]);
    match args[0].as_str() {
        "create" => {
            let value = args[2].parse().unwrap();
            report("result", outcome(&options(&args[3]).create(key(), value)));
        }
        "open_or_create" => {
            let value = args[2].parse().unwrap();
            report(
                "result",
                outcome(&options(&args[3]).open_or_create(key(), value)),
            );
        }
        "replace" => {
            let value = args[2].parse().unwrap();
            report(
                "result",
                outcome(&options(&args[3]).open_or_replace(key(), value)),
            );
        }
        "open" => {
            let opened = SharedCell::<u64>::opener()
                .init_timeout(Duration::from_millis(args[2].parse().unwrap()))
                .open(key());
            report("result", outcome(&opened));
        }
        "remove" => {
            let cell = SharedCell::<u64>::open(key()).unwrap();
            match cell.remove() {
                Ok(()) => report("result", "removed"),
                Err(e) => report("result", format!("err:{}", variant(&e))),
            }
        }
        // Open the cell, then store what each line on stdin says.
        "hold" => {
            let cell = SharedCell::<u64>::open(key()).unwrap();
            report("opened", cell.id());
            while let Some(line) = read_command() {
                let v: u64 = line.parse().unwrap();
                match cell.store(v) {
                    Ok(()) => report("stored", v),
                    Err(e) => report("stored", format!("err:{}", variant(&e))),
                }
            }
        }
        // As user ARGS[2], make a named cell anyone may read and write.
        "make_as" => {
            let uid: u32 = args[2].parse().unwrap();
            common::drop_to(uid, uid);
            let cell = SharedCell::<u64>::options()
                .mode(0o666)
                .create(key(), 3)
                .unwrap();
            report("id", cell.id());
        }
        // As user ARGS[2], trusting user ARGS[3], open the cell.
        "open_as" => {
            let (uid, trusted): (u32, u32) = (args[2].parse().unwrap(), args[3].parse().unwrap());
            common::drop_to(uid, uid);
            let opened = SharedCell::<u64>::opener()
                .trust_user(trusted)
                .init_timeout(Duration::from_secs(2))
                .open(key());
            report("result", outcome(&opened));
        }
        "cell_wait" if args[2] == "ro" => {
            let key = key_arg(&args, 1);
            let cell = SharedCell::<u64>::open_read_only(key).unwrap();
            report(
                "outcome",
                wait(|| cell.wait_for_change(cell.version(), None)),
            );
        }
        "cell_wait" => {
            let cell = SharedCell::<u64>::open(key_arg(&args, 1)).unwrap();
            report(
                "outcome",
                wait(|| cell.wait_for_change(cell.version(), None)),
            );
        }
        "region_wait" if args[2] == "ro" => {
            let region = SharedRegion::<Note>::open_read_only(key_arg(&args, 1)).unwrap();
            report(
                "outcome",
                wait(|| region.wait_for_change(region.version(), None)),
            );
        }
        "region_wait" => {
            let region = SharedRegion::<Note>::open(key_arg(&args, 1)).unwrap();
            report(
                "outcome",
                wait(|| region.wait_for_change(region.version(), None)),
            );
        }
        // Open or create the counter at this name, report what it found,
        // then count until killed.
        "supervisor" => {
            let name = &args[1];
            let cell =
                SharedCell::<[u64; 2]>::open_or_create(Key::named(name).unwrap(), [0, 0]).unwrap();
            report("found", format!("{:?}@{}", cell.load(), cell.version()));
            loop {
                cell.update(|v| v[0] += 1).unwrap();
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        // Create a cell and exit without removing it: garbage once gone.
        "make_and_exit" => {
            if args.get(2).is_some_and(|a| a == "nobody") {
                common::drop_to_nobody();
            }
            let cell = SharedCell::<u64>::create(key_arg(&args, 1), 1).unwrap();
            report("id", cell.id());
            std::process::exit(0);
        }
        // Create a cell and stay.
        "make_and_stay" => {
            let cell = SharedCell::<u64>::create(key_arg(&args, 1), 1).unwrap();
            report("id", cell.id());
            let _ = common::read_command();
            std::process::exit(0);
        }
        // Run `shmstore gc --remove` as uid 65534.
        "gc_as_nobody" => {
            common::drop_to_nobody();
            let out = Command::new(&args[1])
                .args(["gc", "--remove"])
                .output()
                .unwrap();
            report("ok", out.status.success());
            report(
                "out",
                String::from_utf8_lossy(&out.stdout).replace('\n', " | "),
            );
            std::process::exit(0);
        }
        "open_or_create_with_pid" => {
            let key = key_arg(&args, 1);
            let me = std::process::id() as u64;
            let cell = SharedCell::<[u64; 2]>::open_or_create(key, [me, 7]).unwrap();
            let v = cell.load();
            report("id", cell.id());
            report("initial_pid", v[0]);
            report("cpid", cell.info().unwrap().cpid);
        }
        // Create a segment at the key, start a header, and die before READY.
        // The size is what a SharedCell<u64> of 4 slots needs (FORMAT.md:
        // 512 + 4 * 8), so that open_or_create takes it for its own.
        "die_initialising" => {
            let seg = Segment::options()
                .size(544)
                .create(true)
                .exclusive(true)
                .open(key_arg(&args, 1))
                .unwrap();
            report("id", seg.id());
            seg.write_at(16, &1u32.to_le_bytes()).unwrap(); // state = INITIALIZING
            seg.write_at(0, b"shmstore").unwrap();
            if args[2] == "die" {
                // SAFETY: raising SIGKILL on ourselves has no memory effects.
                unsafe { libc::raise(libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_secs(60));
        }
        // Create a segment at the key, start a header, and die before READY.
        // The size is what a SharedCell<[u64; 2]> of 4 slots needs
        // (FORMAT.md: 512 + 4 * 16), so that open_or_create takes it for
        // its own.
        "die_initialising_pair" => {
            let seg = Segment::options()
                .size(576)
                .create(true)
                .exclusive(true)
                .open(key_arg(&args, 1))
                .unwrap();
            report("id", seg.id());
            seg.write_at(16, &1u32.to_le_bytes()).unwrap(); // FORMAT.md: state = INITIALIZING
            seg.write_at(0, b"shmstore").unwrap(); // FORMAT.md: magic
            // SAFETY: raising SIGKILL on ourselves has no memory effects.
            unsafe { libc::raise(libc::SIGKILL) };
        }
        // Live, doing nothing, until stdin closes.
        "squat" => {
            report("squatting", std::process::id());
            let _ = common::read_command();
        }
        "plain_segment" => {
            let seg = Segment::options()
                .size(8192)
                .create(true)
                .exclusive(true)
                .open(key_arg(&args, 1))
                .unwrap();
            seg.write_at(4096, b"precious data of another program")
                .unwrap();
            report("id", seg.id());
        }
        other => panic!("unknown role {other}"),
    }
    std::process::exit(0);
}

/// Start a child that stops itself (SIGSTOP) at `step`, and wait until it
/// has.
fn stopped_at(step: &str, args: &[&str]) -> Kid {
    start_stopped(child(args), step)
}

/// The `shmstore` command with `args`, as a child whose output is read by
/// [`Kid`] (which skips lines that are not reports).
fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shmstore"));
    cmd.args(args).stdout(Stdio::piped());
    cmd
}

/// Let a stopped child go on.
fn resume(kid: &Kid) {
    // SAFETY: a signal to a child of this process; no memory is involved.
    assert_eq!(unsafe { libc::kill(kid.pid(), libc::SIGCONT) }, 0);
}

/// Run a child that kills itself (SIGKILL) at `step`.
fn killed_at(step: &str, args: &[&str]) {
    run_killed(child(args), step);
}

/// Run `cmd` so that it kills itself at `step`.
fn run_killed(mut cmd: Command, step: &str) {
    let what = format!("{cmd:?}");
    cmd.env("SHMSTORE_CRASH_AT", step);
    let mut kid = Kid::start(cmd);
    let status = kid.wait();
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "{what} did not die at {step} ({status})"
    );
}

/// The one object of `name`, checked through the library and byte by byte.
fn the_object(name: &str) -> SharedCell<u64> {
    let objects = objects_of(name);
    assert_eq!(
        objects.len(),
        1,
        "{name}: objects {objects:?}, keys {:?}",
        at_keys(name)
    );
    let cell = SharedCell::<u64>::open(Key::named(name).unwrap()).unwrap();
    assert_eq!(cell.id(), objects[0]);
    cell
}

/// Four replacers at once of an old object end on one object, which is
/// the one the key reaches, and the old one is removed: none ends on
/// another object or on a removed one, and none fails.
#[test]
fn racing_replacers_end_on_one_object() {
    for named in [true, false] {
        for round in 0..60 {
            let name = fresh_name("replace");
            let _names = NameGuard::of(&name);
            let key = if named {
                Key::named(&name).unwrap()
            } else {
                unique_key()
            };
            let old = SharedCell::<u32>::create(key, 7).unwrap();
            let _old = SegGuard(old.id());
            let barrier = Arc::new(Barrier::new(4));
            let replacers: Vec<_> = (0..4u64)
                .map(|i| {
                    let barrier = barrier.clone();
                    std::thread::spawn(move || {
                        barrier.wait();
                        SharedCell::<u64>::open_or_replace(key, i)
                    })
                })
                .collect();
            let cells: Vec<SharedCell<u64>> = replacers
                .into_iter()
                .map(|t| t.join().unwrap())
                .collect::<Result<_, _>>()
                .unwrap_or_else(|e| panic!("named {named}, round {round}: {e}"));
            let _new = SegGuard(cells[0].id());
            let ids: Vec<i32> = cells.iter().map(|c| c.id()).collect();
            assert!(
                ids.iter().all(|&id| id == ids[0]),
                "named {named}, round {round}: replacers on {ids:?}"
            );
            assert!(old.is_removed().unwrap());
            assert!(!cells[0].is_removed().unwrap(), "round {round}");
            cells[3].store(99).unwrap();
            let opened = SharedCell::<u64>::open(key).unwrap();
            assert_eq!((opened.id(), opened.load()), (ids[0], 99));
        }
    }
}

/// The same, in processes.
#[test]
fn racing_replacers_in_processes_end_on_one_object() {
    for _ in 0..5 {
        let name = fresh_name("replace-procs");
        let _names = NameGuard::of(&name);
        let key = Key::named(&name).unwrap();
        let old = SharedCell::<u32>::create(key, 7).unwrap();
        let mut kids: Vec<Kid> = (0..4)
            .map(|i| Kid::spawn(&["replace", &name, &i.to_string(), "10000"]))
            .collect();
        let results: Vec<String> = kids.iter_mut().map(|k| k.expect("result")).collect();
        let cell = the_object(&name);
        for r in &results {
            assert_eq!(r, &format!("ok:{}", cell.id()), "{results:?}");
        }
        assert!(old.is_removed().unwrap());
    }
}

/// A creator stopped for 3 s right after its `shmget`, and a second
/// `create` of the same name meanwhile: one of them makes the object and
/// the other is told it exists, never both at two keys.
#[test]
fn a_creator_stopped_after_shmget_never_makes_a_second_object() {
    let name = fresh_name("stopped");
    let _names = NameGuard::of(&name);
    let key = Key::named(&name).unwrap();
    let mut a = stopped_at("create.after_shmget", &["create", &name, "1", "10000"]);
    // Longer than any window in which a creator could be judged by time.
    std::thread::sleep(Duration::from_secs(3));
    let b = SharedCell::<u64>::options()
        .init_timeout(Duration::from_secs(1))
        .create(key, 2);
    resume(&a);
    let a_result = a.expect("result");
    let cell = the_object(&name);
    match &b {
        Ok(b) => {
            assert_eq!(a_result, "err:AlreadyExists");
            assert_eq!(cell.id(), b.id());
            b.store(3).unwrap();
        }
        Err(e) => panic!("the second creator failed ({e}); the first: {a_result}"),
    }
    assert_eq!(cell.load(), 3);
}

/// A plain object at a name's key; a creator looks at the keys and is
/// about to make its segment; another creates the name; the plain object
/// goes away; the first creates then: it finds the object and gives way,
/// whichever key it took, so that the name never has two objects.
#[test]
fn a_key_freed_meanwhile_never_makes_a_second_object() {
    use common::names::documented_key;
    for stop in ["create.before_shmget", "create.after_claim"] {
        let name = fresh_name("freed");
        let _names = NameGuard::of(&name);
        let key = Key::named(&name).unwrap();
        let plain: Vec<SharedCell<u64>> = (0..2)
            .map(|i| SharedCell::create(Key::new(documented_key(&name, i)).unwrap(), 0).unwrap())
            .collect();
        // B chose key 2 (keys 0 and 1 held plain objects) and stops.
        let mut b = stopped_at(stop, &["create", &name, "2", "10000"]);
        plain[0].remove().unwrap();
        let a = std::thread::spawn(move || {
            SharedCell::<u64>::options()
                .init_timeout(Duration::from_secs(20))
                .create(key, 1)
        });
        // A, at key 0, either finished (B had not claimed yet) or waits for
        // B's claim at a higher key to be decided.
        std::thread::sleep(Duration::from_millis(300));
        resume(&b);
        let b_result = b.expect("result");
        let a = a.join().unwrap();
        let cell = the_object(&name);
        let a = a.unwrap_or_else(|e| panic!("{stop}: A failed: {e}; B {b_result}"));
        assert_eq!(cell.id(), a.id(), "{stop}");
        assert_eq!(b_result, "err:AlreadyExists", "{stop}");
        plain[1].remove().unwrap();
    }
}

/// The steps of a creation by name: a creator killed at each leaves
/// nothing that stops another from making the one object (and what it left
/// is cleared); a creator stopped at each is either waited for or given
/// way to, and in the end there is one object.
const CREATE_STEPS: &[&str] = &[
    "create.before_shmget",
    "create.after_shmget",
    "create.after_claim",
    "create.after_scan",
    "create.after_header",
    "create.after_mutex",
    "create.after_value",
];

#[test]
fn creators_killed_at_every_step() {
    for &step in CREATE_STEPS {
        let name = fresh_name("killed");
        let _names = NameGuard::of(&name);
        killed_at(step, &["create", &name, "1", "10000"]);
        let b = SharedCell::<u64>::options()
            .init_timeout(Duration::from_secs(5))
            .open_or_create(Key::named(&name).unwrap(), 2)
            .unwrap_or_else(|e| panic!("{step}: {e}"));
        let cell = the_object(&name);
        assert_eq!((cell.id(), cell.load()), (b.id(), 2), "{step}");
        assert_eq!(
            at_keys(&name).len(),
            1,
            "{step}: what the dead creator left stayed"
        );
    }
}

#[test]
fn creators_stopped_at_every_step() {
    for &step in CREATE_STEPS {
        let name = fresh_name("held");
        let _names = NameGuard::of(&name);
        let mut a = stopped_at(step, &["create", &name, "1", "10000"]);
        let b = SharedCell::<u64>::options()
            .init_timeout(Duration::from_millis(500))
            .open_or_create(Key::named(&name).unwrap(), 2);
        resume(&a);
        let a_result = a.expect("result");
        let cell = the_object(&name);
        match &b {
            Ok(b) => {
                // Nothing of A's was a claim yet: B made the object, A gave way.
                assert_eq!(cell.id(), b.id(), "{step}");
                assert_eq!(a_result, "err:AlreadyExists", "{step}");
            }
            Err(e) => {
                // A's claim stood: B waited for it, and A made the object.
                assert!(matches!(e, Error::InitTimeout { .. }), "{step}: {e}");
                assert_eq!(a_result, format!("ok:{}", cell.id()), "{step}");
            }
        }
    }
}

/// A replacer stopped after judging the old object, while another replaces
/// it: the first removes only the old one (already removed) and ends on the
/// other's new object. Killed there: the other replaces alone.
#[test]
fn replacers_stopped_or_killed_after_judging() {
    let name = fresh_name("replace-step");
    let _names = NameGuard::of(&name);
    let key = Key::named(&name).unwrap();
    let old = SharedCell::<u32>::create(key, 7).unwrap();
    let mut a = stopped_at("replace.after_judge", &["replace", &name, "1", "10000"]);
    let b = SharedCell::<u64>::open_or_replace(key, 2).unwrap();
    assert!(old.is_removed().unwrap());
    resume(&a);
    assert_eq!(a.expect("result"), format!("ok:{}", b.id()));
    assert!(!b.is_removed().unwrap());
    assert_eq!(the_object(&name).id(), b.id());
    b.remove().unwrap();

    let old = SharedCell::<u32>::create(key, 7).unwrap();
    killed_at("replace.after_judge", &["replace", &name, "1", "10000"]);
    assert!(
        !old.is_removed().unwrap(),
        "the dead replacer removed nothing"
    );
    let b = SharedCell::<u64>::open_or_replace(key, 2).unwrap();
    assert!(old.is_removed().unwrap());
    assert_eq!(the_object(&name).id(), b.id());
}

/// A removal by `remove()` is seen at once: a writer's next store and
/// every waiter return `Removed`, the waiters without waiting out a sleep
/// slice.
#[test]
fn a_removal_is_seen_at_once_by_waiters_and_writers() {
    let key = unique_key();
    let cell = SharedCell::<u64>::create(key, 1).unwrap();
    let _g = SegGuard(cell.id());
    let mut writer = Kid::spawn(&["hold", &arg_of(key)]);
    assert_eq!(writer.expect("opened"), cell.id().to_string());
    let waiters: Vec<_> = [false, true]
        .into_iter()
        .map(|read_only| {
            std::thread::spawn(move || {
                let result = if read_only {
                    let r = SharedCell::<u64>::open_read_only(key).unwrap();
                    r.wait_for_change(0, Some(Duration::from_secs(10)))
                } else {
                    let c = SharedCell::<u64>::open(key).unwrap();
                    c.wait_for_change(0, Some(Duration::from_secs(10)))
                };
                (result, Instant::now())
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let removed_at = Instant::now();
    cell.remove().unwrap();
    for w in waiters {
        let (result, woke) = w.join().unwrap();
        assert!(matches!(result, Err(Error::Removed { .. })), "{result:?}");
        let late = woke.duration_since(removed_at);
        assert!(late < Duration::from_millis(10), "seen after {late:?}");
    }
    writer.send("5");
    assert_eq!(writer.expect("stored"), "err:Removed");
    assert!(matches!(cell.store(6), Err(Error::Removed { .. })));
}

/// A remover stopped after marking the object: writers are refused, an open
/// waits for it (`Busy` past its timeout); once it goes on the object is
/// gone. A remover killed there: the next open finishes the removal.
#[test]
fn removers_stopped_or_killed_after_marking() {
    let name = fresh_name("remove-step");
    let _names = NameGuard::of(&name);
    let key = Key::named(&name).unwrap();
    let cell = SharedCell::<u64>::create(key, 1).unwrap();
    let mut a = stopped_at("remove.after_mark", &["remove", &name]);
    assert!(matches!(cell.store(2), Err(Error::Removed { .. })));
    let opened = SharedCell::<u64>::opener()
        .init_timeout(Duration::from_millis(300))
        .open(key);
    assert!(
        matches!(opened, Err(Error::Busy { .. })),
        "{:?}",
        opened.map(|c| c.id())
    );
    resume(&a);
    assert_eq!(a.expect("result"), "removed");
    assert!(cell.is_removed().unwrap());
    assert!(matches!(
        SharedCell::<u64>::open(key),
        Err(Error::NotFound { .. })
    ));

    let cell = SharedCell::<u64>::create(key, 1).unwrap();
    killed_at("remove.after_mark", &["remove", &name]);
    assert!(!cell.is_removed().unwrap(), "not removed yet, only marked");
    assert!(matches!(cell.store(2), Err(Error::Removed { .. })));
    // The next opener finishes what the dead remover began.
    killed_at("remove.finish", &["open", &name, "1000"]);
    assert!(!cell.is_removed().unwrap());
    assert!(matches!(
        SharedCell::<u64>::open(key),
        Err(Error::NotFound { .. })
    ));
    assert!(cell.is_removed().unwrap());
    let again = SharedCell::<u64>::open_or_create(key, 9).unwrap();
    assert_eq!(the_object(&name).id(), again.id());
}

/// An opener finishing the removal a dead remover began, stopped before its
/// `IPC_RMID`: another opener finishes it too, and both find nothing.
#[test]
fn finishers_stopped_before_removing() {
    let name = fresh_name("finish-step");
    let _names = NameGuard::of(&name);
    let key = Key::named(&name).unwrap();
    let cell = SharedCell::<u64>::create(key, 1).unwrap();
    killed_at("remove.after_mark", &["remove", &name]);
    let mut a = stopped_at("remove.finish", &["open", &name, "1000"]);
    assert!(matches!(
        SharedCell::<u64>::open(key),
        Err(Error::NotFound { .. })
    ));
    assert!(cell.is_removed().unwrap());
    resume(&a);
    assert_eq!(a.expect("result"), "err:NotFound");
}

/// An object whose creator exited, which nobody has attached: garbage.
fn garbage_named(name: &str) -> i32 {
    let mut made = Kid::spawn(&["create", name, "1", "1000"]);
    let id = made.expect("result");
    assert!(made.wait().success());
    id.strip_prefix("ok:").unwrap().parse().unwrap()
}

fn gc_cmd(name: &str) -> Command {
    command(&["gc", "--remove", "--prefix", name])
}

/// `gc --remove` never removes an object that a restarted supervisor has
/// just opened: a collector stopped after judging an object, or after
/// marking it, keeps it when a supervisor opens it meanwhile (the opener
/// waits for a marking collector); killed at either step, it leaves the
/// object usable.
#[test]
fn collectors_stopped_or_killed_while_a_supervisor_opens() {
    for step in ["gc.after_list", "gc.after_judge", "gc.after_mark"] {
        let name = fresh_name("gc-kept");
        let _names = NameGuard::of(&name);
        garbage_named(&name);
        let mut gc = start_stopped(gc_cmd(&name), step);
        let mut supervisor = Kid::spawn(&["hold", &name]);
        if step == "gc.after_mark" {
            let early = supervisor.report_within("opened", Duration::from_millis(300));
            assert_eq!(early, None, "opened while the collector judged it");
        } else {
            supervisor.expect("opened");
        }
        resume(&gc);
        if step == "gc.after_mark" {
            supervisor.expect("opened");
        }
        assert!(gc.wait().success(), "{step}");
        supervisor.send("5");
        assert_eq!(supervisor.expect("stored"), "5", "{step}");
        assert_eq!(the_object(&name).load(), 5, "{step}");
    }
    // Stopped with nobody opening it: collected.
    let name = fresh_name("gc-collected");
    let _names = NameGuard::of(&name);
    let id = garbage_named(&name);
    let mut gc = start_stopped(gc_cmd(&name), "gc.after_mark");
    resume(&gc);
    assert!(gc.wait().success());
    assert!(objects_of(&name).is_empty());
    assert!(
        shmstore::list_segments()
            .unwrap()
            .iter()
            .all(|s| s.id != id)
    );
    // Killed at any step: the object stays, and opens.
    for step in ["gc.after_list", "gc.after_judge", "gc.after_mark"] {
        let name = fresh_name("gc-killed");
        let _names = NameGuard::of(&name);
        garbage_named(&name);
        run_killed(gc_cmd(&name), step);
        let cell = SharedCell::<u64>::opener()
            .init_timeout(Duration::from_secs(2))
            .open(Key::named(&name).unwrap())
            .unwrap_or_else(|e| panic!("{step}: {e}"));
        cell.store(7).unwrap();
        assert_eq!(the_object(&name).load(), 7, "{step}");
    }
}

/// An open by id that gives up waiting for a live collector leaves the
/// object as it found it, even with `remove_on_drop` set: the handle it
/// never returned removes nothing when it is dropped.
#[test]
fn an_open_by_id_that_gives_up_on_a_collector_removes_nothing() {
    let name = fresh_name("gc-by-id");
    let _names = NameGuard::of(&name);
    let id = garbage_named(&name);
    let mut gc = start_stopped(gc_cmd(&name), "gc.after_mark");
    let opened = SharedCell::<u64>::opener()
        .init_timeout(Duration::from_millis(200))
        .remove_on_drop(true)
        .open(Target::Id(id));
    assert!(
        matches!(opened, Err(Error::Busy { .. })),
        "opened by id while a live collector judged it: {opened:?}"
    );
    drop(opened);
    let segment = shmstore::list_segments()
        .unwrap()
        .into_iter()
        .find(|s| s.id == id);
    assert!(
        segment.is_some_and(|s| !s.marked_for_removal),
        "the object was removed by an open that failed"
    );
    gc.kill();
    assert_eq!(the_object(&name).id(), id);
}

/// `remove --prefix` killed after listing removes nothing; stopped there
/// while an object under the prefix is renamed away (removed, and another
/// made at its id is not under the prefix: see `tests/reused_ids.rs` for
/// the id itself) or stays, it removes exactly what is under the prefix
/// when it goes on.
#[test]
fn prefix_removers_killed_or_stopped_after_listing() {
    let prefix = fresh_name("prefix");
    let (a, b) = (format!("{prefix}/a"), format!("{prefix}/b"));
    let (_ga, _gb) = (NameGuard::of(&a), NameGuard::of(&b));
    let cell_a = SharedCell::<u64>::create(Key::named(&a).unwrap(), 1).unwrap();
    let cell_b = SharedCell::<u64>::create(Key::named(&b).unwrap(), 2).unwrap();
    let p = format!("{prefix}/");
    run_killed(command(&["remove", "--prefix", &p]), "remove.after_list");
    assert!(!cell_a.is_removed().unwrap() && !cell_b.is_removed().unwrap());
    let mut remover = start_stopped(command(&["remove", "--prefix", &p]), "remove.after_list");
    cell_a.remove().unwrap();
    resume(&remover);
    remover.wait();
    assert!(cell_b.is_removed().unwrap(), "what stayed under the prefix");
}

/// Each step of the life of an object, and the tests that kill a process
/// there and stop one there.
const STEPS: &[(&str, &str, &str)] = &[
    (
        "create.before_shmget",
        "creators_killed_at_every_step",
        "creators_stopped_at_every_step, a_key_freed_meanwhile_never_makes_a_second_object",
    ),
    (
        "create.after_shmget",
        "creators_killed_at_every_step",
        "creators_stopped_at_every_step, a_creator_stopped_after_shmget_never_makes_a_second_object",
    ),
    (
        "create.after_claim",
        "creators_killed_at_every_step",
        "creators_stopped_at_every_step, a_key_freed_meanwhile_never_makes_a_second_object",
    ),
    (
        "create.after_scan",
        "creators_killed_at_every_step",
        "creators_stopped_at_every_step",
    ),
    (
        "create.after_header",
        "creators_killed_at_every_step",
        "creators_stopped_at_every_step",
    ),
    (
        "create.after_mutex",
        "creators_killed_at_every_step",
        "creators_stopped_at_every_step",
    ),
    (
        "create.after_value",
        "creators_killed_at_every_step",
        "creators_stopped_at_every_step",
    ),
    (
        "replace.after_judge",
        "replacers_stopped_or_killed_after_judging",
        "replacers_stopped_or_killed_after_judging",
    ),
    (
        "remove.after_list",
        "prefix_removers_killed_or_stopped_after_listing",
        "prefix_removers_killed_or_stopped_after_listing, \
         reused_ids::a_reused_id_is_never_removed_by_gc_or_prefix_removal",
    ),
    (
        "remove.after_mark",
        "removers_stopped_or_killed_after_marking",
        "removers_stopped_or_killed_after_marking",
    ),
    (
        "remove.finish",
        "removers_stopped_or_killed_after_marking",
        "finishers_stopped_before_removing",
    ),
    (
        "gc.after_list",
        "collectors_stopped_or_killed_while_a_supervisor_opens",
        "collectors_stopped_or_killed_while_a_supervisor_opens, \
         reused_ids::a_reused_id_is_never_removed_by_gc_or_prefix_removal",
    ),
    (
        "gc.after_judge",
        "collectors_stopped_or_killed_while_a_supervisor_opens",
        "collectors_stopped_or_killed_while_a_supervisor_opens",
    ),
    (
        "gc.after_mark",
        "collectors_stopped_or_killed_while_a_supervisor_opens",
        "collectors_stopped_or_killed_while_a_supervisor_opens",
    ),
];

/// The table above names every step of the life of an object, in the
/// library's order (`common::life_steps`, which `tests/crash_points.rs`
/// counts as covered here).
#[test]
fn every_life_step_is_killed_and_stopped() {
    let tabled: Vec<&str> = STEPS.iter().map(|s| s.0).collect();
    assert_eq!(tabled, common::life_steps().collect::<Vec<_>>());
}

/// Another user's object of a name stops a creation of that name by a
/// user who does not trust that user (its own users would otherwise see two
/// objects of the name): `ForeignOwner`, naming that user.
#[test]
fn another_users_object_of_a_name_is_never_made_twice() {
    if !common::root_or_skip("acting as another user") {
        return;
    }
    let name = fresh_name("held");
    let _names = NameGuard::of(&name);
    let mut maker = Kid::spawn(&["make_as", &name, "65533"]);
    maker.expect("id");
    assert!(maker.wait().success());
    match SharedCell::<u64>::create(Key::named(&name).unwrap(), 1) {
        Err(Error::ForeignOwner { uid, .. }) => assert_eq!(uid, 65533),
        other => panic!("{:?}", other.map(|c| c.id())),
    }
    assert_eq!(objects_of(&name).len(), 1);
}

/// An object marked removed by a remover that died, which the opener may
/// not remove itself: the open says so at once instead of looking for ever.
#[test]
fn a_removal_the_opener_may_not_finish_is_an_error() {
    if !common::root_or_skip("acting as other users") {
        return;
    }
    use common::names::{dead_pid, life_word, set_life};
    let name = fresh_name("unfinished");
    let _names = NameGuard::of(&name);
    let mut maker = Kid::spawn(&["make_as", &name, "65533"]);
    let id: i32 = maker.expect("id").parse().unwrap();
    assert!(maker.wait().success());
    let seg = shmstore::Segment::options()
        .allow_foreign_owner(true)
        .attach_id(id)
        .unwrap();
    set_life(&seg, life_word(2, dead_pid(), 1));
    let start = Instant::now();
    let mut opener = Kid::spawn(&["open_as", &name, "65534", "65533"]);
    assert_eq!(opener.expect("result"), "err:PermissionDenied");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert!(!seg.info().unwrap().marked_for_removal);
}

// ---------------------------------------------------------------------------
// Creation seen from other processes: creators at once, a creator that
// died or is stuck before READY, its pid taken by another process, and a
// segment at the key that is not shmstore's.

#[test]
fn concurrent_open_or_create_has_one_creator() {
    let key = unique_key();
    let raw = key.raw().to_string();
    let children: Vec<_> = (0..6)
        .map(|_| child(&["open_or_create_with_pid", &raw]).spawn().unwrap())
        .collect();
    let outs: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let id: i32 = report_of(&outs[0].stdout, "id").unwrap().parse().unwrap();
    let _g = SegGuard(id);
    let creator = report_of(&outs[0].stdout, "cpid").unwrap();
    for out in &outs {
        assert!(out.status.success());
        assert_eq!(report_of(&out.stdout, "id").unwrap(), id.to_string());
        assert_eq!(report_of(&out.stdout, "cpid").unwrap(), creator);
        // Everyone sees the initial value of the one process that created it.
        assert_eq!(report_of(&out.stdout, "initial_pid").unwrap(), creator);
    }
}

#[test]
fn creator_dead_before_ready_does_not_hang_openers() {
    let key = unique_key();
    let raw = key.raw().to_string();
    let out = child(&["die_initialising", &raw, "die"]).output().unwrap();
    assert_eq!(out.status.signal(), Some(libc::SIGKILL));
    let id: i32 = report_of(&out.stdout, "id").unwrap().parse().unwrap();
    let _g = SegGuard(id);

    let start = Instant::now();
    let err = SharedCell::<u64>::open(key).unwrap_err();
    assert!(
        matches!(err, Error::CreatorDied { id: i, .. } if i == id),
        "{err}"
    );
    assert!(start.elapsed() < Duration::from_secs(2));

    // open_or_create takes over: it removes the dead segment and creates anew.
    let cell = SharedCell::<u64>::open_or_create(key, 9).unwrap();
    let _g2 = SegGuard(cell.id());
    assert_ne!(cell.id(), id);
    assert_eq!(cell.load(), 9);
    assert!(matches!(
        Segment::info_by_id(id),
        Err(Error::IdNotFound { .. })
    ));
}

#[test]
fn creator_stuck_before_ready_times_out() {
    let key = unique_key();
    let mut stuck = Live::spawn(&["die_initialising", &key.raw().to_string(), "stay"]);
    let id: i32 = stuck.expect("id").parse().unwrap();
    let _g = SegGuard(id);
    let start = Instant::now();
    let err = SharedCell::<u64>::opener()
        .init_timeout(Duration::from_millis(200))
        .open(key)
        .unwrap_err();
    assert!(matches!(err, Error::InitTimeout { .. }), "{err}");
    assert!(start.elapsed() >= Duration::from_millis(200));
    assert!(start.elapsed() < Duration::from_secs(5));
    stuck.child.kill().unwrap();
}

// A dead creator's pid taken by another process.

const NS_LAST_PID: &str = "/proc/sys/kernel/ns_last_pid";

/// A `squat` child whose pid is `pid`, made by setting the pid namespace's
/// last pid just before spawning; `None` if other processes kept taking it.
fn squat_on_pid(pid: i32) -> Result<Kid, String> {
    for attempt in 0..40 {
        let kid = {
            let _alone = SPAWNING.write().unwrap_or_else(|e| e.into_inner());
            std::fs::write(NS_LAST_PID, (pid - 1).to_string())
                .map_err(|e| format!("cannot write {NS_LAST_PID}: {e}"))?;
            Kid::spawn_unlocked(&["squat"])
        };
        if kid.pid() == pid {
            return Ok(kid);
        }
        drop(kid);
        std::thread::sleep(Duration::from_millis(5 * attempt));
    }
    Err(format!("other processes took pid {pid} 40 times"))
}

/// A creator that died before READY is taken over by `open_or_create` (and
/// reported as dead by `open`) even when its pid now belongs to another,
/// live process. Needs root (to steer pids through `ns_last_pid`); skipped
/// otherwise.
#[test]
fn a_creators_reused_pid_does_not_block_recovery() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: steering the next pid through {NS_LAST_PID} needs root");
        return;
    }
    if let Err(e) = std::fs::OpenOptions::new().write(true).open(NS_LAST_PID) {
        eprintln!("skipped: cannot open {NS_LAST_PID} for writing: {e}");
        return;
    }
    let key = unique_key();
    let mut dying = Kid::spawn(&["die_initialising_pair", &key.raw().to_string()]);
    let id: i32 = dying.expect("id").parse().unwrap();
    let _g = SegGuard(id);
    let status = dying.wait();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status}");
    let info = Segment::info_by_id(id).unwrap();
    let creator = info.cpid;
    assert_eq!(creator, dying.pid());
    // The squatter starts well after the segment was made (its change time
    // has whole seconds), as a reused pid would: the library may tell the
    // two processes apart by when they started.
    if let Some(made) = info.ctime {
        let later = made + Duration::from_secs(3);
        while let Ok(left) = later.duration_since(std::time::SystemTime::now()) {
            std::thread::sleep(left);
        }
    }

    let squatter = match squat_on_pid(creator) {
        Ok(kid) => kid,
        Err(why) => {
            eprintln!("skipped: could not start a process with pid {creator}: {why}");
            return;
        }
    };
    let short = Duration::from_millis(300);
    let opened = SharedCell::<[u64; 2]>::opener()
        .init_timeout(short)
        .open(key)
        .map(|c| c.id());
    let taken = SharedCell::<[u64; 2]>::options()
        .init_timeout(short)
        .open_or_create(key, [1, 2]);
    let _g2 = taken.as_ref().ok().map(|c| SegGuard(c.id()));
    drop(squatter);
    assert!(
        matches!(opened, Err(Error::CreatorDied { id: i, .. }) if i == id),
        "open of a segment whose creator (pid {creator}) died before READY, while pid \
         {creator} belongs to another live process: expected CreatorDied, got {opened:?}"
    );
    match taken {
        Ok(cell) => assert_eq!(cell.load(), [1, 2]),
        Err(e) => panic!(
            "open_or_create did not take over the segment of the dead creator (pid {creator}, \
             now another live process's): {e:?}"
        ),
    }
}

// A segment that is not shmstore's, whose first bytes are zero and whose
// creator has exited, is another program's: open_or_create leaves it.

#[test]
fn open_or_create_leaves_a_foreign_segment() {
    let key = unique_key();
    let mut k = Kid::spawn(&["plain_segment", &key.raw().to_string()]);
    let id: i32 = k.expect("id").parse().unwrap();
    let _g = SegGuard(id);
    assert!(k.wait().success());
    let cell = SharedCell::<u64>::open_or_create(key, 7);
    let _g2 = cell.as_ref().ok().map(|c| SegGuard(c.id()));
    let old = Segment::info_by_id(id);
    eprintln!(
        "open_or_create: {:?}; the foreign segment {id}: {:?}",
        cell.as_ref().map(|c| c.id()),
        old.as_ref().map(|i| i.size)
    );
    assert!(
        old.is_ok(),
        "open_or_create removed segment {id}, which shmstore never made"
    );
}

// ---------------------------------------------------------------------------
// Restarting and replacing.

/// A supervisor killed with SIGKILL and started again with the same code
/// continues on the same object: its value and version are kept.
#[test]
fn a_supervisor_killed_and_restarted_keeps_value_and_version() {
    let name = format!("shmstore-test/{}-restart", std::process::id());
    let key = Key::named(&name).unwrap();
    let mut first = Kid::spawn(&["supervisor", &name]);
    assert_eq!(first.expect("found"), "[0, 0]@0");
    let reader = SharedCell::<[u64; 2]>::open_read_only(key).unwrap();
    let _g = SegGuard(reader.id());
    while reader.load()[0] < 20 {
        reader
            .wait_for_change(reader.version(), Some(Duration::from_secs(10)))
            .unwrap();
    }
    first.kill();
    let (value, version) = (reader.load(), reader.version());
    assert!(value[0] >= 20 && version == value[0], "{value:?}@{version}");
    let mut second = Kid::spawn(&["supervisor", &name]);
    assert_eq!(second.expect("found"), format!("{value:?}@{version}"));
    while reader.version() < version + 5 {
        reader
            .wait_for_change(reader.version(), Some(Duration::from_secs(10)))
            .unwrap();
    }
    second.kill();
    assert!(reader.load()[0] >= value[0] + 5);
    assert_eq!(SharedCell::<[u64; 2]>::open(key).unwrap().id(), reader.id());
}

/// A new release replaces an object of another type in one call; the old
/// one's waiters see Removed. Another program's segment is never replaced.
#[test]
fn open_or_replace_replaces_only_shmstore_objects_of_another_type() {
    let key = unique_key();
    let old = SharedCell::<u64>::create(key, 1).unwrap();
    let _g = SegGuard(old.id());
    let reader = SharedCell::<u64>::open_read_only(key).unwrap();
    let new = SharedCell::<[u64; 2]>::open_or_replace(key, [2, 2]).unwrap();
    let _g2 = SegGuard(new.id());
    assert_ne!(new.id(), old.id());
    assert!(matches!(
        reader.wait_for_change(reader.version(), Some(Duration::from_secs(10))),
        Err(Error::Removed { .. })
    ));
    // The same type: opened, not replaced.
    let again = SharedCell::<[u64; 2]>::open_or_replace(key, [9, 9]).unwrap();
    assert_eq!((again.id(), again.load()), (new.id(), [2, 2]));

    let foreign_key = unique_key();
    let foreign = Segment::options()
        .size(4096)
        .create(true)
        .open(foreign_key)
        .unwrap();
    let _g3 = SegGuard(foreign.id());
    foreign.write_at(0, b"not ours").unwrap();
    assert!(matches!(
        SharedCell::<u64>::open_or_replace(foreign_key, 0),
        Err(Error::NotShmstore { .. })
    ));
    assert!(!foreign.info().unwrap().marked_for_removal);
}

// ---------------------------------------------------------------------------
// Removal seen by waiters and handles, and `remove_on_drop`.

#[derive(rkyv::Archive, rkyv::Serialize)]
struct Note {
    text: String,
}

/// Report `waiting`, wait, and say how the wait ended.
fn wait(f: impl FnOnce() -> shmstore::Result<u64>) -> String {
    report("waiting", 1);
    match f() {
        Err(Error::Removed { .. }) => "removed".into(),
        other => format!("{other:?}"),
    }
}

/// How an object is removed.
#[derive(Clone, Copy, Debug)]
enum Remover {
    Handle,
    Command,
    Ipcrm,
}

fn remove(how: Remover, id: i32, by_handle: impl FnOnce() -> shmstore::Result<()>) {
    match how {
        Remover::Handle => by_handle().unwrap(),
        Remover::Command => {
            let out = Command::new(env!("CARGO_BIN_EXE_shmstore"))
                .args(["remove", &id.to_string()])
                .output()
                .unwrap();
            assert!(out.status.success(), "shmstore remove: {out:?}");
        }
        Remover::Ipcrm => {
            let out = Command::new("ipcrm")
                .args(["-m", &id.to_string()])
                .output()
                .unwrap();
            assert!(out.status.success(), "ipcrm: {out:?}");
        }
    }
}

/// Every waiter returns `Removed` soon after the removal, however it was
/// removed, for cells and regions, read-write and read-only waiters.
#[test]
fn waiters_learn_that_their_object_was_removed() {
    for how in [Remover::Handle, Remover::Command, Remover::Ipcrm] {
        for kind in ["cell", "region"] {
            let key = unique_key();
            let (id, by_handle): (i32, Box<dyn FnOnce() -> shmstore::Result<()>>) =
                if kind == "cell" {
                    let cell = SharedCell::<u64>::create(key, 1).unwrap();
                    (cell.id(), Box::new(move || cell.remove()))
                } else {
                    let region = SharedRegion::<Note>::create(key, 1024).unwrap();
                    region
                        .publish(&Note {
                            text: "first".into(),
                        })
                        .unwrap();
                    (region.id(), Box::new(move || region.remove()))
                };
            let _g = SegGuard(id);
            let raw = key.raw().to_string();
            let role = format!("{kind}_wait");
            let mut waiters: Vec<Kid> = ["rw", "ro"]
                .iter()
                .map(|access| Kid::spawn(&[&role, &raw, access]))
                .collect();
            for w in &mut waiters {
                w.expect("waiting");
            }
            // Let them fall asleep.
            std::thread::sleep(Duration::from_millis(50));
            let removed_at = Instant::now();
            remove(how, id, by_handle);
            for (w, access) in waiters.iter_mut().zip(["rw", "ro"]) {
                assert_eq!(
                    w.expect("outcome"),
                    "removed",
                    "{how:?} of a {kind}, {access} waiter"
                );
                let took = removed_at.elapsed();
                assert!(
                    took < Duration::from_secs(5),
                    "{how:?} of a {kind}: the {access} waiter took {took:?}"
                );
                w.wait();
            }
            assert!(matches!(
                SharedCell::<u64>::open(key),
                Err(Error::NotFound { .. })
            ));
        }
    }
}

/// A handle can ask whether its object is still the one its key reaches,
/// and waiting on a removed object fails at once.
#[test]
fn handles_know_their_object_was_removed() {
    let key = unique_key();
    let cell = SharedCell::<u64>::create(key, 7).unwrap();
    let _g = SegGuard(cell.id());
    let reader = SharedCell::<u64>::open_read_only(key).unwrap();
    assert!(!cell.is_removed().unwrap() && !reader.is_removed().unwrap());
    cell.remove().unwrap();
    assert!(cell.is_removed().unwrap() && reader.is_removed().unwrap());
    assert_eq!(reader.load(), 7, "the last value stays readable");
    assert!(matches!(
        reader.wait_for_change(0, Some(Duration::from_secs(10))),
        Err(Error::Removed { .. })
    ));
    assert!(matches!(
        cell.wait_for_change(0, Some(Duration::ZERO)),
        Err(Error::Removed { .. })
    ));
    // A new object at the key is another one.
    let new = SharedCell::<u64>::create(key, 8).unwrap();
    let _g2 = SegGuard(new.id());
    assert!(cell.is_removed().unwrap() && !new.is_removed().unwrap());
    assert_eq!(SharedCell::<u64>::open(key).unwrap().load(), 8);
}

#[test]
fn remove_on_drop_and_remove() {
    let key = unique_key();
    let cell = SharedCell::<u32>::options()
        .remove_on_drop(true)
        .create(key, 1)
        .unwrap();
    let id = cell.id();
    let _g = SegGuard(id);
    let other = SharedCell::<u32>::open(key).unwrap();
    drop(cell);
    assert!(matches!(
        SharedCell::<u32>::open(key),
        Err(Error::NotFound { .. })
    ));
    other.store(2).unwrap();
    assert_eq!(other.load(), 2);
    drop(other);
    assert!(matches!(
        Segment::info_by_id(id),
        Err(Error::IdNotFound { .. })
    ));
}

/// What sits at the key before the failed open.
#[derive(Clone, Copy, Debug)]
enum Occupant {
    /// A `SharedCell<u64>` holding 5.
    Cell,
    /// A `SharedRegion<Text>` holding version 1.
    Region,
    /// A plain segment of 4096 zero bytes.
    Zeros,
    /// A plain segment of 4096 bytes of noise.
    Noise,
    /// A plain segment of 100 bytes, too small for a header.
    Small,
}

fn noise(len: usize) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

/// Put `occupant` at a fresh key; returns the key, the segment's id and a
/// handle that keeps the segment attached (so a removal shows as
/// `marked_for_removal`), and the guard that removes it.
fn occupy(occupant: Occupant) -> (Key, i32, Box<dyn std::any::Any>, SegGuard) {
    let key = unique_key();
    let (id, keep): (i32, Box<dyn std::any::Any>) = match occupant {
        Occupant::Cell => {
            let cell = SharedCell::<u64>::create(key, 5).unwrap();
            (cell.id(), Box::new(cell))
        }
        Occupant::Region => {
            let region = SharedRegion::<Text>::create(key, 4096).unwrap();
            region.publish(&Text::of(1)).unwrap();
            (region.id(), Box::new(region))
        }
        Occupant::Zeros | Occupant::Noise | Occupant::Small => {
            let size = if matches!(occupant, Occupant::Small) {
                100
            } else {
                4096
            };
            let seg = Segment::options()
                .size(size)
                .create(true)
                .exclusive(true)
                .open(key)
                .unwrap();
            if matches!(occupant, Occupant::Noise) {
                seg.write_at(0, &noise(size)).unwrap();
            }
            (seg.id(), Box::new(seg))
        }
    };
    let guard = SegGuard(id);
    (key, id, keep, guard)
}

/// What is wrong with the occupant after the failed open, if anything.
fn occupant_damage(occupant: Occupant, key: Key, id: i32) -> Option<String> {
    match Segment::info_by_id(id) {
        Ok(info) if info.marked_for_removal => {
            return Some(format!("segment {id} is marked for removal"));
        }
        Ok(_) => {}
        Err(e) => return Some(format!("segment {id} is gone: {e}")),
    }
    match Segment::options().open(key) {
        Ok(seg) if seg.id() == id => {}
        Ok(seg) => return Some(format!("the key now names segment {}", seg.id())),
        Err(e) => return Some(format!("the key no longer finds it: {e}")),
    }
    match occupant {
        Occupant::Cell => match SharedCell::<u64>::open(key).map(|c| c.load()) {
            Ok(5) => None,
            other => Some(format!("the cell now opens as {other:?}")),
        },
        Occupant::Region => {
            let region = SharedRegion::<Text>::open(key);
            match region.as_ref().map(describe_read) {
                Ok(read) if read == "ok" => None,
                Ok(read) => Some(format!("the region now reads {read}")),
                Err(e) => Some(format!("the region now opens as {e:?}")),
            }
        }
        Occupant::Zeros | Occupant::Noise | Occupant::Small => {
            let seg = Segment::attach_id(id).unwrap();
            let mut bytes = vec![0; seg.len()];
            seg.read_at(0, &mut bytes).unwrap();
            let want = if matches!(occupant, Occupant::Noise) {
                noise(bytes.len())
            } else {
                vec![0; bytes.len()]
            };
            (bytes != want).then(|| "its bytes changed".to_owned())
        }
    }
}

type Attempt = fn(Key, i32) -> Option<Error>;

/// Opens that must fail, each with remove_on_drop (which only read-write
/// builders have); `None` if it opened.
fn failing_opens() -> Vec<(&'static str, Attempt)> {
    vec![
        ("SharedCell::<u32> open", |key, _| {
            SharedCell::<u32>::opener()
                .remove_on_drop(true)
                .init_timeout(Duration::from_millis(100))
                .open(key)
                .err()
        }),
        ("SharedCell::<u32> open_or_create", |key, _| {
            SharedCell::<u32>::options()
                .remove_on_drop(true)
                .init_timeout(Duration::from_millis(100))
                .open_or_create(key, 0)
                .err()
        }),
        ("SharedCell::<u32> open by id", |_, id| {
            SharedCell::<u32>::opener()
                .remove_on_drop(true)
                .init_timeout(Duration::from_millis(100))
                .open(shmstore::Target::Id(id))
                .err()
        }),
        ("SharedRegion::<String> open", |key, _| {
            SharedRegion::<String>::opener()
                .remove_on_drop(true)
                .init_timeout(Duration::from_millis(100))
                .open(key)
                .err()
        }),
        ("SharedRegion::<String> open_or_create", |key, _| {
            SharedRegion::<String>::options()
                .remove_on_drop(true)
                .init_timeout(Duration::from_millis(100))
                .open_or_create(key, 4096)
                .err()
        }),
        ("SharedRegion::<String> open by id", |_, id| {
            SharedRegion::<String>::opener()
                .remove_on_drop(true)
                .init_timeout(Duration::from_millis(100))
                .open(shmstore::Target::Id(id))
                .err()
        }),
    ]
}

/// An open with `remove_on_drop(true)` that fails (another type at the key,
/// or not a shmstore segment) leaves the segment as it was: not marked for
/// removal, still at its key, its contents unchanged.
#[test]
fn a_failed_open_with_remove_on_drop_leaves_the_segment() {
    let mut damage = Vec::new();
    for occupant in [
        Occupant::Cell,
        Occupant::Region,
        Occupant::Zeros,
        Occupant::Noise,
        Occupant::Small,
    ] {
        for (what, attempt) in failing_opens() {
            let (key, id, keep, _g) = occupy(occupant);
            let Some(err) = attempt(key, id) else {
                damage.push(format!("{what} on a {occupant:?} segment opened it"));
                continue;
            };
            if let Some(wrong) = occupant_damage(occupant, key, id) {
                damage.push(format!(
                    "{what} on a {occupant:?} segment failed ({err:?}) and {wrong}"
                ));
            }
            drop(keep);
        }
    }
    assert!(damage.is_empty(), "{}", damage.join("\n"));
}

// ---------------------------------------------------------------------------
// Garbage: what nobody uses.

/// `shmstore gc` lists the objects nobody uses (no process attached, the
/// creator gone), and not the others; with `--remove` it removes them, only
/// the caller's own unless root.
#[test]
fn gc_finds_what_nobody_uses() {
    let (dead_key, live_key, held_key) = (unique_key(), unique_key(), unique_key());
    let mut dead = Kid::spawn(&["make_and_exit", &dead_key.raw().to_string(), "self"]);
    let dead_id: i32 = dead.expect("id").parse().unwrap();
    dead.wait();
    let _g1 = SegGuard(dead_id);
    let mut live = Kid::spawn(&["make_and_stay", &live_key.raw().to_string()]);
    let live_id: i32 = live.expect("id").parse().unwrap();
    let _g2 = SegGuard(live_id);
    let mut held = Kid::spawn(&["make_and_exit", &held_key.raw().to_string(), "self"]);
    let held_id: i32 = held.expect("id").parse().unwrap();
    held.wait();
    let _g3 = SegGuard(held_id);
    let holder = SharedCell::<u64>::opener()
        .open(shmstore::Target::Id(held_id))
        .unwrap();

    let garbage: Vec<i32> = shmstore::inspect::garbage()
        .unwrap()
        .iter()
        .map(|o| o.info.id)
        .collect();
    assert!(garbage.contains(&dead_id), "{garbage:?}");
    assert!(!garbage.contains(&live_id), "the creator runs");
    assert!(!garbage.contains(&held_id), "a process is attached");
    let out = Command::new(env!("CARGO_BIN_EXE_shmstore"))
        .arg("gc")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.contains(&format!("would remove segment {dead_id} ")),
        "{text}"
    );
    assert!(!text.contains(&format!("segment {live_id} ")), "{text}");
    assert!(
        SharedCell::<u64>::opener()
            .open(shmstore::Target::Id(dead_id))
            .is_ok(),
        "a dry run removes nothing"
    );
    live.send("stop");
    live.wait();
    drop(holder);

    if !common::root_or_skip("gc --remove as another user") {
        return;
    }
    let nobody_key = unique_key();
    let mut made = Kid::spawn(&["make_and_exit", &nobody_key.raw().to_string(), "nobody"]);
    let nobody_id: i32 = made.expect("id").parse().unwrap();
    made.wait();
    let _g4 = SegGuard(nobody_id);
    let mut gc = Kid::spawn(&["gc_as_nobody", env!("CARGO_BIN_EXE_shmstore")]);
    assert_eq!(gc.expect("ok"), "true");
    let text = gc.expect("out");
    gc.wait();
    assert!(
        text.contains(&format!("removed segment {nobody_id} ")),
        "{text}"
    );
    assert!(
        !text.contains(&format!("segment {dead_id} ")),
        "nobody removed root's segment: {text}"
    );
    assert!(
        shmstore::Segment::info_by_id(nobody_id).is_err()
            || shmstore::Segment::info_by_id(nobody_id)
                .unwrap()
                .marked_for_removal
    );
    assert!(
        !shmstore::Segment::info_by_id(dead_id)
            .unwrap()
            .marked_for_removal
    );
}
