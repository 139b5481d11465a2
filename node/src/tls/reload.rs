//! Certificate rotation: the files are read again on SIGHUP, and when one of them changes
//! (size or modification time, checked every 2 s). A reading that fails keeps the material in
//! use and logs why; a good one replaces it for every new connection.

use std::time::Duration;

use super::{material, TlsState};

const CHECK_EVERY: Duration = Duration::from_secs(2);

/// Runs until aborted.
pub async fn run(tls: TlsState) {
    let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGHUP; certificate files are still re-read when they change");
            None
        }
    };
    let mut tick = tokio::time::interval(CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The stamp last tried, so a broken file is reported once, not every 2 s.
    let mut tried = tls.material().stamp.clone();
    loop {
        let signalled = tokio::select! {
            _ = tick.tick() => false,
            Some(()) = async { match hangup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => true,
        };
        let now = material::stamp(&tls.files);
        if !signalled && now == tried {
            continue;
        }
        tried = now;
        let (files, members) = (tls.files.clone(), tls.members.clone());
        match tokio::task::spawn_blocking(move || material::load(&files, &members)).await {
            Ok(Ok(m)) => {
                tls.swap(m);
                tracing::info!(cert = %tls.files.cert.display(), "TLS certificates re-read; new connections use them");
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "re-reading the TLS certificates failed; still using the previous ones")
            }
            Err(e) => tracing::error!(error = %e, "re-reading the TLS certificates did not finish"),
        }
    }
}
