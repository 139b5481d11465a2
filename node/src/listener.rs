//! Obtaining the listening sockets: bind the configured addresses, or adopt inherited ones.

use crate::config::{Config, MetricsListen};

/// The two gRPC listeners of a node.
pub struct Listeners {
    /// The public API.
    pub client: tokio::net::TcpListener,
    /// Raft transport and node-internal calls.
    pub peer: tokio::net::TcpListener,
}

/// Binds (or adopts) the client and the peer listener.
///
/// # Errors
/// Bind failures (address in use, permission), or an inherited descriptor that is not a
/// listening TCP socket; the message names the listener.
pub fn open(config: &Config) -> anyhow::Result<Listeners> {
    let client = one(config.listen_fd, config.listen_addr)
        .map_err(|e| anyhow::anyhow!("cannot listen for clients on {}: {e}", config.listen_addr))?;
    let peer = one(config.peer_listen_fd, config.peer_listen_addr)
        .map_err(|e| anyhow::anyhow!("cannot listen for peers on {}: {e}", config.peer_listen_addr))?;
    Ok(Listeners { client, peer })
}

fn one(fd: Option<i32>, addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let std_listener = match fd {
        Some(fd) => adopt(fd)?,
        None => std::net::TcpListener::bind(addr)?,
    };
    std_listener.set_nonblocking(true)?;
    tokio::net::TcpListener::from_std(std_listener)
}

/// Takes ownership of an inherited listening socket (like systemd socket activation): a test
/// harness or supervisor binds port 0 itself and hands the socket over, so there is no window
/// in which another process can take the port.
#[allow(unsafe_code)]
fn adopt(fd: i32) -> std::io::Result<std::net::TcpListener> {
    use std::os::fd::FromRawFd;
    if fd < 3 {
        return Err(std::io::Error::other(format!("listening descriptor {fd} would adopt a standard stream")));
    }
    // SAFETY: the parent process passed `fd` as an open socket for this process's exclusive use;
    // nothing else in this process refers to it, so taking ownership cannot double-close.
    let l = unsafe { std::net::TcpListener::from_raw_fd(fd) };
    // Fails unless `fd` really is a bound socket.
    l.local_addr()?;
    Ok(l)
}

/// The metrics and health listener, if any. A derived default port that cannot be bound (in use)
/// is logged and skipped; a configured one is an error.
///
/// # Errors
/// Bind failures of a configured address; an inherited descriptor that is not a listening
/// TCP socket.
pub fn open_metrics(config: &Config) -> std::io::Result<Option<tokio::net::TcpListener>> {
    let std_listener = match config.metrics_listen {
        MetricsListen::Off => return Ok(None),
        MetricsListen::Fd(fd) => adopt(fd)?,
        MetricsListen::Addr { addr, explicit } => match std::net::TcpListener::bind(addr) {
            Ok(l) => l,
            Err(e) if !explicit => {
                tracing::warn!(%addr, error = %e, "cannot listen on the default metrics port; running without /metrics (set --metrics-listen)");
                return Ok(None);
            }
            Err(e) => return Err(std::io::Error::new(e.kind(), format!("metrics listener {addr}: {e}"))),
        },
    };
    std_listener.set_nonblocking(true)?;
    tokio::net::TcpListener::from_std(std_listener).map(Some)
}
