//! The CQRS read model against a real three-node cluster: a projector killed mid-way and run
//! again, more events, then a rebuild from scratch by resetting the group; each time the SQLite
//! model equals a fold over the whole topic (records delivered again are not counted twice).

mod common;

use std::time::Duration;

use cairn_testkit::Cluster;
use common::{eventually, run, spawn};

const CQRS: &str = env!("CARGO_BIN_EXE_cqrs-projection");

fn rows(db: &std::path::Path) -> i64 {
    let Ok(c) = rusqlite::Connection::open(db) else { return 0 };
    c.query_row("SELECT COALESCE(SUM(ABS(orders)), 0) FROM customers", [], |r| r.get(0)).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_model_equals_a_fold_after_a_crash_and_after_a_rebuild() {
    let cluster = Cluster::start(3).await.expect("cluster");
    let brokers = cluster.brokers_arg();
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("model.db");
    let db_arg = db.to_str().expect("utf-8 path");
    assert!(run(CQRS, &brokers, &["generate", "--count", "3000", "--seed", "1"]).status.success());
    // Killed once it projected something: its group commit lags the model's own offsets.
    let mut projector = spawn(CQRS, &brokers, &["run", "--db", db_arg], &dir.path().join("p1.log"));
    eventually("the projector started", Duration::from_secs(60), || rows(&db) > 0);
    projector.kill();
    assert!(run(CQRS, &brokers, &["generate", "--count", "500", "--seed", "2"]).status.success());
    assert!(run(CQRS, &brokers, &["run", "--db", db_arg, "--until-caught-up"]).status.success());
    let out = run(CQRS, &brokers, &["verify", "--db", db_arg]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    // Rebuild from scratch: the same model again.
    assert!(run(CQRS, &brokers, &["reset", "--db", db_arg]).status.success());
    assert_eq!(rows(&db), 0, "the model was dropped");
    assert!(run(CQRS, &brokers, &["run", "--db", db_arg, "--until-caught-up"]).status.success());
    let out = run(CQRS, &brokers, &["verify", "--db", db_arg]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains(" 0 differ"));
}
