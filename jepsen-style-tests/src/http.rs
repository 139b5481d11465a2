//! A minimal HTTP/1.1 client for the nodes' HTTP listener (metrics, the schema registry): one
//! request per connection, the whole answer read. Enough for the suite; no HTTP crate needed.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A request without an answer.
#[derive(Debug)]
pub struct HttpError {
    pub why: String,
    /// Whether the request may have reached the server (false: the connection was refused).
    pub sent: bool,
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.why)
    }
}

impl std::error::Error for HttpError {}

/// `method path` with an optional JSON body to `addr`; the status and body. Connection and read
/// errors (a node down, starting) are errors; `timeout` bounds the whole exchange.
pub async fn request(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
    timeout: Duration,
) -> Result<(u16, String), HttpError> {
    let connected = tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| HttpError { why: format!("connecting to {addr}: timed out"), sent: false })?
        .map_err(|e| HttpError { why: format!("connecting to {addr}: {e}"), sent: false })?;
    tokio::time::timeout(timeout, exchange(connected, addr, method, path, body))
        .await
        .map_err(|_| HttpError { why: format!("{method} {path} on {addr}: no answer within {timeout:?}"), sent: true })?
        .map_err(|e| HttpError { why: format!("{method} {path} on {addr}: {e}"), sent: true })
}

async fn exchange(
    mut s: tokio::net::TcpStream,
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> anyhow::Result<(u16, String)> {
    let body = body.unwrap_or("");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/vnd.schemaregistry.v1+json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await?;
    s.write_all(body.as_bytes()).await?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| anyhow::anyhow!("no HTTP answer from {addr}"))?;
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    Ok((status, body.to_string()))
}
