//! `cairn-compare`: Cairn, NATS JetStream and etcd as 3-node clusters on loopback, the same load
//! shape against each in turn (alternating, repeated), CPU-seconds per system, the machine's own
//! fsync ceiling, and `docs/benchmarks.md` written from the results.
//!
//! ```text
//!  fsync ceiling ─► for rep in 1..=reps { for cell in sizes × windows { for system { start
//!  cluster ─► warm-up ─► measure (HdrHistogram, /proc CPU) ─► [Cairn: consume] ─► stop, wipe } } }
//!  ─► page-cache table (peers only) ─► medians, ratios, targets ─► markdown + JSON
//! ```
//! `bench/compare.sh` installs the peers, builds release binaries and runs this.

mod cairn;
mod etcd;
mod fsync;
mod machine;
mod nats;
mod procs;
mod report;
mod run;

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

#[derive(Parser, Debug, Clone, serde::Serialize)]
#[command(name = "cairn-compare", about)]
pub struct Args {
    #[arg(long)]
    pub nats_server: PathBuf,
    #[arg(long)]
    pub etcd: PathBuf,
    #[arg(long)]
    pub cairn_node: PathBuf,
    /// Scratch directory for the clusters' data (wiped per run).
    #[arg(long, default_value = "/var/tmp/cairn-compare")]
    pub dir: PathBuf,
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    #[arg(long, default_value_t = 5)]
    pub warmup: u64,
    #[arg(long, default_value_t = 20)]
    pub duration: u64,
    /// Partitions of the Cairn topic and number of NATS streams.
    #[arg(long, default_value_t = 4)]
    pub partitions: u32,
    #[arg(long, value_delimiter = ',', default_value = "1024,100")]
    pub sizes: Vec<usize>,
    #[arg(long, value_delimiter = ',', default_value = "1,512")]
    pub windows: Vec<usize>,
    /// Repetitions of the page-cache table (0 skips it).
    #[arg(long, default_value_t = 1)]
    pub page_cache_reps: usize,
    #[arg(long, default_value = "docs/benchmarks.md")]
    pub out: PathBuf,
    #[arg(long, default_value = "docs/benchmarks.json")]
    pub json_out: PathBuf,
    /// The command line recorded in the report as the way to reproduce it.
    #[arg(long, default_value = "bench/compare.sh")]
    pub command: String,
}

impl Args {
    fn warmup(&self) -> Duration {
        Duration::from_secs(self.warmup)
    }

    fn duration(&self) -> Duration {
        Duration::from_secs(self.duration)
    }
}

/// Everything after this line of the report is kept when it is regenerated.
const KEPT_MARKER: &str = "<!-- kept by bench/compare.sh: sections measured by other commands -->";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    std::fs::create_dir_all(&args.dir)?;
    let machine = machine::describe(&args)?;
    eprintln!("==> fsync ceiling in {}", args.dir.display());
    let ceiling = fsync::ceiling(&args.dir)?;
    eprintln!("    {ceiling:?}");
    let runs = run::matrix(&args).await?;
    let doc = report::Report { machine, ceiling, runs, args: args.clone() };
    std::fs::write(&args.json_out, serde_json::to_vec_pretty(&doc)?)?;
    // Sections measured by other commands (e.g. `cairn bench group`) follow a marker and are
    // kept as they are.
    let kept = std::fs::read_to_string(&args.out)
        .ok()
        .and_then(|old| old.find(KEPT_MARKER).map(|i| old[i..].to_string()))
        .unwrap_or_default();
    std::fs::write(&args.out, report::markdown(&doc) + "\n" + &kept)?;
    eprintln!("==> wrote {} and {}", args.out.display(), args.json_out.display());
    Ok(())
}
