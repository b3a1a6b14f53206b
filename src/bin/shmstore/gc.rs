//! `shmstore gc`: the shmstore objects nobody uses, removed when told.

use serde_json::{Value, json};
use shmstore::{Segment, inspect};

use crate::out::{clean, print_json};
use crate::{Failure, Outcome};

pub fn run(remove: bool, as_json: bool) -> Result<Outcome, Failure> {
    let mut outcome = Outcome::Done;
    let mut rows = Vec::new();
    let garbage = inspect::garbage()?;
    if garbage.is_empty() && !as_json {
        println!("nothing to collect");
    }
    for o in garbage {
        let what = o
            .description
            .as_ref()
            .map(|d| d.summary())
            .unwrap_or_default();
        let result = remove.then(|| Segment::remove_by_id(o.info.id));
        let error = match &result {
            Some(Err(e)) => {
                outcome = Outcome::SomeFailed;
                Some(clean(&e.to_string()))
            }
            _ => None,
        };
        if as_json {
            rows.push(json!({
                "id": o.info.id,
                "holds": what,
                "removed": result.as_ref().map(|r| r.is_ok()),
                "error": error,
            }));
            continue;
        }
        match (&result, &error) {
            (None, _) => println!("would remove segment {} ({})", o.info.id, clean(&what)),
            (Some(Ok(())), _) => println!("removed segment {} ({})", o.info.id, clean(&what)),
            (Some(Err(_)), Some(e)) => eprintln!("shmstore: segment {}: {e}", o.info.id),
            (Some(Err(_)), None) => {}
        }
    }
    if as_json {
        print_json(&Value::Array(rows));
    }
    Ok(outcome)
}
