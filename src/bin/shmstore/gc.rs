//! `shmstore gc`: the shmstore objects nobody uses, removed when told: each
//! judged again on an attachment and collected through it
//! (`inspect::collect`), so that an object a process opened meanwhile is
//! kept.

use serde_json::{Value, json};
use shmstore::inspect::{self, Collection};

use crate::out::{self, clean};
use crate::{Failure, Outcome};

pub fn run(remove: bool, prefix: Option<&str>, as_json: bool) -> Result<Outcome, Failure> {
    let mut outcome = Outcome::Done;
    let mut rows = Vec::new();
    let mut garbage = inspect::garbage()?;
    if let Some(p) = prefix {
        garbage.retain(|o| o.name().is_some_and(|n| n.starts_with(p)));
    }
    if garbage.is_empty() && !as_json {
        out::report("nothing to collect")?;
    }
    for o in garbage {
        let what = o
            .description
            .as_ref()
            .map(|d| d.summary())
            .unwrap_or_default();
        // Judged again on an attachment, and collected through it.
        let result = remove.then(|| inspect::collect(o.info.id, prefix));
        let error = match &result {
            Some(Err(e)) => {
                outcome = Outcome::SomeFailed;
                Some(clean(&e.to_string()))
            }
            _ => None,
        };
        let kept = match &result {
            Some(Ok(Collection::Kept(why))) => Some(clean(why)),
            _ => None,
        };
        if as_json {
            rows.push(json!({
                "id": o.info.id,
                "holds": what,
                "removed": result.as_ref().map(|r| matches!(r, Ok(Collection::Removed))),
                "kept": kept,
                "error": error,
            }));
            continue;
        }
        match (&result, &error) {
            (None, _) => out::report(format_args!(
                "would remove segment {} ({})",
                o.info.id,
                clean(&what)
            ))?,
            (Some(Ok(Collection::Removed)), _) => out::report(format_args!(
                "removed segment {} ({})",
                o.info.id,
                clean(&what)
            ))?,
            (Some(Ok(Collection::Kept(_))), _) => out::report(format_args!(
                "kept segment {} ({}): {}",
                o.info.id,
                clean(&what),
                kept.unwrap_or_default()
            ))?,
            (Some(Err(_)), Some(e)) => out::warn(format_args!("segment {}: {e}", o.info.id)),
            (Some(Err(_)), None) => {}
        }
    }
    if as_json {
        out::report(Value::Array(rows))?;
    }
    Ok(outcome)
}
