//! Admission on the client listener: at most `[limits] client_connections_max` connections
//! open at once. A connection over the limit is closed as soon as it is accepted (before any
//! TLS handshake), and the node logs it at most once a second; one that closes frees its slot.
//! The peer listener is not limited here (only members get through its handshake).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::transport::server::Connected;

use crate::telemetry::EverySecond;

/// The client listener's connection slots.
#[derive(Clone)]
pub struct Gate {
    slots: Arc<Semaphore>,
    max: usize,
    refusals: Arc<EverySecond>,
}

impl Gate {
    pub fn new(max: usize) -> Gate {
        Gate { slots: Arc::new(Semaphore::new(max)), max, refusals: Arc::default() }
    }

    /// A slot for the connection from `remote`, or None (and a log line, at most once a
    /// second) when every slot is taken: the caller drops the connection.
    pub fn admit(&self, remote: Option<std::net::SocketAddr>) -> Option<OwnedSemaphorePermit> {
        match self.slots.clone().try_acquire_owned() {
            Ok(p) => Some(p),
            Err(_) => {
                if let Some(more) = self.refusals.allow() {
                    let remote = remote.map(|a| a.to_string()).unwrap_or_default();
                    tracing::warn!(%remote, max = self.max, unlogged_since_last = more, "refused a client connection: limits.client_connections_max connections are open");
                }
                None
            }
        }
    }
}

/// A connection holding its slot (if it needs one) until it is dropped.
pub struct Admitted<S> {
    inner: S,
    _slot: Option<OwnedSemaphorePermit>,
}

impl<S> Admitted<S> {
    pub fn new(inner: S, slot: Option<OwnedSemaphorePermit>) -> Admitted<S> {
        Admitted { inner, _slot: slot }
    }
}

impl<S: Connected> Connected for Admitted<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Admitted<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Admitted<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_taken_and_given_back() {
        let gate = Gate::new(2);
        let a = gate.admit(None).expect("first");
        let _b = gate.admit(None).expect("second");
        assert!(gate.admit(None).is_none(), "full");
        drop(a);
        assert!(gate.admit(None).is_some(), "a closed connection frees its slot");
    }
}
