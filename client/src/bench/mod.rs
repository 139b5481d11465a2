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
    let measuring = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let measure_from = start + spec.warmup;
    let end = measure_from + spec.duration;
    let tasks = spec.tasks.max(1);
    let per_task = (spec.window / tasks).max(1);
    let payload = bytes::Bytes::from(vec![b'x'; spec.record_bytes]);
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let (target, hist, ok, errors, measuring, payload) =
            (target.clone(), hist.clone(), ok.clone(), errors.clone(), measuring.clone(), payload.clone());
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
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
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
    }
    // Stragglers issued before the end still count; wait for them (bounded).
    for h in handles {
        let _ = tokio::time::timeout(Duration::from_secs(30), h).await;
    }
    let elapsed = spec.duration.as_secs_f64();
    let h = hist.lock().unwrap_or_else(|p| p.into_inner()).clone();
    LoadResult::from_histogram(spec, ok.load(Ordering::Relaxed), errors.load(Ordering::Relaxed), elapsed, &h)
}
