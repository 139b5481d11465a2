//! A node that finds its own write-ahead log lost fsynced writes (see
//! `cairn_raft::storage::durable`) cannot trust any of its replicas: each may lack entries it
//! acknowledged, and voting with such a log can lose committed records. It asks the cluster to
//! replace it (the same procedure as a lost disk, `cairn node replace`, but started by the node
//! itself, which knows), sets the damaged data aside, and starts again as its own replacement:
//! every replica rejoins as a learner and catches up before it votes again.

use std::time::Duration;

use cairn_proto::v1::admin_client::AdminClient;
use cairn_proto::v1::{ErrorDetail, ReplaceNodeRequest};
use cairn_raft::network::PeerChannels;
use prost::Message;
use tonic::Request;

use crate::config::Config;

const PAUSE: Duration = Duration::from_secs(1);
const TIMEOUT: Duration = Duration::from_secs(5);

/// Asks the controller (through any member, following leader hints) to mark this node, with
/// data directory `directory`, for replacement. Waits as long as it takes a controller leader
/// to answer; a repeat after success is answered alike.
pub async fn request_replacement(config: &Config, directory: u64, peers: &PeerChannels) {
    let me = config.node_id;
    let mut addrs: Vec<String> =
        config.initial_cluster.iter().filter(|(id, _)| **id != me).map(|(_, a)| a.client.clone()).collect();
    let mut logged: Option<std::time::Instant> = None;
    loop {
        for addr in addrs.clone() {
            let Ok(ch) = peers.get(&addr) else { continue };
            let mut req = Request::new(ReplaceNodeRequest { node_id: me, expected_directory_id: directory });
            req.set_timeout(TIMEOUT);
            let Ok(answer) = tokio::time::timeout(TIMEOUT, AdminClient::new(ch).replace_node(req)).await else {
                continue;
            };
            match answer {
                Ok(r) => {
                    tracing::warn!(
                        node = me,
                        via = %addr,
                        replicas = r.into_inner().replicas,
                        "the cluster marked this node for replacement; starting again as the replacement"
                    );
                    return;
                }
                Err(status) => {
                    if logged.is_none_or(|t| t.elapsed() > Duration::from_secs(5)) {
                        tracing::warn!(node = me, via = %addr, error = %status.message(), "replacement request not taken yet; retrying");
                        logged = Some(std::time::Instant::now());
                    }
                    // Ask the controller leader first next time.
                    let d = ErrorDetail::decode(status.details()).unwrap_or_default();
                    if !d.leader_address.is_empty() && d.leader_address != addr {
                        addrs.retain(|a| *a != d.leader_address);
                        addrs.insert(0, d.leader_address);
                        break;
                    }
                }
            }
        }
        tokio::time::sleep(PAUSE).await;
    }
}
