//! Joining a producer's trace (W3C Trace Context carried in record headers): the node's produce
//! span takes the first record's `traceparent` as its parent and links the others' (a batch can
//! carry events of several traces), so one trace follows an event from the producing service
//! through the broker to the consumers. Only while spans are exported (`--otlp-endpoint`).

use cairn_proto::v1::{Header, Record};
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Links one produce span carries at most (a batch of many traces stays one bounded span).
const LINKS_MAX: usize = 32;

struct Headers<'a>(&'a [Header]);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|h| h.key.eq_ignore_ascii_case(key)).and_then(|h| std::str::from_utf8(&h.value).ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|h| h.key.as_str()).collect()
    }
}

/// The span of one produce request to `topic`/`partition` (disabled when spans are not
/// exported).
pub fn produce_span(topic: &str, partition: u32, records: &[Record]) -> tracing::Span {
    if !crate::telemetry::exporting() {
        return tracing::Span::none();
    }
    let span = tracing::info_span!(
        "produce",
        otel.kind = "server",
        messaging.system = "cairn",
        messaging.operation.type = "send",
        messaging.destination.name = %topic,
        messaging.destination.partition.id = partition,
        messaging.batch.message_count = records.len(),
    );
    let propagator = TraceContextPropagator::new();
    let mut parented = false;
    let mut links = 0;
    for r in records.iter().filter(|r| !r.headers.is_empty()) {
        if links >= LINKS_MAX {
            break;
        }
        let cx = propagator.extract(&Headers(&r.headers));
        let sc = cx.span().span_context().clone();
        if !sc.is_valid() {
            continue;
        }
        if !parented {
            parented = span.set_parent(cx).is_ok();
        } else if sc.trace_id() != span.context().span().span_context().trace_id() {
            span.add_link(sc);
            links += 1;
        }
    }
    span
}
