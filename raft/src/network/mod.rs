//! Node-to-node Raft transport over gRPC (`cairn.peer.v1.RaftTransport`).
//!
//! A node serves this transport on its peer listener, apart from the public API. Each peer node
//! has one HTTP/2 channel, created once and cloned by every group's client. Memberships carry
//! each node's client address (what leader hints name); the transport finds the peer address
//! of a target by its node id in the [`AddressBook`]. Requests carry the group
//! id and the target replica id; a receiver that does not host that replica answers
//! `unreachable`, and openraft backs off. They also carry data-directory identities, so a node
//! that lost its disk is kept out of every group ([`Directories`]).

mod batcher;
mod client;
mod codec;
mod directories;
mod peers;
mod registry;
mod server;
mod tls;

pub use client::{request_campaign, NetworkFactory};
pub use directories::{AmnesiaHook, Directories};
pub use peers::{AddressBook, PeerChannels, PeerOptions};
pub use registry::GroupRegistry;
pub use server::{PeerService, WriteGate};
pub use tls::ClientTlsSource;
