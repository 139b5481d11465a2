//! A node's two addresses: where clients reach it and where the other nodes do.
//!
//! The client listener serves the public `cairn.v1` API (and health, reflection); the peer
//! listener serves the Raft transport and the node-internal calls, which are never registered
//! on the client listener. An `--initial-cluster` entry names both, `ID=CLIENT/PEER`; with the
//! peer part left out the peer address is the client host at the client port + 1000
//! (`1=10.0.0.1:7701` peers on `10.0.0.1:8701`).

use serde::{Deserialize, Serialize};

/// Offset of the default peer port from the client port.
pub const PEER_PORT_OFFSET: u16 = 1000;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeAddress {
    /// `host:port` of the client listener: what leader hints and metadata name.
    pub client: String,
    /// `host:port` of the peer listener: what replication and node-internal calls use.
    pub peer: String,
}

impl NodeAddress {
    /// Parses `CLIENT` or `CLIENT/PEER` (each `HOST:PORT`, non-zero port).
    ///
    /// # Errors
    /// A message naming what is wrong.
    pub fn parse(text: &str) -> Result<NodeAddress, String> {
        let text = text.trim();
        let (client, peer) = match text.split_once('/') {
            Some((c, p)) => (c.trim(), Some(p.trim())),
            None => (text, None),
        };
        let (host, port) = host_port(client)?;
        let peer = match peer {
            Some(p) => {
                host_port(p)?;
                p.to_string()
            }
            None => {
                let port = port.checked_add(PEER_PORT_OFFSET).ok_or_else(|| {
                    format!("{client:?}: port {port} leaves no room for the default peer port (+{PEER_PORT_OFFSET}); name the peer address, CLIENT/PEER")
                })?;
                format!("{host}:{port}")
            }
        };
        if peer == client {
            return Err(format!("{text:?}: the peer address must differ from the client address"));
        }
        Ok(NodeAddress { client: client.to_string(), peer })
    }
}

impl std::fmt::Display for NodeAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.client, self.peer)
    }
}

/// Splits `HOST:PORT` (a bracketed IPv6 host keeps its brackets).
///
/// # Errors
/// No port, a port that is not a number, an empty host, port 0.
pub fn host_port(addr: &str) -> Result<(&str, u16), String> {
    let (host, port) = addr.rsplit_once(':').ok_or_else(|| format!("{addr:?} is not HOST:PORT"))?;
    let port: u16 = port.parse().map_err(|_| format!("{addr:?}: port {port:?} is not a number"))?;
    if host.is_empty() || port == 0 {
        return Err(format!("{addr:?} needs a host and a non-zero port"));
    }
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_address_defaults_to_client_port_plus_offset() {
        let a = NodeAddress::parse("10.0.0.1:7701").expect("parses");
        assert_eq!(a, NodeAddress { client: "10.0.0.1:7701".into(), peer: "10.0.0.1:8701".into() });
        let b = NodeAddress::parse("cairn-0.cairn:7701 / 192.168.1.5:9000").expect("parses");
        assert_eq!(b.client, "cairn-0.cairn:7701");
        assert_eq!(b.peer, "192.168.1.5:9000");
        assert_eq!(b.to_string(), "cairn-0.cairn:7701/192.168.1.5:9000");
        assert_eq!(NodeAddress::parse("[::1]:7701").expect("v6").peer, "[::1]:8701");
    }

    #[test]
    fn bad_addresses_are_refused_with_the_reason() {
        assert!(NodeAddress::parse("host").expect_err("no port").contains("HOST:PORT"));
        assert!(NodeAddress::parse("h:65000").expect_err("no room").contains("CLIENT/PEER"));
        assert!(NodeAddress::parse("h:1/h:1").expect_err("same").contains("differ"));
        assert!(NodeAddress::parse("h:1/h").expect_err("peer no port").contains("HOST:PORT"));
        assert!(NodeAddress::parse("h:0").expect_err("port 0").contains("non-zero"));
    }
}
