//! Event-driven patterns on Cairn, each a runnable binary with an integration test against a
//! real three-node cluster (started by `cairn-testkit`):
//!
//! - [`saga`]: an order saga (order, inventory, payment and shipping services as separate
//!   processes) with compensating events; every step is a per-key conditional append, so a
//!   redelivered event never repeats a step.
//! - [`ledger`]: an event-sourced bank ledger; withdrawals and deposits are conditional appends
//!   on the account's key, so concurrent writers can never overdraw an account.
//! - [`projection`]: a CQRS read model in SQLite, with the consumed offsets in the same SQLite
//!   transaction as the projection (exactly-once effect without broker transactions).
//! - [`dlq`]: a consumer that retries a failing record with backoff, then routes it to
//!   `<topic>.dlq` with headers saying why and where it came from.
//!
//! docs/patterns.md explains each pattern and the guarantees it relies on.

pub mod dlq;
pub mod ledger;
pub mod log;
pub mod projection;
pub mod saga;

use std::time::Duration;

use cairn_client::{Client, ClientConfig};

/// The brokers of the local cluster (`deploy/local-cluster.sh`), as the `cairn` CLI defaults to.
pub const LOCAL_BROKERS: &str = "127.0.0.1:7701,127.0.0.1:7702,127.0.0.1:7703";

/// A client of `brokers` (comma-separated) with a retry budget that spans leader elections.
///
/// # Errors
/// No broker reachable.
pub async fn connect(brokers: &str) -> anyhow::Result<Client> {
    let mut cfg = ClientConfig::new(brokers.split(',').map(str::trim).filter(|b| !b.is_empty()));
    cfg.retry_deadline = Duration::from_secs(30);
    cfg.request_timeout = Duration::from_secs(10);
    Ok(Client::connect(cfg).await?)
}

/// Logs to stderr at `info` (or `RUST_LOG`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,cairn_client=warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}
