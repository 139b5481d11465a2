//! One consumer group member as a process of its own (`cairn-jepsen member`), so the suite can
//! kill -9 it or pause it like a real service. It polls through the group consumer, writes every
//! event as a history op (JSON, one per line, flushed) on stdout, stamped with the run's clock,
//! and commits after recording what it polled (at least once). The parent records the lines.
//!
//! ```text
//!  poll ─► gpoll op per partition (flushed) ─► commit (gcommit invoke / ok|fail|info)
//!  listener ─► assigned / revoked / lost ops          SIGTERM ─► close (leave) ─► member-exit
//! ```

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_client::consumer::{Commits, Consumer, ConsumerConfig, RebalanceListener, Subscription, TopicPartition};
use cairn_client::{Client, ClientConfig};
use serde_json::{json, Value};

use crate::history::{monotonic_ns, Op, OpType};

/// How a member is started.
#[derive(Clone, Debug, clap::Args)]
pub struct MemberArgs {
    #[arg(long)]
    pub brokers: String,
    #[arg(long)]
    pub group: String,
    #[arg(long)]
    pub topic: String,
    /// History process id of this member.
    #[arg(long)]
    pub process: i64,
    /// The run's clock origin ([`crate::history::Recorder::base`]).
    #[arg(long)]
    pub time_base: u64,
    #[arg(long, default_value_t = 3000)]
    pub session_timeout_ms: u64,
    /// Negative control: commit what a poll returned *before* recording (processing) it.
    #[arg(long)]
    pub commit_before_processing: bool,
    /// TLS: the cluster CA.
    #[arg(long)]
    pub ca: Option<std::path::PathBuf>,
    /// A client certificate to authenticate with (with --cert-key).
    #[arg(long)]
    pub cert: Option<std::path::PathBuf>,
    #[arg(long)]
    pub cert_key: Option<std::path::PathBuf>,
}

/// Writes ops to stdout, one JSON line each, flushed.
#[derive(Clone)]
struct Out {
    process: i64,
    base: u64,
    lock: Arc<Mutex<()>>,
}

impl Out {
    fn op(&self, kind: OpType, f: &str, value: Value, error: Option<String>) {
        let op = Op {
            index: 0,
            time: monotonic_ns().saturating_sub(self.base),
            kind,
            process: self.process,
            node: None,
            f: f.to_string(),
            value,
            error,
            producer: None,
        };
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = std::io::stdout().lock();
        if let Ok(line) = serde_json::to_string(&op) {
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    }
}

struct Listener(Out);

fn partitions(p: &[TopicPartition]) -> Value {
    json!({"partitions": p.iter().map(|tp| tp.partition).collect::<Vec<_>>()})
}

impl RebalanceListener for Listener {
    fn on_assigned(&mut self, p: &[TopicPartition]) {
        self.0.op(OpType::Info, "assigned", partitions(p), None);
    }

    fn on_revoked(&mut self, p: &[TopicPartition], _: &mut Commits) {
        self.0.op(OpType::Info, "revoked", partitions(p), None);
    }

    fn on_lost(&mut self, p: &[TopicPartition]) {
        self.0.op(OpType::Info, "lost", partitions(p), None);
    }
}

async fn commit(consumer: &mut Consumer, out: &Out, offsets: &Value) {
    out.op(OpType::Invoke, "gcommit", json!({"offsets": offsets}), None);
    match consumer.commit().await {
        Ok(()) => out.op(OpType::Ok, "gcommit", json!({"offsets": offsets}), None),
        Err(e) => {
            let kind = if e.is_definite() { OpType::Fail } else { OpType::Info };
            out.op(kind, "gcommit", json!({"offsets": offsets}), Some(e.to_string()));
        }
    }
}

/// Runs one member until SIGTERM (then it leaves the group cleanly).
///
/// # Errors
/// The cluster cannot be reached.
pub async fn run(args: MemberArgs) -> anyhow::Result<()> {
    let out = Out { process: args.process, base: args.time_base, lock: Arc::default() };
    let mut cfg = ClientConfig::from_broker_list(&args.brokers);
    cfg.retry_deadline = Duration::from_secs(10);
    cfg.request_timeout = Duration::from_secs(5);
    cfg.tls = args
        .ca
        .as_deref()
        .map(|ca| cairn_client::ClientTls::from_files(ca, args.cert.as_deref(), args.cert_key.as_deref()))
        .transpose()?;
    let client = Arc::new(Client::connect(cfg).await?);
    let mut c = ConsumerConfig::new(&args.group);
    c.client_id = format!("jepsen-member-{}", args.process);
    c.auto_commit = false;
    c.session_timeout = Duration::from_millis(args.session_timeout_ms);
    c.rebalance_timeout = Duration::from_secs(10);
    c.fetch_wait = Duration::from_millis(200);
    let mut consumer = Consumer::subscribe(client, c, Subscription::Topics(vec![args.topic.clone()])).await?;
    consumer.set_listener(Listener(out.clone()));
    out.op(OpType::Info, "member-joined", json!({}), None);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        let invoked = monotonic_ns().saturating_sub(args.time_base);
        let polled = tokio::select! {
            r = consumer.poll(Duration::from_millis(300)) => r,
            _ = term.recv() => break,
        };
        let records = match polled {
            Ok(r) => r,
            Err(e) => {
                out.op(OpType::Info, "poll-error", json!({}), Some(e.to_string()));
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        if records.is_empty() {
            continue;
        }
        let mut by: std::collections::BTreeMap<u32, Vec<Value>> = std::collections::BTreeMap::new();
        let mut next: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
        for r in &records {
            let value = String::from_utf8_lossy(&r.value)
                .split(':')
                .next()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(u64::MAX);
            by.entry(r.partition).or_default().push(json!([r.offset, value]));
            next.insert(r.partition.to_string(), r.offset + 1);
        }
        let offsets = json!(next);
        if args.commit_before_processing {
            // NEGATIVE CONTROL: the offsets are committed before anything is processed; a
            // crash in between loses the records for the group.
            commit(&mut consumer, &out, &offsets).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for (p, recs) in by {
            out.op(OpType::Ok, "gpoll", json!({"partition": p, "records": recs, "invoked": invoked}), None);
        }
        if !args.commit_before_processing {
            commit(&mut consumer, &out, &offsets).await;
        }
    }
    consumer.close().await?;
    out.op(OpType::Info, "member-exit", json!({}), None);
    Ok(())
}
