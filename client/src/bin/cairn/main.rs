//! `cairn`: the command-line tool (cluster info, produce, consume).

mod bench;
mod bench_group;
mod cluster;
mod consume;
mod format;
mod group;
mod node;
mod output;
mod produce;
mod produce_input;
mod replica;
mod topic;

use std::process::ExitCode;
use std::time::Duration;

use cairn_client::{Client, ClientConfig, DEFAULT_BROKERS};
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "cairn", version, about = "Command-line client of a Cairn cluster")]
struct Cli {
    /// Brokers to bootstrap from, host:port,... (default: the local cluster).
    #[arg(long, env = "CAIRN_BROKERS", default_value = DEFAULT_BROKERS, global = true)]
    brokers: String,
    /// Print one JSON object per line instead of human-readable text.
    #[arg(long, global = true)]
    json: bool,
    /// How long an operation keeps retrying retriable errors (seconds).
    #[arg(long, default_value_t = 20, global = true)]
    timeout_secs: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Cluster-wide commands.
    Cluster {
        #[command(subcommand)]
        command: cluster::ClusterCommand,
    },
    /// Node administration (replacing a node that lost its data).
    Node {
        #[command(subcommand)]
        command: node::NodeCommand,
    },
    /// Partition replicas: rebuild one from the others.
    Replica {
        #[command(subcommand)]
        command: replica::ReplicaCommand,
    },
    /// Topic administration.
    Topic {
        #[command(subcommand)]
        command: topic::TopicCommand,
    },
    /// Produce records: one per stdin line (or delimiter), or one given with --value/--value-file.
    Produce(produce::ProduceArgs),
    /// Consume records of a topic (all partitions, or some with -p).
    Consume(consume::ConsumeArgs),
    /// Consumer groups: list, describe (lag), reset offsets, delete.
    Group {
        #[command(subcommand)]
        command: group::GroupCommand,
    },
    /// Load generators: produce, consume, end to end.
    Bench {
        #[command(subcommand)]
        command: bench::BenchCommand,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("CAIRN_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cairn: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cairn: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut cfg = ClientConfig::from_broker_list(&cli.brokers);
    cfg.retry_deadline = Duration::from_secs(cli.timeout_secs);
    let client =
        Client::connect(cfg).await.map_err(|e| anyhow::anyhow!("cannot reach the cluster at {}: {e}", cli.brokers))?;
    let client = std::sync::Arc::new(client);
    let out = output::Output::new(cli.json);
    match cli.command {
        Command::Cluster { command } => cluster::run(&client, command, &out).await,
        Command::Node { command } => node::run(&client, command, &out).await,
        Command::Replica { command } => replica::run(&client, command, &out).await,
        Command::Topic { command } => topic::run(&client, command, &out, Duration::from_secs(cli.timeout_secs)).await,
        Command::Produce(args) => produce::run(client.clone(), args, &out).await,
        Command::Consume(args) => consume::run(client.clone(), args, &out).await,
        Command::Group { command } => group::run(&client, command, &out).await,
        Command::Bench { command } => bench::run(client.clone(), command).await,
    }
}
