//! Child processes of a system under test, and the CPU time they use (utime + stime from /proc).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Processes that are killed when dropped.
#[derive(Default)]
pub struct Procs {
    pub children: Vec<Child>,
}

impl Procs {
    /// Spawns `cmd` with output appended to `log`.
    ///
    /// # Errors
    /// Spawn failures.
    pub fn spawn(&mut self, mut cmd: Command, log: &Path) -> anyhow::Result<()> {
        let f = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
        let child = cmd.stdin(Stdio::null()).stdout(f.try_clone()?).stderr(f).spawn()?;
        self.children.push(child);
        Ok(())
    }

    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }

    pub fn alive(&mut self) -> bool {
        self.children.iter_mut().all(|c| matches!(c.try_wait(), Ok(None)))
    }

    pub fn stop(&mut self) {
        for c in &mut self.children {
            let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
        }
        std::thread::sleep(Duration::from_millis(500));
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.children.clear();
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Total CPU seconds (user + system) the processes `pids` used so far.
pub fn cpu_seconds(pids: &[u32]) -> f64 {
    let ticks = 100.0; // USER_HZ on Linux
    pids.iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .filter_map(|s| {
            // Fields after the parenthesised command name: utime is the 14th, stime the 15th.
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?)
        })
        .sum::<f64>()
        / ticks
}
