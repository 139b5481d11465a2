//! `cairn-jepsen summary STORE`: one markdown row per stored run (the newest run of each test),
//! for the results table of docs/consistency.md.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

/// The markdown table of the newest run of every test under `store`.
pub fn table(store: &Path) -> anyhow::Result<String> {
    let mut rows = Vec::new();
    let mut tests: Vec<_> = std::fs::read_dir(store)?.filter_map(Result::ok).map(|e| e.path()).collect();
    tests.sort();
    for test in tests.iter().filter(|p| p.is_dir()) {
        let mut runs: Vec<_> = std::fs::read_dir(test)?
            .filter_map(Result::ok)
            .map(|e| e.path().join("results.json"))
            .filter(|p| p.exists())
            .collect();
        runs.sort();
        if let Some(newest) = runs.last() {
            let v: Value = serde_json::from_slice(&std::fs::read(newest)?)?;
            rows.push(row(&v, newest.parent().unwrap_or(newest)));
        }
    }
    let mut out = String::from(
        "| test | started | seed | fault windows | ops | ok % | ok % without faults | sends ok | anomalies | recovery after heal | verdict |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let _ = writeln!(out, "{r}");
    }
    Ok(out)
}

fn row(v: &Value, dir: &Path) -> String {
    let l = &v["liveness"];
    let num = |x: &Value| x.as_u64().unwrap_or(0);
    let ops = num(&l["ops"]);
    let ok_pct = if ops == 0 { 0.0 } else { 100.0 * num(&l["ok"]) as f64 / ops as f64 };
    let anomalies: Vec<String> = v["anomalies"]
        .as_object()
        .map(|m| m.iter().filter(|(_, n)| n.as_u64().unwrap_or(0) > 0).map(|(k, n)| format!("{k} {n}")).collect())
        .unwrap_or_default();
    let recovery = l["recovery_after_last_heal_s"].as_f64().map_or("–".to_string(), |s| format!("{s:.2} s"));
    let started = dir.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    format!(
        "| {} | {started} | {} | {} | {ops} | {ok_pct:.1} | {:.1} | {} | {} | {recovery} | {} |",
        v["test"].as_str().unwrap_or("?"),
        v["seed"],
        num(&v["fault_windows"]),
        100.0 * l["ok_ratio_without_faults"].as_f64().unwrap_or(0.0),
        num(&l["sends_ok"]),
        if anomalies.is_empty() { "none".to_string() } else { anomalies.join(", ") },
        if v["valid"].as_bool() == Some(true) { "valid" } else { "**INVALID**" },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_show_anomalies_and_verdict() {
        let v = serde_json::json!({
            "test": "kill-queue-3n", "seed": 7, "fault_windows": 2, "valid": false,
            "anomalies": {"lost-write": 3, "duplicate": 0},
            "liveness": {"ops": 10, "ok": 9, "ok_ratio_without_faults": 1.0, "sends_ok": 5,
                         "recovery_after_last_heal_s": 0.5}
        });
        let r = row(&v, Path::new("store/kill-queue-3n/20261129T000000"));
        assert!(r.contains("lost-write 3") && !r.contains("duplicate"), "{r}");
        assert!(r.contains("90.0") && r.contains("**INVALID**") && r.contains("20261129T000000"), "{r}");
    }
}
