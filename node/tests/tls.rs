//! TLS on both listeners: clients over TLS, plaintext refused, the peer listener requiring a
//! member certificate of the cluster CA, and certificates rotated without a restart.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cairn_client::{Client, ClientConfig, ClientTls, OffsetSpec, Record, RecordExt};
use cairn_proto::peer::node_internal_client::NodeInternalClient;
use cairn_proto::peer::PingRequest;
use common::{certs_init, cli_binary, tls_args, Cluster};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

async fn tls_client(cluster: &Cluster, ca: &Path) -> Client {
    let mut cfg = ClientConfig::new(cluster.brokers());
    cfg.retry_deadline = Duration::from_secs(30);
    cfg.tls = Some(ClientTls::from_files(ca, None, None).expect("ca"));
    Client::connect(cfg).await.expect("TLS client connects")
}

async fn wait_for_leader(client: &Client, topic: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(d) = client.describe_topic(topic).await {
            if d.partitions.iter().all(|p| p.leader_node_id != 0) && !d.partitions.is_empty() {
                return;
            }
        }
        assert!(Instant::now() < deadline, "no leader for {topic}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A ping to `peer_addr` over TLS trusting `ca`, presenting `identity` (cert, key files).
async fn ping_peer(peer_addr: &str, ca: &Path, identity: Option<(&Path, &Path)>) -> Result<u64, tonic::Status> {
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(std::fs::read(ca).expect("ca")));
    if let Some((c, k)) = identity {
        tls = tls.identity(Identity::from_pem(std::fs::read(c).expect("cert"), std::fs::read(k).expect("key")));
    }
    let ch = Endpoint::from_shared(format!("https://{peer_addr}"))
        .expect("endpoint")
        .tls_config(tls)
        .expect("tls config")
        .connect_timeout(Duration::from_secs(2))
        .connect_lazy();
    NodeInternalClient::new(ch).ping(PingRequest { from_node_id: 99 }).await.map(|r| r.into_inner().node_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_cluster_serves_tls_clients_and_peers_with_member_certificates_only() {
    let certs = tempfile::tempdir().expect("tempdir");
    let foreign = tempfile::tempdir().expect("tempdir");
    certs_init(certs.path());
    certs_init(foreign.path());
    let cluster = Cluster::start_per_node(3, "events:1", &[], |id| tls_args(certs.path(), id));
    let ca = certs.path().join("ca.pem");
    let client = tls_client(&cluster, &ca).await;
    wait_for_leader(&client, "events").await;
    client.produce("events", 0, vec![Record::from_value("over-tls")]).await.expect("produce over TLS");
    assert_eq!(client.list_offsets("events", 0, OffsetSpec::Latest).await.expect("offsets").offset, 1);

    // Plaintext to the client port: no answer.
    let plain = Endpoint::from_shared(format!("http://{}", cluster.addr(1)))
        .expect("endpoint")
        .connect_timeout(Duration::from_secs(2))
        .connect_lazy();
    let e = cairn_proto::v1::broker_client::BrokerClient::new(plain)
        .describe_cluster(cairn_proto::v1::DescribeClusterRequest::default())
        .await
        .expect_err("a plaintext client gets nothing from a TLS node");
    assert_ne!(e.code(), tonic::Code::Ok);

    // The CLI over TLS.
    let out = std::process::Command::new(cli_binary())
        .args(["--brokers", &cluster.brokers().join(","), "--ca"])
        .arg(&ca)
        .args(["consume", "events", "--exit-at-end"])
        .output()
        .expect("cairn consume");
    assert!(out.status.success(), "cairn --ca consume: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("over-tls"));

    let peer = cluster.peer_addr(1);
    // A member certificate of the cluster CA is let in (the check can pass) ...
    let node2 = (certs.path().join("node-2.pem"), certs.path().join("node-2.key"));
    assert_eq!(ping_peer(&peer, &ca, Some((&node2.0, &node2.1))).await.expect("a member certificate"), 1);
    // ... none, a client certificate of the same CA, or a node certificate of another CA is not.
    ping_peer(&peer, &ca, None).await.expect_err("no certificate");
    let client_cert = (certs.path().join("client.pem"), certs.path().join("client.key"));
    ping_peer(&peer, &ca, Some((&client_cert.0, &client_cert.1))).await.expect_err("a client certificate");
    let other = (foreign.path().join("node-2.pem"), foreign.path().join("node-2.key"));
    ping_peer(&peer, &ca, Some((&other.0, &other.1))).await.expect_err("another CA's node certificate");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cluster.log_of(1).contains("refused a TLS connection") {
        assert!(Instant::now() < deadline, "node 1 did not log the refused peer connections");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(cluster.log_of(1).contains("listener=\"peer\"") || cluster.log_of(1).contains("listener=peer"));
    // Nothing of that reached the log.
    assert_eq!(client.list_offsets("events", 0, OffsetSpec::Latest).await.expect("offsets").offset, 1);
}

fn copy(from: &Path, to: &Path) {
    // Written beside and renamed, as a certificate manager would: never a half-written file.
    let tmp = to.with_extension("tmp");
    std::fs::copy(from, &tmp).expect("copy");
    std::fs::rename(&tmp, to).expect("rename");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_certificates_serve_new_connections_and_keep_established_ones() {
    let old = tempfile::tempdir().expect("tempdir");
    let new = tempfile::tempdir().expect("tempdir");
    let live = tempfile::tempdir().expect("tempdir");
    certs_init(old.path());
    certs_init(new.path());
    let live_file = |f: &str| -> PathBuf { live.path().join(f) };
    for f in ["ca.pem", "node-1.pem", "node-1.key", "node-2.pem", "node-2.key", "node-3.pem", "node-3.key"] {
        copy(&old.path().join(f), &live_file(f));
    }
    let cluster = Cluster::start_per_node(3, "events:1", &[], |id| tls_args(live.path(), id));
    let established = tls_client(&cluster, &old.path().join("ca.pem")).await;
    wait_for_leader(&established, "events").await;
    established.produce("events", 0, vec![Record::from_value("before")]).await.expect("produce");

    // A broken key is refused and the node keeps the certificate it has.
    std::fs::write(live_file("node-1.key.tmp"), b"not a key").expect("write");
    std::fs::rename(live_file("node-1.key.tmp"), live_file("node-1.key")).expect("rename");
    cluster.signal(1, "-HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cluster.log_of(1).contains("re-reading the TLS certificates failed") {
        assert!(Instant::now() < deadline, "node 1 did not report the broken key");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let fresh_old = tls_client(&cluster, &old.path().join("ca.pem")).await;
    fresh_old.describe_topic("events").await.expect("new connections still get the previous certificate");

    // Rotate every node to certificates of a new CA, trusting both CAs meanwhile. Node 1 is
    // told by SIGHUP, the others notice the files changed.
    let bundle =
        [std::fs::read(old.path().join("ca.pem")).expect("ca"), std::fs::read(new.path().join("ca.pem")).expect("ca")]
            .concat();
    std::fs::write(live_file("ca.pem.tmp"), bundle).expect("write");
    std::fs::rename(live_file("ca.pem.tmp"), live_file("ca.pem")).expect("rename");
    for id in 1..=3 {
        for ext in ["pem", "key"] {
            copy(&new.path().join(format!("node-{id}.{ext}")), &live_file(&format!("node-{id}.{ext}")));
        }
    }
    cluster.signal(1, "-HUP");
    let deadline = Instant::now() + Duration::from_secs(30);
    for id in 1..=3 {
        while cluster.log_of(id).matches("TLS certificates re-read").count() == 0 {
            assert!(Instant::now() < deadline, "node {id} did not re-read its certificates");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // New connections get the new certificates: a client trusting only the new CA gets in.
    let rotated = tls_client(&cluster, &new.path().join("ca.pem")).await;
    rotated.produce("events", 0, vec![Record::from_value("after")]).await.expect("produce with the new CA");
    // The connection made before the rotation still works: it was not dropped (a reconnect
    // would fail, as this client trusts only the old CA).
    established.produce("events", 0, vec![Record::from_value("still")]).await.expect("established connection kept");
    assert_eq!(rotated.list_offsets("events", 0, OffsetSpec::Latest).await.expect("offsets").offset, 3);
}
