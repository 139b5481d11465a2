//! Network namespaces: probe what this machine allows, create one for a run, and always
//! clean up (a guard kills every process left in it and deletes it, also on failure; stale
//! namespaces of dead runs are removed on start).

use std::process::Command;

/// What the machine lets the suite do.
#[derive(Clone, Copy, Debug)]
pub struct Capabilities {
    pub root: bool,
    pub ip: bool,
    pub iptables: bool,
}

impl Capabilities {
    /// Network faults need root, `ip` (namespaces) and `iptables`.
    pub fn network_faults(&self) -> bool {
        self.root && self.ip && self.iptables
    }

    /// Why network faults are unavailable, if they are.
    pub fn missing(&self) -> Option<String> {
        let mut m = Vec::new();
        if !self.root {
            m.push("not running as root");
        }
        if !self.ip {
            m.push("`ip` (iproute2) not found");
        }
        if !self.iptables {
            m.push("`iptables` not found");
        }
        (!m.is_empty()).then(|| m.join(", "))
    }
}

fn works(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd).args(args).output().is_ok_and(|o| o.status.success())
}

pub fn probe() -> Capabilities {
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    Capabilities { root, ip: works("ip", &["-V"]), iptables: works("iptables", &["--version"]) }
}

fn run(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip").args(args).output()?;
    anyhow::ensure!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    Ok(())
}

/// Prefix of the namespaces this suite creates; the suffix is the creating process id.
pub const PREFIX: &str = "cairn-jepsen-";

/// Kills processes in, and deletes, every namespace of a run whose process is gone.
pub fn cleanup_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else { return };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(pid) = name.strip_prefix(PREFIX).and_then(|p| p.parse::<u32>().ok()) else { continue };
        if std::path::Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        eprintln!("cairn-jepsen: removing stale namespace {name}");
        destroy(name);
    }
}

fn destroy(name: &str) {
    if let Ok(out) = Command::new("ip").args(["netns", "pids", name]).output() {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let _ = Command::new("kill").args(["-9", pid]).status();
        }
    }
    let _ = Command::new("ip").args(["netns", "delete", name]).stderr(std::process::Stdio::null()).status();
}

/// A namespace that is deleted (with every process in it) when dropped.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// Creates `cairn-jepsen-<pid>` with loopback up.
    ///
    /// # Errors
    /// `ip` failures.
    pub fn create() -> anyhow::Result<Netns> {
        let name = format!("{PREFIX}{}", std::process::id());
        destroy(&name);
        run(&["netns", "add", &name])?;
        let ns = Netns { name };
        run(&["netns", "exec", &ns.name, "ip", "link", "set", "lo", "up"])?;
        Ok(ns)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        destroy(&self.name);
    }
}
