//! Two listeners per node: the public API on the client port, the Raft transport and the
//! node-internal calls on the peer port, and neither protocol reachable on the other's port.

mod common;

use std::time::Duration;

use cairn_client::{Record, RecordExt};
use cairn_proto::peer::node_internal_client::NodeInternalClient;
use cairn_proto::peer::raft_transport_client::RaftTransportClient;
use cairn_proto::peer::{PingRequest, RaftRequest};
use cairn_proto::v1::broker_client::BrokerClient;
use cairn_proto::v1::{DescribeClusterRequest, ProduceRequest};
use common::{wait_for_leaders, Cluster};
use tonic::Code;

fn channel(addr: &str) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect_timeout(Duration::from_secs(2))
        .connect_lazy()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_calls_are_unimplemented_on_the_client_port_and_the_api_on_the_peer_port() {
    let cluster = Cluster::start(3, "events:1");
    let client = cluster.client().await;
    wait_for_leaders(&client).await;
    client.produce("events", 0, vec![Record::from_value("before")]).await.expect("produce");
    let end = client.list_offsets("events", 0, cairn_client::OffsetSpec::Latest).await.expect("offsets").offset;
    let group_id = client.describe_topic("events").await.expect("describe").partitions[0].group_id;

    for (id, node) in &cluster.nodes {
        let client_port = node.addr.to_string();
        let peer_port = node.peer_addr.to_string();

        // The Raft transport on the client port: not there at all, whatever the message.
        let forged = RaftRequest {
            group_id,
            target_replica_id: id << 32 | 1,
            payload: vec![0xde, 0xad].into(),
            from_node_id: 99,
            from_directory_id: 1,
            target_directory_id: 0,
        };
        for rpc in ["append_entries", "vote", "full_snapshot", "campaign"] {
            let mut raft = RaftTransportClient::new(channel(&client_port));
            let req = forged.clone();
            let got = match rpc {
                "append_entries" => raft.append_entries(req).await.map(|_| ()),
                "vote" => raft.vote(req).await.map(|_| ()),
                "full_snapshot" => raft.full_snapshot(req).await.map(|_| ()),
                _ => raft.campaign(req).await.map(|_| ()),
            };
            let e = got.expect_err("no Raft transport on the client port");
            assert_eq!(e.code(), Code::Unimplemented, "node {id} {rpc} on {client_port}: {e}");
        }
        let e = NodeInternalClient::new(channel(&client_port))
            .ping(PingRequest { from_node_id: 99 })
            .await
            .expect_err("no node-internal calls on the client port");
        assert_eq!(e.code(), Code::Unimplemented, "node {id} ping on {client_port}: {e}");

        // The peer port serves the peers' protocol ...
        let pong = NodeInternalClient::new(channel(&peer_port))
            .ping(PingRequest { from_node_id: 99 })
            .await
            .expect("the peer port answers pings");
        assert_eq!(pong.into_inner().node_id, *id);
        // ... and not the public API.
        let e = BrokerClient::new(channel(&peer_port))
            .produce(ProduceRequest {
                topic: "events".into(),
                partition: 0,
                records: vec![cairn_proto::v1::Record { value: b"via-peer".to_vec().into(), ..Default::default() }],
                ..Default::default()
            })
            .await
            .expect_err("no public API on the peer port");
        assert_eq!(e.code(), Code::Unimplemented, "node {id} produce on {peer_port}: {e}");
    }

    // Nothing sent above reached the log; the cluster still works and names both addresses.
    let after = client.list_offsets("events", 0, cairn_client::OffsetSpec::Latest).await.expect("offsets").offset;
    assert_eq!(after, end, "forged peer calls and produce on the peer port appended nothing");
    client.produce("events", 0, vec![Record::from_value("after")]).await.expect("produce after");
    let d = BrokerClient::new(channel(&cluster.addr(1)))
        .describe_cluster(DescribeClusterRequest::default())
        .await
        .expect("describe")
        .into_inner();
    for n in &d.nodes {
        let node = &cluster.nodes[&n.node_id];
        assert_eq!(n.address, node.addr.to_string());
        assert_eq!(n.peer_address, node.peer_addr.to_string());
    }
}
