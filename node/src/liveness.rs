//! Which nodes this node can currently reach: a background probe of every peer's gRPC health
//! service, once a second.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_raft::network::PeerChannels;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

const PROBE_EVERY: Duration = Duration::from_secs(1);
/// A peer is alive when a probe succeeded this recently.
const ALIVE_WITHIN: Duration = Duration::from_secs(3);

/// Last successful probe per node.
#[derive(Clone, Default)]
pub struct Liveness {
    last_ok: Arc<Mutex<BTreeMap<u64, Instant>>>,
}

impl Liveness {
    pub fn is_alive(&self, node: u64) -> bool {
        let map = self.last_ok.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&node).is_some_and(|t| t.elapsed() < ALIVE_WITHIN)
    }

    /// `me` plus every node of `nodes` that is alive.
    pub fn live_nodes(&self, me: u64, nodes: impl Iterator<Item = u64>) -> Vec<u64> {
        nodes.filter(|n| *n == me || self.is_alive(*n)).collect()
    }

    /// Probes every node of `members` except `me` until the returned handle is aborted.
    pub fn spawn(&self, me: u64, members: BTreeMap<u64, String>, peers: PeerChannels) -> tokio::task::JoinHandle<()> {
        let last_ok = self.last_ok.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(PROBE_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                for (id, addr) in members.iter().filter(|(id, _)| **id != me) {
                    let Ok(ch) = peers.get(addr) else { continue };
                    let mut req = tonic::Request::new(HealthCheckRequest { service: String::new() });
                    req.set_timeout(PROBE_EVERY / 2);
                    if HealthClient::new(ch).check(req).await.is_ok() {
                        last_ok.lock().unwrap_or_else(|p| p.into_inner()).insert(*id, Instant::now());
                    }
                }
            }
        })
    }
}
