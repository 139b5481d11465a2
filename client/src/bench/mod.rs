//! Load generation shared by `cairn bench` and the cross-system comparison (`bench/`): a fixed
//! window of operations in flight against a [`Target`], latency in an HdrHistogram, live
//! progress, a final table and JSON.
//!
//! ```text
//!  N tasks, each keeping window/N ops in flight ─► Target::send(payload) ─► latency (µs)
//!  warm-up (not measured) ─► measured interval ─► throughput, p50/p99/p99.9/max
//! ```

mod cairn;
mod report;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use hdrhistogram::Histogram;
use serde::Serialize;

pub use cairn::{ensure_topic, read_topic, CairnProduce};
pub use report::{print_table, LoadResult};

/// One operation's future: Ok once the system acknowledged it durably (or a consumer saw it).
pub type SendFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// A system under load.
pub trait Target: Send + Sync + 'static {
    /// Starts one operation carrying `payload`.
    fn send(&self, payload: bytes::Bytes) -> SendFuture;

    /// Why operations were retried since the last call, with counts (errors a client retries
    /// on its own, which would otherwise show only as a stall).
    fn retry_reasons(&self) -> Vec<(String, u64)> {
        Vec::new()
    }
}

/// Distinct error messages counted between two progress lines (bounded: one load can fail in
/// many ways, the screen shows the first few).
#[derive(Default)]
struct ErrorLog(Vec<(String, u64)>);

impl ErrorLog {
    fn note(&mut self, e: String) {
        if let Some(c) = self.0.iter_mut().find(|(t, _)| *t == e) {
            c.1 += 1;
        } else if self.0.len() < 8 {
            self.0.push((e, 1));
        }
    }
}

/// Prints errors and retry reasons of the last interval to stderr, as they happen.
fn print_errors(errors: &Mutex<ErrorLog>, target: &dyn Target) {
    let failed = std::mem::take(&mut errors.lock().unwrap_or_else(|p| p.into_inner()).0);
    for (e, n) in failed {
        eprintln!("    error ({n}x): {e}");
    }
    for (e, n) in target.retry_reasons() {
        eprintln!("    retrying ({n}x): {e}");
    }
}

/// The shape of a load.
#[derive(Clone, Debug, Serialize)]
pub struct LoadSpec {
    pub record_bytes: usize,
    /// Operations in flight across all tasks.
    pub window: usize,
    /// Concurrent tasks (connections/producers) sharing the window.
    pub tasks: usize,
    pub warmup: Duration,
    pub duration: Duration,
}

/// Runs `spec` against `target`; prints progress each second to stderr when `progress`.
pub async fn run_load(target: Arc<dyn Target>, spec: &LoadSpec, progress: bool) -> LoadResult {
    let hist =
        Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("invariant: valid bounds")));
    let ok = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let error_log = Arc::new(Mutex::new(ErrorLog::default()));
    let measuring = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let measure_from = start + spec.warmup;
    let end = measure_from + spec.duration;
    let tasks = spec.tasks.max(1);
    let per_task = (spec.window / tasks).max(1);
    let payload = bytes::Bytes::from(vec![b'x'; spec.record_bytes]);
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let (target, hist, ok, errors, measuring, payload, error_log) = (
            target.clone(),
            hist.clone(),
            ok.clone(),
            errors.clone(),
            measuring.clone(),
            payload.clone(),
            error_log.clone(),
        );
        handles.push(tokio::spawn(async move {
            let mut in_flight = FuturesUnordered::new();
            let issue = |target: &Arc<dyn Target>| {
                let f = target.send(payload.clone());
                async move {
                    let t = Instant::now();
                    let r = f.await;
                    (t, t.elapsed(), r)
                }
            };
            for _ in 0..per_task {
                in_flight.push(issue(&target));
            }
            while let Some((issued, latency, r)) = in_flight.next().await {
                let counted = measuring.load(Ordering::Relaxed) && issued >= measure_from;
                match r {
                    Ok(()) if counted => {
                        ok.fetch_add(1, Ordering::Relaxed);
                        let us = latency.as_micros().clamp(1, 60_000_000) as u64;
                        let _ = hist.lock().unwrap_or_else(|p| p.into_inner()).record(us);
                    }
                    Ok(()) => {}
                    Err(e) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        error_log.lock().unwrap_or_else(|p| p.into_inner()).note(e);
                    }
                }
                if Instant::now() < end {
                    in_flight.push(issue(&target));
                }
            }
        }));
    }
    let mut last = (Instant::now(), 0u64);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    while Instant::now() < end {
        tick.tick().await;
        if Instant::now() >= measure_from {
            measuring.store(true, Ordering::Relaxed);
        }
        if progress {
            let n = ok.load(Ordering::Relaxed);
            let dt = last.0.elapsed().as_secs_f64();
            let rate = (n - last.1) as f64 / dt;
            let phase = if Instant::now() < measure_from { "warm-up" } else { "measuring" };
            eprintln!(
                "{phase:>9}: {rate:>10.0} records/s {:>8.2} MB/s  errors {}",
                rate * spec.record_bytes as f64 / 1e6,
                errors.load(Ordering::Relaxed)
            );
            last = (Instant::now(), n);
        }
        print_errors(&error_log, target.as_ref());
    }
    // Stragglers issued before the end still count; wait for them (bounded), still showing
    // why they take long.
    for mut h in handles {
        let give_up = Instant::now() + Duration::from_secs(30);
        while Instant::now() < give_up {
            if tokio::time::timeout(Duration::from_secs(1), &mut h).await.is_ok() {
                break;
            }
            print_errors(&error_log, target.as_ref());
        }
        h.abort();
    }
    print_errors(&error_log, target.as_ref());
    let elapsed = spec.duration.as_secs_f64();
    let h = hist.lock().unwrap_or_else(|p| p.into_inner()).clone();
    LoadResult::from_histogram(spec, ok.load(Ordering::Relaxed), errors.load(Ordering::Relaxed), elapsed, &h)
}
