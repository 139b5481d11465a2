//! The controller's `MetaStateMachine`: decodes commands, applies them to [`ClusterState`],
//! publishes each new state to the node (reconciler, services) through a watch channel.

use std::sync::Arc;

use bytes::Bytes;
use cairn_raft::types::MetaStateMachine;
use tokio::sync::watch;

use super::state::{ClusterState, MetaAnswer, MetaCommand};

/// 2: the cluster id in the state and in `Bootstrap`. 3: a client and a peer address per node.
/// 4: ACLs in the state. 5: each topic's schema validation (a format-4 state still decodes, see
/// [`super::legacy`]; commands and answers are the same in both).
const FORMAT: u8 = 5;
/// The oldest format still read.
const FORMAT_V4: u8 = 4;

/// Encodes a command for `Command::Meta`.
pub fn encode_command(cmd: &MetaCommand) -> Bytes {
    encode(cmd)
}

/// Decodes an answer returned by the controller group.
pub fn decode_answer(bytes: &[u8]) -> Result<MetaAnswer, String> {
    decode(bytes)
}

fn encode<T: serde::Serialize>(v: &T) -> Bytes {
    let mut out = vec![FORMAT];
    // Serializing plain data structs into a Vec cannot fail.
    if let Err(e) = bincode::serialize_into(&mut out, v) {
        tracing::error!(error = %e, "invariant broken: controller value did not serialize");
    }
    Bytes::from(out)
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    match bytes.split_first() {
        Some((&(FORMAT | FORMAT_V4), body)) => bincode::deserialize(body).map_err(|e| e.to_string()),
        Some((v, _)) => Err(format!("unsupported controller format {v}")),
        None => Err("empty controller value".into()),
    }
}

/// Applies controller commands; the latest state goes to the receiver [`ControllerSm::new`] returns.
pub struct ControllerSm {
    state: ClusterState,
    tx: watch::Sender<Arc<ClusterState>>,
}

impl ControllerSm {
    pub fn new() -> (ControllerSm, watch::Receiver<Arc<ClusterState>>) {
        let (tx, rx) = watch::channel(Arc::new(ClusterState::default()));
        (ControllerSm { state: ClusterState::default(), tx }, rx)
    }
}

impl MetaStateMachine for ControllerSm {
    fn apply(&mut self, index: u64, command: &[u8]) -> Bytes {
        let answer = match decode::<MetaCommand>(command) {
            Ok(cmd) => self.state.apply(index, &cmd),
            // Every replica decodes the same bytes the same way, so this too is deterministic.
            Err(e) => MetaAnswer::Invalid(format!("undecodable controller command: {e}")),
        };
        if answer.changes_state() {
            self.tx.send_replace(Arc::new(self.state.clone()));
        }
        encode(&answer)
    }

    fn save(&self) -> Bytes {
        encode(&self.state)
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), String> {
        self.state = match state.split_first() {
            Some((&FORMAT_V4, body)) => super::legacy::state_v4(body)?,
            _ => decode(state)?,
        };
        self.tx.send_replace(Arc::new(self.state.clone()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::address::NodeAddress;

    #[test]
    fn applies_publishes_saves_and_restores() {
        let (mut sm, rx) = ControllerSm::new();
        let nodes = BTreeMap::from([(1, NodeAddress::parse("a:1").expect("address"))]);
        let ans = sm.apply(5, &encode_command(&MetaCommand::Bootstrap { nodes, cluster_id: "c1".into() }));
        assert_eq!(decode_answer(&ans), Ok(MetaAnswer::Done));
        assert_eq!(rx.borrow().nodes.len(), 1);
        assert_eq!(rx.borrow().version, 5);

        let (mut other, rx2) = ControllerSm::new();
        other.restore(&sm.save()).expect("restore");
        assert_eq!(*rx2.borrow().as_ref(), *rx.borrow().as_ref());

        // A state saved by the previous format still restores.
        let mut v4 = vec![FORMAT_V4];
        let mut old = rx.borrow().as_ref().clone();
        old.topics.clear();
        bincode::serialize_into(&mut v4, &old).expect("encode");
        let (mut third, rx3) = ControllerSm::new();
        third.restore(&v4).expect("format 4 restores");
        assert_eq!(rx3.borrow().nodes, old.nodes);

        let ans = sm.apply(6, b"\x02garbage");
        assert!(matches!(decode_answer(&ans), Ok(MetaAnswer::Invalid(_))));
        assert!(other.restore(b"\x07nope").is_err());
    }
}
