//! Ids are reused: a removal that decided on one segment and removes by id
//! later can hit another. Needs root, to hand a chosen id to the next
//! segment (`/proc/sys/kernel/shm_next_id`) and to act as another user;
//! skipped otherwise. One test in its own binary, so that no other test's
//! segment takes the chosen id.

mod common;

use std::process::{Command, Stdio};

use common::names::{NameGuard, fresh_name};
use common::{Kid, SegGuard, child, child_args, drop_to, read_command, report, root_or_skip};
use shmstore::{Key, Segment, SharedCell};

#[test]
fn child_entry() {
    let Some(args) = child_args() else { return };
    match args[0].as_str() {
        // Make a named object and exit: garbage once nobody attaches it.
        "make" => {
            let cell = SharedCell::<u64>::create(Key::named(&args[1]).unwrap(), 1).unwrap();
            report("id", cell.id());
        }
        // As another user, make a named object, detach it, and run on
        // (its creator lives) until stdin closes.
        "victim" => {
            drop_to(65533, 65533);
            let cell = SharedCell::<u64>::create(Key::named(&args[1]).unwrap(), 7).unwrap();
            report("id", cell.id());
            drop(cell);
            while read_command().is_some() {}
        }
        other => panic!("unknown role {other}"),
    }
    std::process::exit(0);
}

/// The command, stopped at `step`.
fn stopped(args: &[&str], step: &str) -> Kid {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shmstore"));
    cmd.args(args).stdout(Stdio::piped());
    common::start_stopped(cmd, step)
}

/// Root's `gc --remove` and `remove --prefix` list ids and call `IPC_RMID`
/// later; an id reused meanwhile by another user's new object is judged
/// again on an attachment of the id, so the other user's object, at the
/// very id the listing saw, is left alone.
#[test]
fn a_reused_id_is_never_removed_by_gc_or_prefix_removal() {
    if !root_or_skip("reusing an id as another user") {
        return;
    }
    for (what, step) in [("gc", "gc.after_list"), ("remove", "remove.after_list")] {
        let prefix = fresh_name("reuse");
        let listed = format!("{prefix}/listed");
        // For gc, the other user's object is even under the prefix (what
        // saves it is that its creator runs); for remove --prefix, it is
        // not under the prefix.
        let other = match what {
            "gc" => format!("{prefix}/victim"),
            _ => fresh_name("victim"),
        };
        let (_g1, _g2) = (NameGuard::of(&listed), NameGuard::of(&other));
        let mut made = Kid::spawn(&["make", &listed]);
        let id: i32 = made.expect("id").parse().unwrap();
        assert!(made.wait().success());
        let p = format!("{prefix}/");
        let args: Vec<&str> = match what {
            "gc" => vec!["gc", "--remove", "--prefix", &p],
            _ => vec!["remove", "--prefix", &p],
        };
        // It listed the object and stopped before attaching it.
        let mut cmd = stopped(&args, step);
        // The listed object goes, and another user's new object gets its
        // id.
        Segment::remove_by_id(id).unwrap();
        std::fs::write("/proc/sys/kernel/shm_next_id", id.to_string()).unwrap();
        let mut victim = Kid::start(child(&["victim", &other]));
        let victim_id: i32 = victim.expect("id").parse().unwrap();
        let _g3 = SegGuard(victim_id);
        assert_eq!(victim_id, id, "{what}: the id was not handed on");
        // SAFETY: a signal to a child of this process; no memory is involved.
        assert_eq!(unsafe { libc::kill(cmd.pid(), libc::SIGCONT) }, 0);
        cmd.wait();
        let kept = Segment::info_by_id(id).is_ok_and(|info| !info.marked_for_removal);
        assert!(
            kept,
            "{what} removed another user's object at the id it had listed"
        );
        drop(victim);
    }
}
