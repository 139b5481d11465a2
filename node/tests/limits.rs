//! Limits on the client listener: open connections, and per-principal byte-rate quotas that
//! slow a principal down to its rate and tell it how long it was held back.

mod common;

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use cairn_client::{OffsetSpec, Record, RecordExt};
use common::Cluster;

fn config_file(dir: &std::path::Path, text: &str) -> String {
    let path = dir.join("node.toml");
    std::fs::write(&path, text).expect("write config");
    path.to_string_lossy().into_owned()
}

/// Whether the server closed `s` (EOF) within `within`; false when it stayed open.
fn closed_by_server(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).expect("timeout");
    let mut b = [0u8; 64];
    match s.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => matches!(e.kind(), std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_are_closed_and_a_freed_slot_is_reused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config_file(dir.path(), "[limits]\nclient_connections_max = 3\n");
    // One node: quotas are per node, and a leader elected anew mid-test (as under a loaded
    // machine's start-up elections) would serve the rest from a fresh clock.
    let cluster = Cluster::start_with(1, "events:1", &["--config", &config]);
    let client = cluster.client().await;
    common::wait_for_leaders(&client).await;
    drop(client);
    let addr = cluster.addr(1);
    // Idle client connections from before are gone once the client is dropped; hold 3 now.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut held = Vec::new();
    while held.len() < 3 {
        let mut s = TcpStream::connect(&addr).expect("connect");
        if closed_by_server(&mut s, Duration::from_millis(300)) {
            assert!(Instant::now() < deadline, "the earlier client's connections never closed");
            held.clear();
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        held.push(s);
    }
    let mut fourth = TcpStream::connect(&addr).expect("the kernel accepts");
    assert!(closed_by_server(&mut fourth, Duration::from_secs(2)), "a 4th connection is closed at once");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cluster.log_of(1).contains("refused a client connection") {
        assert!(Instant::now() < deadline, "node 1 did not log the refused connection");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // One closes: its slot serves the next one.
    held.pop();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut next = TcpStream::connect(&addr).expect("connect");
    assert!(!closed_by_server(&mut next, Duration::from_millis(500)), "a freed slot is given to a new connection");
    drop(next);
    drop(held);
    // Other nodes were never full; node 1 serves again once the raw connections are gone.
    let client = cluster.client().await;
    client.produce("events", 0, vec![Record::from_value("x")]).await.expect("produce");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_principal_over_its_byte_rate_is_slowed_to_it_and_told_so() {
    const RATE: u64 = 200_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config_file(
        dir.path(),
        &format!("[quotas]\nproduce_bytes_per_second = {RATE}\nfetch_bytes_per_second = {RATE}\n"),
    );
    // One node: quotas are per node, and a leader elected anew mid-test (as under a loaded
    // machine's start-up elections) would serve the rest from a fresh clock.
    let cluster = Cluster::start_with(1, "events:1", &["--config", &config]);
    let client = cluster.client().await;
    common::wait_for_leaders(&client).await;
    // 1 MB in 50 KB batches: the first second's worth is the burst, the rest comes at the rate.
    let batch: Vec<Record> = (0..5).map(|_| Record::from_value(vec![b'x'; 10_000])).collect();
    let (batches, total) = (20u64, 20 * 50_000u64);
    let start = Instant::now();
    let mut throttled_ms = 0u64;
    for _ in 0..batches {
        let r = client.produce("events", 0, batch.clone()).await.expect("produce");
        throttled_ms += u64::from(r.throttle_time_ms);
    }
    let took = start.elapsed();
    // The first second of bytes is the burst, and the last batch's own bytes are charged after
    // it was let through: the rest took at least its time at the rate (10% for timer slack).
    let floor = Duration::from_secs_f64((total - RATE - 50_000) as f64 / RATE as f64 * 0.9);
    eprintln!("produced {total} bytes in {took:?} at a quota of {RATE} bytes/s; throttled {throttled_ms} ms in all");
    assert!(took >= floor, "produced {total} bytes in {took:?}, faster than the quota allows ({floor:?})");
    assert!(throttled_ms > 0, "the answers say they were held back");
    assert_eq!(client.list_offsets("events", 0, OffsetSpec::Latest).await.expect("offsets").offset, batches * 5);

    // Reading it back is held to the fetch rate the same way.
    let start = Instant::now();
    let (mut offset, mut read, mut fetch_throttled) = (0u64, 0u64, 0u64);
    while offset < batches * 5 {
        let r = client.fetch("events", 0, offset, 50_000, 0).await.expect("fetch");
        fetch_throttled += u64::from(r.throttle_time_ms);
        read += r.records.iter().map(|f| f.value.len() as u64).sum::<u64>();
        offset = r.records.last().map_or(offset, |f| f.offset + 1);
    }
    let took = start.elapsed();
    eprintln!("fetched {read} bytes in {took:?}; throttled {fetch_throttled} ms in all");
    assert!(took >= floor, "fetched {read} bytes in {took:?}, faster than the quota allows ({floor:?})");
    assert!(fetch_throttled > 0);
}
