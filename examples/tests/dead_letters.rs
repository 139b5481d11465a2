//! Dead letters against a real three-node cluster: poison records are retried, then routed to
//! `payments.dlq` with their headers; `cairn dlq replay` sends them back, and the fixed
//! consumer processes them; a second replay sends nothing.

mod common;

use std::collections::BTreeSet;

use cairn_client::dlq;
use cairn_testkit::Cluster;
use common::{cli_binary, run};

const DL: &str = env!("CARGO_BIN_EXE_dead-letters");

fn processed(out: &std::process::Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_records_go_to_the_dlq_with_headers_and_come_back_by_replay() {
    let cluster = Cluster::start(3).await.expect("cluster");
    let brokers = cluster.brokers_arg();
    assert!(run(DL, &brokers, &["generate", "--count", "50", "--poison-every", "10"]).status.success());
    let out = run(DL, &brokers, &["consume", "--until-idle-ms", "1500"]);
    assert!(out.status.success());
    let first = processed(&out);
    assert_eq!(first.len(), 45, "every good payment processed once");

    let client = cluster.client().await.expect("client");
    let letters = cairn_examples::log::read_topic(&client, "payments.dlq").await.expect("read the dlq");
    assert_eq!(letters.len(), 5, "one dead letter per poison record");
    let mut origins = BTreeSet::new();
    for (_, r) in &letters {
        let h = |k: &str| r.headers.iter().find(|h| h.key == k).map(|h| String::from_utf8_lossy(&h.value).into_owned());
        assert!(r.value.starts_with(b"poison:"), "the original value is kept");
        assert!(h(dlq::HEADER_REASON).is_some_and(|why| why.contains("not a payment")), "{:?}", r.headers);
        assert_eq!(h(dlq::HEADER_TOPIC).as_deref(), Some("payments"));
        assert_eq!(h(dlq::HEADER_ATTEMPTS).as_deref(), Some("3"));
        origins.insert((h(dlq::HEADER_PARTITION), h(dlq::HEADER_OFFSET)));
    }
    assert_eq!(origins.len(), 5, "each says where it came from");

    let cli = cli_binary();
    let replay = |extra: &[&str]| {
        let out = std::process::Command::new(&cli)
            .args(["--brokers", &brokers, "dlq", "replay", "payments.dlq"])
            .args(extra)
            .output()
            .expect("cairn dlq replay");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(replay(&["--dry-run"]).contains("5 dead letter(s) would be replayed"));
    assert!(replay(&[]).contains("5 dead letter(s) replayed to payments"));
    assert!(replay(&[]).contains("0 dead letter(s) replayed"), "a second replay continues where the first stopped");

    let out = run(DL, &brokers, &["consume", "--lenient", "--until-idle-ms", "1500"]);
    assert!(out.status.success());
    let second = processed(&out);
    assert_eq!(second.len(), 5, "only the replayed records are new to the group: {second:?}");
    assert!(second.iter().all(|p| p["replayed_from"].as_str().is_some_and(|f| f.starts_with("payments.dlq/"))));
}
