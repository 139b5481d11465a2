//! `cairn`: the command-line tool (cluster info, produce, consume).

mod acl;
mod bench;
mod bench_group;
mod certs;
mod cluster;
mod consume;
mod dlq;
mod format;
mod group;
mod node;
mod output;
mod produce;
mod produce_conditional;
mod produce_input;
mod replica;
mod schema;
mod token;
mod topic;
mod verify;

use std::process::ExitCode;
use std::time::Duration;

use cairn_client::{Client, ClientConfig, ClientTls, Token, DEFAULT_BROKERS};
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "cairn",
    version,
    about = "Command-line client of a Cairn cluster",
    after_help = "Examples:
  cairn cluster info
  cairn topic create orders -p 12
  echo 'OrderPlaced' | cairn produce orders -k order-42
  cairn consume orders -f
  cairn consume orders -g billing -f
  cairn completions bash > /etc/bash_completion.d/cairn

Every command has examples in its --help. Errors print the server's stable code, e.g. [UNKNOWN_TOPIC]."
)]
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
    /// TLS: the CA certificate (PEM) the brokers' certificates chain to; turns TLS on.
    #[arg(long, env = "CAIRN_CA", global = true)]
    ca: Option<std::path::PathBuf>,
    /// TLS: a client certificate (PEM) for mutual TLS (with --cert-key).
    #[arg(long, env = "CAIRN_CERT", global = true)]
    cert: Option<std::path::PathBuf>,
    /// TLS: the client certificate's private key (PEM). Not `--key`: that is a record's key.
    #[arg(long, env = "CAIRN_CERT_KEY", global = true)]
    cert_key: Option<std::path::PathBuf>,
    /// Bearer token for a cluster with authentication on (prefer --token-file or CAIRN_TOKEN:
    /// a flag shows in the process list).
    #[arg(long, env = "CAIRN_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
    /// A file holding the bearer token (its first line).
    #[arg(long, env = "CAIRN_TOKEN_FILE", global = true, conflicts_with = "token")]
    token_file: Option<std::path::PathBuf>,
    /// The schema registry: any node's HTTP listener (default: node 1 of the local cluster).
    #[arg(long, env = "CAIRN_REGISTRY_URL", default_value = "http://127.0.0.1:9701", global = true)]
    registry: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Cluster-wide commands.
    #[command(after_help = "Examples:
  cairn cluster info             nodes, liveness, controller, leaders per node
  cairn cluster health           nodes down, leaderless partitions, replicas not serving (and why)")]
    Cluster {
        #[command(subcommand)]
        command: cluster::ClusterCommand,
    },
    /// Node administration (replacing a node that lost its data).
    #[command(after_help = "Examples:
  cairn node replace 3           node 3 lost its disk: rebuild it from the others (refused while it is up)")]
    Node {
        #[command(subcommand)]
        command: node::NodeCommand,
    },
    /// Partition replicas: rebuild one from the others.
    #[command(after_help = "Examples:
  cairn replica repair orders -p 0 --node 2    rebuild node 2's replica of orders/0 from the others")]
    Replica {
        #[command(subcommand)]
        command: replica::ReplicaCommand,
    },
    /// Topic administration.
    #[command(after_help = "Examples:
  cairn topic create orders -p 12 -r 3 --if-not-exists
  cairn topic list
  cairn topic describe orders                   leaders, replicas, log start, high watermark, settings
  cairn topic verify orders                     every replica holds exactly the leader's records?
  cairn topic alter orders --retention-ms 604800000
  cairn topic add-partitions orders --to 24     (keys map to new partitions from then on)
  cairn topic delete orders")]
    Topic {
        #[command(subcommand)]
        command: topic::TopicCommand,
    },
    /// Produce records: one per stdin line (or delimiter), or one given with --value/--value-file.
    Produce(produce::ProduceArgs),
    /// Consume records of a topic (all partitions, or some with -p).
    Consume(consume::ConsumeArgs),
    /// Consumer groups: list, describe (lag), reset offsets, delete.
    #[command(after_help = "Examples:
  cairn group list
  cairn group describe billing                  per partition: committed, log end, lag, owner
  cairn group reset-offsets billing --topic orders --to-earliest --dry-run
  cairn group delete billing                    (the group must have no members)")]
    Group {
        #[command(subcommand)]
        command: group::GroupCommand,
    },
    /// Dead letters: replay a `<topic>.dlq` back to its topic.
    #[command(after_help = "Examples:
  cairn dlq replay payments.dlq --dry-run       what would go back, with why each failed
  cairn dlq replay payments.dlq                 back to payments (dlq.* headers replaced by dlq.replayed_from)")]
    Dlq {
        #[command(subcommand)]
        command: dlq::DlqCommand,
    },
    /// Load generators: produce, consume, end to end.
    #[command(after_help = "Examples:
  cairn bench produce --record-size 1024 --window 512   throughput with 512 records in flight
  cairn bench produce --window 1                        latency with one record in flight
  cairn bench --help                            every generator and its settings")]
    Bench {
        #[command(subcommand)]
        command: bench::BenchCommand,
    },
    /// Development certificates for a TLS cluster.
    Certs {
        #[command(subcommand)]
        command: certs::CertsCommand,
    },
    /// ACLs: who may do what (enforced by nodes with `[auth] acls = true`).
    #[command(after_help = "Examples:
  cairn acl add --allow orders-service --operation write --topic orders
  cairn acl add --allow '*' --operation read,describe --topic-prefix public-
  cairn acl add --allow billing --operation read --group billing
  cairn acl add --deny mallory --operation all --topic '*'
  cairn acl add --allow ops --operation alter,create,describe --cluster
  cairn acl list --principal orders-service
  cairn acl remove --allow orders-service --operation write --topic orders")]
    Acl {
        #[command(subcommand)]
        command: acl::AclCommand,
    },
    /// Bearer tokens: make one, with the digest a node's configuration takes.
    #[command(after_help = "Examples:
  cairn token new --principal orders-service    prints the token (give it to the client) and the
                                                [[auth.tokens]] entry (give it to every node)")]
    Token {
        #[command(subcommand)]
        command: token::TokenCommand,
    },
    /// The schema registry (served by every node on its HTTP listener; --registry).
    #[command(after_help = "Examples:
  cairn schema register orders-value order.avsc      a new version (or the id it already has)
  cairn schema list
  cairn schema get orders-value --version latest
  cairn schema check orders-value expected.avsc      exit 1 when the registry holds a schema
                                                     this one cannot follow (a contract test)")]
    Schema {
        #[command(subcommand)]
        command: schema::SchemaCommand,
    },
    /// Print a shell completion script (e.g. `cairn completions bash > /etc/bash_completion.d/cairn`).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
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
    if let Command::Schema { command } = cli.command {
        // Talks to the registry's REST API, not the brokers; `check` has exit codes of its own.
        let out = output::Output::new(cli.json);
        return match runtime.block_on(schema::run(&cli.registry, command, &out)) {
            Ok(code) => ExitCode::from(code),
            Err(e) => {
                eprintln!("cairn: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cairn: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Completions { shell } = cli.command {
        // Needs no cluster.
        let mut cmd = <Cli as clap::CommandFactory>::command();
        clap_complete::generate(shell, &mut cmd, "cairn", &mut std::io::stdout());
        return Ok(());
    }
    if let Command::Certs { command } = cli.command {
        return certs::run(command); // needs no cluster either
    }
    if let Command::Token { command } = cli.command {
        return token::run(command);
    }
    let mut cfg = ClientConfig::from_broker_list(&cli.brokers);
    cfg.retry_deadline = Duration::from_secs(cli.timeout_secs);
    cfg.tls = match &cli.ca {
        Some(ca) => Some(ClientTls::from_files(ca, cli.cert.as_deref(), cli.cert_key.as_deref())?),
        None if cli.cert.is_some() || cli.cert_key.is_some() => {
            anyhow::bail!("--cert and --cert-key need --ca (the CA the brokers' certificates chain to)")
        }
        None => None,
    };
    cfg.token = match (&cli.token, &cli.token_file) {
        (Some(t), _) => Some(Token::new(t.as_str())),
        (None, Some(path)) => Some(token::read_file(path)?),
        (None, None) => None,
    };
    let client =
        Client::connect(cfg).await.map_err(|e| anyhow::anyhow!("cannot reach the cluster at {}: {e}", cli.brokers))?;
    let client = std::sync::Arc::new(client);
    let out = output::Output::new(cli.json);
    match cli.command {
        Command::Cluster { command } => cluster::run(&client, command, &out).await,
        Command::Node { command } => node::run(&client, command, &out).await,
        Command::Replica { command } => replica::run(&client, command, &out).await,
        Command::Topic { command } => topic::run(&client, command, &out, Duration::from_secs(cli.timeout_secs)).await,
        Command::Produce(args) => produce::run(client.clone(), args, &out, &cli.registry).await,
        Command::Consume(args) => consume::run(client.clone(), args, &out, &cli.registry).await,
        Command::Group { command } => group::run(&client, command, &out).await,
        Command::Dlq { command } => dlq::run(client.clone(), command, &out).await,
        Command::Acl { command } => acl::run(&client, command, &out).await,
        Command::Bench { command } => bench::run(client.clone(), command).await,
        Command::Completions { .. } | Command::Certs { .. } | Command::Token { .. } | Command::Schema { .. } => Ok(()),
    }
}
