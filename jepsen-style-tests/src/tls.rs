//! Runs secured (`--tls`): TLS on both listeners with development certificates made by
//! `cairn certs init` in the run's directory (naming every node's address), authentication and
//! ACLs on. An `admin` super-user, authenticated by a bearer token from `cairn token new`, grants
//! the workload's principal (`client`, the common name of the client certificate its clients
//! and group members present) what the workload does and nothing on the cluster, so every
//! produce, fetch and group call of the run passes the ACL check. The suite's own peer calls
//! (finding leaders) present node 1's certificate, as a member would. A second token
//! authenticates `bulk`, the principal held to a quota ([`crate::quota`]).

use std::path::{Path, PathBuf};

use std::time::Duration;

use cairn_client::{AclEntry, ClientTls};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use tokio::time::Instant;

use crate::history::Recorder;
use crate::quota::{BULK_PRINCIPAL, BULK_TOPIC};
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

#[derive(Clone)]
pub struct RunTls {
    dir: PathBuf,
    /// The `admin` super-user's bearer token.
    admin_token: String,
    /// Its SHA-256, as the nodes are given it.
    admin_digest: String,
    /// The throttled `bulk` principal's token ([`crate::quota`]), and its SHA-256.
    bulk_token: String,
    bulk_digest: String,
}

impl std::fmt::Debug for RunTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunTls").field("dir", &self.dir).finish_non_exhaustive()
    }
}

/// The principal the workload runs as: the client certificate's common name.
pub const WORKLOAD_PRINCIPAL: &str = "client";

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
        let (admin_token, admin_digest) = new_token(&cli, "admin")?;
        let (bulk_token, bulk_digest) = new_token(&cli, BULK_PRINCIPAL)?;
        Ok(RunTls { dir: dir.to_path_buf(), admin_token, admin_digest, bulk_token, bulk_digest })
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    pub fn client_cert(&self) -> (PathBuf, PathBuf) {
        (self.dir.join("client.pem"), self.dir.join("client.key"))
    }

    /// Node `id`'s TLS and authentication flags.
    pub fn node_args(&self, id: u64) -> Vec<String> {
        let p = |f: String| self.dir.join(f).to_string_lossy().into_owned();
        vec![
            "--tls-ca".into(),
            p("ca.pem".into()),
            "--tls-cert".into(),
            p(format!("node-{id}.pem")),
            "--tls-key".into(),
            p(format!("node-{id}.key")),
            "--auth".into(),
            "on".into(),
            "--acls".into(),
            "on".into(),
            "--super-user".into(),
            "admin".into(),
            "--auth-token".into(),
            format!("admin:{}", self.admin_digest),
            "--auth-token".into(),
            format!("{BULK_PRINCIPAL}:{}", self.bulk_digest),
        ]
    }

    /// What the workload's clients use: the CA and the client certificate.
    ///
    /// # Errors
    /// Unreadable files.
    pub fn client(&self) -> std::io::Result<ClientTls> {
        let (cert, key) = self.client_cert();
        ClientTls::from_files(&self.ca(), Some(&cert), Some(&key))
    }

    /// The `admin` super-user's client settings (its token; no certificate).
    fn admin_config(&self, brokers: Vec<String>) -> std::io::Result<cairn_client::ClientConfig> {
        let mut cfg = cairn_client::ClientConfig::new(brokers);
        cfg.tls = Some(ClientTls::from_files(&self.ca(), None, None)?);
        cfg.token = Some(cairn_client::Token::new(self.admin_token.as_str()));
        Ok(cfg)
    }

    /// Denies the workload's writes to `topic` for 5–8 s at a time, 3–6 s apart, until
    /// `until`, and lifts the last deny before returning. Each window is recorded from the
    /// deny's acknowledgement (`start-acl-deny`) to just before its removal is asked
    /// (`stop-acl-deny`): the `denied-write` checker wants no write acknowledged inside one
    /// (after a grace for the deny to reach every node).
    pub async fn deny_windows(self, brokers: Vec<String>, topic: String, rec: Recorder, until: Instant, seed: u64) {
        let Ok(cfg) = self.admin_config(brokers) else { return };
        let Ok(admin) = cairn_client::Client::connect(cfg).await else {
            rec.nemesis("acl-deny-failed", json!({"error": "the admin client could not connect"}));
            return;
        };
        let deny = vec![AclEntry {
            principal: WORKLOAD_PRINCIPAL.into(),
            resource_type: "topic".into(),
            pattern_type: "literal".into(),
            resource_name: topic.clone(),
            operation: "write".into(),
            permission: "deny".into(),
        }];
        let mut rng = StdRng::seed_from_u64(seed);
        loop {
            tokio::time::sleep(Duration::from_millis(rng.random_range(3_000..6_000))).await;
            let hold = Duration::from_millis(rng.random_range(5_000..8_000));
            if Instant::now() + hold >= until {
                return;
            }
            match admin.create_acls(deny.clone()).await {
                Ok(_) => rec.nemesis("start-acl-deny", json!({"topic": topic, "principal": WORKLOAD_PRINCIPAL})),
                Err(e) => {
                    // It may still have been added: lift it below all the same.
                    rec.nemesis("acl-deny-failed", json!({"error": e.to_string()}));
                }
            }
            tokio::time::sleep(hold).await;
            rec.nemesis("stop-acl-deny", json!({"topic": topic}));
            // The workload must not stay denied: retry the removal until it is answered.
            let lift_by = Instant::now() + Duration::from_secs(120);
            while let Err(e) = admin.delete_acls(deny.clone()).await {
                if Instant::now() >= lift_by {
                    rec.nemesis("acl-deny-stuck", json!({"error": e.to_string()}));
                    return;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }

    /// As the `admin` super-user: grants the workload's principal everything on topics and
    /// groups (not the cluster), grants the `bulk` principal everything on its own topic only,
    /// and creates that topic (`partitions`, replication factor `rf`). Retried until the
    /// cluster answers.
    ///
    /// # Errors
    /// Not done within a minute.
    pub async fn set_up(&self, brokers: Vec<String>, partitions: u32, rf: u32) -> anyhow::Result<()> {
        let cfg = self.admin_config(brokers)?;
        let allow = |principal: &str, resource: &str, name: &str| AclEntry {
            principal: principal.into(),
            resource_type: resource.into(),
            pattern_type: "literal".into(),
            resource_name: name.into(),
            operation: "all".into(),
            permission: "allow".into(),
        };
        let acls = vec![
            allow(WORKLOAD_PRINCIPAL, "topic", "*"),
            allow(WORKLOAD_PRINCIPAL, "group", "*"),
            allow(BULK_PRINCIPAL, "topic", BULK_TOPIC),
        ];
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let tried = async {
                let admin = cairn_client::Client::connect(cfg.clone()).await?;
                admin.create_acls(acls.clone()).await?;
                admin.create_topic(BULK_TOPIC, partitions, rf, None).await
            };
            match tried.await {
                Ok(_) => return Ok(()),
                Err(e) if std::time::Instant::now() >= deadline => anyhow::bail!("setting up the secured run: {e}"),
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(500)).await,
            }
        }
    }

    /// The `bulk` principal's client settings: the CA and its token ([`crate::quota`]).
    ///
    /// # Errors
    /// Unreadable files.
    pub fn bulk_config(&self, brokers: Vec<String>) -> std::io::Result<cairn_client::ClientConfig> {
        let mut cfg = cairn_client::ClientConfig::new(brokers);
        cfg.tls = Some(ClientTls::from_files(&self.ca(), None, None)?);
        Ok(crate::quota::bulk_config(cfg, &self.bulk_token))
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

/// A new bearer token for `principal` from `cairn token new`: (token, its SHA-256).
fn new_token(cli: &Path, principal: &str) -> anyhow::Result<(String, String)> {
    let out = std::process::Command::new(cli)
        .args(["token", "new", "--principal", principal])
        .output()
        .map_err(|e| anyhow::anyhow!("{}: {e}", cli.display()))?;
    anyhow::ensure!(out.status.success(), "cairn token new: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let flag = format!("--auth-token {principal}:");
    let token = text.lines().map(str::trim).find(|l| l.starts_with("cairn_"));
    let digest = text.lines().find_map(|l| l.split(flag.as_str()).nth(1));
    let (Some(token), Some(digest)) = (token, digest) else {
        anyhow::bail!("cairn token new printed no token or digest: {text}");
    };
    Ok((token.to_string(), digest.trim().to_string()))
}
