//! Runs over TLS (`--tls`): development certificates made by `cairn certs init` in the run's
//! directory, naming every node's address; the workload's clients trust the CA, and the suite's
//! own peer calls (finding leaders) present node 1's certificate, as a member would.

use std::path::{Path, PathBuf};

use cairn_client::ClientTls;
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

#[derive(Clone, Debug)]
pub struct RunTls {
    dir: PathBuf,
}

impl RunTls {
    /// Makes the certificates for `nodes` nodes in `dir` with the `cairn` CLI next to the
    /// node binary.
    ///
    /// # Errors
    /// The CLI is missing or fails.
    pub fn make(node_binary: &Path, dir: &Path, nodes: u64) -> anyhow::Result<RunTls> {
        let cli = node_binary.with_file_name("cairn");
        let mut cmd = std::process::Command::new(&cli);
        cmd.args(["certs", "init"]).arg(dir).args(["--nodes", &nodes.to_string()]);
        for id in 1..=nodes {
            cmd.args(["--host", &crate::cluster::nodes::node_ip(id).to_string()]);
        }
        let out = cmd.output().map_err(|e| anyhow::anyhow!("{}: {e}", cli.display()))?;
        anyhow::ensure!(out.status.success(), "cairn certs init: {}", String::from_utf8_lossy(&out.stderr));
        Ok(RunTls { dir: dir.to_path_buf() })
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// Node `id`'s TLS flags.
    pub fn node_args(&self, id: u64) -> Vec<String> {
        let p = |f: String| self.dir.join(f).to_string_lossy().into_owned();
        vec![
            "--tls-ca".into(),
            p("ca.pem".into()),
            "--tls-cert".into(),
            p(format!("node-{id}.pem")),
            "--tls-key".into(),
            p(format!("node-{id}.key")),
        ]
    }

    /// What the workload's clients use.
    ///
    /// # Errors
    /// Unreadable CA file.
    pub fn client(&self) -> std::io::Result<ClientTls> {
        ClientTls::from_files(&self.ca(), None, None)
    }

    /// What the suite's calls to peer listeners use: node 1's certificate.
    ///
    /// # Errors
    /// Unreadable files.
    pub fn peer(&self) -> std::io::Result<ClientTlsConfig> {
        let read = |f: &str| std::fs::read(self.dir.join(f));
        Ok(ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(read("ca.pem")?))
            .identity(Identity::from_pem(read("node-1.pem")?, read("node-1.key")?)))
    }
}
