//! `cairn-node`: parse flags → load config → init tracing → `server::run`.

use std::process::ExitCode;

use cairn_node::config::{Args, Config};
use cairn_node::identity::Identity;
use cairn_node::{listener, server, telemetry};
use clap::Parser;

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match Config::load(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cairn-node: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("cairn-worker").build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cairn-node: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The OTLP exporter's gRPC client is built inside the runtime.
    let _telemetry = {
        let _in_runtime = runtime.enter();
        let otlp = config.otlp_endpoint.as_deref().map(|endpoint| telemetry::Otlp {
            endpoint,
            node_id: config.node_id,
            cluster_id: Identity::load(&config).ok().flatten().and_then(|i| i.cluster_id),
        });
        telemetry::init(&config.log, otlp)
    };
    let result = runtime.block_on(async {
        let listeners = listener::open(&config)?;
        server::run(config, listeners, shutdown_signal()).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("cairn-node: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on the first SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGTERM; only Ctrl-C stops the node");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
    }
}
