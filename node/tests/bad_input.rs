//! Bad input gets a clear error and changes nothing; never a panic.

mod common;

use std::process::Command;

use bytes::Bytes;
use cairn_client::{ErrorCode, OffsetSpec, Record, RecordExt};
use cairn_proto::v1::FetchRequest;
use common::{leader_of, node_binary, read_from_node, wait_for_leaders, Cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_errors_and_change_nothing() {
    let cluster = Cluster::start(3, "events:2");
    let client = cluster.client().await;
    wait_for_leaders(&client).await;
    client.produce("events", 0, vec![Record::from_value("ok")]).await.expect("good produce");
    let hw = |p| {
        let client = &client;
        async move { client.list_offsets("events", p, OffsetSpec::Latest).await.expect("latest").offset }
    };
    let before = (hw(0).await, hw(1).await);
    assert_eq!(before, (1, 0));

    let e = client.produce("nope", 0, vec![Record::from_value("x")]).await.expect_err("unknown topic");
    assert_eq!(e.code(), Some(ErrorCode::UnknownTopic), "{e}");
    assert!(e.is_definite() && !e.is_retriable());
    let e = client.fetch("nope", 0, 0, 0, 0).await.expect_err("unknown topic fetch");
    assert_eq!(e.code(), Some(ErrorCode::UnknownTopic), "{e}");

    let e = client.produce("events", 2, vec![Record::from_value("x")]).await.expect_err("unknown partition");
    assert_eq!(e.code(), Some(ErrorCode::UnknownPartition), "{e}");
    assert!(e.to_string().contains("has 2"), "{e}");

    let e = client.produce("events", 0, vec![]).await.expect_err("empty batch");
    assert_eq!(e.code(), Some(ErrorCode::InvalidArgument), "{e}");

    // The default record limit is 1 MiB: exactly the limit is accepted, one byte more is not,
    // and a rejected batch appends none of its records.
    let limit = 1 << 20;
    let big = Record { value: Bytes::from(vec![b'x'; limit + 1]), ..Record::default() };
    let e = client.produce("events", 1, vec![Record::from_value("small"), big]).await.expect_err("oversize");
    assert_eq!(e.code(), Some(ErrorCode::RecordTooLarge), "{e}");
    assert!(e.to_string().contains("index 1 in its batch"), "{e}");
    assert_eq!((hw(0).await, hw(1).await), before, "rejected requests appended nothing");
    let at_limit = Record { value: Bytes::from(vec![b'y'; limit]), ..Record::default() };
    client.produce("events", 1, vec![at_limit]).await.expect("a record at the limit is accepted");

    // Offsets: past the end is OFFSET_OUT_OF_RANGE with the valid range; at the end is empty.
    let e = client.fetch("events", 0, 5, 0, 0).await.expect_err("past the end");
    assert_eq!(e.code(), Some(ErrorCode::OffsetOutOfRange), "{e}");
    match &e {
        cairn_client::ClientError::Server { log_start_offset, high_watermark, .. } => {
            assert_eq!((*log_start_offset, *high_watermark), (0, 1));
        }
        other => panic!("expected a server error, got {other}"),
    }
    let at_end = client.fetch("events", 0, 1, 0, 0).await.expect("fetch at the end");
    assert!(at_end.records.is_empty());
    assert_eq!(at_end.high_watermark, 1);
    let all = read_from_node(&client, &cluster.addr(1), "events", 0, 1).await;
    assert_eq!(&all[0].value[..], b"ok");
    // A follower trails the leader: asked beyond its end it answers empty, never out of range.
    let leader = leader_of(&client, "events", 0).await;
    let follower = (1..=3).find(|n| *n != leader).expect("a follower");
    let req = FetchRequest { topic: "events".into(), partition: 0, offset: 7, ..FetchRequest::default() };
    let f = client.fetch_from_node(&cluster.addr(follower), req).await.expect("follower answers");
    assert!(f.records.is_empty());
}

fn run_node(args: &[&str]) -> (i32, String) {
    let out = Command::new(node_binary()).args(args).output().expect("run cairn-node");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn malformed_and_contradictory_configs_are_rejected_with_clear_messages() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let data_s = data.to_str().expect("utf8");
    let cluster = "1=127.0.0.1:7901,2=127.0.0.1:7902";

    let bad_toml = dir.path().join("bad.toml");
    std::fs::write(&bad_toml, "node_id = 1\nfsync = false\n").expect("write");
    let (code, err) =
        run_node(&["--config", bad_toml.to_str().expect("utf8"), "--data-dir", data_s, "--initial-cluster", cluster]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("fsync"), "names the unknown key: {err}");

    let (code, err) =
        run_node(&["--node-id", "1", "--data-dir", data_s, "--initial-cluster", cluster, "--advertise", "127.0.0.1:9"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("advertise_addr") && err.contains("contradicts"), "{err}");

    let (code, err) = run_node(&["--node-id", "3", "--data-dir", data_s, "--initial-cluster", cluster]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("does not list this node"), "{err}");

    let (code, err) = run_node(&["--node-id", "1", "--data-dir", data_s, "--initial-cluster", "1=nohostport"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("initial_cluster"), "{err}");

    let (code, err) =
        run_node(&["--node-id", "1", "--data-dir", data_s, "--initial-cluster", cluster, "--topic", "bad/name:3"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("topic name"), "{err}");

    assert!(!data.exists(), "rejected configurations touched nothing on disk");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_directory_of_another_node_is_refused_and_left_intact() {
    let mut cluster = Cluster::start(1, "events:1");
    let client = cluster.client().await;
    wait_for_leaders(&client).await;
    client.produce("events", 0, vec![Record::from_value("mine")]).await.expect("produce");
    let status = cluster.stop(1);
    assert!(status.success(), "SIGTERM shuts the node down cleanly: {status}");

    let node = &cluster.nodes[&1];
    let identity = std::fs::read(node.data_dir.join("cairn-node.json")).expect("identity file");
    let initial = format!("1={},2=127.0.0.1:1", node.addr);
    let (code, err) = run_node(&[
        "--node-id",
        "2",
        "--listen",
        "127.0.0.1:0",
        "--peer-listen",
        "127.0.0.1:0",
        "--data-dir",
        node.data_dir.to_str().expect("utf8"),
        "--initial-cluster",
        &initial,
        "--topic",
        "events:1",
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("belongs to node 1"), "{err}");
    assert_eq!(std::fs::read(node.data_dir.join("cairn-node.json")).expect("identity"), identity);

    cluster.restart(1);
    let client = cluster.client().await;
    wait_for_leaders(&client).await;
    let recs = read_from_node(&client, &cluster.addr(1), "events", 0, 1).await;
    assert_eq!(&recs[0].value[..], b"mine", "the rightful node still has its data");
}

#[test]
fn a_cli_that_reaches_no_broker_says_so_within_seconds_naming_the_addresses() {
    // Two ports nothing listens on (bound, then released).
    let free = || std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port");
    let brokers = vec![free().to_string(), free().to_string()];
    let started = std::time::Instant::now();
    let (code, _, err) = common::cli(&brokers, &["topic", "list"], None);
    let took = started.elapsed();
    assert_ne!(code, 0);
    assert!(err.contains("no broker reachable"), "{err}");
    for b in &brokers {
        assert!(err.contains(b.as_str()), "names {b}: {err}");
    }
    // Three seconds of trying, not the 20 s retry deadline.
    assert!(took < std::time::Duration::from_secs(10), "took {took:?}");
}

/// Sends raw bytes as a request message: a client that is not Cairn's, or a damaged one.
#[derive(Clone, Default)]
struct RawCodec;

struct RawEncoder;
struct RawDecoder;

impl tonic::codec::Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut tonic::codec::EncodeBuf<'_>) -> Result<(), tonic::Status> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        let n = bytes::Buf::remaining(src);
        Ok(Some(bytes::Buf::copy_to_bytes(src, n).to_vec()))
    }
}

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_are_invalid_argument_and_end_a_produce_stream_with_an_error() {
    use tonic::codegen::http::uri::PathAndQuery;
    let cluster = Cluster::start(1, "events:1");
    let client = cluster.client().await;
    wait_for_leaders(&client).await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", cluster.addr(1)))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    // Field 1 (topic, a string) sent with the varint wire type, then a truncated field.
    let garbage = vec![0x08, 0x96, 0x01, 0x12, 0xff];

    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.expect("ready");
    let path = PathAndQuery::from_static("/cairn.v1.Broker/Produce");
    let s = grpc.unary(tonic::Request::new(garbage.clone()), path, RawCodec).await.expect_err("garbage accepted");
    assert_eq!(s.code(), tonic::Code::InvalidArgument, "{s:?}");
    assert!(s.message().contains("not a valid protobuf message"), "{}", s.message());
    let detail = <cairn_proto::v1::ErrorDetail as prost::Message>::decode(s.details()).expect("detail");
    assert_eq!(detail.code(), ErrorCode::InvalidArgument);

    // A produce stream: a malformed message ends the stream with the error, not a silent OK.
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    let path = PathAndQuery::from_static("/cairn.v1.Broker/ProduceStream");
    let requests = futures::stream::iter(vec![garbage]);
    let outcome = match grpc.streaming(tonic::Request::new(requests), path, RawCodec).await {
        Ok(resp) => resp.into_inner().message().await.map(|m| m.map(|b| b.len())),
        Err(s) => Err(s),
    };
    let s = outcome.expect_err("a malformed stream message must end the stream with an error");
    assert_eq!(s.code(), tonic::Code::InvalidArgument, "{s:?}");
    assert_eq!(
        client.list_offsets("events", 0, OffsetSpec::Latest).await.expect("latest").offset,
        0,
        "nothing was appended"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_broker_in_the_bootstrap_list_is_tried_once_not_by_every_request() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let cluster = Cluster::start(3, "events:2");
    wait_for_leaders(&cluster.client().await).await;
    // A "broker" that accepts connections and drops them at once, counting them.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_addr = dead.local_addr().expect("addr").to_string();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        for conn in dead.incoming() {
            count.fetch_add(1, Ordering::SeqCst);
            drop(conn);
        }
    });
    let mut brokers = vec![dead_addr.clone()];
    brokers.extend(cluster.brokers());
    let mut cfg = cairn_client::ClientConfig::new(brokers);
    cfg.retry_deadline = std::time::Duration::from_secs(10);
    let client = cairn_client::Client::connect(cfg).await.expect("connects through the live brokers");
    for _ in 0..40 {
        client.describe_cluster().await.expect("describe");
        client.list_offsets("events", 0, OffsetSpec::Latest).await.expect("offsets");
    }
    let n = accepted.load(Ordering::SeqCst);
    assert!(n <= 2, "the dead broker {dead_addr} was connected to {n} times in 80 calls");
}
