//! Contract tests with the schema registry (examples/schema-contracts/README.md): a consumer
//! pins the schema it reads with and `cairn schema check` fails (exit 1) once the registry
//! holds a producer schema it cannot follow, even one the subject's own level allowed.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use cairn_testkit::Cluster;
use common::cli_binary;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schema-contracts")
}

/// `cairn --registry URL schema ARGS`: exit code and stdout + stderr.
fn schema(registry: &str, args: &[&str]) -> (i32, String) {
    let out = Command::new(cli_binary())
        .args(["--registry", registry, "schema"])
        .args(args)
        .current_dir(dir())
        .output()
        .expect("cairn schema");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_consumer_schema_fails_its_check_once_a_producer_breaks_it() {
    let cluster = Cluster::start(3).await.expect("cluster");
    let registry = format!("http://{}", cluster.http_addr(1).expect("node 1's HTTP listener"));
    let check = || schema(&registry, &["check", "orders-value", "billing/order-placed.avsc"]);

    // The registry loads once its internal topic has a leader.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (code, text) = loop {
        let (code, text) = schema(&registry, &["register", "orders-value", "producer-v1.avsc"]);
        if code == 0 || Instant::now() > deadline || !text.contains("5000") {
            break (code, text);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("schema id 1"), "{text}");
    let (code, text) = check();
    assert_eq!(code, 0, "billing reads v1: {text}");

    let (code, text) = schema(&registry, &["register", "orders-value", "producer-v2.avsc"]);
    assert_eq!(code, 0, "{text}");
    assert_eq!(check().0, 0);

    // A change the subject's level refuses fails the producer's own pipeline.
    let broken = std::fs::read_to_string(dir().join("producer-v1.avsc"))
        .expect("v1")
        .replace(r#""name": "amount", "type": "long""#, r#""name": "amount", "type": "string""#);
    let tmp = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(tmp.path(), broken).expect("write");
    let (code, text) = schema(&registry, &["register", "orders-value", &tmp.path().to_string_lossy()]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("409"), "{text}");

    // v3 drops `amount`: BACKWARD allows it, billing cannot follow.
    let (code, text) = schema(&registry, &["register", "orders-value", "producer-v3.avsc"]);
    assert_eq!(code, 0, "{text}");
    let (code, text) = check();
    assert_eq!(code, 1, "the contract check fails: {text}");
    assert!(text.contains("NOT compatible") && text.contains("amount"), "{text}");

    // An unreachable registry is "not checked" (2), not "compatible".
    let (code, _) = schema("http://127.0.0.1:1", &["check", "orders-value", "billing/order-placed.avsc"]);
    assert_eq!(code, 2);
}
