//! The schema registry on real nodes: Confluent's REST API on every node's HTTP listener,
//! state that survives the registry leader's death and a full restart, refusals that change
//! nothing, and Confluent's own Python client against it.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cairn_client::schema::{AvroSerde, SchemaRegistryClient};
use cairn_client::{ErrorCode, OffsetSpec, Record, RecordExt};
use common::{cli, http_request, leader_of, Cluster};
use serde_json::{json, Value};

const V1: &str = r#"{"type":"record","name":"OrderPlaced","fields":[{"name":"order_id","type":"string"}]}"#;
const V2: &str = r#"{"type":"record","name":"OrderPlaced","fields":[{"name":"order_id","type":"string"},{"name":"amount","type":"long","default":0}]}"#;
const BAD: &str = r#"{"type":"record","name":"OrderPlaced","fields":[{"name":"order_id","type":"int"}]}"#;

fn body(schema: &str) -> String {
    json!({ "schema": schema }).to_string()
}

/// One request; the status and the JSON answer.
fn call(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    let (status, text) =
        http_request(addr, method, path, body).unwrap_or_else(|e| panic!("{method} http://{addr}{path}: {e}"));
    let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}"));
    (status, value)
}

/// Retries while the registry has no leader (an election, a load, the node starting): every
/// other answer is returned.
fn call_when_ready(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let answer = http_request(addr, method, path, body);
        if let Ok((status, text)) = &answer {
            let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
            if !(*status == 500 && v["error_code"].as_u64().is_some_and(|c| c == 50002 || c == 50003)) {
                return (*status, v);
            }
        }
        assert!(Instant::now() < deadline, "{method} {path} on {addr}: no registry within 60 s: {answer:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn registry_state_survives_a_leader_kill_and_a_full_restart() {
    let mut cluster = Cluster::start(3, "orders:1");
    let http = |c: &Cluster, id: u64| c.nodes[&id].metrics_addr;

    let (s, v) = call_when_ready(http(&cluster, 1), "POST", "/subjects/orders-value/versions", Some(&body(V1)));
    assert_eq!((s, &v), (200, &json!({"id": 1})));
    // Every node serves it (the others forward to the leader).
    for id in [2, 3] {
        let (s, v) = call_when_ready(http(&cluster, id), "GET", "/schemas/ids/1", None);
        assert_eq!(s, 200, "{v}");
        assert_eq!(
            serde_json::from_str::<Value>(v["schema"].as_str().unwrap_or("")).ok(),
            serde_json::from_str(V1).ok()
        );
    }
    // An incompatible schema: 409, and nothing changed.
    let (s, v) = call(http(&cluster, 3), "POST", "/subjects/orders-value/versions", Some(&body(BAD)));
    assert_eq!((s, v["error_code"].as_u64()), (409, Some(409)), "{v}");
    let (s, v) = call(http(&cluster, 2), "GET", "/subjects/orders-value/versions", None);
    assert_eq!((s, v), (200, json!([1])));
    let (s, v) = call(http(&cluster, 2), "PUT", "/config/orders-value", Some(r#"{"compatibility":"FULL"}"#));
    assert_eq!((s, v), (200, json!({"compatibility": "FULL"})));

    // The registry leader dies: another node takes over with the same state.
    let client = cluster.client().await;
    let leader = leader_of(&client, "__schemas", 0).await;
    cluster.kill(leader);
    let other = [1, 2, 3].into_iter().find(|id| *id != leader).unwrap_or(1);
    let (s, v) = call_when_ready(http(&cluster, other), "POST", "/subjects/orders-value/versions", Some(&body(V2)));
    assert_eq!((s, &v), (200, &json!({"id": 2})), "v2 after the leader's death");
    let (s, v) = call(http(&cluster, other), "GET", "/config/orders-value", None);
    assert_eq!((s, v), (200, json!({"compatibilityLevel": "FULL"})));
    cluster.restart(leader);

    // Every node down, then up again: the registry reads its state back.
    for id in [1, 2, 3] {
        cluster.kill(id);
    }
    for id in [1, 2, 3] {
        cluster.restart(id);
    }
    let (s, v) = call_when_ready(http(&cluster, leader), "GET", "/subjects/orders-value/versions", None);
    assert_eq!((s, v), (200, json!([1, 2])));
    let (s, v) = call_when_ready(http(&cluster, 1), "GET", "/subjects/orders-value/versions/latest", None);
    assert_eq!(s, 200, "{v}");
    assert_eq!((v["version"].as_u64(), v["id"].as_u64()), (Some(2), Some(2)));
    let (s, v) = call_when_ready(http(&cluster, 2), "GET", "/config/orders-value", None);
    assert_eq!((s, v), (200, json!({"compatibilityLevel": "FULL"})));
    // A new schema gets a new id: the counter came back too.
    let (s, v) =
        call_when_ready(http(&cluster, 3), "POST", "/subjects/audit-value/versions", Some(&body(r#""string""#)));
    assert_eq!((s, v), (200, json!({"id": 3})));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_get_confluents_errors_and_change_nothing() {
    let cluster = Cluster::start(1, "t0:1");
    let http = cluster.nodes[&1].metrics_addr;
    let (s, _) = call_when_ready(http, "POST", "/subjects/t/versions", Some(&body(V1)));
    assert_eq!(s, 200);
    let cases: &[(&str, &str, Option<&str>, u16, u64)] = &[
        ("POST", "/subjects/t/versions", Some("{not json"), 422, 422),
        ("POST", "/subjects/t/versions", Some(r#"{"schema":"{\"type\":\"nope\"}"}"#), 422, 42201),
        ("POST", "/subjects/t/versions", Some(r#"{"schema":"\"int\"","schemaType":"XML"}"#), 422, 42201),
        ("GET", "/subjects/nope/versions", None, 404, 40401),
        ("GET", "/subjects/t/versions/7", None, 404, 40402),
        ("GET", "/subjects/t/versions/zero", None, 422, 42202),
        ("GET", "/schemas/ids/99", None, 404, 40403),
        ("PUT", "/config/t", Some(r#"{"compatibility":"SIDEWAYS"}"#), 422, 42203),
        ("GET", "/config/t", None, 404, 40408),
        ("DELETE", "/subjects/t?permanent=true", None, 404, 40405),
        ("GET", "/no/such/endpoint", None, 404, 404),
    ];
    for (method, path, b, status, code) in cases {
        let (s, v) = call(http, method, path, *b);
        assert_eq!((s, v["error_code"].as_u64()), (*status, Some(*code)), "{method} {path}: {v}");
        assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{method} {path}: {v}");
    }
    let (s, v) = call(http, "GET", "/subjects?deleted=true", None);
    assert_eq!((s, v), (200, json!(["t"])));
    let (s, v) = call(http, "GET", "/subjects/t/versions", None);
    assert_eq!((s, v), (200, json!([1])));
    let (s, v) = call(http, "GET", "/config", None);
    assert_eq!((s, v), (200, json!({"compatibilityLevel": "BACKWARD"})));
}

/// Confluent's own Python client (from PyPI, in a virtual environment `scripts/python-venv.sh`
/// creates) registers, fetches, tests compatibility and meets the 409; its Avro serializer frames
/// values with the id the registry gave.
#[tokio::test(flavor = "multi_thread")]
async fn confluent_python_client_interop() {
    let cluster = Cluster::start(3, "orders:1");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let venv = std::process::Command::new(root.join("scripts/python-venv.sh")).output().expect("python-venv.sh");
    assert!(venv.status.success(), "python-venv.sh: {}", String::from_utf8_lossy(&venv.stderr));
    let python = String::from_utf8_lossy(&venv.stdout).trim().to_string();
    let url = format!("http://{}", cluster.nodes[&2].metrics_addr);
    // Wait for the registry before handing the URL over.
    let (s, v) = call_when_ready(cluster.nodes[&2].metrics_addr, "GET", "/subjects", None);
    assert_eq!((s, v), (200, json!([])));
    let out = std::process::Command::new(&python)
        .arg(root.join("node/tests/interop/confluent_registry.py"))
        .args([&url, "orders"])
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "interop script failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    assert_eq!(report["incompatible"], json!({"http_status": 409, "error_code": 409}));
    let value = hex(report["value_hex"].as_str().expect("value_hex"));
    let id2 = report["id2"].as_u64().expect("id2") as u32;
    assert_eq!(value[0], 0, "magic byte");
    assert_eq!(u32::from_be_bytes([value[1], value[2], value[3], value[4]]), id2);
    // What the registry holds is what the Python client saw.
    let (s, v) = call(cluster.nodes[&3].metrics_addr, "GET", "/subjects/orders-value/versions/2", None);
    assert_eq!((s, v["id"].as_u64()), (200, Some(u64::from(id2))));
    let (s, v) = call(cluster.nodes[&1].metrics_addr, "GET", "/config/orders-value", None);
    assert_eq!((s, v), (200, json!({"compatibilityLevel": "FULL"})));

    // Broker-side validation of values on `orders`: the Python serializer's bytes go in, a
    // batch with one unframed record is refused whole, and the Rust client decodes what went in.
    let client = cluster.client().await;
    let t = client.set_schema_validation("orders", None, Some(true)).await.expect("validation on");
    let entry = t.configs.iter().find(|c| c.name == "value_schema_validation").expect("entry");
    assert_eq!((entry.value, entry.source.as_str()), (1, "topic"));
    let good = Record::from_value(value.clone());
    let unframed = Record::from_value(&br#"{"order_id":"o-2"}"#[..]);
    let e = client.produce("orders", 0, vec![good.clone(), unframed]).await.expect_err("refused");
    assert_eq!(e.code(), Some(ErrorCode::InvalidRecord), "{e}");
    assert!(e.to_string().contains("index 1 in its batch"), "{e}");
    // Framed, but with an id registered under another subject only.
    let (_, other) = call_when_ready(
        cluster.nodes[&1].metrics_addr,
        "POST",
        "/subjects/else-value/versions",
        Some(&body(r#""int""#)),
    );
    let foreign = cairn_client::schema::frame(other["id"].as_u64().expect("id") as u32, &[2]);
    let e = client.produce("orders", 0, vec![Record::from_value(foreign)]).await.expect_err("refused");
    assert!(e.to_string().contains("not registered under subject \"orders-value\""), "{e}");
    let end = client.list_offsets("orders", 0, OffsetSpec::Latest).await.expect("offsets").offset;
    assert_eq!(end, 0, "nothing of a refused batch was appended");
    client.produce("orders", 0, vec![good]).await.expect("the serializer's bytes are accepted");
    let got = common::read_from_node(&client, &cluster.addr(1), "orders", 0, 1).await;
    let serde = AvroSerde::new(SchemaRegistryClient::new(&url).expect("url"));
    let decoded = serde.deserialize(&got[0].value).await.expect("decodes");
    assert_eq!(decoded, json!({"order_id": "o-1", "amount": 1250, "currency": "USD"}));
    // And the Rust serializer's bytes are the same as Python's for the same value and schema.
    let v2 = r#"{"type":"record","name":"OrderPlaced","namespace":"shop","fields":[{"name":"order_id","type":"string"},{"name":"amount","type":"long"},{"name":"currency","type":"string","default":"EUR"}]}"#;
    let ours = serde.serialize("orders-value", v2, &decoded, false).await.expect("serializes");
    assert_eq!(ours, value, "same framing, id and Avro bytes as the Python serializer");
}

/// `--registry URL` and then `args`.
fn with_registry<'a>(url: &'a str, args: &[&'a str]) -> Vec<&'a str> {
    ["--registry", url].into_iter().chain(args.iter().copied()).collect()
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).filter_map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok()).collect()
}

/// The CLI end to end: `produce --value-schema` encodes JSON lines as Avro (registering the
/// schema), `consume --decode` prints them back as JSON, `schema list|get` show the registry,
/// and `topic alter --schema-validation value` makes the topic refuse unframed values.
#[tokio::test(flavor = "multi_thread")]
async fn the_cli_writes_avro_from_json_reads_it_decoded_and_turns_validation_on() {
    let cluster = Cluster::start(1, "orders:1");
    let brokers = cluster.brokers();
    let http = cluster.nodes[&1].metrics_addr;
    let url = format!("http://{http}");
    call_when_ready(http, "GET", "/subjects", None);
    let file = tempfile::NamedTempFile::new().expect("schema file");
    std::fs::write(file.path(), V2).expect("write");
    let schema_path = file.path().to_string_lossy().into_owned();

    let input = "{\"order_id\":\"a\",\"amount\":3}\n{\"order_id\":\"b\"}\n";
    let (code, out, err) = cli(
        &brokers,
        &with_registry(&url, &["produce", "orders", "-p", "0", "--value-schema", &schema_path]),
        Some(input),
    );
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) =
        cli(&brokers, &with_registry(&url, &["consume", "orders", "--decode", "--format", "%s\\n"]), None);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).expect("JSON")).collect();
    assert_eq!(lines, [json!({"order_id": "a", "amount": 3}), json!({"order_id": "b", "amount": 0})]);
    // A value that does not fit the schema is refused; nothing else changes.
    let (code, _, err) = cli(
        &brokers,
        &with_registry(&url, &["produce", "orders", "-p", "0", "--value-schema", &schema_path]),
        Some("{\"amount\":1}\n"),
    );
    assert_ne!(code, 0);
    assert!(err.contains("does not fit"), "{err}");

    let (code, out, _) = cli(&brokers, &with_registry(&url, &["schema", "list"]), None);
    assert_eq!((code, out.trim()), (0, "orders-value"));
    let (code, out, _) = cli(&brokers, &with_registry(&url, &["--json", "schema", "get", "orders-value"]), None);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(out.trim()).expect("JSON");
    assert_eq!((v["version"].as_u64(), v["id"].as_u64()), (Some(1), Some(1)));

    let (code, out, err) = cli(&brokers, &["topic", "alter", "orders", "--schema-validation", "value"], None);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("value_schema_validation=1 (topic)"), "{out}");
    let (code, _, err) = cli(&brokers, &["produce", "orders", "-p", "0", "--value", "plain text"], None);
    assert_ne!(code, 0);
    assert!(err.contains("INVALID_RECORD") && err.contains("magic byte"), "{err}");
    let (code, out, err) = cli(
        &brokers,
        &with_registry(&url, &["produce", "orders", "-p", "0", "--value-schema", &schema_path]),
        Some(input),
    );
    assert_eq!(code, 0, "framed values still go in: {out}{err}");
    let (code, _, _) = cli(&brokers, &["topic", "alter", "orders", "--schema-validation", "sideways"], None);
    assert_ne!(code, 0, "a bad setting is refused");
}
