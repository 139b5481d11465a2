//! Admin calls that change the cluster are decided by the controller leader. A node that is not
//! the leader forwards them there (as Kafka brokers do since KIP-590), so any node of the
//! bootstrap list can take them. Once only: a forwarded call that reaches a node that is not the
//! leader either (leadership moved meanwhile) gets `NOT_LEADER` with the hint, and the client
//! retries; the leader's answer, error or not, is passed back as it is.
//!
//! The call goes to the leader's **peer** listener (where only nodes get in) carrying the
//! caller's principal, so the leader checks the same ACLs for the same caller.

use std::future::Future;
use std::time::Duration;

use cairn_proto::v1::admin_client::AdminClient;
use cairn_raft::error::LeaderHint;
use cairn_raft::network::PeerChannels;
use cairn_raft::GroupError;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Request, Response, Status};

use super::error::ServiceError;
use crate::auth::Principal;

/// Marks a call a node forwarded (a forwarded call is never forwarded again).
pub const FORWARDED: &str = "cairn-forwarded";
/// How long a forwarded call may take at the leader (topic creation waits for leaders).
const FORWARD_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Forwarder {
    me: u64,
    peers: PeerChannels,
}

impl Forwarder {
    pub fn new(me: u64, peers: PeerChannels) -> Forwarder {
        Forwarder { me, peers }
    }

    /// The channel to the leader's peer listener: the node's own peer channels, so a
    /// forwarded call uses the node's TLS (and member certificate) when configured.
    fn channel(&self, leader: &LeaderHint) -> Result<Channel, Status> {
        let address = self.peers.options().addresses.resolve(leader.node_id, &leader.address);
        self.peers
            .get(&address)
            .map_err(|e| Status::from(ServiceError::Internal(format!("controller leader address {address}: {e}"))))
    }

    /// Sends `request` to the controller leader `leader` with `call`, or refuses with
    /// `NOT_LEADER` when there is none to forward to (unknown, this node, or already forwarded).
    ///
    /// # Errors
    /// `NOT_LEADER`, or whatever the leader answered.
    pub async fn admin<Req, Resp, F, Fut>(
        &self,
        leader: Option<LeaderHint>,
        request: Request<Req>,
        call: F,
    ) -> Result<Response<Resp>, Status>
    where
        F: FnOnce(AdminClient<Channel>, Request<Req>) -> Fut,
        Fut: Future<Output = Result<Response<Resp>, Status>>,
    {
        let not_leader = |leader| Status::from(ServiceError::Group(GroupError::NotLeader { leader }));
        let hint = match leader {
            Some(h) if h.node_id != self.me => h,
            other => return Err(not_leader(other)),
        };
        if request.metadata().contains_key(FORWARDED) {
            return Err(not_leader(Some(hint)));
        }
        let channel = self.channel(&hint)?;
        let principal = Principal::of(&request);
        let mut forwarded = Request::new(request.into_inner());
        forwarded.metadata_mut().insert(FORWARDED, MetadataValue::from_static("1"));
        principal.forward_on(&mut forwarded);
        forwarded.set_timeout(FORWARD_TIMEOUT);
        tracing::debug!(leader = hint.node_id, "forwarding an admin call to the controller leader");
        match call(AdminClient::new(channel), forwarded).await {
            // The leader could not be reached: the client may try it (or another node) itself.
            Err(s) if s.code() == Code::Unavailable && s.details().is_empty() => Err(not_leader(Some(hint))),
            other => other,
        }
    }
}
