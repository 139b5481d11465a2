//! A damaged replica's old data is kept until its rebuilt replica is in sync.
//!
//! The rebuilt incarnation shares the node's key space with the old one (every key starts with
//! the group id), so the old replica's keys must go before the new one starts. Before they do,
//! the node takes a RocksDB checkpoint of its database into the data directory (hard links: no
//! copy, and the files stay as they were while the database moves on). The checkpoint is
//! deleted once the rebuilt replica is a voter of its group, which its leader allows only after
//! it caught up, or once the group is no longer placed on this node. Until then an operator
//! can open it read-only with RocksDB's tools if the rebuild fails.
//!
//! ```text
//!  reconcile: damaged replica r of group g replaced ─► keep(g, r): checkpoint into
//!             <data_dir>/damaged-replica-g<g>-r<r>/ ─► delete r's keys, start the new incarnation
//!  sweep (every second): new incarnation is a voter, or g is gone here ─► delete the checkpoint
//! ```

use std::path::{Path, PathBuf};

use cairn_raft::{GroupId, ReplicaId};

use super::LocalGroups;

/// Prefix shared with the node's own set-aside data, so the identity check ignores it.
const PREFIX: &str = "damaged-replica-g";

fn dir_for(data_dir: &Path, group: GroupId, replica: ReplicaId) -> PathBuf {
    data_dir.join(format!("{PREFIX}{group}-r{replica:x}"))
}

/// The group and replica a kept checkpoint belongs to, from its directory name.
fn parse(name: &str) -> Option<(GroupId, ReplicaId)> {
    let rest = name.strip_prefix(PREFIX)?;
    let (g, r) = rest.split_once("-r")?;
    Some((g.parse().ok()?, ReplicaId::from_str_radix(r, 16).ok()?))
}

/// Keeps the data of damaged replica `replica` of `group` before it is deleted. A failure is
/// logged and the rebuild goes on: the damaged replica can no longer serve or vote either way.
pub async fn keep(groups: &LocalGroups, group: GroupId, replica: ReplicaId) {
    let (db, dir) = (groups.env().db.clone(), dir_for(&groups.env().config.data_dir, group, replica));
    let target = dir.clone();
    let done = tokio::task::spawn_blocking(move || {
        if target.exists() {
            std::fs::remove_dir_all(&target).map_err(|e| e.to_string())?;
        }
        db.checkpoint(&target).map_err(|e| e.to_string())
    })
    .await;
    match done {
        Ok(Ok(())) => tracing::warn!(
            group,
            replica = format_args!("{replica:#x}"),
            kept_in = %dir.display(),
            "damaged replica's data kept until its rebuilt replica is in sync"
        ),
        Ok(Err(e)) => {
            tracing::error!(group, error = %e, "could not keep the damaged replica's data; rebuilding anyway")
        }
        Err(e) => tracing::error!(group, error = %e, "keeping the damaged replica's data failed"),
    }
}

/// Deletes kept checkpoints whose group has a rebuilt local replica that is a voter now, or is
/// no longer placed here.
pub async fn sweep(groups: &LocalGroups) {
    let data_dir = groups.env().config.data_dir.clone();
    let Ok(entries) = std::fs::read_dir(&data_dir) else { return };
    let state = groups.state();
    let me = groups.env().me;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some((group, old)) = name.to_str().and_then(parse) else { continue };
        let placed = state.replicas_on(me).any(|(_, _, p)| p.group_id == group);
        let in_sync =
            groups.get(group).is_some_and(|g| g.replica_id() != old && g.membership().0.contains(&g.replica_id()));
        if placed && !in_sync {
            continue;
        }
        let why = if placed { "its rebuilt replica is in sync" } else { "the group is no longer placed here" };
        let path = entry.path();
        match tokio::task::spawn_blocking(move || std::fs::remove_dir_all(&path)).await {
            Ok(Ok(())) => tracing::info!(group, why, "deleted the damaged replica's kept data"),
            Ok(Err(e)) => tracing::warn!(group, error = %e, "could not delete the damaged replica's kept data"),
            Err(e) => tracing::warn!(group, error = %e, "deleting kept data failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_directory_names_round_trip() {
        let d = dir_for(Path::new("/data"), 42, 0x3_0000_0007);
        let name = d.file_name().and_then(|n| n.to_str()).expect("name");
        assert_eq!(parse(name), Some((42, 0x3_0000_0007)));
        assert!(name.starts_with("damaged-"), "the identity check must ignore it: {name}");
        assert_eq!(parse("damaged-1700000000"), None);
        assert_eq!(parse("damaged-replica-gx-r1"), None);
    }
}
