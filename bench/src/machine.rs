//! What the benchmark ran on: CPU, memory, kernel, filesystem, versions.

use std::process::Command;

use serde::Serialize;

use crate::Args;

#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub kernel: String,
    pub filesystem: String,
    pub nats: String,
    pub etcd: String,
    pub cairn: String,
    pub date: String,
}

fn first_line(cmd: &mut Command) -> String {
    cmd.output()
        .ok()
        .map(|o| {
            let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
            s.push_str(&String::from_utf8_lossy(&o.stderr));
            s.lines().next().unwrap_or("").trim().to_string()
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Reads the machine's description from /proc and the binaries' `--version`.
///
/// # Errors
/// /proc is unreadable.
pub fn describe(args: &Args) -> anyhow::Result<Machine> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo")?;
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, v)| v.trim().to_string()))
        .unwrap_or_else(|| "unknown".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo")?;
    let kib: f64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    Ok(Machine {
        cpu,
        cores: std::thread::available_parallelism().map(usize::from).unwrap_or(1),
        memory_gib: kib / (1024.0 * 1024.0),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")?.trim().to_string(),
        // findmnt names ext4 as such (statfs reports ext2/ext3 for the whole family).
        filesystem: Some(first_line(
            Command::new("findmnt").args(["-n", "-o", "FSTYPE,SOURCE", "--target"]).arg(&args.dir),
        ))
        .filter(|s| !s.is_empty() && s != "unknown")
        .unwrap_or_else(|| first_line(Command::new("stat").args(["-f", "-c", "%T"]).arg(&args.dir))),
        nats: first_line(Command::new(&args.nats_server).arg("--version")),
        etcd: first_line(Command::new(&args.etcd).arg("--version")),
        cairn: first_line(Command::new(&args.cairn_node).arg("--version")),
        date: first_line(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"])),
    })
}
