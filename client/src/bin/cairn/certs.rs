//! `cairn certs init`: a development certificate authority with node and client certificates,
//! so a TLS cluster runs in one command. Not a PKI: production clusters use certificates from
//! their own CA (docs/operations.md, "TLS").

use std::path::{Path, PathBuf};

use clap::Subcommand;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};

#[derive(Subcommand, Debug)]
pub enum CertsCommand {
    /// Write ca.pem/ca.key, node-N.pem/node-N.key (N = 1..=nodes) and client.pem/client.key into DIR.
    #[command(after_help = "Examples:
  cairn certs init ./certs --nodes 3
  cairn certs init ./certs --nodes 3 --host cairn-1 --host cairn-2 --host cairn-3

Node certificates name localhost, 127.0.0.1, ::1 and every --host: a node accepts a peer whose
certificate names the host of some member's peer address. The client certificate names
`client` only, so it cannot pass for a node. Existing files are never overwritten.")]
    Init {
        dir: PathBuf,
        /// How many node certificates.
        #[arg(long, default_value_t = 3)]
        nodes: u32,
        /// Another host name or IP the node certificates name (repeatable).
        #[arg(long = "host")]
        hosts: Vec<String>,
        /// Common name of the client certificate (its principal, once authentication is on).
        #[arg(long, default_value = "client")]
        client_name: String,
    },
}

pub fn run(command: CertsCommand) -> anyhow::Result<()> {
    match command {
        CertsCommand::Init { dir, nodes, hosts, client_name } => init(&dir, nodes, &hosts, &client_name),
    }
}

fn init(dir: &Path, nodes: u32, hosts: &[String], client_name: &str) -> anyhow::Result<()> {
    if nodes == 0 || nodes > 1000 {
        anyhow::bail!("--nodes must be 1..=1000, got {nodes}");
    }
    let mut names = vec!["ca".to_string(), "client".to_string()];
    names.extend((1..=nodes).map(|n| format!("node-{n}")));
    let files: Vec<PathBuf> =
        names.iter().flat_map(|n| [dir.join(format!("{n}.pem")), dir.join(format!("{n}.key"))]).collect();
    if let Some(existing) = files.iter().find(|f| f.exists()) {
        anyhow::bail!("{} exists; refusing to overwrite certificates (choose an empty directory)", existing.display());
    }

    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name.push(DnType::CommonName, "Cairn development CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);

    let mut out: Vec<(PathBuf, String)> =
        vec![(dir.join("ca.pem"), ca_cert.pem()), (dir.join("ca.key"), issuer.key().serialize_pem())];
    let mut node_names = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
    node_names.extend(hosts.iter().cloned());
    for n in 1..=nodes {
        let key = KeyPair::generate()?;
        let mut p = CertificateParams::new(node_names.clone())?;
        p.distinguished_name.push(DnType::CommonName, format!("cairn-node-{n}"));
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let cert = p.signed_by(&key, &issuer)?;
        out.push((dir.join(format!("node-{n}.pem")), cert.pem()));
        out.push((dir.join(format!("node-{n}.key")), key.serialize_pem()));
    }
    let key = KeyPair::generate()?;
    let mut p = CertificateParams::new(vec![client_name.to_string()])?;
    p.distinguished_name.push(DnType::CommonName, client_name);
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = p.signed_by(&key, &issuer)?;
    out.push((dir.join("client.pem"), cert.pem()));
    out.push((dir.join("client.key"), key.serialize_pem()));

    std::fs::create_dir_all(dir)?;
    for (path, pem) in &out {
        write_private(path, pem)?;
    }
    println!(
        "wrote a development CA, {nodes} node certificate(s) and a client certificate to {}\n\
         nodes:   cairn-node --tls-ca {d}/ca.pem --tls-cert {d}/node-N.pem --tls-key {d}/node-N.key ...\n\
         clients: cairn --ca {d}/ca.pem [--cert {d}/client.pem --cert-key {d}/client.key] ...",
        dir.display(),
        d = dir.display()
    );
    Ok(())
}

/// Writes `text` readable by its owner only (keys), without following an existing file.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    Ok(())
}
