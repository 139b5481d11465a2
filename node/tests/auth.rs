//! Client authentication (client certificates, bearer tokens) and ACLs, on real nodes: who is
//! refused, what a denied request leaves unchanged, and how soon a changed ACL takes effect.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use cairn_client::{
    AclEntry, Client, ClientConfig, ClientError, ClientTls, ErrorCode, OffsetSpec, Record, RecordExt, Token,
};
use cairn_node::auth::token;
use cairn_proto::v1::broker_client::BrokerClient;
use cairn_proto::v1::DescribeClusterRequest;
use common::{certs_init, cli_binary, tls_args, Cluster};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

/// How long an ACL change may take to reach every node (it is applied from the controller log,
/// normally within a heartbeat).
const ACL_EFFECT_BOUND: Duration = Duration::from_secs(5);

/// A random token for `principal` and the flag giving its digest to the nodes.
fn token_for(principal: &str) -> (String, String) {
    let text = format!("test-token-{principal}-{}", rand::random::<u64>());
    let flag = format!("{principal}:{}", token::hex(&token::digest(&text)));
    (text, flag)
}

fn secure_args(dir: &Path, id: u64, tokens: &[String]) -> Vec<String> {
    let mut args = tls_args(dir, id);
    args.extend(["--auth", "on", "--acls", "on", "--super-user", "admin"].map(String::from));
    for t in tokens {
        args.push("--auth-token".into());
        args.push(t.clone());
    }
    args
}

async fn client_as(
    cluster: &Cluster,
    ca: &Path,
    token: Option<&str>,
    cert: Option<(&Path, &Path)>,
) -> Result<Client, ClientError> {
    let mut cfg = ClientConfig::new(cluster.brokers());
    cfg.retry_deadline = Duration::from_secs(20);
    cfg.tls = Some(ClientTls::from_files(ca, cert.map(|c| c.0), cert.map(|c| c.1)).expect("tls files"));
    cfg.token = token.map(Token::new);
    Client::connect(cfg).await
}

/// A raw call to node 1's client listener over TLS, with optional token and certificate.
async fn describe_raw(
    cluster: &Cluster,
    ca: &Path,
    token: Option<&str>,
    cert: Option<(&Path, &Path)>,
) -> Result<(), tonic::Status> {
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(std::fs::read(ca).expect("ca")));
    if let Some((c, k)) = cert {
        tls = tls.identity(Identity::from_pem(std::fs::read(c).expect("cert"), std::fs::read(k).expect("key")));
    }
    let ch = Endpoint::from_shared(format!("https://{}", cluster.addr(1)))
        .expect("endpoint")
        .tls_config(tls)
        .expect("tls")
        .connect_timeout(Duration::from_secs(2))
        .connect_lazy();
    let mut req = tonic::Request::new(DescribeClusterRequest {});
    if let Some(t) = token {
        req.metadata_mut().insert("authorization", format!("Bearer {t}").parse().expect("header"));
    }
    BrokerClient::new(ch).describe_cluster(req).await.map(|_| ())
}

fn acl(principal: &str, resource_type: &str, name: &str, operation: &str) -> AclEntry {
    AclEntry {
        principal: principal.into(),
        resource_type: resource_type.into(),
        pattern_type: "literal".into(),
        resource_name: name.into(),
        operation: operation.into(),
        permission: "allow".into(),
    }
}

fn code(e: &ClientError) -> Option<ErrorCode> {
    e.code()
}

async fn high_watermark(admin: &Client) -> u64 {
    admin.list_offsets("events", 0, OffsetSpec::Latest).await.expect("offsets").offset
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_authenticated_callers_get_in_and_acls_decide_what_they_may_do() {
    let certs = tempfile::tempdir().expect("tempdir");
    let foreign = tempfile::tempdir().expect("tempdir");
    certs_init(certs.path());
    certs_init(foreign.path());
    let ca = certs.path().join("ca.pem");
    let (admin_token, admin_flag) = token_for("admin");
    let (alice_token, alice_flag) = token_for("alice");
    let tokens = [admin_flag, alice_flag];
    let cluster = Cluster::start_per_node(3, "events:1", &[], |id| secure_args(certs.path(), id, &tokens));
    let admin = client_as(&cluster, &ca, Some(&admin_token), None).await.expect("the super-user connects");
    common::wait_for_leaders(&admin).await;
    assert!(cluster.log_of(1).contains("authentication is on"), "the node says how it checks clients");

    // No credentials, a wrong token, a certificate of another CA: refused.
    let e = describe_raw(&cluster, &ca, None, None).await.expect_err("no credentials");
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
    let e = describe_raw(&cluster, &ca, Some("not-a-token"), None).await.expect_err("a wrong token");
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
    assert!(e.message().contains("not valid"), "{}", e.message());
    let other = (foreign.path().join("client.pem"), foreign.path().join("client.key"));
    let e = describe_raw(&cluster, &ca, None, Some((&other.0, &other.1))).await.expect_err("another CA's certificate");
    assert_ne!(e.code(), tonic::Code::Ok);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cluster.log_of(1).contains("refused an unauthenticated call") {
        assert!(Instant::now() < deadline, "node 1 did not log the unauthenticated calls");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!cluster.log_of(1).contains("not-a-token"), "a token never reaches the log");
    // The cluster's own certificate authenticates (principal `client`), a valid token too.
    let cert = (certs.path().join("client.pem"), certs.path().join("client.key"));
    describe_raw(&cluster, &ca, None, Some((&cert.0, &cert.1))).await.expect("a client certificate of the CA");
    describe_raw(&cluster, &ca, Some(&alice_token), None).await.expect("a valid token");

    // Authenticated, but no ACL: alice sees no topic, may not grant herself anything ...
    let alice = client_as(&cluster, &ca, Some(&alice_token), None).await.expect("alice connects");
    assert!(alice.describe_cluster().await.expect("describe").topics.is_empty(), "no describe ACL, no topic");
    let e = alice.create_acls(vec![acl("alice", "topic", "events", "write")]).await.expect_err("not a super-user");
    assert_eq!(code(&e), Some(ErrorCode::AuthorizationFailed), "{e}");
    assert!(e.to_string().contains("alter the cluster"), "{e}");
    // ... and allowed to describe the topic only, may not write to it: the log is unchanged.
    admin.create_acls(vec![acl("alice", "topic", "events", "describe")]).await.expect("grant describe");
    let visible = Instant::now();
    while alice.describe_cluster().await.expect("describe").topics.is_empty() {
        assert!(visible.elapsed() < ACL_EFFECT_BOUND, "the describe ACL did not take effect in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = high_watermark(&admin).await;
    let e = alice.produce("events", 0, vec![Record::from_value("denied")]).await.expect_err("no write ACL");
    assert_eq!(code(&e), Some(ErrorCode::AuthorizationFailed), "{e}");
    assert!(e.to_string().contains("write") && e.to_string().contains("topic \"events\""), "{e}");
    assert_eq!(high_watermark(&admin).await, before, "a denied produce changes nothing");

    // The admin grants her write through the CLI; within the bound, her produce succeeds.
    let token_file = certs.path().join("admin.token");
    std::fs::write(&token_file, format!("{admin_token}\n")).expect("token file");
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(cli_binary())
            .args(["--brokers", &cluster.brokers().join(","), "--ca"])
            .arg(&ca)
            .arg("--token-file")
            .arg(&token_file)
            .args(args)
            .output()
            .expect("cairn");
        assert!(out.status.success(), "cairn {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    cli(&["acl", "add", "--allow", "alice", "--operation", "write", "--topic", "events"]);
    let listed = cli(&["acl", "list", "--principal", "alice"]);
    assert!(listed.contains("alice") && listed.contains("write") && listed.contains("events"), "{listed}");
    let granted = Instant::now();
    loop {
        match alice.produce("events", 0, vec![Record::from_value("allowed")]).await {
            Ok(_) => break,
            Err(e) if code(&e) == Some(ErrorCode::AuthorizationFailed) => {
                assert!(granted.elapsed() < ACL_EFFECT_BOUND, "the grant did not take effect in {ACL_EFFECT_BOUND:?}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("produce after the grant: {e}"),
        }
    }
    eprintln!("the grant took effect after {:?}", granted.elapsed());
    assert_eq!(high_watermark(&admin).await, before + 1);

    // Revoked: within the bound her produce is denied again, and nothing more is appended.
    let removed = admin.delete_acls(vec![acl("alice", "topic", "events", "write")]).await.expect("revoke");
    assert_eq!(removed, 1);
    let revoked = Instant::now();
    loop {
        match alice.produce("events", 0, vec![Record::from_value("after-revoke")]).await {
            Err(e) if code(&e) == Some(ErrorCode::AuthorizationFailed) => break,
            Ok(_) => assert!(revoked.elapsed() < ACL_EFFECT_BOUND, "the revocation did not take effect in time"),
            Err(e) => panic!("produce after the revocation: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("the revocation took effect after {:?}", revoked.elapsed());
    let settled = high_watermark(&admin).await;
    let e = alice.produce("events", 0, vec![Record::from_value("denied")]).await.expect_err("revoked");
    assert_eq!(code(&e), Some(ErrorCode::AuthorizationFailed), "{e}");
    assert_eq!(high_watermark(&admin).await, settled, "a denied produce changes nothing");

    // Bad ACLs are refused with the word that is wrong, and change nothing.
    let mut bad = acl("alice", "topic", "events", "publish");
    let e = admin.create_acls(vec![bad.clone()]).await.expect_err("unknown operation");
    assert_eq!(code(&e), Some(ErrorCode::InvalidArgument), "{e}");
    assert!(e.to_string().contains("publish"), "{e}");
    bad.operation = "write".into();
    bad.resource_type = "queue".into();
    assert!(admin.create_acls(vec![bad]).await.is_err());
    assert_eq!(admin.list_acls("alice", "").await.expect("list").len(), 1, "only the describe ACL is left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_work_without_tls_and_authentication_off_says_so() {
    let (alice_token, alice_flag) = token_for("alice");
    let cluster = Cluster::start_with(3, "events:1", &["--auth", "on", "--auth-token", &alice_flag]);
    let brokers = cluster.brokers();
    // No token: refused on every public service.
    let mut cfg = ClientConfig::new(brokers.clone());
    cfg.retry_deadline = Duration::from_secs(5);
    let e = Client::connect(cfg.clone()).await.err().expect("no token, no entry");
    assert_eq!(code(&e), Some(ErrorCode::Unauthenticated), "{e}");
    // With the token (authentication without ACLs: she may do everything).
    cfg.retry_deadline = Duration::from_secs(30);
    cfg.token = Some(Token::new(alice_token.as_str()));
    let alice = Client::connect(cfg).await.expect("alice connects");
    common::wait_for_leaders(&alice).await;
    alice.produce("events", 0, vec![Record::from_value("x")]).await.expect("produce");
    assert!(cluster.log_of(1).contains("bearer tokens travel in clear text"));
    // The CLI takes the token from the environment.
    let out = std::process::Command::new(cli_binary())
        .args(["--brokers", &brokers.join(","), "consume", "events", "--exit-at-end"])
        .env("CAIRN_TOKEN", &alice_token)
        .output()
        .expect("cairn consume");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains('x'));
    // A node with authentication off says so at start-up.
    let open = Cluster::start(1, "t:1");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !open.log_of(1).contains("authentication is off") {
        assert!(Instant::now() < deadline, "the node did not say authentication is off");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
