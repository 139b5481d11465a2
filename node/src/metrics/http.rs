//! The node's HTTP listener for operators and orchestrators: `/metrics` (Prometheus text
//! format), `/health/live` (the process answers) and `/health/ready` (the controller leader is
//! known and every replica the metadata places here has started or reported its failure).

use std::future::Future;
use std::sync::Arc;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use super::Metrics;
use crate::controller::Controller;
use crate::groups::LocalGroups;

/// Whether the node is ready to serve: `Err` says what it still waits for.
pub fn readiness(groups: &LocalGroups, controller: &Controller) -> Result<(), String> {
    if controller.leader().is_none() {
        return Err("no controller leader known".into());
    }
    let state = groups.state();
    if state.nodes.is_empty() {
        return Err("the cluster metadata is not known yet".into());
    }
    let stopped = groups.stopped_replicas();
    let me = groups.env().me;
    let waiting = state
        .replicas_on(me)
        .filter(|(_, _, p)| groups.get(p.group_id).is_none() && !stopped.iter().any(|s| s.group == p.group_id))
        .map(|(topic, partition, _)| format!("{topic}/{partition}"))
        .collect::<Vec<_>>();
    match waiting.as_slice() {
        [] => Ok(()),
        [first, ..] => Err(format!("{} replicas not started yet (e.g. {first})", waiting.len())),
    }
}

/// Serves until `shutdown` resolves.
///
/// # Errors
/// The listener failing.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    groups: Arc<LocalGroups>,
    controller: Arc<Controller>,
    registry: Arc<crate::registry::Registry>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move {
                    // Gathering reads every replica's state and RocksDB's properties: off the
                    // async workers.
                    match tokio::task::spawn_blocking(move || metrics.render()).await {
                        Ok(text) => ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], text).into_response(),
                        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("metrics failed: {e}\n")).into_response(),
                    }
                }
            }),
        )
        .route("/health/live", get(|| async { "live\n" }))
        .route(
            "/health/ready",
            get(move || {
                let (groups, controller) = (groups.clone(), controller.clone());
                async move {
                    match readiness(&groups, &controller) {
                        Ok(()) => (StatusCode::OK, "ready\n".to_string()),
                        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}\n")),
                    }
                }
            }),
        );
    // Everything else is the schema registry's (docs/schemas.md), answering in its own error
    // format for paths it does not know.
    let app = app
        .merge(crate::registry::http::router(registry))
        .fallback(|uri: axum::http::Uri| async move { crate::registry::http::not_found(&uri) });
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}
