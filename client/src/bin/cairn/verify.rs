//! `cairn topic verify NAME`: reads every partition from every replica and checks that they
//! hold the same records up to the leader's high watermark (operators after an incident; the
//! compose test after killing a leader).

use std::collections::hash_map::DefaultHasher;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use cairn_client::{Client, FetchedRecord};
use cairn_proto::v1::FetchRequest;
use serde_json::json;

use crate::output::Output;

/// How long a follower may take to reach the leader's high watermark.
const CATCH_UP: Duration = Duration::from_secs(15);

fn digest(r: &FetchedRecord) -> u64 {
    let mut h = DefaultHasher::new();
    (&r.key, &r.value, r.timestamp_ms).hash(&mut h);
    for x in &r.headers {
        (&x.key, &x.value).hash(&mut h);
    }
    h.finish()
}

/// (offset, digest) of every record of one replica, or why it could not be read in full.
type Contents = Result<Vec<(u64, u64)>, String>;

/// (offset, digest) of every record of one replica in `[from, until)`, or why not.
async fn read_replica(
    client: &Client,
    addr: &str,
    topic: &str,
    topic_id: u64,
    partition: u32,
    from: u64,
    until: u64,
) -> Contents {
    let deadline = Instant::now() + CATCH_UP;
    let mut out = Vec::new();
    let mut pos = from;
    while pos < until {
        let req =
            FetchRequest { topic: topic.to_string(), partition, offset: pos, max_bytes: 0, max_wait_ms: 500, topic_id };
        match client.fetch_from_node(addr, req).await {
            Ok(page) if !page.records.is_empty() => {
                for r in page.records.iter().filter(|r| r.offset < until) {
                    out.push((r.offset, digest(r)));
                }
                pos = page.records.last().map_or(pos, |r| r.offset + 1);
            }
            Ok(page) if Instant::now() >= deadline => {
                return Err(format!("behind: its high watermark is {} of {until}", page.high_watermark));
            }
            Ok(_) => {}
            Err(e) if Instant::now() >= deadline => return Err(e.to_string()),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    Ok(out)
}

pub async fn run(client: &Client, name: &str, out: &Output) -> anyhow::Result<()> {
    let d = client.describe_cluster().await?;
    let addresses: BTreeMap<u64, String> = d.nodes.iter().map(|n| (n.node_id, n.address.clone())).collect();
    let t = d.topics.iter().find(|t| t.name == name).ok_or_else(|| anyhow::anyhow!("unknown topic {name:?}"))?;
    let mut problems = 0;
    for p in &t.partitions {
        let (from, until) = (p.log_start_offset, p.high_watermark);
        let mut replicas: Vec<(u64, Contents)> = Vec::new();
        for node in &p.replica_node_ids {
            let read = match addresses.get(node) {
                Some(addr) => read_replica(client, addr, name, t.topic_id, p.partition, from, until).await,
                None => Err(format!("node {node} has no known address")),
            };
            replicas.push((*node, read));
        }
        let reference = replicas.iter().find_map(|(_, r)| r.as_ref().ok());
        for (node, read) in &replicas {
            let verdict = match (read, reference) {
                (Err(e), _) => Err(e.clone()),
                (Ok(records), _) if records.len() as u64 != until - from => {
                    Err(format!("{} records of {} in [{from}, {until})", records.len(), until - from))
                }
                (Ok(records), Some(r)) => match records.iter().zip(r.iter()).find(|(a, b)| a != b) {
                    Some(((offset, _), _)) => Err(format!("differs from node {} at offset {offset}", replicas[0].0)),
                    None => Ok(records.len()),
                },
                (Ok(records), None) => Ok(records.len()),
            };
            if verdict.is_err() {
                problems += 1;
            }
            if out.json {
                out.value(&json!({
                    "partition": p.partition, "node": node, "from": from, "until": until,
                    "ok": verdict.is_ok(), "problem": verdict.as_ref().err(),
                }));
            } else {
                match &verdict {
                    Ok(n) => out.line(&format!(
                        "partition {:>3} node {node}: {n} records [{from}, {until}) identical",
                        p.partition
                    )),
                    Err(e) => out.line(&format!("partition {:>3} node {node}: {e}", p.partition)),
                }
            }
        }
    }
    if problems > 0 {
        anyhow::bail!("{problems} replica(s) of {name} do not hold the leader's records");
    }
    Ok(())
}
