//! `cqrs-projection`: the CQRS read model in SQLite (see `cairn_examples::projection`).
//!
//! ```text
//! cqrs-projection generate --count 2000           append shop events
//! cqrs-projection run --db model.db [--until-caught-up]
//! cqrs-projection reset --db model.db             rebuild from scratch on the next run
//! cqrs-projection verify --db model.db            the model equals a fold over the topic
//! ```

use std::path::PathBuf;
use std::sync::Arc;

use cairn_examples::projection;
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(about = "A CQRS read model in SQLite, its offsets stored in the same transaction")]
struct Args {
    #[arg(long, env = "CAIRN_BROKERS", default_value = cairn_examples::LOCAL_BROKERS)]
    brokers: String,
    #[arg(long, default_value = "shop")]
    topic: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Create the topic (if needed) and append shop events.
    Generate {
        #[arg(long, default_value_t = 1000)]
        count: u64,
        #[arg(long, default_value_t = 50)]
        customers: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value_t = 3)]
        partitions: u32,
    },
    /// Run the projector (until stopped, or until it holds what the topic held at its start).
    Run {
        #[arg(long)]
        db: PathBuf,
        #[arg(long)]
        until_caught_up: bool,
    },
    /// Drop the model and reset the group to the start (stop the projector first).
    Reset {
        #[arg(long)]
        db: PathBuf,
    },
    /// Compare the model with a fold over the whole topic; exit code 1 on any difference.
    Verify {
        #[arg(long)]
        db: PathBuf,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    cairn_examples::init_tracing();
    let args = Args::parse();
    let client = Arc::new(cairn_examples::connect(&args.brokers).await?);
    match args.cmd {
        Cmd::Generate { count, customers, seed, partitions } => {
            cairn_examples::log::ensure_topic(&client, &args.topic, partitions).await?;
            projection::generate(client, &args.topic, count, customers, seed).await?;
            println!("appended {count} event(s)");
        }
        Cmd::Run { db, until_caught_up } => projection::run(client, &args.topic, &db, until_caught_up).await?,
        Cmd::Reset { db } => {
            projection::reset(&client, &args.topic, &db).await?;
            println!("model dropped; group {} reset to the start of {}", projection::GROUP, args.topic);
        }
        Cmd::Verify { db } => {
            let model = projection::model(&projection::open(&db)?)?;
            let fold = projection::fold_topic(&client, &args.topic).await?;
            let differ: Vec<&String> =
                fold.keys().chain(model.keys()).filter(|c| fold.get(*c) != model.get(*c)).collect();
            println!("{} customer(s) in the model, {} in the fold, {} differ", model.len(), fold.len(), differ.len());
            if !differ.is_empty() {
                for c in differ.iter().take(10) {
                    println!("  {c}: model {:?}, fold {:?}", model.get(*c), fold.get(*c));
                }
                std::process::exit(1);
            }
        }
    }
    Ok(())
}
