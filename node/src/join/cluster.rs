//! Start-up check of a node whose data directory already belongs to a cluster: do the members
//! answering on the configured addresses belong to the same one?
//!
//! Two clusters bootstrapped with the same member addresses (another machine, a re-created
//! test cluster, a directory copied from elsewhere) get different random cluster ids, so a
//! directory of one started among the other is recognised and refused with a clear message
//! before anything in it changes. Members that do not answer (a whole cluster restarting) hold
//! nothing up: the check asks once and starts. Peers' Raft traffic is refused anyway by the
//! directory-id check ([`cairn_raft::network::Directories`]); this makes the refusal early and
//! clear, and [`crate::liveness`] keeps not counting a node of another cluster as a member.

use std::time::Duration;

use cairn_proto::peer::node_internal_client::NodeInternalClient;
use cairn_proto::peer::PingRequest;
use cairn_raft::network::PeerChannels;
use tonic::Request;

use super::JoinError;
use crate::config::Config;

/// How long a member gets to answer.
const WAIT: Duration = Duration::from_millis(1500);

/// A member's answer naming another cluster than `ours`.
#[derive(Debug)]
pub struct Foreign {
    pub node: u64,
    pub address: String,
    pub cluster_id: String,
}

/// Pings every other member once, all at once; the first that names a cluster other than
/// `ours` makes this an error.
///
/// # Errors
/// [`JoinError::OtherCluster`].
pub async fn check(config: &Config, ours: &str, peers: &PeerChannels) -> Result<(), JoinError> {
    let me = config.node_id;
    let asks = config.initial_cluster.iter().filter(|(id, _)| **id != me).map(|(id, addr)| {
        let (id, addr) = (*id, addr.clone());
        let channel = peers.get(&addr);
        async move {
            let ch = channel.ok()?;
            let mut req = Request::new(PingRequest { from_node_id: me });
            req.set_timeout(WAIT);
            let answer = tokio::time::timeout(WAIT, NodeInternalClient::new(ch).ping(req)).await.ok()?.ok()?;
            let answer = answer.into_inner();
            (answer.node_id == id).then_some(Foreign { node: id, address: addr, cluster_id: answer.cluster_id })
        }
    });
    let answers = futures::future::join_all(asks).await;
    match foreign(ours, answers.into_iter().flatten()) {
        Some(f) => Err(JoinError::OtherCluster {
            dir: config.data_dir.clone(),
            ours: ours.to_string(),
            theirs: f.cluster_id,
            peer: f.node,
            address: f.address,
        }),
        None => Ok(()),
    }
}

/// The first answer naming a known cluster other than `ours` (an empty id: that member has not
/// learned its cluster's id yet, which says nothing).
fn foreign(ours: &str, answers: impl IntoIterator<Item = Foreign>) -> Option<Foreign> {
    answers.into_iter().find(|a| !a.cluster_id.is_empty() && a.cluster_id != ours)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(node: u64, cluster_id: &str) -> Foreign {
        Foreign { node, address: format!("127.0.0.1:{node}"), cluster_id: cluster_id.into() }
    }

    #[test]
    fn only_a_member_naming_another_known_cluster_is_foreign() {
        assert!(foreign("a", [answer(2, "a"), answer(3, "")]).is_none());
        assert!(foreign("a", []).is_none());
        let f = foreign("a", [answer(2, ""), answer(3, "b")]).expect("node 3 is of cluster b");
        assert_eq!((f.node, f.cluster_id.as_str()), (3, "b"));
    }
}
