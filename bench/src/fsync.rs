//! The machine's own durable-write ceiling: sequential writes, each followed by fdatasync, in
//! the directory the systems store their data in.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct FsyncCeiling {
    /// 4 KiB write + fdatasync, per second.
    pub small_writes_per_s: f64,
    pub small_p50_ms: f64,
    /// 1 MiB writes + fdatasync, MiB per second.
    pub large_mib_per_s: f64,
}

fn measure(dir: &Path, block: usize, dur: Duration) -> anyhow::Result<(f64, Vec<f64>)> {
    let path = dir.join(format!("fsync-probe-{block}"));
    let mut f = std::fs::File::create(&path)?;
    let buf = vec![b'x'; block];
    let start = Instant::now();
    let mut lat = Vec::new();
    while start.elapsed() < dur {
        let t = Instant::now();
        f.write_all(&buf)?;
        f.sync_data()?;
        lat.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let n = lat.len() as f64 / start.elapsed().as_secs_f64();
    drop(f);
    std::fs::remove_file(&path)?;
    Ok((n, lat))
}

/// Measures for a few seconds per block size.
///
/// # Errors
/// I/O errors.
pub fn ceiling(dir: &Path) -> anyhow::Result<FsyncCeiling> {
    let (small, mut lat) = measure(dir, 4096, Duration::from_secs(3))?;
    lat.sort_by(f64::total_cmp);
    let (large, _) = measure(dir, 1 << 20, Duration::from_secs(3))?;
    Ok(FsyncCeiling { small_writes_per_s: small, small_p50_ms: lat[lat.len() / 2], large_mib_per_s: large })
}
