//! The order saga against a real three-node cluster: orders placed while a node is killed and
//! a service instance is restarted; every order ends in exactly one final state by a valid
//! path, and the inventory balances. `CAIRN_SAGA_ORDERS` sets the number of orders (1,000 by
//! default).

mod common;

use std::time::Duration;

use cairn_testkit::Cluster;
use common::{eventually, records_in, run, spawn, wait_for_records};

const SAGA: &str = env!("CARGO_BIN_EXE_order-saga");

fn argv(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_order_ends_in_one_final_state_through_a_node_kill_and_a_service_restart() {
    let orders: u64 = std::env::var("CAIRN_SAGA_ORDERS").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let mut cluster = Cluster::start(3).await.expect("cluster");
    let brokers = cluster.brokers_arg();
    let logs = tempfile::tempdir().expect("tempdir");
    let half = (orders / 2).to_string();
    // Stock for about 85% of the orders: some are cancelled out of stock, others by payment.
    let stock = (orders * 2 * 85 / 100 / 5).max(1).to_string();
    let common = ["--stock", &stock, "--fail-percent", "20"];
    let with = |extra: &[&str]| -> Vec<String> { common.iter().chain(extra).map(|s| s.to_string()).collect() };

    let place1 = with(&["place", "--orders", &half]);
    assert!(run(SAGA, &brokers, &argv(&place1)).status.success(), "first half placed");
    let mut services = Vec::new();
    for s in ["order", "inventory", "payment", "shipping"] {
        let args = with(&["run", s]);
        services.push(spawn(SAGA, &brokers, &argv(&args), &logs.path().join(format!("{s}.log"))));
    }
    // The second half goes in while a node is down and the inventory service restarts.
    let client = cluster.client().await.expect("client");
    let victim = cluster.leader_of("orders", 0).await.expect("leader");
    cluster.kill(victim);
    let before = records_in(&client, "orders").await;
    let rest = (orders - orders / 2).to_string();
    let place2 = with(&["place", "--orders", &rest, "--first", &half]);
    let placing = spawn(SAGA, &brokers, &argv(&place2), &logs.path().join("place.log"));
    // The inventory service is killed with the second half flowing in.
    wait_for_records(&client, "orders", before + orders / 4, Duration::from_secs(120)).await;
    services[1].kill();
    services[1] = spawn(SAGA, &brokers, &argv(&with(&["run", "inventory"])), &logs.path().join("inventory-2.log"));
    cluster.restart(victim).expect("restart the node");
    let mut placing = placing;
    let status = placing.child.wait().expect("placing");
    assert!(
        status.success(),
        "second half placed: {}",
        std::fs::read_to_string(logs.path().join("place.log")).unwrap_or_default()
    );

    let check = with(&["check"]);
    let mut last = String::new();
    eventually("every order final", Duration::from_secs(240), || {
        let out = run(SAGA, &brokers, &argv(&check));
        last = String::from_utf8_lossy(&out.stdout).into_owned();
        out.status.success()
    });
    let report: serde_json::Value = serde_json::from_str(&last).expect("report");
    let n = |k: &str| report[k].as_u64().unwrap_or(0);
    assert_eq!(n("orders"), orders, "{last}");
    assert_eq!(n("completed") + n("cancelled_out_of_stock") + n("cancelled_payment_failed"), orders, "{last}");
    assert!(n("cancelled_payment_failed") > 0 && n("completed") > 0, "both paths taken: {last}");
    eprintln!("{last}");
}
