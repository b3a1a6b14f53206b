//! `shmstore inspect`: one segment, the kernel's view read before
//! attaching, then the header's, then who still runs.

use serde_json::json;
use shmstore::Segment;
use shmstore::inspect;

use crate::out::{self, clean, description_json, kernel_json, liveness_json, print_json, utc};
use crate::resolve::{Lookup, Purpose, attach, id_of};
use crate::{Failure, Outcome};

pub fn run(
    target: &str,
    lookup: &Lookup,
    as_json: bool,
    no_attach: bool,
) -> Result<Outcome, Failure> {
    // An id or a key is looked at before attaching (an attach changes the
    // kernel's last pid and time); a name is found by attaching its keys,
    // so its kernel fields count this command's attach.
    let (info, attached) = match id_of(target)? {
        Some(id) => {
            let info = Segment::info_by_id(id)?;
            let attached = if no_attach {
                None
            } else {
                Some(
                    Segment::options()
                        .read_only(true)
                        .allow_foreign_owner(true)
                        .attach_id(id)?,
                )
            };
            (info, attached)
        }
        None if no_attach => {
            return Err("--no-attach takes an id or a key: a name is found by attaching".into());
        }
        None => {
            let seg = attach(target, lookup, Purpose::Read)?;
            (seg.info()?, Some(seg))
        }
    };
    let id = info.id;
    let description = match &attached {
        Some(seg) => Some(inspect::describe_segment(seg)?),
        None => None,
    };
    let liveness = attached.as_ref().and_then(inspect::liveness);
    if as_json {
        print_json(&json!({
            "kernel": kernel_json(&info),
            "trusted": lookup.trust.trusts(&info),
            "object": description.as_ref().map(description_json),
            "liveness": liveness.as_ref().map(liveness_json),
        }))?;
        return Ok(Outcome::Done);
    }
    out::line(format_args!(
        "segment:     id {id}, key {:#010x}",
        info.key.raw() as u32
    ))?;
    out::line(format_args!(
        "kernel:      {} bytes, mode {:o}, owner {}:{}, creator {}:{} (pid {}), last attach or \
         detach by pid {}, {} attached{}{}",
        info.size,
        info.mode,
        info.uid,
        info.gid,
        info.cuid,
        info.cgid,
        info.cpid,
        info.lpid,
        info.nattch,
        utc(info.ctime).map_or(String::new(), |t| format!(", changed at {t}")),
        if info.marked_for_removal {
            ", marked for removal"
        } else {
            ""
        }
    ))?;
    match out::distrust(&info, &lookup.trust) {
        None => out::line(format_args!(
            "trust:       trusted (owner uid {}, creator uid {})",
            info.uid, info.cuid
        ))?,
        Some(why) => out::line(format_args!(
            "trust:       not trusted ({why}): another user's, which a lookup by name refuses \
             (--trust-user, --trust-group or --allow-foreign-owner trust it)"
        ))?,
    }
    let never = || "never".to_owned();
    out::line(format_args!(
        "attaches:    last attach {}, last detach {}",
        utc(info.atime).unwrap_or_else(never),
        utc(info.dtime).unwrap_or_else(never)
    ))?;
    if let Some(d) = &description {
        // The description's strings are escaped; print it line by line
        // through clean() all the same.
        for line in d.to_string().lines() {
            out::line(clean(line))?;
        }
    }
    if let Some(l) = &liveness {
        let state = |yes: bool| if yes { "running" } else { "gone" };
        out::line(format_args!(
            "creator:     pid {} ({})",
            l.creator.0,
            state(l.creator.1)
        ))?;
        for (pid, buffer, running) in &l.readers {
            match buffer {
                Some(b) => out::line(format_args!(
                    "reader:      pid {pid} ({}), pins buffer {b}",
                    state(*running)
                ))?,
                None => out::line(format_args!(
                    "reader:      pid {pid} ({}), pins nothing",
                    state(*running)
                ))?,
            }
        }
    }
    Ok(Outcome::Done)
}
