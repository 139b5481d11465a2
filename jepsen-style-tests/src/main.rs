//! `cairn-jepsen`: run fault-injection tests against real `cairn-node` processes.
//!
//! ```text
//! cairn-jepsen run --nemesis kill --time-limit 60        one test
//! cairn-jepsen tier ci | long                            a set of tests (CI: ~1 min each)
//! cairn-jepsen check store/<test>/<time>                 re-check a stored history
//! cairn-jepsen summary store                             markdown table of the newest runs
//! ```

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use cairn_jepsen::checker::check;
use cairn_jepsen::cluster::netns::{self, Netns};
use cairn_jepsen::history::{analyse, load};
use cairn_jepsen::nemesis::NemesisKind;
use cairn_jepsen::report;
use cairn_jepsen::run::{run, RunParams};
use cairn_jepsen::workload::{WorkloadKind, WorkloadSpec};
use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "cairn-jepsen",
    version,
    about = "Jepsen-style fault injection for Cairn: real processes, real faults, a recorded history, checkers"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run one test. Exit code 0 only when every safety checker is clean.
    Run(RunArgs),
    /// Run a tier of tests: `ci` (~1 minute runs: five nemeses on 3 nodes, stale-broker on 3,
    /// recreate on 5, corrupt and disk-full on 3, the group workload under kill and pause, retention under kill,
    /// conditional appends under partition) or `long` (every nemesis for --minutes on 3 and on 5 nodes).
    Tier {
        #[arg(value_parser = ["ci", "long"])]
        tier: String,
        /// Minutes per run of the long tier.
        #[arg(long, default_value_t = 10)]
        minutes: u64,
        /// Only the runs on this many nodes (the long tier in two sittings); seeds stay those
        /// of the whole tier.
        #[arg(long, value_parser = ["3", "5"])]
        only_nodes: Option<String>,
        /// Base seed; each run's seed derives from it (printed and saved).
        #[arg(long)]
        seed: Option<u64>,
        #[command(flatten)]
        common: Common,
    },
    /// Re-run the checkers on a stored run directory (its history.jsonl).
    Check { dir: PathBuf },
    /// Print a markdown table of the newest run of every test in a store directory.
    Summary { store: PathBuf },
    /// Internal: one consumer group member of the `group` workload (a process of its own).
    #[command(hide = true)]
    Member(cairn_jepsen::member::MemberArgs),
}

#[derive(Args, Debug, Clone)]
struct Common {
    /// The cairn-node binary (default: next to this one).
    #[arg(long)]
    node_bin: Option<PathBuf>,
    /// Where runs are stored: <store>/<test>/<time>/.
    #[arg(long, default_value = "store")]
    store: PathBuf,
    /// Run in the current network namespace even as root (network faults are then skipped).
    #[arg(long)]
    no_netns: bool,
}

#[derive(Args, Debug, Clone)]
struct RunArgs {
    /// The fault schedule.
    #[arg(long, value_enum, default_value = "kill")]
    nemesis: NemesisKind,
    /// `queue`: one send at a time per producer; `idempotent`: pipelined sends with forced
    /// retries (short timeouts, 10% of produce answers dropped by the nodes); `topics`: like
    /// `idempotent`, over topics created (and, by the recreate nemesis, re-created) as it runs;
    /// `group`: consumer group members in processes of their own, killed, paused and restarted
    /// as it runs.
    #[arg(long, value_enum, default_value = "queue")]
    workload: WorkloadKind,
    /// Number of nodes (3 or 5 are typical).
    #[arg(long, default_value_t = 3)]
    nodes: u64,
    /// Seconds of workload; the last --heal seconds run with every fault healed.
    #[arg(long, default_value_t = 60)]
    time_limit: u64,
    /// Seconds at the end with all faults healed (recovery is measured there).
    #[arg(long, default_value_t = 10)]
    heal: u64,
    /// Random seed of the schedule and the workload (default: random, printed).
    #[arg(long)]
    seed: Option<u64>,
    #[arg(long, default_value_t = 4)]
    partitions: u32,
    /// Partitions added to the topic during the run, one at a time, while faults run
    /// (default: 2 for `group`, whose members must pick them up; 0 otherwise; not with
    /// `topics`).
    #[arg(long)]
    add_partitions: Option<u32>,
    #[arg(long, default_value_t = 4)]
    producers: u32,
    #[arg(long, default_value_t = 2)]
    consumers: u32,
    /// Target sends per second (all producers).
    #[arg(long, default_value_t = 200)]
    rate: u32,
    /// Node fault switch for negative controls (`ack-before-commit`, `no-dedup`,
    /// `fetch-above-hw`, `drop-produce-responses=P`); repeatable.
    #[arg(long = "fault")]
    faults: Vec<String>,
    /// Client fault switch for negative controls (`trust-retry-refusals`: producers fail a
    /// batch in doubt on a definite refusal of its retry and reuse its sequence numbers;
    /// `commit-before-processing`: group members commit what they polled before recording it).
    #[arg(long = "client-fault", value_parser = ["trust-retry-refusals", "commit-before-processing"])]
    client_faults: Vec<String>,
    /// Name of the test (default: <nemesis>-<workload>-<nodes>n).
    #[arg(long)]
    name: Option<String>,
    /// Secured: TLS on both listeners and between nodes (certificates made for the run by
    /// `cairn certs init`, the CLI next to the node binary), authentication and ACLs on, the
    /// workload running as a principal with ACLs and denied writes now and then.
    #[arg(long)]
    tls: bool,
    #[command(flatten)]
    common: Common,
    /// Internal: already inside the run's network namespace.
    #[arg(long, hide = true)]
    inside_netns: bool,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CAIRN_JEPSEN_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let res = match cli.command {
        Cmd::Run(args) => run_one(args),
        Cmd::Tier { tier, minutes, only_nodes, seed, common } => {
            run_tier(&tier, minutes, only_nodes.and_then(|n| n.parse().ok()), seed, common)
        }
        Cmd::Check { dir } => recheck(&dir),
        Cmd::Summary { store } => cairn_jepsen::summary::table(&store).map(|t| {
            print!("{t}");
            true
        }),
        Cmd::Member(args) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(cairn_jepsen::member::run(args)))
            .map(|()| true),
    };
    match res {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("cairn-jepsen: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn timestamp() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}{m:02}{d:02}T{:02}{:02}{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

fn node_bin(common: &Common) -> anyhow::Result<PathBuf> {
    let p = match &common.node_bin {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("cairn-node"),
    };
    anyhow::ensure!(p.exists(), "cairn-node binary not found at {} (build it, or pass --node-bin)", p.display());
    Ok(p)
}

/// Runs one test, in a fresh network namespace when the machine allows it.
fn run_one(args: RunArgs) -> anyhow::Result<bool> {
    let caps = netns::probe();
    let use_netns = caps.network_faults() && !args.common.no_netns;
    if !args.inside_netns && use_netns {
        // Re-run this very command inside a namespace created (and always removed) here.
        netns::cleanup_stale();
        let ns = Netns::create()?;
        let status = Command::new("ip")
            .args(["netns", "exec", &ns.name])
            .arg(std::env::current_exe()?)
            .args(std::env::args_os().skip(1))
            .arg("--inside-netns")
            .status()?;
        drop(ns);
        return match status.code() {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => anyhow::bail!("the run inside the namespace failed ({status})"),
        };
    }
    if args.nemesis == NemesisKind::DiskFull {
        if let Err(why) = cairn_jepsen::cluster::disks::probe() {
            println!("cairn-jepsen: SKIPPED disk-full (needs small filesystems of its own: {why})");
            return Ok(true);
        }
    }
    let network = args.inside_netns;
    if !network {
        let why = caps.missing().unwrap_or_else(|| "--no-netns given".into());
        println!("cairn-jepsen: network faults unavailable ({why}); partition and client-partition are skipped");
        if args.nemesis.needs_network() {
            println!("cairn-jepsen: SKIPPED {} (needs network faults)", args.nemesis.name());
            return Ok(true);
        }
    }
    let add_partitions = args.add_partitions.unwrap_or(if args.workload == WorkloadKind::Group { 2 } else { 0 });
    anyhow::ensure!(
        add_partitions == 0 || args.workload != WorkloadKind::Topics,
        "--add-partitions does not go with the topics workload (its topics come and go)"
    );
    let seed = args.seed.unwrap_or_else(rand::random);
    let mut node_faults = args.faults.clone();
    if args.workload.pipelined() && !node_faults.iter().any(|f| f.starts_with("drop-produce-responses")) {
        node_faults.push("drop-produce-responses=0.1".into());
    }
    let name = args.name.clone().unwrap_or_else(|| {
        let w = args.workload.name();
        let all: Vec<String> = args.faults.iter().chain(&args.client_faults).cloned().collect();
        let f = if all.is_empty() { String::new() } else { format!("-{}", all.join("-")) };
        let tls = if args.tls { "-tls" } else { "" };
        format!("{}-{w}-{}n{f}{tls}", args.nemesis.name(), args.nodes)
    });
    let params = RunParams {
        name: name.clone(),
        seed,
        nemesis: args.nemesis,
        workload: WorkloadSpec {
            kind: args.workload,
            topic: "jepsen".into(),
            partitions: args.partitions,
            producers: args.producers,
            consumers: args.consumers,
            rate: args.rate,
            trust_retry_refusals: args.client_faults.iter().any(|f| f == "trust-retry-refusals"),
            commit_before_processing: args.client_faults.iter().any(|f| f == "commit-before-processing"),
            add_partitions,
        },
        nodes: args.nodes,
        time_limit_s: args.time_limit,
        heal_s: args.heal.min(args.time_limit),
        node_faults,
        network_faults: network,
        node_binary: node_bin(&args.common)?,
        // Each node has its own address; outside a namespace, keep clear of other users' ports.
        port: if network { 7000 } else { 20_000 + (std::process::id() % 20_000) as u16 },
        tls: args.tls,
    };
    let dir = args.common.store.join(&name).join(timestamp());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let outcome = rt.block_on(run(params, &dir))?;
    println!("cairn-jepsen: results in {}", outcome.dir.display());
    Ok(outcome.results.valid)
}

fn run_tier(
    tier: &str,
    minutes: u64,
    only_nodes: Option<u64>,
    seed: Option<u64>,
    common: Common,
) -> anyhow::Result<bool> {
    let base = seed.unwrap_or_else(rand::random);
    println!("cairn-jepsen: tier {tier}, base seed {base}");
    // (nemesis, workload, nodes, seconds, TLS)
    let mut plan: Vec<(NemesisKind, WorkloadKind, u64, u64, bool)> = Vec::new();
    if tier == "ci" {
        plan.extend([
            (NemesisKind::None, WorkloadKind::Queue, 3, 45, false),
            (NemesisKind::Kill, WorkloadKind::Queue, 3, 60, false),
            (NemesisKind::Pause, WorkloadKind::Queue, 3, 60, false),
            (NemesisKind::Partition, WorkloadKind::Queue, 3, 60, false),
            (NemesisKind::ClientPartition, WorkloadKind::Idempotent, 3, 60, false),
            (NemesisKind::StaleBroker, WorkloadKind::Topics, 3, 60, false),
            (NemesisKind::Recreate, WorkloadKind::Topics, 5, 60, false),
            (NemesisKind::Corrupt, WorkloadKind::Idempotent, 3, 60, false),
            (NemesisKind::DiskFull, WorkloadKind::Idempotent, 3, 60, false),
            (NemesisKind::Kill, WorkloadKind::Group, 3, 60, false),
            (NemesisKind::Pause, WorkloadKind::Group, 3, 60, false),
            (NemesisKind::Kill, WorkloadKind::Retention, 3, 60, false),
            // Writers racing on keys with conditional appends while leaders are cut off.
            (NemesisKind::Partition, WorkloadKind::Conditional, 3, 60, false),
            // Schema registrations through every node while nodes (the registry's leader
            // among them) are killed.
            (NemesisKind::Kill, WorkloadKind::Registry, 3, 60, false),
            // The secure path: TLS on both listeners, peers with member certificates, clients
            // authenticated, ACLs checked, the workload denied writes now and then.
            (NemesisKind::Kill, WorkloadKind::Idempotent, 3, 60, true),
        ]);
    } else {
        for nodes in [3, 5] {
            for (i, n) in [
                NemesisKind::None,
                NemesisKind::Kill,
                NemesisKind::Pause,
                NemesisKind::Partition,
                NemesisKind::ClientPartition,
                NemesisKind::CrashLoop,
                NemesisKind::Combined,
            ]
            .into_iter()
            .enumerate()
            {
                let w = if i % 2 == 0 { WorkloadKind::Queue } else { WorkloadKind::Idempotent };
                plan.push((n, w, nodes, minutes * 60, false));
            }
            plan.push((NemesisKind::StaleBroker, WorkloadKind::Topics, nodes, minutes * 60, false));
            plan.push((NemesisKind::Corrupt, WorkloadKind::Idempotent, nodes, minutes * 60, false));
            plan.push((NemesisKind::WalTruncate, WorkloadKind::Queue, nodes, minutes * 60, false));
            plan.push((NemesisKind::DiskFull, WorkloadKind::Idempotent, nodes, minutes * 60, false));
            for n in [NemesisKind::Kill, NemesisKind::Pause, NemesisKind::Partition, NemesisKind::Combined] {
                plan.push((n, WorkloadKind::Group, nodes, minutes * 60, false));
                plan.push((n, WorkloadKind::Retention, nodes, minutes * 60, false));
                plan.push((n, WorkloadKind::Conditional, nodes, minutes * 60, false));
                plan.push((n, WorkloadKind::Registry, nodes, minutes * 60, false));
            }
        }
        plan.push((NemesisKind::Recreate, WorkloadKind::Topics, 5, minutes * 60, false));
        plan.push((NemesisKind::Combined, WorkloadKind::Idempotent, 3, minutes * 60, true));
    }
    let me = std::env::current_exe()?;
    let mut all_valid = true;
    let mut summary = Vec::new();
    for (i, (nemesis, workload, nodes, secs, tls)) in plan.into_iter().enumerate() {
        let seed = base.wrapping_add(i as u64 * 7_919);
        if only_nodes.is_some_and(|n| n != nodes) {
            continue;
        }
        let mut cmd = Command::new(&me);
        cmd.args(["run", "--nemesis", nemesis.name(), "--workload", workload.name()])
            .args(["--nodes", &nodes.to_string(), "--time-limit", &secs.to_string(), "--seed", &seed.to_string()])
            .arg("--store")
            .arg(&common.store);
        if let Some(b) = &common.node_bin {
            cmd.arg("--node-bin").arg(b);
        }
        if common.no_netns {
            cmd.arg("--no-netns");
        }
        if tls {
            cmd.arg("--tls");
        }
        let status = cmd.status()?;
        let verdict = match status.code() {
            Some(0) => "valid",
            Some(1) => "INVALID",
            _ => "ERROR",
        };
        all_valid &= status.code() == Some(0);
        summary.push(format!(
            "{:<18} {:<11} {}n{} {:>5}s seed {:<20} {verdict}",
            nemesis.name(),
            workload.name(),
            nodes,
            if tls { " tls" } else { "" },
            secs,
            seed
        ));
    }
    println!("\ncairn-jepsen tier {tier}:");
    for line in &summary {
        println!("  {line}");
    }
    Ok(all_valid)
}

fn recheck(dir: &Path) -> anyhow::Result<bool> {
    let ops = load(&dir.join("history.jsonl"))?;
    let a = analyse(&ops);
    let drained = a.finals.iter().all(|_| true) && !a.finals.is_empty();
    let r = check(&a, drained);
    print!("{}", report::table(&dir.display().to_string(), &r));
    Ok(r.valid)
}
