//! `bank-ledger`: the event-sourced ledger (see `cairn_examples::ledger`).
//!
//! ```text
//! bank-ledger open --accounts 10 --initial 1000     open acct-0 .. acct-9
//! bank-ledger transfer --count 100 --seed 1         random transfers, racing other writers
//! bank-ledger snapshot --file ledger.json           save the state and positions
//! bank-ledger audit [--snapshot ledger.json]        replay from 0 (and from the snapshot)
//! ```

use std::path::PathBuf;
use std::sync::Arc;

use cairn_client::{Client, Producer, ProducerConfig};
use cairn_examples::ledger::{self, Ledger, TransferError};
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(about = "An event-sourced bank ledger: conditional appends per account, no overdraft")]
struct Args {
    #[arg(long, env = "CAIRN_BROKERS", default_value = cairn_examples::LOCAL_BROKERS)]
    brokers: String,
    #[arg(long, default_value = "accounts")]
    topic: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Create the topic (if needed) and open accounts acct-0 .. acct-{N-1}.
    Open {
        #[arg(long, default_value_t = 10)]
        accounts: u32,
        #[arg(long, default_value_t = 1000)]
        initial: u64,
        #[arg(long, default_value_t = 2)]
        partitions: u32,
    },
    /// Random transfers between the open accounts (amounts up to a third of the initial).
    Transfer {
        #[arg(long, default_value_t = 100)]
        count: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value_t = 400)]
        max_amount: u64,
    },
    /// Complete transfers whose deposit is missing (a writer stopped between its two appends).
    Recover,
    /// Save a snapshot of the state (with the offsets it covers).
    Snapshot {
        #[arg(long)]
        file: PathBuf,
    },
    /// Replay from offset 0 (and from a snapshot plus the tail): money, overdrafts, agreement.
    Audit {
        #[arg(long)]
        snapshot: Option<PathBuf>,
        /// The money every account started with, all together (checked when given).
        #[arg(long)]
        expect_total: Option<u64>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    cairn_examples::init_tracing();
    let args = Args::parse();
    let client = Arc::new(cairn_examples::connect(&args.brokers).await?);
    let topic = args.topic;
    match args.cmd {
        Cmd::Open { accounts, initial, partitions } => {
            cairn_examples::log::ensure_topic(&client, &topic, partitions).await?;
            let producer = Producer::new(client.clone(), ProducerConfig::default()).await?;
            let mut l = Ledger::new(&topic);
            for a in 0..accounts {
                let opened = l.open(&producer, &format!("acct-{a}"), initial).await?;
                println!("acct-{a}: {}", if opened { "opened" } else { "exists" });
            }
        }
        Cmd::Transfer { count, seed, max_amount } => transfers(client, &topic, count, seed, max_amount).await?,
        Cmd::Recover => {
            let producer = Producer::new(client.clone(), ProducerConfig::default()).await?;
            let mut l = Ledger::replay(&client, &topic).await?;
            let pending = l.pending_deposits();
            for (id, to, amount, from) in &pending {
                l.deposit(&client, &producer, (id, to, *amount, from)).await?;
            }
            println!("{} transfer(s) completed", pending.len());
        }
        Cmd::Snapshot { file } => {
            let l = Ledger::replay(&client, &topic).await?;
            l.save(&file)?;
            println!("snapshot of {} account(s) at {:?}", l.accounts.len(), l.positions);
        }
        Cmd::Audit { snapshot, expect_total } => {
            let full = Ledger::replay(&client, &topic).await?;
            let mut audit = ledger::audit(&full);
            if let Some(path) = snapshot {
                let from_snapshot = Ledger::from_snapshot(&client, &path).await?;
                audit.snapshot_matches_replay = Some(from_snapshot.accounts == full.accounts);
            }
            println!("{}", serde_json::to_string_pretty(&audit)?);
            let total_ok = expect_total.is_none_or(|t| audit.total + audit.in_flight == t);
            if !total_ok || !audit.overdrawn.is_empty() || audit.snapshot_matches_replay == Some(false) {
                std::process::exit(1);
            }
        }
    }
    Ok(())
}

/// `count` random transfers (seeded), racing whatever other writers run.
async fn transfers(client: Arc<Client>, topic: &str, count: u64, seed: u64, max_amount: u64) -> anyhow::Result<()> {
    let producer = Producer::new(client.clone(), ProducerConfig::default()).await?;
    let mut l = Ledger::replay(&client, topic).await?;
    let names: Vec<String> = l.accounts.keys().cloned().collect();
    anyhow::ensure!(names.len() >= 2, "open at least two accounts first");
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let (mut done, mut refused) = (0, 0);
    for n in 0..count {
        let from = &names[(next() % names.len() as u64) as usize];
        let to = &names[(next() % names.len() as u64) as usize];
        if from == to {
            continue;
        }
        let amount = 1 + next() % max_amount;
        match l.transfer(&client, &producer, (from, to, amount), &format!("t-{seed}-{n}")).await {
            Ok(()) => done += 1,
            Err(TransferError::Insufficient { .. }) => refused += 1,
            Err(e) => return Err(e.into()),
        }
    }
    println!("{done} transfer(s) made, {refused} refused for insufficient funds");
    Ok(())
}
