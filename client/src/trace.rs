//! Trace context in record headers, so one trace follows an event across services (W3C Trace
//! Context, the OpenTelemetry messaging conventions).
//!
//! Producing: when the calling code runs inside a `tracing` span that carries an OpenTelemetry
//! context (a `tracing-opentelemetry` layer is installed), [`crate::Client::produce`] and
//! [`crate::Producer::send`] add a `traceparent` header to each record that has none; the broker's
//! produce span joins that trace. Consuming: [`TracedRecord::trace_context`] hands back the
//! producer's context, to make the consumer's span its child (`span.set_parent(cx)`) or to link
//! it. Application correlation ids travel in a `correlation_id` header
//! ([`with_correlation_id`]). Without an OpenTelemetry layer nothing is added.

use bytes::Bytes;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry::Context;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::{FetchedRecord, Header, Record};

/// The W3C trace context header.
pub const TRACEPARENT: &str = "traceparent";
/// The header carrying an application's correlation id.
pub const CORRELATION_ID: &str = "correlation_id";

struct Reader<'a>(&'a [Header]);

impl Extractor for Reader<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|h| h.key.eq_ignore_ascii_case(key)).and_then(|h| std::str::from_utf8(&h.value).ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|h| h.key.as_str()).collect()
    }
}

struct Writer<'a>(&'a mut Vec<Header>);

impl Injector for Writer<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.push(Header { key: key.to_string(), value: Bytes::from(value) });
    }
}

/// Adds the current span's trace context to every record of `records` that carries none.
pub(crate) fn inject_current(records: &mut [Record]) {
    let cx = tracing::Span::current().context();
    if !cx.span().span_context().is_valid() {
        return;
    }
    let propagator = TraceContextPropagator::new();
    for r in records.iter_mut().filter(|r| !r.headers.iter().any(|h| h.key.eq_ignore_ascii_case(TRACEPARENT))) {
        propagator.inject_context(&cx, &mut Writer(&mut r.headers));
    }
}

fn extract(headers: &[Header]) -> Context {
    TraceContextPropagator::new().extract(&Reader(headers))
}

fn header<'a>(headers: &'a [Header], key: &str) -> Option<&'a str> {
    headers.iter().find(|h| h.key == key).and_then(|h| std::str::from_utf8(&h.value).ok())
}

/// Trace context and correlation id of a record.
pub trait TracedRecord {
    /// The producer's trace context (an empty context when the record carries none).
    fn trace_context(&self) -> Context;
    /// The record's correlation id, if it carries one.
    fn correlation_id(&self) -> Option<&str>;
}

impl TracedRecord for FetchedRecord {
    fn trace_context(&self) -> Context {
        extract(&self.headers)
    }

    fn correlation_id(&self) -> Option<&str> {
        header(&self.headers, CORRELATION_ID)
    }
}

impl TracedRecord for Record {
    fn trace_context(&self) -> Context {
        extract(&self.headers)
    }

    fn correlation_id(&self) -> Option<&str> {
        header(&self.headers, CORRELATION_ID)
    }
}

/// Sets a record's correlation id (replacing one it had).
pub fn with_correlation_id(mut record: Record, id: impl Into<String>) -> Record {
    record.headers.retain(|h| h.key != CORRELATION_ID);
    record.headers.push(Header { key: CORRELATION_ID.to_string(), value: Bytes::from(id.into()) });
    record
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RecordExt;

    #[test]
    fn correlation_ids_are_set_once_and_read_back() {
        let r = with_correlation_id(Record::from_value("x"), "order-1");
        let r = with_correlation_id(r, "order-2");
        assert_eq!(r.correlation_id(), Some("order-2"));
        assert_eq!(r.headers.len(), 1);
        assert!(!r.trace_context().span().span_context().is_valid(), "no traceparent, no context");
    }

    #[test]
    fn without_an_opentelemetry_layer_nothing_is_injected() {
        let mut records = vec![Record::from_value("x")];
        inject_current(&mut records);
        assert!(records[0].headers.is_empty());
    }
}
