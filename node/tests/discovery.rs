//! Generic gRPC tools can discover and call the API: health checking and server reflection.

mod common;

use common::Cluster;
use futures::StreamExt;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{health_check_response::ServingStatus, HealthCheckRequest};
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::ServerReflectionRequest;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_serves_health_and_reflection() {
    let cluster = Cluster::start(3, "events:1");
    for addr in cluster.brokers() {
        let channel =
            tonic::transport::Endpoint::from_shared(format!("http://{addr}")).expect("endpoint").connect_lazy();
        let mut health = HealthClient::new(channel.clone());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let status = loop {
            match health.check(HealthCheckRequest { service: String::new() }).await {
                Ok(r) => break r.into_inner().status,
                Err(e) => {
                    assert!(std::time::Instant::now() < deadline, "{addr} never answered health checks: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        };
        assert_eq!(status, ServingStatus::Serving as i32);

        let mut reflection = ServerReflectionClient::new(channel);
        let req = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut stream =
            reflection.server_reflection_info(futures::stream::iter([req])).await.expect("reflection").into_inner();
        let resp = stream.next().await.expect("one response").expect("ok");
        let Some(MessageResponse::ListServicesResponse(list)) = resp.message_response else {
            panic!("unexpected reflection answer {resp:?}");
        };
        let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
        for expected in ["cairn.v1.Broker", "grpc.health.v1.Health"] {
            assert!(names.iter().any(|n| n == expected), "{addr} lists {names:?}, missing {expected}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_http1_request_is_told_what_the_port_is() {
    use std::io::{Read, Write};
    let cluster = Cluster::start(1, "");
    let _ = cluster.client().await;
    let mut s = std::net::TcpStream::connect(cluster.addr(1)).expect("connect");
    s.set_read_timeout(Some(std::time::Duration::from_secs(10))).expect("timeout");
    s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").expect("write");
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("Cairn node's gRPC port"), "{answer}");
}
