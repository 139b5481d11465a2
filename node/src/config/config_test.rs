use std::path::PathBuf;

use super::*;

fn args() -> Args {
    Args {
        node_id: Some(1),
        data_dir: Some(PathBuf::from("/tmp/x")),
        initial_cluster: Some("1=127.0.0.1:7701,2=127.0.0.1:7702,3=127.0.0.1:7703".into()),
        ..Args::default()
    }
}

fn err_of(file: &str, args: &Args) -> String {
    let file: FileConfig = toml::from_str(file).expect("toml parses");
    match Config::from_layers(file, args) {
        Ok(c) => panic!("expected an error, got {c:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn shipped_example_config_validates() {
    // `cargo test` sets the manifest dir at run time; the compile-time value can name another
    // checkout when several share one target directory (cargo does not rebuild for a move).
    let dir =
        std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    let path = dir.join("../deploy/cairn-node.example.toml");
    let file = FileConfig::read(&path).expect("example config parses");
    let cfg = Config::from_layers(file, &Args::default()).expect("example config validates");
    assert_eq!(cfg.node_id, 1);
    assert_eq!(cfg.initial_cluster.len(), 3);
    assert!(!cfg.topics.is_empty());
}

#[test]
fn flags_override_file_and_defaults_fill_the_rest() {
    let file: FileConfig = toml::from_str("node_id = 2\n[raft]\nheartbeat_interval_ms = 100\n").expect("toml");
    let cfg = Config::from_layers(file, &args()).expect("valid");
    assert_eq!(cfg.node_id, 1, "flag wins over file");
    assert_eq!(cfg.raft.heartbeat_interval_ms, 100, "file wins over default");
    assert_eq!(cfg.raft.election_timeout_ms_max, RaftSection::default().election_timeout_ms_max);
    assert_eq!(cfg.advertise_addr, "127.0.0.1:7701");
    assert_eq!(cfg.listen_addr.to_string(), "127.0.0.1:7701");
}

#[test]
fn unknown_keys_are_rejected() {
    let e = toml::from_str::<FileConfig>("fsync = false\n").expect_err("unknown top-level key");
    assert!(e.to_string().contains("fsync"), "{e}");
    let e = toml::from_str::<FileConfig>("[raft]\nheartbeat_ms = 5\n").expect_err("unknown nested key");
    assert!(e.to_string().contains("heartbeat_ms"), "{e}");
}

#[test]
fn contradictions_and_bad_values_are_named() {
    let a = args();
    assert!(err_of("advertise_addr = \"127.0.0.1:9999\"", &a).contains("advertise_addr"));
    assert!(err_of("[raft]\nheartbeat_interval_ms = 1200\n", &a).contains("election_timeout_ms_min"));
    assert!(err_of("[limits]\nrecord_bytes_max = 0\n", &a).contains("record_bytes_max"));
    assert!(err_of("[[topics]]\nname = \"bad name\"\npartitions = 1\n", &a).contains("topic name"));
    assert!(err_of("[[topics]]\nname = \"t\"\npartitions = 0\n", &a).contains("partitions"));
    assert!(err_of("[[topics]]\nname = \"t\"\npartitions = 1\n[[topics]]\nname = \"t\"\npartitions = 2\n", &a)
        .contains("twice"));
    assert!(err_of("[log]\nformat = \"xml\"\n", &a).contains("log.format"));
    let floor = err_of("[storage]\nfree_space_min_bytes = 1000000\n", &a);
    assert!(floor.contains("storage.free_space_min_bytes") && floor.contains("flush"), "{floor}");
    assert!(err_of("[storage]\nwrite_buffer_bytes = 10\n", &a).contains("storage.write_buffer_bytes"));
    let small = "[storage]\nfree_space_min_bytes = 4194304\nwrite_buffer_bytes = 1048576\n";
    assert!(Config::from_layers(toml::from_str(small).expect("parse"), &a).is_ok(), "a floor of 4 memtables is fine");

    let mut other = args();
    other.node_id = Some(4);
    assert!(err_of("", &other).contains("does not list this node"));
    let mut dup = args();
    dup.initial_cluster = Some("1=127.0.0.1:1,1=127.0.0.1:2".into());
    assert!(err_of("", &dup).contains("listed twice"));
    let mut bad = args();
    bad.initial_cluster = Some("1=localhost".into());
    assert!(err_of("", &bad).contains("HOST:PORT"));
    let mut missing = args();
    missing.data_dir = None;
    assert!(err_of("", &missing).contains("data_dir"));
}

#[test]
fn topic_flag_syntax() {
    let t: TopicSpec = "orders:6".parse().expect("parses");
    assert_eq!(t, TopicSpec { name: "orders".into(), partitions: 6 });
    assert!("orders".parse::<TopicSpec>().is_err());
    assert!("orders:x".parse::<TopicSpec>().is_err());
}

#[test]
fn retention_settings_are_checked_and_named() {
    for bad in
        ["retention_ms = 0", "retention_bytes = -2", "segment_bytes = 10", "segment_ms = 5", "check_interval_ms = 0"]
    {
        let file: FileConfig = toml::from_str(&format!("[retention]\n{bad}\n")).expect("toml");
        let e = Config::from_layers(file, &args()).expect_err(bad);
        let key = bad.split(' ').next().unwrap_or_default();
        assert!(e.to_string().contains(&format!("retention.{key}")), "{bad}: {e}");
    }
    let file: FileConfig = toml::from_str("[retention]\nretention_ms = -1\nretention_bytes = 1048576\n").expect("toml");
    let cfg = Config::from_layers(file, &args()).expect("valid");
    assert_eq!((cfg.retention.retention_ms, cfg.retention.retention_bytes), (-1, 1_048_576));
}

#[test]
fn metrics_listen_defaults_to_the_client_port_plus_2000_and_can_be_set_or_turned_off() {
    let cfg = Config::from_layers(FileConfig::default(), &args()).expect("valid");
    assert_eq!(
        cfg.metrics_listen,
        MetricsListen::Addr { addr: "127.0.0.1:9701".parse().expect("addr"), explicit: false }
    );
    let file: FileConfig = toml::from_str("metrics_listen = \"0.0.0.0:9100\"\n").expect("toml");
    let cfg = Config::from_layers(file, &args()).expect("valid");
    assert_eq!(cfg.metrics_listen, MetricsListen::Addr { addr: "0.0.0.0:9100".parse().expect("addr"), explicit: true });
    let off = Args { metrics_listen: Some("off".into()), ..args() };
    assert_eq!(Config::from_layers(FileConfig::default(), &off).expect("valid").metrics_listen, MetricsListen::Off);
    let inherited = Args { listen_fd: Some(3), ..args() };
    let cfg = Config::from_layers(FileConfig::default(), &inherited).expect("valid");
    assert_eq!(cfg.metrics_listen, MetricsListen::Off, "no guessing ports next to an inherited socket");
    let e = err_of("metrics_listen = \"9100\"\n", &args());
    assert!(e.contains("metrics_listen") && e.contains("off"), "{e}");
}

#[test]
fn peer_listener_defaults_to_the_peer_address_and_follows_an_explicit_listen_ip() {
    let cfg = Config::from_layers(FileConfig::default(), &args()).expect("valid");
    assert_eq!(cfg.peer_listen_addr.to_string(), "127.0.0.1:8701", "client port + 1000");
    assert_eq!(cfg.initial_cluster[&2].peer, "127.0.0.1:8702");
    let container = Args { listen_addr: Some("0.0.0.0:7701".into()), ..args() };
    let cfg = Config::from_layers(FileConfig::default(), &container).expect("valid");
    assert_eq!(cfg.peer_listen_addr.to_string(), "0.0.0.0:8701", "the --listen IP at the peer port");
    let named = Args {
        initial_cluster: Some("1=127.0.0.1:7701/127.0.0.2:9000,2=127.0.0.1:7702,3=127.0.0.1:7703".into()),
        ..args()
    };
    let cfg = Config::from_layers(FileConfig::default(), &named).expect("valid");
    assert_eq!(cfg.peer_listen_addr.to_string(), "127.0.0.2:9000");
    let file: FileConfig = toml::from_str("peer_listen_addr = \"0.0.0.0:9999\"\n").expect("toml");
    assert_eq!(Config::from_layers(file, &args()).expect("valid").peer_listen_addr.to_string(), "0.0.0.0:9999");

    let same = Args { peer_listen_addr: Some("127.0.0.1:7701".into()), ..args() };
    assert!(err_of("", &same).contains("listener each"));
    let clash = Args { initial_cluster: Some("1=127.0.0.1:7701,2=127.0.0.1:8701".into()), ..args() };
    assert!(err_of("", &clash).contains("listed twice"), "node 2's client address is node 1's peer address");
    let hostname = Args { initial_cluster: Some("1=cairn-0:7701,2=cairn-1:7701".into()), ..args() };
    let e = err_of("", &Args { advertise_addr: None, ..hostname.clone() });
    assert!(e.contains("peer_listen_addr") || e.contains("listen_addr"), "{e}");
    let cfg = Config::from_layers(
        FileConfig::default(),
        &Args { listen_addr: Some("0.0.0.0:7701".into()), advertise_addr: None, ..hostname },
    )
    .expect("a host name in the initial cluster listens on --listen's IP");
    assert_eq!(cfg.peer_listen_addr.to_string(), "0.0.0.0:8701");
}

#[test]
fn tls_needs_all_three_files() {
    let only_ca = Args { tls_ca: Some("/ca.pem".into()), ..args() };
    let e = err_of("", &only_ca);
    assert!(e.contains("tls.cert_file") && e.contains("tls.key_file"), "{e}");
    let file = "[tls]\nca_file = \"/ca.pem\"\ncert_file = \"/n1.pem\"\nkey_file = \"/n1.key\"\n";
    let cfg = Config::from_layers(toml::from_str(file).expect("toml"), &args()).expect("valid");
    assert_eq!(cfg.tls.expect("tls").cert, PathBuf::from("/n1.pem"));
    assert!(Config::from_layers(FileConfig::default(), &args()).expect("valid").tls.is_none());
}

#[test]
fn authentication_settings_are_checked_and_merged() {
    let digest = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"; // SHA-256 of "abc"
    let file = format!(
        "[auth]\nenabled = true\nacls = true\nsuper_users = [\"admin\"]\n\
         [[auth.tokens]]\nprincipal = \"admin\"\nsha256 = \"{digest}\"\n"
    );
    let parsed: FileConfig = toml::from_str(&file).expect("toml");
    let flags = Args { auth_tokens: vec![format!("bob:{}", "ab".repeat(32)).parse().expect("entry")], ..args() };
    let cfg = Config::from_layers(parsed, &flags).expect("valid");
    assert!(cfg.auth.enabled && cfg.auth.acls);
    assert_eq!(cfg.auth.super_users, vec!["admin".to_string()]);
    assert_eq!(cfg.auth.tokens.principal("abc"), Some("admin"), "file tokens are kept");
    assert!(!cfg.auth.tokens.is_empty());
    // Off by default.
    assert!(!Config::from_layers(FileConfig::default(), &args()).expect("valid").auth.enabled);
    // Contradictions and bad values are named.
    let a = args();
    assert!(err_of("[auth]\nacls = true\n", &a).contains("auth.acls"));
    assert!(err_of("[auth]\nenabled = true\n", &a).contains("no client could authenticate"));
    let bad = "[auth]\nenabled = true\n[[auth.tokens]]\nprincipal = \"a\"\nsha256 = \"xyz\"\n";
    assert!(err_of(bad, &a).contains("64 hex digits"));
    let star = format!("[auth]\nenabled = true\n[[auth.tokens]]\nprincipal = \"*\"\nsha256 = \"{digest}\"\n");
    assert!(err_of(&star, &a).contains("every principal"));
    let twice = format!(
        "[auth]\nenabled = true\n[[auth.tokens]]\nprincipal = \"a\"\nsha256 = \"{digest}\"\n\
         [[auth.tokens]]\nprincipal = \"b\"\nsha256 = \"{digest}\"\n"
    );
    assert!(err_of(&twice, &a).contains("both"));
    assert!("on".parse::<args::OnOff>().is_ok() && "maybe".parse::<args::OnOff>().is_err());
}
