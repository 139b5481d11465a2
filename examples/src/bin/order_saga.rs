//! `order-saga`: the order saga's services and tools (see `cairn_examples::saga`).
//!
//! ```text
//! order-saga inventory | payment | shipping | order     run one service (until stopped)
//! order-saga place --orders 1000                        place orders order-0 .. order-999
//! order-saga check                                      every order final, inventory balanced
//! ```

use std::sync::Arc;

use cairn_examples::saga::{self, Service, Settings};
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(about = "The order saga: services as separate processes, compensation on failed payments")]
struct Args {
    /// Brokers (host:port, comma-separated).
    #[arg(long, env = "CAIRN_BROKERS", default_value = cairn_examples::LOCAL_BROKERS)]
    brokers: String,
    #[arg(long, default_value = "orders")]
    topic: String,
    /// Units of each SKU in stock at the start.
    #[arg(long, default_value_t = 400)]
    stock: u64,
    /// Share of payments declined (percent).
    #[arg(long, default_value_t = 20)]
    fail_percent: u64,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run one service until stopped.
    Run {
        #[arg(value_enum)]
        service: Service,
    },
    /// Create the topic (if needed) and place orders.
    Place {
        #[arg(long, default_value_t = 100)]
        orders: u64,
        #[arg(long, default_value_t = 0)]
        first: u64,
        #[arg(long, default_value_t = 3)]
        partitions: u32,
    },
    /// Check every order and the inventory; exit code 1 when anything is off (or still open).
    Check,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    cairn_examples::init_tracing();
    let args = Args::parse();
    let client = Arc::new(cairn_examples::connect(&args.brokers).await?);
    let s = Settings { topic: args.topic.clone(), stock: args.stock, fail_percent: args.fail_percent };
    match args.cmd {
        Cmd::Run { service } => saga::run(client, service, s).await,
        Cmd::Place { orders, first, partitions } => {
            cairn_examples::log::ensure_topic(&client, &s.topic, partitions).await?;
            let placed = saga::place(client, &s, first, orders).await?;
            println!("placed {placed} order(s)");
            Ok(())
        }
        Cmd::Check => {
            let report = saga::check(&client, &s).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            if !report.ok(s.stock) {
                std::process::exit(1);
            }
            Ok(())
        }
    }
}
