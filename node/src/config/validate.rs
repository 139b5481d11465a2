//! Validation: every setting checked, every contradiction named.

use std::collections::{BTreeMap, BTreeSet};

use super::error::ConfigError;
use super::Config;
use crate::address::{host_port, NodeAddress};
use crate::controller::state::PARTITIONS_MAX;

/// Largest node id (ids are the upper half of 64-bit replica ids).
pub const NODE_ID_MAX: u64 = u32::MAX as u64;

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key, message: message.into() }
}

/// Parses `ID=CLIENT[/PEER],...` (each address `HOST:PORT`; see [`crate::address`]).
///
/// # Errors
/// Empty lists, malformed entries, duplicate ids or addresses, ids out of range.
pub fn parse_initial_cluster(spec: &str) -> Result<BTreeMap<u64, NodeAddress>, ConfigError> {
    let mut members = BTreeMap::new();
    let mut addrs = BTreeSet::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, addr) = part.split_once('=').ok_or_else(|| {
            invalid("initial_cluster", format!("entry {part:?} is not ID=HOST:PORT[/PEER_HOST:PORT]"))
        })?;
        let id: u64 =
            id.trim().parse().map_err(|_| invalid("initial_cluster", format!("node id {id:?} is not a number")))?;
        if id == 0 || id > NODE_ID_MAX {
            return Err(invalid("initial_cluster", format!("node id {id} is outside 1..={NODE_ID_MAX}")));
        }
        let addr = NodeAddress::parse(addr).map_err(|m| invalid("initial_cluster", format!("node {id}: {m}")))?;
        for a in [&addr.client, &addr.peer] {
            if !addrs.insert(a.clone()) {
                return Err(invalid("initial_cluster", format!("address {a} is listed twice")));
            }
        }
        if members.insert(id, addr).is_some() {
            return Err(invalid("initial_cluster", format!("node id {id} is listed twice")));
        }
    }
    if members.is_empty() {
        return Err(invalid("initial_cluster", "no members listed"));
    }
    Ok(members)
}

fn check_host_port(key: &'static str, addr: &str) -> Result<(), ConfigError> {
    host_port(addr).map(|_| ()).map_err(|m| invalid(key, m))
}

impl Config {
    /// Checks every setting and their combinations.
    ///
    /// # Errors
    /// The first problem found, naming the setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.node_id == 0 || self.node_id > NODE_ID_MAX {
            return Err(invalid("node_id", format!("{} is outside 1..={NODE_ID_MAX}", self.node_id)));
        }
        match self.initial_cluster.get(&self.node_id) {
            None => {
                return Err(invalid(
                    "initial_cluster",
                    format!(
                        "does not list this node (id {}); members: {:?}",
                        self.node_id,
                        self.initial_cluster.keys().collect::<Vec<_>>()
                    ),
                ))
            }
            Some(own) if own.client != self.advertise_addr => {
                return Err(invalid(
                    "advertise_addr",
                    format!("{} contradicts this node's initial_cluster entry {}", self.advertise_addr, own.client),
                ))
            }
            Some(_) => {}
        }
        check_host_port("advertise_addr", &self.advertise_addr)?;
        let both_bound = self.listen_fd.is_none() && self.peer_listen_fd.is_none();
        if both_bound && self.listen_addr.port() != 0 && self.listen_addr == self.peer_listen_addr {
            return Err(invalid(
                "peer_listen_addr",
                format!(
                    "{} is also the client listen address: peers and clients need a listener each",
                    self.listen_addr
                ),
            ));
        }
        if self.data_dir.as_os_str().is_empty() {
            return Err(invalid("data_dir", "is empty"));
        }
        let mut names = BTreeSet::new();
        for t in &self.topics {
            crate::topic::check_name(&t.name).map_err(|m| invalid("topics", m))?;
            if t.partitions == 0 || t.partitions > PARTITIONS_MAX {
                return Err(invalid(
                    "topics",
                    format!("topic {:?}: partitions must be 1..={PARTITIONS_MAX}, got {}", t.name, t.partitions),
                ));
            }
            if !names.insert(t.name.as_str()) {
                return Err(invalid("topics", format!("topic {:?} is listed twice", t.name)));
            }
        }
        let a = &self.auth;
        if a.acls && !a.enabled {
            return Err(invalid("auth.acls", "ACLs need authentication on (auth.enabled = true / --auth on)"));
        }
        if a.enabled && self.tls.is_none() && a.tokens.is_empty() {
            return Err(invalid(
                "auth.enabled",
                "no client could authenticate: configure TLS (client certificates) or at least one token",
            ));
        }
        let mut quota_principals = BTreeSet::new();
        for q in &self.quotas.principals {
            crate::auth::check_principal_name(&q.principal)
                .map_err(|m| invalid("quotas.principals", format!("{:?}: {m}", q.principal)))?;
            if !quota_principals.insert(q.principal.as_str()) {
                return Err(invalid("quotas.principals", format!("{:?} is listed twice", q.principal)));
            }
        }
        let r = &self.raft;
        if r.heartbeat_interval_ms < 10 {
            return Err(invalid("raft.heartbeat_interval_ms", "must be at least 10"));
        }
        if r.election_timeout_ms_min <= r.heartbeat_interval_ms {
            return Err(invalid("raft.election_timeout_ms_min", "must be greater than raft.heartbeat_interval_ms"));
        }
        if r.election_timeout_ms_max <= r.election_timeout_ms_min {
            return Err(invalid("raft.election_timeout_ms_max", "must be greater than raft.election_timeout_ms_min"));
        }
        let l = &self.limits;
        let positive: [(&'static str, u64); 18] = [
            ("limits.record_bytes_max", l.record_bytes_max as u64),
            ("limits.request_bytes_max", l.request_bytes_max as u64),
            ("limits.fetch_bytes_max", l.fetch_bytes_max as u64),
            ("limits.proposal_queue_max", l.proposal_queue_max as u64),
            ("limits.entry_batches_max", l.entry_batches_max as u64),
            ("limits.entry_bytes_max", l.entry_bytes_max as u64),
            ("limits.proposals_in_flight_max", l.proposals_in_flight_max as u64),
            ("limits.produce_timeout_ms", l.produce_timeout_ms),
            ("limits.fetch_wait_ms_max", l.fetch_wait_ms_max),
            ("limits.producers_per_partition_max", u64::from(l.producers_per_partition_max)),
            ("limits.producer_expiry_ms", l.producer_expiry_ms),
            ("limits.named_producers_max", l.named_producers_max),
            ("limits.named_producer_expiry_ms", l.named_producer_expiry_ms),
            ("limits.producer_fence_wait_ms", l.producer_fence_wait_ms),
            ("limits.partition_replicas_per_node_max", l.partition_replicas_per_node_max),
            ("limits.partitions_max", l.partitions_max),
            ("limits.client_connections_max", l.client_connections_max as u64),
            ("limits.client_streams_per_connection_max", u64::from(l.client_streams_per_connection_max)),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(invalid(key, "must be greater than 0"));
        }
        if l.record_bytes_max >= l.request_bytes_max {
            return Err(invalid("limits.record_bytes_max", "must be smaller than limits.request_bytes_max"));
        }
        for (key, ms) in [
            ("limits.producer_expiry_ms", l.producer_expiry_ms),
            ("limits.named_producer_expiry_ms", l.named_producer_expiry_ms),
        ] {
            if ms > i64::MAX as u64 {
                return Err(invalid(key, "is too large"));
            }
        }
        if l.request_bytes_max > 256 << 20 {
            return Err(invalid("limits.request_bytes_max", "must be at most 256 MiB"));
        }
        let st = &self.storage;
        if !(64 << 10..=1 << 30).contains(&st.write_buffer_bytes) {
            return Err(invalid("storage.write_buffer_bytes", "must be within 64 KiB ..= 1 GiB"));
        }
        if st.free_space_min_bytes != 0 && st.free_space_min_bytes < 4 * st.write_buffer_bytes {
            return Err(invalid(
                "storage.free_space_min_bytes",
                format!(
                    "{} is below 4 × storage.write_buffer_bytes ({}): RocksDB could not flush its memtables \
                     once writes stop at the floor (0 turns the floor off)",
                    st.free_space_min_bytes,
                    4 * st.write_buffer_bytes
                ),
            ));
        }
        let g = &self.groups;
        let groups_positive: [(&'static str, u32); 8] = [
            ("groups.offsets_partitions", g.offsets_partitions),
            ("groups.session_timeout_ms", g.session_timeout_ms),
            ("groups.session_timeout_ms_min", g.session_timeout_ms_min),
            ("groups.heartbeat_interval_ms", g.heartbeat_interval_ms),
            ("groups.rebalance_timeout_ms", g.rebalance_timeout_ms),
            ("groups.members_per_group_max", g.members_per_group_max),
            ("groups.groups_per_partition_max", g.groups_per_partition_max),
            ("groups.commit_metadata_bytes_max", g.commit_metadata_bytes_max),
        ];
        if let Some((key, _)) = groups_positive.iter().find(|(_, v)| *v == 0) {
            return Err(invalid(key, "must be greater than 0"));
        }
        if g.offsets_partitions > 1_000 {
            return Err(invalid("groups.offsets_partitions", "must be at most 1000"));
        }
        if !(g.session_timeout_ms_min..=g.session_timeout_ms_max).contains(&g.session_timeout_ms) {
            return Err(invalid(
                "groups.session_timeout_ms",
                "must be within groups.session_timeout_ms_min ..= groups.session_timeout_ms_max",
            ));
        }
        if g.heartbeat_interval_ms >= g.session_timeout_ms {
            return Err(invalid("groups.heartbeat_interval_ms", "must be below groups.session_timeout_ms"));
        }
        let r = &self.retention;
        for (key, v) in [("retention.retention_ms", r.retention_ms), ("retention.retention_bytes", r.retention_bytes)] {
            if v == 0 || v < -1 {
                return Err(invalid(key, format!("{v}: expected -1 (no limit) or a positive number")));
            }
        }
        if r.segment_bytes < 1024 {
            return Err(invalid("retention.segment_bytes", "must be at least 1024"));
        }
        if r.segment_ms < 1_000 {
            return Err(invalid("retention.segment_ms", "must be at least 1000"));
        }
        if !(10..=3_600_000).contains(&r.check_interval_ms) {
            return Err(invalid("retention.check_interval_ms", "must be within 10 ..= 3600000"));
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return Err(invalid("log.format", format!("{:?}: expected \"text\" or \"json\"", self.log.format)));
        }
        Ok(())
    }
}
