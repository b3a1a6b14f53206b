//! `shmstore list`: every segment, the kernel's view read before attaching,
//! shmstore ones decoded, those a lookup by name would not trust marked.

use serde_json::{Value, json};
use shmstore::inspect::{self, Trust};
use shmstore::list_segments;

use crate::out::{self, clean, description_json, kernel_json, liveness_json, print_json};
use crate::{Failure, Outcome};

pub fn run(as_json: bool, no_attach: bool, trust: &Trust) -> Result<Outcome, Failure> {
    let objects: Vec<inspect::Object> = if no_attach {
        list_segments()?
            .into_iter()
            .map(|info| inspect::Object {
                info,
                description: Err("not attached (--no-attach)".into()),
                liveness: None,
            })
            .collect()
    } else {
        inspect::objects()?
    };
    if as_json {
        let rows: Vec<Value> = objects
            .iter()
            .map(|o| {
                json!({
                    "kernel": kernel_json(&o.info),
                    "trusted": trust.trusts(&o.info),
                    "object": o.description.as_ref().ok().map(description_json),
                    "unreadable": o.description.as_ref().err().map(|e| clean(e)),
                    "liveness": o.liveness.as_ref().map(liveness_json),
                })
            })
            .collect();
        print_json(&Value::Array(rows))?;
        return Ok(Outcome::Done);
    }
    out::line(format_args!(
        "{:<10} {:>10} {:>5} {:>10} {:>6} {:>7} {:>7}  contents",
        "key", "id", "mode", "bytes", "nattch", "cpid", "lpid"
    ))?;
    for o in &objects {
        let s = &o.info;
        // Another user's segment can hold any name: said first, so that
        // it is not taken for one's own.
        let mut contents = match out::distrust(s, trust) {
            Some(why) => format!("[not trusted: {why}] "),
            None => String::new(),
        };
        match &o.description {
            Ok(d) => contents.push_str(&d.summary()),
            Err(e) => contents.push_str(&format!("({})", clean(e))),
        }
        if let Ok(d) = &o.description
            && !d.warnings.is_empty()
        {
            contents.push_str(" [inconsistent: see inspect]");
        }
        if let Some(l) = &o.liveness {
            if !l.creator.1 {
                contents.push_str(" [creator gone]");
            }
            let dead = l.readers.iter().filter(|r| !r.2).count();
            if dead > 0 {
                contents.push_str(&format!(" [{dead} dead reader pins]"));
            }
        }
        if s.marked_for_removal {
            contents.push_str(" [removed]");
        }
        out::line(format_args!(
            "{:<10} {:>10} {:>5o} {:>10} {:>6} {:>7} {:>7}  {}",
            format!("{:#010x}", s.key.raw() as u32),
            s.id,
            s.mode,
            s.size,
            s.nattch,
            s.cpid,
            s.lpid,
            clean(&contents)
        ))?;
    }
    Ok(Outcome::Done)
}
