//! `dead-letters`: a consumer that retries, then routes failures to `<topic>.dlq` (see
//! `cairn_examples::dlq`). `cairn dlq replay <topic>.dlq` sends them back.
//!
//! ```text
//! dead-letters generate --count 50 --poison-every 10
//! dead-letters consume [--lenient] [--until-idle-ms 2000]
//! ```

use std::sync::Arc;
use std::time::Duration;

use cairn_client::{Producer, ProducerConfig, Record, RecordExt};
use cairn_examples::dlq;
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(about = "Retry with backoff, then dead-letter to <topic>.dlq with headers")]
struct Args {
    #[arg(long, env = "CAIRN_BROKERS", default_value = cairn_examples::LOCAL_BROKERS)]
    brokers: String,
    #[arg(long, default_value = "payments")]
    topic: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Create the topic (if needed) and append payments, every Nth one a poison record.
    Generate {
        #[arg(long, default_value_t = 50)]
        count: u64,
        #[arg(long, default_value_t = 10)]
        poison_every: u64,
        #[arg(long, default_value_t = 2)]
        partitions: u32,
    },
    /// Consume: print processed payments (JSON lines), dead-letter failures.
    Consume {
        #[arg(long, default_value = "payments-processor")]
        group: String,
        /// The fixed consumer: also takes the poison records.
        #[arg(long)]
        lenient: bool,
        /// Stop once caught up and a poll this long brought nothing.
        #[arg(long)]
        until_idle_ms: Option<u64>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    cairn_examples::init_tracing();
    let args = Args::parse();
    let client = Arc::new(cairn_examples::connect(&args.brokers).await?);
    match args.cmd {
        Cmd::Generate { count, poison_every, partitions } => {
            cairn_examples::log::ensure_topic(&client, &args.topic, partitions).await?;
            let producer = Producer::new(client, ProducerConfig::default()).await?;
            let mut pending = Vec::new();
            for n in 0..count {
                let id = format!("p-{n}");
                let value = if poison_every > 0 && n % poison_every == poison_every - 1 {
                    format!("poison:{id}").into_bytes()
                } else {
                    serde_json::to_vec(&dlq::Payment { id: id.clone(), amount: 1 + (n as i64 % 100) })?
                };
                pending.push(producer.send(&args.topic, None, Record::keyed(id, value)).await?);
            }
            for d in pending {
                d.await?;
            }
            println!("appended {count} payment(s)");
        }
        Cmd::Consume { group, lenient, until_idle_ms } => {
            let idle = until_idle_ms.map(Duration::from_millis);
            dlq::consume(client, &args.topic, &group, lenient, idle).await?;
        }
    }
    Ok(())
}
