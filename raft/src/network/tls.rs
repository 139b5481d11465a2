//! Outgoing peer connections over TLS: a connector that dials TCP, then hands the socket to
//! rustls with the node's *current* client configuration (CA and node certificate), so a
//! certificate rotated on disk is used from the next connection on while established ones keep
//! running.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::net::{TcpSocket, TcpStream};
use tonic::codegen::http::Uri;

/// Where the current TLS client configuration comes from (re-read by the node on rotation).
pub type ClientTlsSource = Arc<dyn Fn() -> Arc<rustls::ClientConfig> + Send + Sync>;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A tower connector for tonic channels: TCP (bound to `local_address` if set) then TLS, the
/// server checked against the host of the address dialled.
#[derive(Clone)]
pub struct TlsConnector {
    pub(crate) tls: ClientTlsSource,
    pub(crate) local_address: Option<IpAddr>,
    pub(crate) connect_timeout: Duration,
}

impl tower_service::Service<Uri> for TlsConnector {
    type Response = TokioIo<tokio_rustls::client::TlsStream<TcpStream>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let host = uri.host().ok_or("peer address without a host")?.to_string();
            let port = uri.port_u16().ok_or("peer address without a port")?;
            let bare = host.trim_start_matches('[').trim_end_matches(']').to_string();
            let tcp = tokio::time::timeout(this.connect_timeout, dial(&bare, port, this.local_address))
                .await
                .map_err(|_| format!("connecting to {host}:{port} timed out"))??;
            tcp.set_nodelay(true)?;
            let name = ServerName::try_from(bare).map_err(|e| format!("peer host {host}: {e}"))?;
            let tls = tokio_rustls::TlsConnector::from((this.tls)());
            let stream = tokio::time::timeout(this.connect_timeout * 4, tls.connect(name, tcp))
                .await
                .map_err(|_| format!("TLS handshake with {host}:{port} timed out"))??;
            Ok(TokioIo::new(stream))
        })
    }
}

async fn dial(host: &str, port: u16, local: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let mut last = None;
    for addr in tokio::net::lookup_host((host, port)).await? {
        let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
        if let Some(ip) = local.filter(|ip| ip.is_ipv4() == addr.is_ipv4()) {
            socket.bind(SocketAddr::new(ip, 0))?;
        }
        match socket.connect(addr).await {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other(format!("{host} resolves to no address"))))
}
