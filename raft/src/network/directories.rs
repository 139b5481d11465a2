//! Data-directory identities on the peer transport: Raft traffic from or to a node that lost
//! its disk is refused.
//!
//! A node restarted with an empty directory under a known id has forgotten its votes and the
//! entries it acknowledged (Raft amnesia): counting it could elect two leaders in a term or
//! lose committed entries. Every directory gets a random id when it is created; the cluster
//! registers each node's id (controller metadata). Every peer message carries the sender's
//! directory and the directory it believes the target has, and the receiver checks both:
//!
//! | check at the receiver                                   | verdict                          |
//! |---------------------------------------------------------|----------------------------------|
//! | target directory given and not mine                     | refuse: *I* was wiped (hook runs) |
//! | sender's registered directory known and not the one sent | refuse: the sender was wiped      |

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
    /// This node's directory `own`; `on_amnesia` runs when peers address another directory of
    /// this node (the node should stop).
    pub fn new(own: u64, on_amnesia: AmnesiaHook) -> Directories {
        Directories { own, registered: Arc::default(), on_amnesia: Some(on_amnesia) }
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

    /// Whether a message from `from` (presenting directory `from_dir`) addressed to directory
    /// `target_dir` of this node may be delivered.
    ///
    /// # Errors
    /// Why not, for the sender's log.
    pub(crate) fn admit(&self, from: NodeId, from_dir: u64, target_dir: u64) -> Result<(), String> {
        if target_dir != 0 && self.own != 0 && target_dir != self.own {
            let why = format!(
                "node {from} addresses this node's data directory {target_dir:#x}, but this directory is \
                 {:#x}: this node's disk was wiped or replaced since, and it forgot what it acknowledged",
                self.own
            );
            if let Some(hook) = &self.on_amnesia {
                hook(&why);
            }
            return Err(why);
        }
        let registered = self.registered(from);
        if registered != 0 && from_dir != registered {
            return Err(format!(
                "node {from} presents data directory {from_dir:#x}, but its registered directory is \
                 {registered:#x}: that node lost its data; refusing it until it is replaced"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn refuses_a_wiped_sender_and_tells_a_wiped_receiver() {
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        let d = Directories::new(
            0xb,
            Arc::new(move |_| {
                h.fetch_add(1, Ordering::SeqCst);
            }),
        );
        d.set_registered(HashMap::from([(1, 0xa), (2, 0xc)]));
        assert!(d.admit(1, 0xa, 0xb).is_ok());
        assert!(d.admit(1, 0xa, 0).is_ok(), "a sender that does not know our directory yet");
        assert!(d.admit(3, 0xf, 0xb).is_ok(), "no directory registered for node 3 yet");
        let e = d.admit(2, 0xd, 0xb).expect_err("node 2 came back with a new directory");
        assert!(e.contains("lost its data"), "{e}");
        assert_eq!(hits.load(Ordering::SeqCst), 0);
        let e = d.admit(1, 0xa, 0x9).expect_err("peers address an earlier directory of ours");
        assert!(e.contains("wiped"), "{e}");
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }
}
