//! Obtaining the listening socket: bind the configured address, or adopt an inherited one.

use crate::config::{Config, MetricsListen};

/// The listener the server will serve on.
///
/// # Errors
/// Bind failures (address in use, permission), or an inherited descriptor that is not a
/// listening TCP socket.
pub fn open(config: &Config) -> std::io::Result<tokio::net::TcpListener> {
    let std_listener = match config.listen_fd {
        Some(fd) => adopt(fd)?,
        None => std::net::TcpListener::bind(config.listen_addr)?,
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
