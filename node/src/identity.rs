//! The data directory's identity file: binds a directory to one node id and one cluster, and
//! gives the directory a random id of its own.
//!
//! Written at first start, before anything else goes in the directory (and, for a new
//! directory, only after the peers confirmed the node may start with it, see [`crate::join`]),
//! and once more when the node first learns the cluster's id from the controller.
//! A directory that belongs to another node id, or a configuration that contradicts how the
//! cluster was bootstrapped (other members), is refused with a clear error and the directory is
//! left untouched. Topics are not part of it: they live in the controller's metadata.
//!
//! The directory id lets the cluster tell a node that kept its disk from one that lost it: the
//! controller registers each node's directory id, and peers refuse Raft traffic from a node
//! presenting another one ([`cairn_raft::network::Directories`]).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::address::NodeAddress;
use crate::config::Config;

const FILE: &str = "cairn-node.json";
/// 3: directory ids; producer limits in log entries, append times in the producer table, the
/// controller's producer registry and partition limits. 4: retired data directories in the
/// controller's state (earlier directories cannot be read). 5: a random cluster id drawn at
/// bootstrap and kept in the controller's state, recorded here once learned. 6: a client and a
/// peer address for every node (separate listeners), here and in the controller's state.
const FORMAT: u32 = 6;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub format: u32,
    pub node_id: u64,
    /// The cluster this directory belongs to: drawn at random by the controller leader when the
    /// cluster bootstrapped, recorded here once this node learned it (None until then).
    #[serde(default)]
    pub cluster_id: Option<String>,
    pub initial_cluster: BTreeMap<u64, NodeAddress>,
    /// Random, non-zero, drawn when the directory was created.
    pub directory_id: u64,
    /// Incarnation of this node's controller replica: 1 for the bootstrap members, a new one
    /// for a node that joined as the replacement of a lost directory.
    pub controller_incarnation: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot use data directory {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("data directory {path} has an unreadable identity file: {source}")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("data directory {path} belongs to node {found}, but this node is configured as node {configured}; refusing to start (a wiped or replaced node needs a new id)")]
    OtherNode { path: PathBuf, found: u64, configured: u64 },
    #[error("data directory {path} was bootstrapped with {what} {found}, but the configuration says {configured}; refusing to start")]
    Contradiction { path: PathBuf, what: &'static str, found: String, configured: String },
    #[error("data directory {path} was written by an incompatible Cairn version (format {found}, this version reads {FORMAT}); refusing to start")]
    Format { path: PathBuf, found: u32 },
    #[error("data directory {path} is not empty and has no identity file; refusing to adopt it")]
    Foreign { path: PathBuf },
}

impl Identity {
    /// Loads the identity of `config.data_dir` and checks it against `config`; `None` when the
    /// directory is new (missing or empty).
    ///
    /// # Errors
    /// See [`IdentityError`]; nothing in the directory is changed.
    pub fn load(config: &Config) -> Result<Option<Identity>, IdentityError> {
        let dir = &config.data_dir;
        let io = |source| IdentityError::Io { path: dir.clone(), source };
        let path = dir.join(FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                #[derive(Deserialize)]
                struct Version {
                    format: u32,
                }
                let version: Version = serde_json::from_slice(&bytes)
                    .map_err(|source| IdentityError::Corrupt { path: path.clone(), source })?;
                if version.format != FORMAT {
                    return Err(IdentityError::Format { path: dir.clone(), found: version.format });
                }
                let found: Identity = serde_json::from_slice(&bytes)
                    .map_err(|source| IdentityError::Corrupt { path: path.clone(), source })?;
                found.check(config, dir)?;
                Ok(Some(found))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match std::fs::read_dir(dir) {
                Ok(entries) => match entries.flatten().find(|e| !is_set_aside(&e.file_name())) {
                    Some(_) => Err(IdentityError::Foreign { path: dir.clone() }),
                    None => Ok(None),
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(io(e)),
            },
            Err(e) => Err(io(e)),
        }
    }

    /// Binds the new directory `config.data_dir` to this node: creates it and writes a fresh
    /// identity (with a random directory id) with `controller_incarnation`.
    ///
    /// # Errors
    /// I/O errors; a directory that is not empty.
    pub fn create(config: &Config, controller_incarnation: u32) -> Result<Identity, IdentityError> {
        let dir = &config.data_dir;
        let io = |source| IdentityError::Io { path: dir.clone(), source };
        std::fs::create_dir_all(dir).map_err(io)?;
        if std::fs::read_dir(dir).map_err(io)?.flatten().any(|e| !is_set_aside(&e.file_name())) {
            return Err(IdentityError::Foreign { path: dir.clone() });
        }
        let id = Identity {
            format: FORMAT,
            node_id: config.node_id,
            cluster_id: None,
            initial_cluster: config.initial_cluster.clone(),
            directory_id: rand::random::<u64>().max(1),
            controller_incarnation,
        };
        write_atomically(dir, &dir.join(FILE), &id).map_err(io)?;
        Ok(id)
    }

    /// Loads the identity, creating it (controller incarnation 1) for a new directory. For
    /// tests and tools; a node checks with its peers before creating one.
    ///
    /// # Errors
    /// As [`Identity::load`] and [`Identity::create`].
    pub fn load_or_create(config: &Config) -> Result<Identity, IdentityError> {
        match Identity::load(config)? {
            Some(id) => Ok(id),
            None => Identity::create(config, crate::controller::state::CONTROLLER_INCARNATION),
        }
    }

    fn check(&self, config: &Config, dir: &Path) -> Result<(), IdentityError> {
        let path = dir.to_path_buf();
        if self.node_id != config.node_id {
            return Err(IdentityError::OtherNode { path, found: self.node_id, configured: config.node_id });
        }
        if self.initial_cluster != config.initial_cluster {
            return Err(IdentityError::Contradiction {
                path,
                what: "initial cluster",
                found: members_text(&self.initial_cluster),
                configured: members_text(&config.initial_cluster),
            });
        }
        Ok(())
    }

    /// Records the cluster id this node learned from the controller (once; the file is
    /// rewritten atomically). Returns false when another id is recorded already.
    ///
    /// # Errors
    /// I/O errors (the file is then unchanged).
    pub fn record_cluster_id(&mut self, config: &Config, cluster_id: &str) -> Result<bool, IdentityError> {
        match &self.cluster_id {
            Some(known) => Ok(known == cluster_id),
            None => {
                let dir = &config.data_dir;
                let recorded = Identity { cluster_id: Some(cluster_id.to_string()), ..self.clone() };
                write_atomically(dir, &dir.join(FILE), &recorded)
                    .map_err(|source| IdentityError::Io { path: dir.clone(), source })?;
                *self = recorded;
                Ok(true)
            }
        }
    }

    /// Where the RocksDB files live.
    pub fn db_dir(config: &Config) -> PathBuf {
        config.data_dir.join("db")
    }

    /// Moves this directory's database and identity aside (into `damaged-<unix time>/` inside
    /// the data directory, so a mounted volume stays in place): the data directory is then new
    /// to this node, which starts as the replacement of its damaged self. Returns where.
    ///
    /// # Errors
    /// I/O errors (nothing is deleted).
    pub fn set_aside(config: &Config) -> Result<PathBuf, IdentityError> {
        let dir = &config.data_dir;
        let io = |source| IdentityError::Io { path: dir.clone(), source };
        let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let aside = dir.join(format!("{SET_ASIDE}{secs}"));
        std::fs::create_dir_all(&aside).map_err(io)?;
        for entry in std::fs::read_dir(dir).map_err(io)?.flatten() {
            if !is_set_aside(&entry.file_name()) {
                std::fs::rename(entry.path(), aside.join(entry.file_name())).map_err(io)?;
            }
        }
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        Ok(aside)
    }
}

/// Prefix of the directories [`Identity::set_aside`] moves damaged data into.
const SET_ASIDE: &str = "damaged-";

fn is_set_aside(name: &std::ffi::OsStr) -> bool {
    name.to_str().is_some_and(|n| n.starts_with(SET_ASIDE))
}

fn members_text(m: &BTreeMap<u64, NodeAddress>) -> String {
    m.iter().map(|(id, a)| format!("{id}={a}")).collect::<Vec<_>>().join(",")
}

fn write_atomically(dir: &Path, path: &Path, id: &Identity) -> std::io::Result<()> {
    let tmp = dir.join(format!("{FILE}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&serde_json::to_vec_pretty(id).map_err(std::io::Error::other)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Args, FileConfig};

    const C3: &str = "1=127.0.0.1:7701,2=127.0.0.1:7702,3=127.0.0.1:7703";

    fn config(dir: &Path, node: u64, cluster: &str) -> Config {
        let args = Args {
            node_id: Some(node),
            data_dir: Some(dir.to_path_buf()),
            initial_cluster: Some(cluster.into()),
            ..Args::default()
        };
        Config::from_layers(FileConfig::default(), &args).expect("valid config")
    }

    #[test]
    fn binds_directory_to_node_and_rejects_another_node() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("n1");
        assert_eq!(Identity::load(&config(&dir, 1, C3)).expect("new directory"), None);
        let first = Identity::load_or_create(&config(&dir, 1, C3)).expect("first start");
        assert_ne!(first.directory_id, 0);
        let again = Identity::load_or_create(&config(&dir, 1, C3)).expect("restart");
        assert_eq!(first, again);
        let before = std::fs::read(dir.join(FILE)).expect("identity file");
        let err = Identity::load_or_create(&config(&dir, 2, C3)).expect_err("other node");
        assert!(err.to_string().contains("belongs to node 1"), "{err}");
        assert_eq!(std::fs::read(dir.join(FILE)).expect("still there"), before, "nothing changed");
        let err =
            Identity::load_or_create(&config(&dir, 1, "1=127.0.0.1:7701,2=127.0.0.1:7702")).expect_err("other cluster");
        assert!(err.to_string().contains("initial cluster"), "{err}");
        std::fs::write(dir.join(FILE), br#"{"format":1,"node_id":1}"#).expect("write old format");
        let err = Identity::load_or_create(&config(&dir, 1, C3)).expect_err("old format");
        assert!(err.to_string().contains("incompatible"), "{err}");
    }

    #[test]
    fn the_cluster_id_is_recorded_once_and_survives_a_restart() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cfg = config(&tmp.path().join("a"), 1, C3);
        let mut id = Identity::load_or_create(&cfg).expect("first start");
        assert_eq!(id.cluster_id, None, "not known before the controller bootstrapped");
        assert!(id.record_cluster_id(&cfg, "c0ffee").expect("record"));
        assert!(id.record_cluster_id(&cfg, "c0ffee").expect("same id again"));
        let before = std::fs::read(tmp.path().join("a").join(FILE)).expect("identity file");
        assert!(!id.record_cluster_id(&cfg, "other").expect("another id"), "another id is not recorded");
        assert_eq!(std::fs::read(tmp.path().join("a").join(FILE)).expect("identity file"), before);
        let again = Identity::load_or_create(&cfg).expect("restart");
        assert_eq!(again.cluster_id.as_deref(), Some("c0ffee"));
        assert_eq!(again, id);
    }

    #[test]
    fn refuses_a_non_empty_directory_without_identity() {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::write(tmp.path().join("something"), b"x").expect("write");
        let err = Identity::load_or_create(&config(tmp.path(), 1, C3)).expect_err("foreign dir");
        assert!(matches!(err, IdentityError::Foreign { .. }), "{err}");
    }
}
