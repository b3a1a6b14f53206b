//! Criterion's results: where they are kept, reading their medians back, and
//! formatting them for the benches' Markdown tables.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Where criterion keeps its results: as criterion decides by default, but
/// without asking `cargo metadata` (the binary lies in `<target>/<profile>/deps`).
pub fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(target).join("criterion");
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.join("criterion")))
        .unwrap_or_else(|| PathBuf::from("target/criterion"))
}

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

/// `ns` nanoseconds for a table: two decimals below 100 ns, whole
/// nanoseconds below 10 µs, then microseconds with `micros_decimals`
/// decimals.
pub fn fmt_ns(ns: f64, micros_decimals: usize) -> String {
    if ns >= 10_000.0 {
        format!("{:.*} µs", micros_decimals, ns / 1000.0)
    } else if ns >= 100.0 {
        format!("{ns:.0} ns")
    } else {
        format!("{ns:.2} ns")
    }
}

/// As [`fmt_ns`], and "n/a" for what was not measured.
pub fn fmt_opt_ns(ns: Option<f64>, micros_decimals: usize) -> String {
    ns.map_or("n/a".into(), |ns| fmt_ns(ns, micros_decimals))
}

/// `a / b`, if both were measured and `b` is not 0.
pub fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

/// A ratio against its target, as two table cells: the ratio with two
/// decimals ("1.23x") and whether `met` holds for it ("yes", "no"); "n/a"
/// and "not measured" when there is no ratio.
pub fn judge(r: Option<f64>, met: impl FnOnce(f64) -> bool) -> (String, &'static str) {
    match r {
        Some(r) => (format!("{r:.2}x"), if met(r) { "yes" } else { "no" }),
        None => ("n/a".into(), "not measured"),
    }
}
