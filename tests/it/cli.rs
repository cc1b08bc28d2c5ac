//! The command line against a real server: setup is idempotent, tail decodes.

use serde_json::Value;

use crate::support::{order_body, orderflow_cli, TestApp};

#[tokio::test]
async fn setup_runs_twice_and_tail_prints_decoded_json_lines() {
    let app = TestApp::spawn().await;
    for _ in 0..2 {
        let out = orderflow_cli(&app.nats.url(), &["setup"]).await;
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    app.restock("SKU-1", 2).await;
    let id = app.place_ok(&order_body("alice", &[("SKU-1", 1)], "tok_visa")).await;
    app.ended(&id).await;

    let out = orderflow_cli(
        &app.nats.url(),
        &["events", "tail", "--stream", "ORDERS", "--from-start", "--limit", "5"],
    )
    .await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    let types: Vec<&str> = lines.iter().filter_map(|l| l["event"]["type"].as_str()).collect();
    assert_eq!(
        types,
        [
            "placed",
            "payment_requested",
            "stock_requested",
            "stock_reserved",
            "completed"
        ]
    );
    for line in &lines {
        assert_eq!(line["headers"]["Order-Id"], id.as_str());
        assert_eq!(line["headers"]["Content-Type"], "application/msgpack");
        assert_eq!(line["headers"]["Schema-Version"], "2");
        assert!(line["headers"]["Nats-Msg-Id"].as_str().is_some_and(|m| m.contains(&id)));
    }

    let out = orderflow_cli(&app.nats.url(), &["order", "get", "--url", &app.base, &id]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let order: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(order["status"], "COMPLETED");
}
