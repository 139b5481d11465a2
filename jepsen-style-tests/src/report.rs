//! The run's report: `results.json`, a table of anomaly counts on stdout, and `latency.svg`
//! (op latency over time, fault windows shaded, failed and unknown ops marked).

use std::fmt::Write as _;
use std::path::Path;

use serde_json::json;

use crate::checker::Results;
use crate::history::{Analysis, OpType};
use crate::run::RunParams;

/// Writes results.json and latency.svg into `dir` and prints the table.
///
/// # Errors
/// I/O errors.
pub fn write(dir: &Path, params: &RunParams, a: &Analysis, r: &Results, drained: bool) -> anyhow::Result<()> {
    let results = json!({
        "test": params.name,
        "seed": params.seed,
        "valid": r.valid,
        "drained": drained,
        "anomalies": r.counts,
        "examples": r.examples,
        "liveness": r.liveness,
        "sends": a.sends.len(),
        "polls": a.polls.len(),
        "fault_windows": a.windows.len(),
    });
    std::fs::write(dir.join("results.json"), serde_json::to_vec_pretty(&results)?)?;
    std::fs::write(dir.join("latency.svg"), svg(a))?;
    print!("{}", table(&params.name, r));
    Ok(())
}

/// The per-anomaly table printed at the end of a run.
pub fn table(name: &str, r: &Results) -> String {
    let mut s = format!("\n{name}: {}\n", if r.valid { "VALID (every safety checker clean)" } else { "INVALID" });
    let _ = writeln!(s, "{:<22} {:>6}", "checker", "count");
    for (k, v) in &r.counts {
        let _ = writeln!(s, "{k:<22} {v:>6}{}", if *v > 0 { "  <-- anomaly" } else { "" });
    }
    let l = &r.liveness;
    let _ = writeln!(
        s,
        "ops {} (ok {}, fail {}, unknown {}); ok ratio without faults {}; recovery after last heal {}",
        l.ops,
        l.ok,
        l.fail,
        l.info,
        l.ok_ratio_without_faults.map_or("-".into(), |x| format!("{:.1}%", x * 100.0)),
        l.recovery_after_last_heal_s.map_or("-".into(), |x| format!("{x:.2} s")),
    );
    if r.redelivered > 0 {
        let _ = writeln!(s, "group records delivered again (at-least-once, not an error): {}", r.redelivered);
    }
    for (k, ex) in &r.examples {
        if let Some(first) = ex.first() {
            let _ = writeln!(s, "  e.g. {k}: {first}");
        }
    }
    s
}

/// Latency (log scale) of every completed op against time, fault windows shaded.
pub fn svg(a: &Analysis) -> String {
    let (w, h, left, bottom) = (1200.0, 500.0, 70.0, 40.0);
    let end = a.end_time.max(1) as f64;
    let x = |t: u64| left + (t as f64 / end) * (w - left - 20.0);
    let (min_ms, max_ms) = (0.1f64, 60_000.0f64);
    let y = |lat_ns: u64| {
        let ms = (lat_ns as f64 / 1e6).clamp(min_ms, max_ms);
        let f = (ms.log10() - min_ms.log10()) / (max_ms.log10() - min_ms.log10());
        (h - bottom) - f * (h - bottom - 20.0)
    };
    let mut s = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11">"#
    );
    let _ = write!(s, r##"<rect width="{w}" height="{h}" fill="white"/>"##
    );
    for win in &a.windows {
        let (x0, x1) = (x(win.start), x(win.end));
        let _ = write!(
            s,
            r##"<rect x="{x0:.1}" y="20" width="{:.1}" height="{:.1}" fill="#f3c6c6" opacity="0.6"/>"##,
            (x1 - x0).max(1.0),
            h - bottom - 20.0
        );
        let _ = write!(s, r##"<text x="{x0:.1}" y="15" fill="#a33">{}</text>"##, win.name);
    }
    for ms in [1.0, 10.0, 100.0, 1_000.0, 10_000.0] {
        let yy = y((ms * 1e6) as u64);
        let _ = write!(
            s,
            r##"<line x1="{left}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke="#ddd"/><text x="5" y="{:.1}">{ms} ms</text>"##,
            w - 20.0,
            yy + 4.0
        );
    }
    for (t, lat, f, kind) in &a.completions {
        let (color, r) = match (kind, f.as_str()) {
            (OpType::Ok, "send") => ("#2a7", 1.5),
            (OpType::Ok, _) => ("#37c", 1.2),
            (OpType::Fail, _) => ("#d22", 2.5),
            _ => ("#e90", 3.0),
        };
        let _ = write!(s, r##"<circle cx="{:.1}" cy="{:.1}" r="{r}" fill="{color}" opacity="0.7"/>"##, x(*t), y(*lat));
    }
    let _ = write!(s, r##"<line x1="{left}" x2="{left}" y1="20" y2="{}" stroke="black"/>"##, h - bottom);
    let _ =
        write!(s, r##"<line x1="{left}" x2="{}" y1="{}" y2="{}" stroke="black"/>"##, w - 20.0, h - bottom, h - bottom);
    for i in 0..=10 {
        let t = (end * f64::from(i) / 10.0) as u64;
        let _ = write!(s, r##"<text x="{:.1}" y="{}">{:.0} s</text>"##, x(t) - 8.0, h - bottom + 15.0, t as f64 / 1e9);
    }
    let _ = write!(
        s,
        r##"<text x="{left}" y="{}">green: send ok, blue: poll ok, red: failed, orange: unknown outcome; shaded: faults</text>"##,
        h - 5.0
    );
    s.push_str("</svg>\n");
    s
}
