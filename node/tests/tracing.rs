//! One trace follows an event from the producing service through the broker to the consumer:
//! the client injects the producer span's W3C context into the record's headers, the node's
//! produce span (exported over OTLP to a receiver in this test) joins that trace, and the
//! consumer gets the context back from the record to parent its own span.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_client::{Producer, ProducerConfig, Record, RecordExt, TracedRecord};
use common::{wait_for_leaders, wait_for_topic, Cluster};
use opentelemetry::trace::{TraceContextExt, TraceId, TracerProvider as _};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;

/// A span the receiver got: trace id, name, and its resource's attributes as text.
#[derive(Clone, Debug)]
struct Received {
    trace_id: Vec<u8>,
    name: String,
    resource: Vec<(String, String)>,
}

#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<Received>>>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut got = self.0.lock().expect("lock");
        for rs in request.into_inner().resource_spans {
            let resource: Vec<(String, String)> = rs
                .resource
                .map(|r| r.attributes)
                .unwrap_or_default()
                .into_iter()
                .map(|kv| {
                    let v = match kv.value.and_then(|v| v.value) {
                        Some(Value::StringValue(s)) => s,
                        Some(Value::IntValue(i)) => i.to_string(),
                        other => format!("{other:?}"),
                    };
                    (kv.key, v)
                })
                .collect();
            for ss in rs.scope_spans {
                for s in ss.spans {
                    got.push(Received { trace_id: s.trace_id, name: s.name, resource: resource.clone() });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

/// The node's produce span of trace `trace_id`, once the receiver has it (30 s at most).
async fn wait_for_produce_span(receiver: &Receiver, trace_id: TraceId) -> Received {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = receiver
            .0
            .lock()
            .expect("lock")
            .iter()
            .find(|s| s.name == "produce" && s.trace_id == trace_id.to_bytes().to_vec())
            .cloned();
        if let Some(s) = found {
            return s;
        }
        assert!(Instant::now() < deadline, "no node produce span in trace {trace_id} within 30 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_goes_from_the_producer_span_through_the_node_to_the_consumer_span() {
    // The OTLP receiver the nodes export to.
    let receiver = Receiver::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind receiver");
    let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
    let server = receiver.clone();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(server))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
    });

    // This process plays the producing and the consuming service: spans with OpenTelemetry
    // contexts (not exported anywhere; their ids are what matters).
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let subscriber =
        tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test-app")));
    tracing::subscriber::set_global_default(subscriber).expect("the test's subscriber");

    let cluster = Cluster::start_with(3, "orders:1", &["--otlp-endpoint", &endpoint]);
    let client = Arc::new(cluster.client().await);
    wait_for_topic(&client, "orders").await;
    wait_for_leaders(&client).await;

    let place_order = tracing::info_span!("place-order");
    let trace_id = place_order.context().span().span_context().trace_id();
    assert_ne!(trace_id, TraceId::INVALID);
    let record = cairn_client::trace::with_correlation_id(Record::from_value("OrderPlaced"), "order-42");
    let ack = client.produce("orders", 0, vec![record]).instrument(place_order).await.expect("produce");

    // The consumer side: the record hands back the producer's context.
    let fetched = client.fetch("orders", 0, ack.base_offset, 1 << 20, 0).await.expect("fetch");
    let event = &fetched.records[0];
    assert_eq!(event.correlation_id(), Some("order-42"));
    let handle_order = tracing::info_span!("handle-order");
    handle_order.set_parent(event.trace_context()).expect("parent the consumer span");
    assert_eq!(handle_order.context().span().span_context().trace_id(), trace_id, "consumer span in the trace");

    // The same through the batching producer (its records go on a produce stream).
    let producer = Producer::new(client.clone(), ProducerConfig::default()).await.expect("producer");
    let ship_order = tracing::info_span!("ship-order");
    let streamed_trace = ship_order.context().span().span_context().trace_id();
    let delivery = async { producer.send("orders", Some(0), Record::from_value("OrderShipped")).await }
        .instrument(ship_order)
        .await
        .expect("send");
    delivery.await.expect("delivered");

    // The node's produce spans reached the collector in the same traces, tagged with the node.
    let produce = wait_for_produce_span(&receiver, trace_id).await;
    wait_for_produce_span(&receiver, streamed_trace).await;
    let attr = |k: &str| produce.resource.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    assert_eq!(attr("service.name").as_deref(), Some("cairn-node"), "{:?}", produce.resource);
    assert!(attr("cairn.node_id").is_some(), "{:?}", produce.resource);
    assert_eq!(attr("service.version").as_deref(), Some(env!("CARGO_PKG_VERSION")));
}
