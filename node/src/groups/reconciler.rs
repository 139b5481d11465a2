//! Keeps the local replicas in line with the controller's metadata: on start (from the state
//! this node last applied) and after every change.

use std::sync::Arc;

use tokio::sync::watch;

use super::LocalGroups;
use crate::controller::state::{ClusterState, CONTROLLER_GROUP};

/// Runs until the metadata channel closes.
pub async fn run(groups: Arc<LocalGroups>, mut state: watch::Receiver<Arc<ClusterState>>) {
    let first = state.borrow_and_update().clone();
    groups.reconcile(&first).await;
    groups.remove_orphans(&first, &[CONTROLLER_GROUP]).await;
    loop {
        if state.changed().await.is_err() {
            return;
        }
        let s = state.borrow_and_update().clone();
        groups.reconcile(&s).await;
    }
}
