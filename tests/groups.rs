//! Sharing objects within a group: a creator gives its object to a group,
//! members who trust that group open it, and a user outside the group who
//! planted a segment at the key is still refused. Needs root (to act as
//! other users); skipped otherwise.

mod common;

use common::{Kid, SegGuard, child_args, drop_to, key_arg, report, root_or_skip, unique_key};
use shmstore::{Error, Key, Segment, SharedCell};

const GROUP: u32 = 43_000;
const CREATOR: u32 = 43_001;
const MEMBER: u32 = 43_002;
const OUTSIDER: u32 = 43_003;
const OUTSIDE_GROUP: u32 = 43_999;

fn describe(r: &shmstore::Result<SharedCell<u64>>) -> String {
    match r {
        Ok(c) => format!("ok {}", c.load()),
        Err(Error::ForeignOwner { .. }) => "foreign".into(),
        Err(Error::PermissionDenied { .. }) => "denied".into(),
        Err(e) => format!("error {e}"),
    }
}

#[test]
fn child_entry() {
    let Some(args) = child_args() else { return };
    let key = key_arg(&args, 1);
    match args[0].as_str() {
        "create_for_group" => {
            drop_to(CREATOR, GROUP);
            let cell = SharedCell::<u64>::options()
                .mode(0o660)
                .group(GROUP)
                .create(key, 7)
                .unwrap();
            report("id", cell.id());
        }
        "open" => {
            let (uid, gid) = match args[2].as_str() {
                "member" => (MEMBER, GROUP),
                _ => (OUTSIDER, OUTSIDE_GROUP),
            };
            drop_to(uid, gid);
            let plain = SharedCell::<u64>::open(key);
            let plain_text = match &plain {
                Err(e @ Error::ForeignOwner { .. }) => {
                    format!(
                        "foreign, says trust_group: {}",
                        e.to_string().contains("trust_group(43000)")
                    )
                }
                other => describe(other),
            };
            report("plain", plain_text);
            let trusting = SharedCell::<u64>::opener().trust_group(GROUP).open(key);
            report("trusting", describe(&trusting));
        }
        // An outsider plants a segment at the key, made to look like the
        // group's.
        "squat" => {
            drop_to(OUTSIDER, OUTSIDE_GROUP);
            let cell = SharedCell::<u64>::options()
                .mode(0o666)
                .create(key, 666)
                .unwrap();
            let regrouped = cell.set_owner(OUTSIDER, GROUP).is_ok();
            report("id", cell.id());
            report("regrouped", regrouped);
        }
        // A user makes a named object others may read.
        "create_named" => {
            drop_to(CREATOR, GROUP);
            let cell = SharedCell::<u64>::options()
                .mode(0o644)
                .create(Key::named(&args[2]).unwrap(), 9)
                .unwrap();
            report("id", cell.id());
        }
        other => panic!("unknown role {other}"),
    }
    std::process::exit(0);
}

/// A user who does not trust an object's owner, opening it by name, is
/// told who owns it and how to trust them, not `NotFound` for an object
/// `shmstore list` shows; trusting that user opens it.
#[test]
fn a_name_held_by_another_user_says_whose_it_is() {
    if !root_or_skip("acting as another user") {
        return;
    }
    let name = common::names::fresh_name("foreign");
    let _names = common::names::NameGuard::of(&name);
    let mut creator = run(&["create_named", &unique_key().raw().to_string(), &name]);
    let id: i32 = creator.expect("id").parse().unwrap();
    creator.wait();
    let _g = SegGuard(id);
    let key = Key::named(&name).unwrap();
    match SharedCell::<u64>::open_read_only(key) {
        Err(e @ Error::ForeignOwner { uid, cuid, .. }) => {
            assert_eq!((uid, cuid), (CREATOR, CREATOR));
            let text = e.to_string();
            assert!(text.contains(&format!("trust_user({CREATOR})")), "{text}");
        }
        other => panic!("{:?}", other.map(|c| c.id())),
    }
    let cell = shmstore::CellReader::<u64>::opener()
        .trust_user(CREATOR)
        .open(key)
        .unwrap();
    assert_eq!((cell.id(), cell.load()), (id, 9));
}

fn run(args: &[&str]) -> Kid {
    Kid::spawn(args)
}

#[test]
fn members_who_trust_the_group_share_its_objects_and_squatters_stay_out() {
    if !root_or_skip("acting as other users and groups") {
        return;
    }
    let key = unique_key();
    let raw = key.raw().to_string();
    let mut creator = run(&["create_for_group", &raw]);
    let id: i32 = creator.expect("id").parse().unwrap();
    creator.wait();
    let _g = SegGuard(id);
    let info = Segment::info_by_id(id).unwrap();
    assert_eq!(
        (info.uid, info.gid, info.cuid, info.mode),
        (CREATOR, GROUP, CREATOR, 0o660)
    );

    let mut member = run(&["open", &raw, "member"]);
    assert_eq!(member.expect("plain"), "foreign, says trust_group: true");
    assert_eq!(member.expect("trusting"), "ok 7");
    member.wait();

    let mut outsider = run(&["open", &raw, "outsider"]);
    outsider.expect("plain");
    assert_ne!(
        outsider.expect("trusting"),
        "ok 7",
        "an outsider read a 0660 object"
    );
    outsider.wait();

    // A squatter outside the group plants a segment at another key, given
    // to the group as well as it can: a member trusting the group refuses it.
    let squat_key = unique_key();
    let squat_raw = squat_key.raw().to_string();
    let mut squatter = run(&["squat", &squat_raw]);
    let squat_id: i32 = squatter.expect("id").parse().unwrap();
    squatter.expect("regrouped");
    squatter.wait();
    let _g2 = SegGuard(squat_id);
    let mut member = run(&["open", &squat_raw, "member"]);
    member.expect("plain");
    assert_eq!(
        member.expect("trusting"),
        "foreign",
        "a squatter's segment was trusted"
    );
    member.wait();
}

#[test]
fn owners_change_mode_and_owner_through_the_handle() {
    let cell = SharedCell::<u64>::create(Key::PRIVATE, 1).unwrap();
    let _g = SegGuard(cell.id());
    cell.set_mode(0o640).unwrap();
    assert_eq!(cell.info().unwrap().mode, 0o640);
    if !root_or_skip("giving a segment to another user") {
        return;
    }
    cell.set_owner(OUTSIDER, GROUP).unwrap();
    let info = cell.info().unwrap();
    assert_eq!((info.uid, info.gid), (OUTSIDER, GROUP));
}
