//! Results of one load: throughput and latency percentiles, as a table and as JSON.

use hdrhistogram::Histogram;
use serde::Serialize;

use super::LoadSpec;

#[derive(Clone, Debug, Serialize)]
pub struct LoadResult {
    pub spec: LoadSpec,
    pub records: u64,
    pub errors: u64,
    pub seconds: f64,
    pub records_per_s: f64,
    pub mb_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl LoadResult {
    pub fn from_histogram(spec: &LoadSpec, records: u64, errors: u64, seconds: f64, h: &Histogram<u64>) -> LoadResult {
        let ms = |q: f64| if h.is_empty() { 0.0 } else { h.value_at_quantile(q) as f64 / 1000.0 };
        let rps = records as f64 / seconds.max(1e-9);
        LoadResult {
            spec: spec.clone(),
            records,
            errors,
            seconds,
            records_per_s: rps,
            mb_per_s: rps * spec.record_bytes as f64 / 1e6,
            p50_ms: ms(0.5),
            p99_ms: ms(0.99),
            p999_ms: ms(0.999),
            max_ms: if h.is_empty() { 0.0 } else { h.max() as f64 / 1000.0 },
        }
    }
}

/// Prints a result table.
pub fn print_table(title: &str, rows: &[(String, LoadResult)]) {
    println!("\n{title}");
    println!(
        "{:<28} {:>7} {:>7} {:>12} {:>8} {:>9} {:>9} {:>9} {:>9} {:>7}",
        "run", "size", "window", "records/s", "MB/s", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "errors"
    );
    for (name, r) in rows {
        println!(
            "{:<28} {:>7} {:>7} {:>12.0} {:>8.2} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>7}",
            name,
            r.spec.record_bytes,
            r.spec.window,
            r.records_per_s,
            r.mb_per_s,
            r.p50_ms,
            r.p99_ms,
            r.p999_ms,
            r.max_ms,
            r.errors
        );
    }
}
