//! etcd: a 3-member cluster and Put requests to its leader over gRPC.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use cairn_client::bench::{SendFuture, Target};
use tonic::transport::Channel;

use crate::procs::Procs;

pub mod pb {
    tonic::include_proto!("etcdserverpb");
}

pub const CLIENT_PORTS: [u16; 3] = [2379, 2389, 2399];

/// Starts 3 members; without `fsync`, `--unsafe-no-fsync`.
///
/// # Errors
/// Spawn failures.
pub fn start(bin: &Path, dir: &Path, fsync: bool) -> anyhow::Result<Procs> {
    let mut procs = Procs::default();
    let cluster: Vec<String> = (0..3).map(|i| format!("e{i}=http://127.0.0.1:{}", 2380 + 10 * i)).collect();
    for (i, port) in CLIENT_PORTS.iter().enumerate() {
        let mut cmd = Command::new(bin);
        cmd.args(["--name", &format!("e{i}")])
            .arg("--data-dir")
            .arg(dir.join(format!("e{i}")))
            .args(["--listen-client-urls", &format!("http://127.0.0.1:{}", port)])
            .args(["--advertise-client-urls", &format!("http://127.0.0.1:{}", port)])
            .args(["--listen-peer-urls", &format!("http://127.0.0.1:{}", 2380 + 10 * i)])
            .args(["--initial-advertise-peer-urls", &format!("http://127.0.0.1:{}", 2380 + 10 * i)])
            .args(["--initial-cluster", &cluster.join(","), "--initial-cluster-state", "new"])
            .args(["--quota-backend-bytes", "8589934592"]);
        if !fsync {
            cmd.arg("--unsafe-no-fsync");
        }
        procs.spawn(cmd, &dir.join(format!("e{i}.log")))?;
    }
    Ok(procs)
}

/// The client port of the current leader (waits for one).
///
/// # Errors
/// No leader within a minute.
pub async fn leader_port() -> anyhow::Result<u16> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        for port in CLIENT_PORTS {
            let Ok(ch) = Channel::from_shared(format!("http://127.0.0.1:{port}")) else { continue };
            let Ok(Ok(ch)) = tokio::time::timeout(Duration::from_secs(1), ch.connect()).await else { continue };
            if let Ok(Ok(s)) = tokio::time::timeout(
                Duration::from_secs(2),
                pb::maintenance_client::MaintenanceClient::new(ch).status(pb::StatusRequest {}),
            )
            .await
            {
                let s = s.into_inner();
                if s.leader != 0 && s.header.is_some_and(|h| h.member_id == s.leader) {
                    return Ok(port);
                }
            }
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "etcd elected no leader");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Puts to the leader over a few shared HTTP/2 connections.
pub struct EtcdTarget {
    pub clients: Vec<pb::kv_client::KvClient<Channel>>,
    pub next: AtomicU64,
}

impl Target for EtcdTarget {
    fn send(&self, payload: Bytes) -> SendFuture {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let mut c = self.clients[n as usize % self.clients.len()].clone();
        Box::pin(async move {
            let req = pb::PutRequest { key: format!("k{}", n % 100_000).into_bytes().into(), value: payload };
            c.put(req).await.map(|_| ()).map_err(|e| e.to_string())
        })
    }
}
