//! Accepting TLS connections: the accept loop only accepts; each handshake runs on its own task
//! (at most `HANDSHAKES_MAX` at once, each bounded in time), and finished connections reach
//! tonic through a bounded channel. A refused handshake (no certificate, another CA, a client
//! certificate on the peer listener) is logged, at most once a second per listener.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;

use super::{Side, TlsState};
use crate::admission::{Admitted, Gate};

const HANDSHAKES_MAX: usize = 256;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections handshaken but not yet taken by the server.
const READY_MAX: usize = 64;

/// A TLS connection holding its connection slot.
pub type Accepted = Admitted<TlsStream<TcpStream>>;

/// The TLS connections of `listener`, accepted with the current configuration for `side`; with
/// a `gate`, only while it has a free slot (taken before the handshake).
pub fn incoming(
    listener: TcpListener,
    tls: TlsState,
    side: Side,
    gate: Option<Gate>,
) -> ReceiverStream<std::io::Result<Accepted>> {
    let (tx, rx) = mpsc::channel(READY_MAX);
    tokio::spawn(accept_loop(listener, tls, side, gate, tx));
    ReceiverStream::new(rx)
}

async fn accept_loop(
    listener: TcpListener,
    tls: TlsState,
    side: Side,
    gate: Option<Gate>,
    tx: mpsc::Sender<std::io::Result<Accepted>>,
) {
    let slots = Arc::new(Semaphore::new(HANDSHAKES_MAX));
    let log = Arc::new(RefusalLog::default());
    loop {
        let accepted = tokio::select! {
            () = tx.closed() => return,
            a = listener.accept() => a,
        };
        let (tcp, remote) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors and the like: keep serving once it passes.
                tracing::warn!(listener = side.name(), error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Over the connection limit: closed before any handshake work.
        let connection = match &gate {
            Some(g) => match g.admit(Some(remote)) {
                Some(permit) => Some(permit),
                None => continue,
            },
            None => None,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            log.refused(side, remote, "too many TLS handshakes in progress");
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.server(side));
        let (tx, log) = (tx.clone(), log.clone());
        tokio::spawn(async move {
            let _slot = slot;
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    let _ = tx.send(Ok(Admitted::new(stream, connection))).await;
                }
                Ok(Err(e)) => log.refused(side, remote, &e.to_string()),
                Err(_) => log.refused(side, remote, "the TLS handshake did not finish in 10 s"),
            }
        });
    }
}

/// Logs refused connections, at most once a second (counting the others).
#[derive(Default)]
struct RefusalLog(crate::telemetry::EverySecond);

impl RefusalLog {
    fn refused(&self, side: Side, remote: std::net::SocketAddr, why: &str) {
        if let Some(more) = self.0.allow() {
            tracing::warn!(listener = side.name(), %remote, reason = %why, unlogged_since_last = more, "refused a TLS connection");
        }
    }
}
