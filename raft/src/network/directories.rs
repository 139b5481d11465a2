//! Data-directory identities on the peer transport: Raft traffic from or to a node that lost
//! its disk is refused.
//!
//! A node restarted with an empty directory under a known id has forgotten its votes and the
//! entries it acknowledged (Raft amnesia): counting it could elect two leaders in a term or
//! lose committed entries. Every directory gets a random id when it is created; the cluster
//! registers each node's id (controller metadata). Every peer message carries the directory the
//! sender believes the target has (and, for diagnostics, the sender's own). A receiver addressed
//! under another directory than its own refuses the message — so its votes and acknowledgements,
//! the promises a wiped node could no longer keep, are never counted — and, unless it joined as
//! the replacement of a lost directory (then the sender is merely behind), it stops: it was
//! wiped.
//!
//! Receivers do not refuse a sender over *its* directory: a receiver's copy of the registry may
//! lag (it was down during a replacement), and refusing the replaced node would keep it from
//! ever catching up if that node leads. A wiped sender is harmless on its own: with an empty log
//! it wins no election, and every vote or acknowledgement it would give is asked for under its
//! registered directory, which it refuses.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::ids::NodeId;

/// Called once when this node learns that peers address an earlier directory of it.
pub type AmnesiaHook = Arc<dyn Fn(&str) + Send + Sync>;

/// This node's directory and the registered directory of every node.
#[derive(Clone)]
pub struct Directories {
    own: u64,
    registered: Arc<RwLock<HashMap<NodeId, u64>>>,
    on_amnesia: Option<AmnesiaHook>,
}

impl std::fmt::Debug for Directories {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directories").field("own", &format_args!("{:#x}", self.own)).finish_non_exhaustive()
    }
}

impl Default for Directories {
    /// No identities: every check passes (tests of the transport alone).
    fn default() -> Self {
        Directories { own: 0, registered: Arc::default(), on_amnesia: None }
    }
}

impl Directories {
    /// This node's directory `own`; `on_amnesia` (None for a node that joined as a
    /// replacement) runs when peers address another directory of this node (it should stop).
    pub fn new(own: u64, on_amnesia: Option<AmnesiaHook>) -> Directories {
        Directories { own, registered: Arc::default(), on_amnesia }
    }

    pub fn own(&self) -> u64 {
        self.own
    }

    /// Replaces the registered directories (from the cluster metadata); 0 or absent: unknown.
    pub fn set_registered(&self, map: HashMap<NodeId, u64>) {
        *self.registered.write().unwrap_or_else(|p| p.into_inner()) = map;
    }

    /// The registered directory of `node` (0: unknown).
    pub fn registered(&self, node: NodeId) -> u64 {
        self.registered.read().unwrap_or_else(|p| p.into_inner()).get(&node).copied().unwrap_or(0)
    }

    /// Whether a message from `from` (whose own directory is `from_dir`) addressed to directory
    /// `target_dir` of this node may be delivered.
    ///
    /// # Errors
    /// Why not, for the sender's log.
    pub(crate) fn admit(&self, from: NodeId, from_dir: u64, target_dir: u64) -> Result<(), String> {
        if target_dir != 0 && self.own != 0 && target_dir != self.own {
            let why = format!(
                "node {from} (directory {from_dir:#x}) addresses this node's data directory {target_dir:#x}, \
                 but this directory is {:#x}: this node's disk was wiped or replaced since, and it \
                 forgot what it acknowledged",
                self.own
            );
            if let Some(hook) = &self.on_amnesia {
                hook(&why);
            }
            return Err(why);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn a_wiped_node_refuses_messages_for_its_old_directory_and_stops() {
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        let hook: AmnesiaHook = Arc::new(move |_| {
            h.fetch_add(1, Ordering::SeqCst);
        });
        let d = Directories::new(0xb, Some(hook));
        d.set_registered(HashMap::from([(1, 0xa)]));
        assert!(d.admit(1, 0xa, 0xb).is_ok());
        assert!(d.admit(1, 0xa, 0).is_ok(), "a sender that does not know our directory yet");
        assert!(d.admit(2, 0xd, 0xb).is_ok(), "a sender's own directory is not held against it");
        assert_eq!(hits.load(Ordering::SeqCst), 0);
        let e = d.admit(1, 0xa, 0x9).expect_err("peers address an earlier directory of ours");
        assert!(e.contains("wiped"), "{e}");
        assert_eq!(hits.load(Ordering::SeqCst), 1, "the node is told to stop");
        // A replacement refuses a sender that is behind, and carries on.
        let replacement = Directories::new(0xc, None);
        assert!(replacement.admit(1, 0xa, 0xb).is_err());
    }
}
