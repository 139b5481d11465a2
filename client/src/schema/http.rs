//! Just enough HTTP/1.1 for a registry on a private network: one request per connection,
//! `http://` only, JSON in and out, Confluent's error bodies turned into [`SchemaError`]s.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::SchemaError;

const TIMEOUT: Duration = Duration::from_secs(30);
/// Largest answer read (a schema is at most 1 MiB; lists can be longer).
const ANSWER_BYTES_MAX: u64 = 16 << 20;

#[derive(Clone, Debug)]
pub struct Base {
    host: String,
}

impl Base {
    pub fn parse(url: &str) -> Result<Base, SchemaError> {
        let host = url
            .strip_prefix("http://")
            .ok_or_else(|| SchemaError::Data(format!("registry URL {url:?}: only http://host:port is supported")))?
            .trim_end_matches('/');
        if host.is_empty() || host.contains('/') {
            return Err(SchemaError::Data(format!("registry URL {url:?}: expected http://host:port")));
        }
        Ok(Base { host: host.to_string() })
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, SchemaError> {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let exchange = async {
            let mut s = tokio::net::TcpStream::connect(&self.host).await?;
            let head = format!(
                "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAccept: application/vnd.schemaregistry.v1+json\r\n\
                 Content-Type: application/vnd.schemaregistry.v1+json\r\nContent-Length: {}\r\n\r\n",
                self.host,
                body.len()
            );
            s.write_all(head.as_bytes()).await?;
            s.write_all(body.as_bytes()).await?;
            let mut raw = Vec::new();
            s.take(ANSWER_BYTES_MAX).read_to_end(&mut raw).await?;
            Ok::<Vec<u8>, std::io::Error>(raw)
        };
        let raw = tokio::time::timeout(TIMEOUT, exchange)
            .await
            .map_err(|_| SchemaError::Unreachable(format!("{method} {path} on {}: timed out", self.host)))?
            .map_err(|e| SchemaError::Unreachable(format!("{method} {path} on {}: {e}", self.host)))?;
        let text = String::from_utf8_lossy(&raw);
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| SchemaError::Unreachable(format!("{} answered without HTTP", self.host)))?;
        let status: u16 = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        let value: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        if status == 200 {
            return Ok(value);
        }
        Err(SchemaError::Registry {
            code: value["error_code"].as_u64().and_then(|c| u32::try_from(c).ok()).unwrap_or(u32::from(status)),
            message: value["message"].as_str().map_or_else(|| format!("HTTP {status}: {body}"), str::to_string),
        })
    }
}

/// A subject as a path segment.
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
