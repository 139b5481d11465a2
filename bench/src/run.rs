//! One run = one fresh 3-node cluster of one system, one load shape, warm-up then measurement;
//! the matrix alternates systems within each cell and repeats.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use cairn_client::bench::{read_topic, run_load, LoadResult, LoadSpec, Target};
use serde::Serialize;
use tonic::transport::Channel;

use crate::procs::{cpu_seconds, Procs};
use crate::{cairn, etcd, nats, Args};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum System {
    Nats,
    Cairn,
    Etcd,
}

impl System {
    pub fn label(self) -> &'static str {
        match self {
            System::Nats => "NATS JetStream R3",
            System::Cairn => "Cairn RF3",
            System::Etcd => "etcd, 3 members",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Every acknowledged write is fsynced (on a majority).
    Fsync,
    /// Acknowledged from the page cache (peers only: Cairn always fsyncs).
    PageCache,
}

#[derive(Clone, Debug, Serialize)]
pub struct Run {
    pub system: System,
    pub mode: Mode,
    pub rep: usize,
    pub result: LoadResult,
    /// utime + stime of the system's three processes during the measured interval.
    pub cpu_seconds: f64,
    pub cpu_s_per_million: f64,
    /// Cairn only, throughput cells: reading back what was just produced.
    pub consume: Option<LoadResult>,
}

fn tasks_for(window: usize) -> usize {
    window.min(4)
}

/// Runs every cell of the fsync matrix `reps` times, then the page-cache table.
///
/// # Errors
/// A cluster failed to start; a run that merely errors is recorded with its error count.
pub async fn matrix(args: &Args) -> anyhow::Result<Vec<Run>> {
    let mut runs = Vec::new();
    let systems = [System::Nats, System::Cairn, System::Etcd];
    for rep in 1..=args.reps {
        for &size in &args.sizes {
            for &window in &args.windows {
                for sys in systems {
                    runs.push(one(args, sys, Mode::Fsync, size, window, rep).await?);
                }
            }
        }
    }
    for rep in 1..=args.page_cache_reps {
        for &window in &args.windows {
            for sys in [System::Nats, System::Etcd] {
                runs.push(one(args, sys, Mode::PageCache, 1024, window, rep).await?);
            }
        }
    }
    Ok(runs)
}

async fn one(args: &Args, sys: System, mode: Mode, size: usize, window: usize, rep: usize) -> anyhow::Result<Run> {
    let dir = args.dir.join(format!("{sys:?}-{mode:?}-{size}-{window}-{rep}").to_lowercase());
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    eprintln!("==> rep {rep}: {} ({mode:?}), {size} B records, window {window}", sys.label());
    let spec = LoadSpec {
        record_bytes: size,
        window,
        tasks: tasks_for(window),
        warmup: args.warmup(),
        duration: args.duration(),
    };
    let fsync = mode == Mode::Fsync;
    let (mut procs, target, cairn_client): (Procs, Arc<dyn Target>, _) = match sys {
        System::Nats => {
            let procs = nats::start(&args.nats_server, &dir, fsync)?;
            (procs, Arc::new(nats_target(args.partitions, spec.tasks).await?), None)
        }
        System::Etcd => {
            let procs = etcd::start(&args.etcd, &dir, fsync)?;
            (procs, Arc::new(etcd_target(spec.tasks).await?), None)
        }
        System::Cairn => {
            let procs = cairn::start(&args.cairn_node, &dir)?;
            let (client, target) = cairn::target("bench", args.partitions, window).await?;
            (procs, Arc::new(target), Some(client))
        }
    };
    let pids = procs.pids();
    let (warmup, duration) = (args.warmup(), args.duration());
    let sampler = tokio::spawn(async move {
        tokio::time::sleep(warmup).await;
        let c0 = cpu_seconds(&pids);
        tokio::time::sleep(duration).await;
        cpu_seconds(&pids) - c0
    });
    let result = run_load(target, &spec, true).await;
    let cpu = sampler.await?;
    let consume = match cairn_client {
        Some(client) if window > 1 => {
            let spec = LoadSpec { duration: Duration::from_secs(10), warmup: Duration::ZERO, ..spec.clone() };
            Some(read_topic(client, "bench", &spec).await?)
        }
        _ => None,
    };
    anyhow::ensure!(procs.alive(), "{} exited during the run; logs in {}", sys.label(), dir.display());
    procs.stop();
    eprintln!(
        "    {:.0} records/s, p50 {:.3} ms, p99 {:.3} ms, {:.2} CPU-s, errors {}{}",
        result.records_per_s,
        result.p50_ms,
        result.p99_ms,
        cpu,
        result.errors,
        consume.as_ref().map(|c| format!(", consume {:.0} records/s", c.records_per_s)).unwrap_or_default()
    );
    // Keep the logs, drop the data (a run writes gigabytes).
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        if path.is_dir() {
            std::fs::remove_dir_all(path)?;
        }
    }
    let per_million = if result.records > 0 { cpu / result.records as f64 * 1e6 } else { f64::NAN };
    Ok(Run { system: sys, mode, rep, result, cpu_seconds: cpu, cpu_s_per_million: per_million, consume })
}

async fn nats_target(streams: u32, conns: usize) -> anyhow::Result<nats::NatsTarget> {
    let first = connect_nats(nats::CLIENT_PORTS[0]).await?;
    nats::create_streams(&first, streams).await?;
    let mut all = vec![first];
    for i in 1..conns {
        all.push(connect_nats(nats::CLIENT_PORTS[i % 3]).await?);
    }
    Ok(nats::NatsTarget { conns: all, streams, next: AtomicU64::new(0) })
}

async fn connect_nats(port: u16) -> anyhow::Result<nats::Conn> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match nats::Conn::connect(&format!("127.0.0.1:{port}")).await {
            Ok(c) => return Ok(c),
            Err(e) if tokio::time::Instant::now() > deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

async fn etcd_target(conns: usize) -> anyhow::Result<etcd::EtcdTarget> {
    let port = etcd::leader_port().await?;
    let mut clients = Vec::new();
    for _ in 0..conns {
        let ch = Channel::from_shared(format!("http://127.0.0.1:{port}"))?.connect().await?;
        clients.push(etcd::pb::kv_client::KvClient::new(ch));
    }
    Ok(etcd::EtcdTarget { clients, next: AtomicU64::new(0) })
}
