//! Cairn: a 3-node cluster of `cairn-node` processes on loopback, loaded through the idempotent
//! producer (the ack comes after the batch is fsynced on a majority and committed).

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_client::bench::{ensure_topic, CairnProduce};
use cairn_client::{Client, ClientConfig, Producer, ProducerConfig};

use crate::procs::Procs;

pub const PORTS: [u16; 3] = [7811, 7812, 7813];

fn brokers() -> Vec<String> {
    PORTS.iter().map(|p| format!("127.0.0.1:{p}")).collect()
}

/// Starts three nodes with data under `dir`.
///
/// # Errors
/// Spawn failures.
pub fn start(bin: &Path, dir: &Path) -> anyhow::Result<Procs> {
    let cluster: Vec<String> = brokers().iter().enumerate().map(|(i, a)| format!("{}={a}", i + 1)).collect();
    let mut procs = Procs::default();
    for i in 0..3 {
        let mut cmd = Command::new(bin);
        cmd.args(["--node-id", &(i + 1).to_string(), "--initial-cluster", &cluster.join(",")])
            .arg("--data-dir")
            .arg(dir.join(format!("node{}", i + 1)))
            .env("CAIRN_LOG_LEVEL", "warn");
        procs.spawn(cmd, &dir.join(format!("node{}.log", i + 1)))?;
    }
    Ok(procs)
}

/// Connects, creates `topic` with `partitions` once the controller is up, and returns a
/// producer target with `linger` 0: a batch leaves as soon as a request slot is free, so batches
/// form only from records that queued while earlier ones were in flight.
///
/// # Errors
/// The cluster did not come up within a minute.
pub async fn target(topic: &str, partitions: u32, window: usize) -> anyhow::Result<(Arc<Client>, CairnProduce)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let client = loop {
        match Client::connect(ClientConfig::new(brokers())).await {
            Ok(c) => {
                let c = Arc::new(c);
                match ensure_topic(&c, topic, partitions).await {
                    Ok(()) => break c,
                    Err(e) if Instant::now() > deadline => return Err(e),
                    Err(_) => {}
                }
            }
            Err(e) if Instant::now() > deadline => return Err(e.into()),
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let cfg =
        ProducerConfig { linger: Duration::ZERO, queue_records_max: window.max(1) * 2, ..ProducerConfig::default() };
    let producer = Arc::new(Producer::new(client.clone(), cfg).await?);
    Ok((client, CairnProduce { producer, topic: topic.to_string() }))
}
