//! Network faults as iptables rules in the run's namespace (OUTPUT chain: every packet between
//! two loopback addresses passes it once). Healing flushes the chain.

use std::net::Ipv4Addr;
use std::process::Command;

/// The address clients connect from (the kernel's source for loopback destinations).
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);

/// iptables control; disabled when the machine cannot do network faults.
#[derive(Clone, Copy, Debug)]
pub struct Net {
    pub enabled: bool,
}

impl Net {
    fn iptables(&self, args: &[&str]) -> anyhow::Result<()> {
        anyhow::ensure!(self.enabled, "network faults are unavailable on this machine");
        let out = Command::new("iptables").args(args).output()?;
        anyhow::ensure!(
            out.status.success(),
            "iptables {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(())
    }

    /// Packets from `from` to `to` are dropped (one direction).
    ///
    /// # Errors
    /// iptables failures.
    pub fn cut(&self, from: Ipv4Addr, to: Ipv4Addr) -> anyhow::Result<()> {
        self.iptables(&["-A", "OUTPUT", "-s", &from.to_string(), "-d", &to.to_string(), "-j", "DROP"])
    }

    /// Both directions between `a` and `b`.
    ///
    /// # Errors
    /// iptables failures.
    pub fn cut_both(&self, a: Ipv4Addr, b: Ipv4Addr) -> anyhow::Result<()> {
        self.cut(a, b)?;
        self.cut(b, a)
    }

    /// Replies from `node` to clients are dropped: requests still arrive and execute.
    ///
    /// # Errors
    /// iptables failures.
    pub fn drop_replies_to_clients(&self, node: Ipv4Addr) -> anyhow::Result<()> {
        self.cut(node, CLIENT_IP)
    }

    /// Removes every rule.
    ///
    /// # Errors
    /// iptables failures.
    pub fn heal(&self) -> anyhow::Result<()> {
        if !self.enabled {
            return Ok(());
        }
        self.iptables(&["-F", "OUTPUT"])
    }
}
