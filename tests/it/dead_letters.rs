//! Dead letters for operators: listed, shown with their original, replayed
//! once their cause is fixed, discarded with a reason; every action leaves
//! a trace and shows in the metrics.

use std::time::Duration;

use orderflow::bus::topology::DEAD_LETTERS;
use orderflow::dead_letters::DEAD_LETTER_ACTIONS;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{
    eventually, history, order_body, orderflow_cli, send, test_config, NatsServer, TestApp, SAGA_DEADLINE,
};

/// A node whose payment provider is down, with quick retries and gauges.
async fn app_during_outage() -> TestApp {
    let nats = NatsServer::start().await;
    let mut config = test_config(&nats.url());
    config.consumers.max_deliver = 3;
    config.consumers.nak_delay = Duration::from_millis(50);
    config.gateway.outage = true;
    config.telemetry.poll_interval = Duration::from_millis(200);
    TestApp::spawn_on(nats, config).await
}

async fn cli_json(app: &TestApp, args: &[&str]) -> Value {
    let out = orderflow_cli(&app.nats.url(), args).await;
    assert!(
        out.status.success(),
        "orderflow {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "orderflow {args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

async fn eventually_metric(app: &TestApp, series: &str, want: f64) {
    eventually(&format!("{series} to be {want}"), SAGA_DEADLINE, || async {
        (app.metric(series).await == Some(want)).then_some(())
    })
    .await
}

#[tokio::test]
async fn a_step_that_always_fails_is_replayed_after_the_fix_and_the_order_completes() {
    let mut app = app_during_outage().await;
    app.restock("SKU-1", 5).await;
    let id = app.place_ok(&order_body("alice", &[("SKU-1", 2)], "tok_visa")).await;

    // The payment step dies after MaxDeliver; the order says so.
    let order = eventually("the order to ask for attention", SAGA_DEADLINE, || async {
        let order = app.order(&id).await;
        (order["status"] == "ATTENTION_REQUIRED").then_some(order)
    })
    .await;
    assert!(
        order["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("order-saga gave up"),
        "{order}"
    );

    // `dlq list` (straight from NATS) shows it, open, with its order.
    let out = orderflow_cli(&app.nats.url(), &["dlq", "list", "--json"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listed: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(listed.len(), 1, "{listed:?}");
    let dead = &listed[0];
    assert_eq!(dead["order_id"], id.as_str());
    assert_eq!(dead["cause"], "max_deliveries");
    assert_eq!(dead["consumer"], "order-saga");
    assert_eq!(dead["deliveries"], 3);
    assert_eq!(dead["handling"]["state"], "open");
    assert_eq!(dead["subject"], format!("orders.{id}.placed"));
    let dl = dead["id"].as_u64().expect("an id");

    // The API shows the original, decoded.
    let (status, shown) = send(app.http.get(app.url(&format!("/admin/dead-letters/{dl}")))).await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_eq!(shown["original"]["subject"], format!("orders.{id}.placed"));
    assert_eq!(shown["original"]["headers"]["Event-Type"], "placed");
    assert!(
        shown["original"]["body"].to_string().contains("SKU-1"),
        "the decoded body carries the lines: {shown}"
    );
    eventually_metric(&app, "orderflow_dead_letters_backlog", 1.0).await;
    eventually_metric(
        &app,
        r#"orderflow_dead_letters_received_total{consumer="order-saga"}"#,
        1.0,
    )
    .await;

    // The cause is fixed and deployed; nothing moves by itself.
    let mut fixed = app.config.clone();
    fixed.gateway.outage = false;
    app.restart_with(fixed).await;
    assert_eq!(app.order(&id).await["status"], "ATTENTION_REQUIRED");

    // Replay: a new message id recording the replay; the order completes.
    let replayed = cli_json(&app, &["dlq", "replay", &dl.to_string(), "--by", "ops-alice"]).await;
    assert_eq!(replayed["state"], "replayed", "{replayed}");
    assert_eq!(replayed["by"], "ops-alice");
    assert_eq!(replayed["duplicate"], false);
    let message_id = replayed["message_id"].as_str().expect("a message id");
    assert!(message_id.ends_with(&format!(":replay:{dl}")), "{message_id}");
    let order = app.ended(&id).await;
    assert_eq!(order["status"], "COMPLETED", "{order}");
    assert!(
        history(&order).contains(&"attention_required".to_owned()),
        "the history keeps the incident"
    );

    // One charge, one replay copy in the stream, and the books balance.
    assert_eq!(
        app.stored("PAYMENTS", &format!("payments.{id}.authorized")).await.len(),
        1
    );
    let copies = app.stored("ORDERS", &format!("orders.{id}.placed")).await;
    assert_eq!(copies.len(), 2, "the original and its replay");
    let copy = &copies[1];
    assert_eq!(copy.headers.get("Nats-Msg-Id").map(|v| v.as_str()), Some(message_id));
    assert_eq!(
        copy.headers.get("Orderflow-Dead-Letter").map(|v| v.as_str()),
        Some(dl.to_string().as_str())
    );
    // Appended like any other write: checked against the order's journal (invariant 2).
    assert_eq!(
        copy.headers
            .get("Nats-Expected-Last-Subject-Sequence-Subject")
            .map(|v| v.as_str()),
        Some(format!("orders.{id}.*").as_str())
    );
    app.audit_passes().await;

    // A dead letter is replayed once; a second try is refused by CLI and API.
    let again = orderflow_cli(&app.nats.url(), &["dlq", "replay", &dl.to_string()]).await;
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already replayed"));
    let (status, problem) = send(app.http.post(app.url(&format!("/admin/dead-letters/{dl}/replay")))).await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert_eq!(problem["code"], "already-handled");
    let (_, open) = send(app.http.get(app.url("/admin/dead-letters"))).await;
    assert_eq!(open["items"], json!([]), "nothing is left open: {open}");

    eventually_metric(&app, "orderflow_dead_letters_replayed_total", 1.0).await;
    eventually_metric(&app, "orderflow_dead_letters_backlog", 0.0).await;
}

/// Publishes random bytes where the saga's consumer reads, and returns
/// the id of the dead letter it becomes.
async fn poison(app: &TestApp) -> u64 {
    let subject = format!("orders.{}.placed", uuid::Uuid::new_v4());
    let ack = app
        .js
        .publish(subject, vec![0xc1, 0xde, 0xad].into())
        .await
        .expect("sent")
        .await
        .expect("stored");
    eventually("the poison to be dead-lettered", SAGA_DEADLINE, || async {
        app.stored(DEAD_LETTERS, ">").await.iter().find_map(|m| {
            let advisory: Value = serde_json::from_slice(&m.payload).ok()?;
            (advisory["stream_seq"].as_u64() == Some(ack.sequence)).then_some(m.sequence)
        })
    })
    .await
}

#[tokio::test]
async fn discard_keeps_who_and_why_and_refuses_what_it_cannot_do() {
    let app = app_during_outage().await;
    let dl = poison(&app).await;
    let base = app.url("/admin/dead-letters");

    // Poison is shown as raw bytes with the decoder's complaint.
    let (status, shown) = send(app.http.get(format!("{base}/{dl}"))).await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_eq!(shown["cause"], "terminated");
    assert_eq!(shown["original"]["body"]["raw_hex"], "c1dead");
    assert!(shown["original"]["body"]["undecodable"].is_string(), "{shown}");

    // Bad requests name the field at fault.
    let (status, problem) = send(
        app.http
            .post(format!("{base}/{dl}/discard"))
            .json(&json!({ "reason": "  " })),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "reason");
    let (status, problem) = send(app.http.post(format!("{base}/{dl}/discard")).json(&json!({}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap_or_default().contains("reason"),
        "{problem}"
    );
    let (status, _) = send(app.http.get(format!("{base}/999999"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, problem) = send(app.http.get(format!("{base}/abc"))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["errors"][0]["field"], "id");
    let (status, problem) = send(app.http.get(format!("{base}?limit=0"))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["errors"][0]["field"], "limit");

    // Discarded with who and why; then neither replay nor discard again.
    let body = json!({ "reason": "test garbage from a load generator", "by": "ops-bob" });
    let (status, handled) = send(app.http.post(format!("{base}/{dl}/discard")).json(&body)).await;
    assert_eq!(status, StatusCode::OK, "{handled}");
    assert_eq!(handled["state"], "discarded");
    for (action, body) in [("discard", body.clone()), ("replay", json!({ "by": "ops-bob" }))] {
        let (status, problem) = send(app.http.post(format!("{base}/{dl}/{action}")).json(&body)).await;
        assert_eq!(status, StatusCode::CONFLICT, "{action}: {problem}");
        assert!(problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("already discarded"));
    }

    // The trace: the dead letter and its action record are both kept.
    let (_, shown) = send(app.http.get(format!("{base}/{dl}"))).await;
    assert_eq!(shown["handling"]["reason"], "test garbage from a load generator");
    assert_eq!(shown["handling"]["by"], "ops-bob");
    assert_eq!(
        app.stored(DEAD_LETTER_ACTIONS, &format!("dead_letters.{dl}.discarded"))
            .await
            .len(),
        1
    );
    let (_, open) = send(app.http.get(base.clone())).await;
    assert_eq!(open["items"], json!([]));
    let (_, discarded) = send(app.http.get(format!("{base}?state=discarded"))).await;
    assert_eq!(discarded["items"][0]["id"], dl, "{discarded}");
    let listed = orderflow_cli(&app.nats.url(), &["dlq", "list", "--state", "all"]).await;
    assert!(String::from_utf8_lossy(&listed.stdout).contains("discarded"));
    eventually_metric(&app, "orderflow_dead_letters_discarded_total", 1.0).await;
    eventually_metric(&app, "orderflow_dead_letters_backlog", 0.0).await;
}

#[tokio::test]
async fn racing_replays_of_one_dead_letter_store_one_copy() {
    let app = app_during_outage().await;
    let dl = poison(&app).await;
    let url = app.url(&format!("/admin/dead-letters/{dl}/replay"));
    let racers = (0..5).map(|_| send(app.http.post(url.clone())));
    let answers = futures::future::join_all(racers).await;
    let won: Vec<&Value> = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::OK)
        .map(|(_, b)| b)
        .collect();
    assert_eq!(won.len(), 1, "exactly one replay is recorded: {answers:?}");
    assert!(answers
        .iter()
        .all(|(s, _)| *s == StatusCode::OK || *s == StatusCode::CONFLICT));

    // One copy, carrying the replay id; still poison, so it is dead-lettered
    // in turn, as its own entry pointing at the copy.
    let subject = won[0]["subject"].as_str().expect("a subject");
    let copies = app.stored("ORDERS", subject).await;
    assert_eq!(copies.len(), 2, "the original and one copy");
    let copy_seq = copies[1].sequence;
    assert_eq!(won[0]["replay_seq"], copy_seq);
    eventually("the copy to be dead-lettered again", SAGA_DEADLINE, || async {
        let (_, open) = send(app.http.get(app.url("/admin/dead-letters"))).await;
        open["items"]
            .as_array()?
            .iter()
            .find(|d| d["stream_seq"] == copy_seq)
            .cloned()
    })
    .await;
}

#[tokio::test]
async fn a_dead_letter_whose_original_aged_out_is_shown_and_discarded_but_not_replayed() {
    let app = app_during_outage().await;
    let dl = poison(&app).await;
    let base = app.url("/admin/dead-letters");
    let (_, shown) = send(app.http.get(format!("{base}/{dl}"))).await;
    let (stream, seq) = (
        shown["stream"].as_str().expect("a stream").to_owned(),
        shown["stream_seq"].as_u64().expect("a sequence"),
    );
    let source = app.js.get_stream(&stream).await.expect("the source stream");
    source.delete_message(seq).await.expect("the original is removed");

    let (status, shown) = send(app.http.get(format!("{base}/{dl}"))).await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_eq!(shown["original"], Value::Null, "{shown}");
    assert!(
        shown["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("no longer stored"),
        "{shown}"
    );
    let (status, problem) = send(app.http.post(format!("{base}/{dl}/replay"))).await;
    assert_eq!(status, StatusCode::GONE, "{problem}");
    assert_eq!(problem["code"], "original-gone");
    let (status, handled) = send(
        app.http
            .post(format!("{base}/{dl}/discard"))
            .json(&json!({ "reason": "aged out" })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{handled}");
}
