//! The `cairn` CLI against real node processes, as a kcat/rpk user would drive it: binary data
//! in and out byte for byte, keyed and JSON input, a partial failure reported record by record,
//! reads by time, the last N records, per-partition errors and kcat-style formats.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{cli, cli_bytes, wait_for_topic, Cluster};
use serde_json::Value;

fn json_lines(out: &str) -> Vec<Value> {
    out.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect()
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// The timestamp of partition 0's last record of `topic`.
fn last_timestamp(b: &[String], topic: &str) -> i64 {
    let (code, out, err) = cli(b, &["consume", topic, "-p", "0", "--offset", "-1", "--format", "%T"], None);
    assert_eq!(code, 0, "{err}");
    out.trim().parse().unwrap_or_else(|_| panic!("not a timestamp: {out:?}"))
}

/// Waits until this host's clock reads past `ms`.
async fn clock_past(ms: i64) {
    while now_ms() <= ms {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut f = std::fs::File::open("/dev/urandom").expect("urandom");
    let mut b = vec![0u8; n];
    std::io::Read::read_exact(&mut f, &mut b).expect("read urandom");
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_records_go_in_and_come_out_byte_for_byte() {
    let cluster = Cluster::start(3, "bin:1");
    wait_for_topic(&cluster.client().await, "bin").await;
    let b = cluster.brokers();

    // One record from a file of random bytes.
    let blob = random_bytes(200 * 1024);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("blob");
    std::fs::write(&path, &blob).expect("write blob");
    let path = path.to_string_lossy().into_owned();
    let (code, out, err) = cli(&b, &["--json", "produce", "bin", "--value-file", &path], None);
    assert_eq!(code, 0, "{err}");
    let acks = json_lines(&out);
    assert_eq!(acks.len(), 1, "{out}");
    let offset = acks[0]["offset"].as_u64().expect("offset").to_string();
    let (code, got, err) = cli_bytes(&b, &["consume", "bin", "-p", "0", "--offset", &offset, "-n", "1", "--raw"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(got == blob, "the value read back differs from the file ({} bytes, {} read)", blob.len(), got.len());

    // Null-delimited records holding newlines and arbitrary bytes.
    let records: Vec<Vec<u8>> = (0..5).map(|i| [random_bytes(100).as_slice(), b"\n", &[i]].concat()).collect();
    let records: Vec<Vec<u8>> = records.into_iter().map(|r| r.into_iter().map(|c| c.max(1)).collect()).collect();
    let mut input = Vec::new();
    for r in &records {
        input.extend_from_slice(r);
        input.push(0);
    }
    let (code, _, err) = cli_bytes(&b, &["produce", "bin", "-D", "\\0"], &input);
    assert_eq!(code, 0, "{err}");
    let from = (offset.parse::<u64>().expect("offset") + 1).to_string();
    let (code, got, err) = cli_bytes(&b, &["consume", "bin", "--offset", &from, "--format", "%s\\0"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(got == input, "null-delimited records did not come back byte for byte");

    // Base64 and hex input.
    let (code, _, err) = cli(&b, &["produce", "bin", "--encoding", "base64"], Some("AP8=\n"));
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = cli(&b, &["produce", "bin", "--encoding", "hex"], Some("00ff\n"));
    assert_eq!(code, 0, "{err}");
    let (code, got, err) = cli_bytes(&b, &["consume", "bin", "--offset", "-2", "--raw"], &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(got, vec![0, 0xff, 0, 0xff]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_json_input_formats_and_a_partial_failure_are_reported_record_by_record() {
    let cluster = Cluster::start(3, "kv:2");
    wait_for_topic(&cluster.client().await, "kv").await;
    let b = cluster.brokers();

    // KEY<TAB>VALUE lines, then JSON lines with headers and an explicit partition.
    let (code, _, err) = cli(&b, &["produce", "kv", "-p", "0", "-K", "\\t"], Some("order-1\tplaced\norder-2\tpaid\n"));
    assert_eq!(code, 0, "{err}");
    let input = "{\"key\":\"order-3\",\"value\":\"shipped\",\"headers\":{\"trace\":\"t-1\"},\"partition\":0}\n";
    let (code, _, err) = cli(&b, &["produce", "kv", "--input", "json"], Some(input));
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = cli(&b, &["consume", "kv", "-p", "0", "--format", "%k=%s;%h\\n"], None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "order-1=placed;\norder-2=paid;\norder-3=shipped;trace=t-1\n");

    // A bad line and an oversized record between good ones: the good ones are written and
    // reported with their offsets, the others named by their input record number; exit 1.
    let big = "x".repeat(2 * 1024 * 1024);
    let input = format!("first\n{big}\nthird\n");
    let (code, out, err) = cli(&b, &["--json", "produce", "kv", "-p", "1"], Some(&input));
    assert_eq!(code, 1, "a partial failure must not exit 0: {err}");
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 3, "one line per input record, in input order: {out}");
    assert_eq!(lines[0]["record"], 1);
    assert!(lines[0]["offset"].is_u64(), "{out}");
    assert_eq!(lines[1]["record"], 2);
    assert!(lines[1]["error"].is_string(), "{out}");
    assert_eq!(lines[2]["record"], 3);
    assert!(lines[2]["offset"].is_u64(), "{out}");
    assert!(err.contains("record 2"), "stderr names the record not written: {err}");
    assert!(err.contains("1 record(s) not written") && err.contains("2 written"), "{err}");
    let (code, out, err) = cli(&b, &["consume", "kv", "-p", "1", "--format", "%s\\n"], None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "first\nthird\n", "exactly the acknowledged records are in the partition");

    // A JSON line that is not a record: refused with its number, the rest written.
    let (code, _, err) = cli(&b, &["produce", "kv", "--input", "json"], Some("{\"value\":\"a\"}\n{\"valu\":\"b\"}\n"));
    assert_eq!(code, 1);
    assert!(err.contains("record 2") && err.contains("unknown field"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_by_time_last_n_and_per_partition_errors() {
    let cluster = Cluster::start(3, "tm:2");
    wait_for_topic(&cluster.client().await, "tm").await;
    let b = cluster.brokers();
    let (code, _, err) = cli(&b, &["produce", "tm", "-p", "0"], Some("a\nb\nc\n"));
    assert_eq!(code, 0, "{err}");
    // Timestamps are set by the broker at append (this host's clock). Each boundary is one
    // past the newest record's timestamp, and the next batch is sent only once the clock has
    // passed it, so it lands strictly after.
    let middle = last_timestamp(&b, "tm") + 1;
    clock_past(middle).await;
    let (code, _, err) = cli(&b, &["produce", "tm", "-p", "0"], Some("d\ne\n"));
    assert_eq!(code, 0, "{err}");
    let after = last_timestamp(&b, "tm") + 1;
    clock_past(after).await;
    let (code, _, err) = cli(&b, &["produce", "tm", "-p", "0"], Some("f\n"));
    assert_eq!(code, 0, "{err}");

    let fmt = ["--format", "%s"];
    let at = format!("@{middle}");
    let (code, out, err) = cli(&b, &[&["consume", "tm", "-p", "0", "--offset", &at][..], &fmt[..]].concat(), None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "def");
    let until = format!("@{after}");
    let args = [&["consume", "tm", "-p", "0", "--offset", &at, "--until", &until][..], &fmt[..]].concat();
    let (code, out, err) = cli(&b, &args, None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "de");
    let rfc = chrono_like(middle);
    let (code, out, err) =
        cli(&b, &[&["consume", "tm", "-p", "0", "--offset", &format!("@{rfc}")][..], &fmt[..]].concat(), None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "def", "an RFC 3339 time ({rfc}) reads like the same time in ms");
    let (code, out, err) = cli(&b, &[&["consume", "tm", "-p", "0", "--offset", "-2"][..], &fmt[..]].concat(), None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "ef");
    let (code, out, err) = cli(&b, &[&["consume", "tm", "-p", "0", "--offset", "-100"][..], &fmt[..]].concat(), None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "abcdef", "-N beyond the log start reads from the log start");

    // Offset 4 exists in partition 0 but is past the end of the empty partition 1: partition 0
    // is read, partition 1 is reported, the exit code says not everything was read.
    let (code, out, err) = cli(&b, &[&["consume", "tm", "--offset", "4"][..], &fmt[..]].concat(), None);
    assert_eq!(code, 1, "{err}");
    assert_eq!(out, "ef");
    assert!(
        err.contains("partition 1") && err.contains("past the end") && err.contains("[OFFSET_OUT_OF_RANGE]"),
        "{err}"
    );
    assert!(err.contains("1 of 2 partition(s) could not be read"), "{err}");

    // Bad input: a clear error, nothing read.
    for (args, want) in [
        (vec!["consume", "tm", "-p", "7"], "UNKNOWN_PARTITION"),
        (vec!["consume", "tm", "--offset", "@yesterday"], "RFC 3339"),
        (vec!["consume", "tm", "--offset", "-0"], "positive count"),
        (vec!["consume", "tm", "--format", "%q"], "unknown placeholder %q"),
    ] {
        let (code, out, err) = cli(&b, &args, None);
        assert_ne!(code, 0, "{args:?} succeeded");
        assert!(out.is_empty(), "{args:?} printed records: {out}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

/// `ms` as an RFC 3339 UTC time with milliseconds.
fn chrono_like(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .expect("a time in range")
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[test]
fn every_verb_shows_examples_and_completions_need_no_cluster() {
    // An address nothing listens on: none of this may need a cluster.
    let nowhere = ["127.0.0.1:1".to_string()];
    for verb in [
        vec!["--help"],
        vec!["produce", "--help"],
        vec!["consume", "--help"],
        vec!["topic", "--help"],
        vec!["group", "--help"],
        vec!["cluster", "--help"],
        vec!["node", "--help"],
        vec!["replica", "--help"],
        vec!["bench", "--help"],
    ] {
        let (code, out, err) = cli(&nowhere, &verb, None);
        assert_eq!(code, 0, "{verb:?}: {err}");
        assert!(out.contains("Examples:"), "{verb:?} shows no examples: {out}");
    }
    for (shell, marker) in [("bash", "complete -F"), ("zsh", "#compdef cairn"), ("fish", "complete -c cairn")] {
        let (code, out, err) = cli(&nowhere, &["completions", shell], None);
        assert_eq!(code, 0, "{shell}: {err}");
        assert!(out.contains(marker) && out.contains("consume"), "{shell}: {}", &out[..out.len().min(300)]);
    }
    let (code, _, err) = cli(&nowhere, &["completions", "tcsh"], None);
    assert_ne!(code, 0);
    assert!(err.contains("possible values"), "{err}");
}
