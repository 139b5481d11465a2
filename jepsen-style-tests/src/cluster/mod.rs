//! The cluster under test: real `cairn-node` processes, each on its own loopback address
//! (127.0.0.11, .12, ...) inside a network namespace the suite created, with every outgoing
//! peer connection bound to the node's address so iptables rules keyed on source and
//! destination addresses cut exactly the links a nemesis chooses.

pub mod disks;
pub mod net;
pub mod netns;
pub mod nodes;

pub use net::Net;
pub use nodes::{Cluster, NodeSpec};
