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

/// Pings every other member once, all at once. The directory is another cluster's when a member
/// answers for another cluster and none for ours; a stray process of another cluster on one
/// member's address while others answer for ours is logged, not a reason to stay down (the
/// members never count it as up).
///
/// # Errors
/// [`JoinError::OtherCluster`].
pub async fn check(config: &Config, ours: &str, peers: &PeerChannels) -> Result<(), JoinError> {
    let me = config.node_id;
    let asks = config.initial_cluster.iter().filter(|(id, _)| **id != me).map(|(id, addr)| {
        let (id, addr) = (*id, addr.peer.clone());
        let channel = peers.get(&addr);
        async move {
            let ch = channel.ok()?;
            let mut req = Request::new(PingRequest { from_node_id: me });
            req.set_timeout(WAIT);
            let answer = tokio::time::timeout(WAIT, NodeInternalClient::new(ch).ping(req)).await.ok()?.ok()?;
            let answer = answer.into_inner();
            (answer.node_id == id).then_some(Answer { node: id, address: addr, cluster_id: answer.cluster_id })
        }
    });
    let answers: Vec<Answer> = futures::future::join_all(asks).await.into_iter().flatten().collect();
    match verdict(ours, &answers) {
        Verdict::Ours => Ok(()),
        Verdict::Strays(strays) => {
            for s in strays {
                tracing::error!(node = s.node, address = %s.address, theirs = %s.cluster_id, "a process of another cluster answers on this member's address; starting anyway (other members answer for this cluster)");
            }
            Ok(())
        }
        Verdict::Foreign(f) => Err(JoinError::OtherCluster {
            dir: config.data_dir.clone(),
            ours: ours.to_string(),
            theirs: f.cluster_id.clone(),
            peer: f.node,
            address: f.address.clone(),
        }),
    }
}

/// A member's answer.
#[derive(Debug)]
pub struct Answer {
    pub node: u64,
    pub address: String,
    /// Empty when that member has not learned its cluster's id yet (which says nothing).
    pub cluster_id: String,
}

#[derive(Debug)]
enum Verdict<'a> {
    /// No member answered for another cluster.
    Ours,
    /// Some did, but others answered for ours.
    Strays(Vec<&'a Answer>),
    /// Members answered for another cluster and none for ours.
    Foreign(&'a Answer),
}

fn verdict<'a>(ours: &str, answers: &'a [Answer]) -> Verdict<'a> {
    let others: Vec<&Answer> = answers.iter().filter(|a| !a.cluster_id.is_empty() && a.cluster_id != ours).collect();
    match others.first() {
        None => Verdict::Ours,
        Some(_) if answers.iter().any(|a| a.cluster_id == ours) => Verdict::Strays(others),
        Some(first) => Verdict::Foreign(first),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(node: u64, cluster_id: &str) -> Answer {
        Answer { node, address: format!("127.0.0.1:{node}"), cluster_id: cluster_id.into() }
    }

    #[test]
    fn another_cluster_refuses_only_when_no_member_answers_for_ours() {
        assert!(matches!(verdict("a", &[answer(2, "a"), answer(3, "")]), Verdict::Ours));
        assert!(matches!(verdict("a", &[]), Verdict::Ours));
        match verdict("a", &[answer(2, ""), answer(3, "b")]) {
            Verdict::Foreign(f) => assert_eq!((f.node, f.cluster_id.as_str()), (3, "b")),
            other => panic!("node 3 of cluster b and nobody of a: refused, got {other:?}"),
        }
        match verdict("a", &[answer(2, "a"), answer(3, "b")]) {
            Verdict::Strays(s) => assert_eq!(s.len(), 1),
            other => panic!("a member answers for a: a stray, got {other:?}"),
        }
    }
}
