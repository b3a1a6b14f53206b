//! Helpers shared by the benches.

use std::path::Path;
use std::time::SystemTime;

/// Criterion's median time for `group/bench` in nanoseconds, if this run
/// measured it (its `estimates.json` was written after `since`).
pub fn median_ns(out_dir: &Path, group: &str, bench: &str, since: SystemTime) -> Option<f64> {
    let path = out_dir.join(group).join(bench).join("new/estimates.json");
    let modified = std::fs::metadata(&path).ok()?.modified().ok()?;
    if modified < since {
        return None;
    }
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
    json["median"]["point_estimate"].as_f64()
}
