//! Logging and tracing setup: tracing to stderr, text or JSON, filter from `RUST_LOG` or the
//! config; with an OTLP endpoint configured, this node's spans (the produce path) also go to an
//! OpenTelemetry collector over OTLP/gRPC, tagged with the node id, cluster id and version.

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::LogSection;

static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported (request handlers skip reading trace context otherwise).
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// Where spans go and what they are tagged with.
pub struct Otlp<'a> {
    pub endpoint: &'a str,
    pub node_id: u64,
    /// Known from the data directory once the node has been part of a cluster.
    pub cluster_id: Option<String>,
}

/// Flushes the span exporter when dropped (at the end of `main`).
pub struct Guard(Option<SdkTracerProvider>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            if let Err(e) = p.shutdown() {
                eprintln!("cairn-node: flushing spans failed: {e}");
            }
        }
    }
}

/// Installs the global subscriber. Call once per process, inside the Tokio runtime (the OTLP
/// exporter's gRPC client needs it).
pub fn init(log: &LogSection, otlp: Option<Otlp<'_>>) -> Guard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&log.level));
    // Colours only on a terminal: log files stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer().with_ansi(ansi).with_writer(std::io::stderr);
    let fmt = if log.format == "json" { fmt.json().boxed() } else { fmt.boxed() };
    let (otel, provider) = match otlp.map(provider) {
        Some(Ok(p)) => {
            // Only Cairn's own request spans: openraft's internals would flood a collector.
            let targets = tracing_subscriber::filter::Targets::new().with_target("cairn", tracing::Level::INFO);
            let layer = tracing_opentelemetry::layer().with_tracer(p.tracer("cairn-node")).with_filter(targets);
            EXPORTING.store(true, Ordering::Relaxed);
            (Some(layer), Some(p))
        }
        Some(Err(e)) => {
            eprintln!("cairn-node: OTLP exporter not started ({e}); running without span export");
            (None, None)
        }
        None => (None, None),
    };
    let res = tracing_subscriber::registry().with(fmt.with_filter(filter)).with(otel).try_init();
    if let Err(e) = res {
        eprintln!("cairn-node: logging already initialised: {e}");
    }
    Guard(provider)
}

fn provider(otlp: Otlp<'_>) -> Result<SdkTracerProvider, opentelemetry_otlp::ExporterBuildError> {
    use opentelemetry_otlp::WithExportConfig;
    let exporter = opentelemetry_otlp::SpanExporter::builder().with_tonic().with_endpoint(otlp.endpoint).build()?;
    let mut attributes = vec![
        KeyValue::new("service.instance.id", otlp.node_id.to_string()),
        KeyValue::new("cairn.node_id", otlp.node_id as i64),
        KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
    ];
    if let Some(c) = otlp.cluster_id {
        attributes.push(KeyValue::new("cairn.cluster_id", c));
    }
    let resource = Resource::builder().with_service_name("cairn-node").with_attributes(attributes).build();
    Ok(SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build())
}

/// Lets a repeated warning through at most once a second (refused connections, failed
/// authentications: a flood of them must not flood the log), counting the ones held back.
#[derive(Default)]
pub struct EverySecond {
    last_ms: std::sync::atomic::AtomicU64,
    held_back: std::sync::atomic::AtomicU64,
}

impl EverySecond {
    /// `Some(number held back since the last one)` when this one may be logged.
    pub fn allow(&self) -> Option<u64> {
        static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        let now = START.get_or_init(std::time::Instant::now).elapsed().as_millis() as u64 + 1_000;
        let last = self.last_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) < 1_000
            || self.last_ms.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_err()
        {
            self.held_back.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(self.held_back.swap(0, Ordering::Relaxed))
    }
}
