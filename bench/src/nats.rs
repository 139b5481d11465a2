//! NATS JetStream: a 3-server cluster with R3 file streams, and a minimal client (the text
//! protocol over TCP) that publishes with a reply inbox and completes on the JetStream ack.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use cairn_client::bench::{SendFuture, Target};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use crate::procs::Procs;

type Waiters = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Vec<u8>, String>>>>>;

/// One connection.
pub struct Conn {
    tx: mpsc::Sender<Vec<u8>>,
    waiters: Waiters,
    next: AtomicU64,
    inbox: String,
}

impl Conn {
    /// Connects, subscribes to a private inbox and waits for the server's PONG.
    ///
    /// # Errors
    /// Connection failures.
    pub async fn connect(addr: &str) -> anyhow::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (rd, mut wr) = stream.into_split();
        let mut rd = BufReader::new(rd);
        let mut info = String::new();
        rd.read_line(&mut info).await?;
        anyhow::ensure!(info.starts_with("INFO"), "unexpected greeting {info:?}");
        let inbox = format!("_INBOX.{:016x}", rand::random::<u64>());
        let hello = format!("CONNECT {{\"verbose\":false,\"pedantic\":false}}\r\nSUB {inbox}.* 1\r\nPING\r\n");
        wr.write_all(hello.as_bytes()).await?;
        let waiters: Waiters = Arc::default();
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(4096);
        let pong_tx = tx.clone();
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut buf = first;
                while let Ok(more) = rx.try_recv() {
                    buf.extend_from_slice(&more);
                }
                if wr.write_all(&buf).await.is_err() {
                    return;
                }
            }
        });
        let w = waiters.clone();
        let (ready_tx, ready_rx) = oneshot::channel();
        tokio::spawn(async move {
            let mut ready = Some(ready_tx);
            let mut line = String::new();
            loop {
                line.clear();
                if rd.read_line(&mut line).await.unwrap_or(0) == 0 {
                    break;
                }
                let l = line.trim_end();
                if l == "PING" {
                    let _ = pong_tx.send(b"PONG\r\n".to_vec()).await;
                } else if l == "PONG" {
                    if let Some(r) = ready.take() {
                        let _ = r.send(());
                    }
                } else if let Some(rest) = l.strip_prefix("MSG ") {
                    let parts: Vec<&str> = rest.split(' ').collect();
                    let len: usize = parts.last().and_then(|x| x.parse().ok()).unwrap_or(0);
                    let mut payload = vec![0u8; len + 2];
                    if rd.read_exact(&mut payload).await.is_err() {
                        break;
                    }
                    payload.truncate(len);
                    let id = parts.first().and_then(|s| s.rsplit('.').next()).and_then(|x| x.parse::<u64>().ok());
                    if let Some(tx) = id.and_then(|id| w.lock().unwrap_or_else(|p| p.into_inner()).remove(&id)) {
                        let ok = !payload.windows(8).any(|x| x == b"\"error\":");
                        let _ =
                            tx.send(if ok { Ok(payload) } else { Err(String::from_utf8_lossy(&payload).into_owned()) });
                    }
                } else if l.starts_with("-ERR") {
                    eprintln!("nats: {l}");
                }
            }
            // Connection gone: fail everything waiting.
            for (_, tx) in w.lock().unwrap_or_else(|p| p.into_inner()).drain() {
                let _ = tx.send(Err("connection closed".into()));
            }
        });
        tokio::time::timeout(Duration::from_secs(5), ready_rx).await??;
        Ok(Conn { tx, waiters, next: AtomicU64::new(1), inbox })
    }

    /// Publishes `payload` to `subject` and resolves with the reply (the JetStream ack).
    pub fn request(&self, subject: &str, payload: &[u8]) -> oneshot::Receiver<Result<Vec<u8>, String>> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.waiters.lock().unwrap_or_else(|p| p.into_inner()).insert(id, tx);
        let mut msg = format!("PUB {subject} {}.{id} {}\r\n", self.inbox, payload.len()).into_bytes();
        msg.extend_from_slice(payload);
        msg.extend_from_slice(b"\r\n");
        let sender = self.tx.clone();
        tokio::spawn(async move {
            let _ = sender.send(msg).await;
        });
        rx
    }
}

/// Publishes to `bench.<n>` round-robin over several connections and streams.
pub struct NatsTarget {
    pub conns: Vec<Conn>,
    pub streams: u32,
    pub next: AtomicU64,
}

impl Target for NatsTarget {
    fn send(&self, payload: Bytes) -> SendFuture {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let conn = &self.conns[n as usize % self.conns.len()];
        let rx = conn.request(&format!("bench.{}", n % u64::from(self.streams)), &payload);
        Box::pin(async move {
            match rx.await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(e),
                Err(_) => Err("dropped".into()),
            }
        })
    }
}

pub const CLIENT_PORTS: [u16; 3] = [4221, 4222, 4223];

/// Starts 3 servers; `fsync` sets `sync_interval: always`.
///
/// # Errors
/// Spawn failures.
pub fn start(bin: &Path, dir: &Path, fsync: bool) -> anyhow::Result<Procs> {
    let mut procs = Procs::default();
    for (i, port) in CLIENT_PORTS.iter().enumerate() {
        let routes: Vec<String> =
            (0..3).filter(|j| *j != i).map(|j| format!("nats-route://127.0.0.1:{}", 6221 + j)).collect();
        let sync = if fsync { "sync_interval: always" } else { "" };
        let conf = format!(
            "server_name: n{i}\nlisten: 127.0.0.1:{}\njetstream {{\n  store_dir: \"{}\"\n  {sync}\n}}\ncluster {{\n  name: bench\n  listen: 127.0.0.1:{}\n  routes: [{}]\n}}\n",
            port,
            dir.join(format!("n{i}")).display(),
            6221 + i,
            routes.join(", ")
        );
        let path = dir.join(format!("n{i}.conf"));
        std::fs::write(&path, conf)?;
        let mut cmd = Command::new(bin);
        cmd.arg("-c").arg(&path);
        procs.spawn(cmd, &dir.join(format!("n{i}.log")))?;
    }
    Ok(procs)
}

/// Creates `streams` R3 file streams `bench0..` over subjects `bench.<n>` (retries while the
/// cluster forms).
///
/// # Errors
/// The streams could not be created within a minute.
pub async fn create_streams(conn: &Conn, streams: u32) -> anyhow::Result<()> {
    for s in 0..streams {
        let cfg = format!(r#"{{"name":"bench{s}","subjects":["bench.{s}"],"num_replicas":3,"storage":"file"}}"#);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let r = tokio::time::timeout(
                Duration::from_secs(5),
                conn.request(&format!("$JS.API.STREAM.CREATE.bench{s}"), cfg.as_bytes()),
            )
            .await;
            match r {
                Ok(Ok(Ok(_))) => break,
                other if tokio::time::Instant::now() > deadline => anyhow::bail!("creating stream bench{s}: {other:?}"),
                _ => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    }
    Ok(())
}
