//! Reservations expire: an order holding stock while another SKU's step is
//! stuck fails after `inventory.reservation_ttl`, refunded, with its stock
//! available again — also when the node was down as the timer fired. The
//! timer is a JetStream message schedule, so the server keeps the clock.

use std::time::Duration;

use async_nats::jetstream::consumer::PullConsumer;
use orderflow::bus::topology;
use orderflow::config::Config;
use schemas::timer;
use serde_json::Value;

use crate::support::{
    eventually, eventually_true, history, order_body, orderflow_cli, test_config, NatsServer, TestApp, SAGA_DEADLINE,
};

/// A node whose reservations live `ttl`, with quick retries.
async fn app_with_ttl(ttl: Duration) -> TestApp {
    let nats = NatsServer::start().await;
    let config = config_with_ttl(&nats.url(), ttl);
    TestApp::spawn_on(nats, config).await
}

fn config_with_ttl(nats_url: &str, ttl: Duration) -> Config {
    let mut config = test_config(nats_url);
    config.inventory.reservation_ttl = ttl;
    config.consumers.max_deliver = 3;
    config.consumers.nak_delay = Duration::from_millis(50);
    config
}

/// Writes bytes no reader can decode into `sku`'s journal, so every step on
/// that SKU fails (and is dead-lettered) until an operator removes them.
/// Returns the message's sequence in INVENTORY.
async fn poison_sku(app: &TestApp, sku: &str) -> u64 {
    let publish = app
        .js
        .publish(format!("inventory.{sku}.restocked"), vec![0xc1, 0xff, 0x00].into());
    publish.await.expect("sent").await.expect("stored").sequence
}

/// The operator's repair (`nats stream rmm INVENTORY <seq>`), so the audit reads a clean journal.
async fn remove_poison(app: &TestApp, seq: u64) {
    let stream = app.js.get_stream("INVENTORY").await.expect("stream");
    stream.delete_message(seq).await.expect("the poison is removed");
}

/// A two-SKU order whose first SKU reserves while the second's step fails;
/// returns its id once SKU-A's two units are held.
async fn order_stuck_holding_stock(app: &TestApp) -> String {
    app.restock("SKU-A", 5).await;
    let id = app
        .place_ok(&order_body("alice", &[("SKU-A", 2), ("SKU-B", 1)], "tok_visa"))
        .await;
    eventually("SKU-A to hold the order's two units", SAGA_DEADLINE, || async {
        let sku = app.sku("SKU-A").await;
        (sku["available"] == 3 && sku["reserved"] == 2).then_some(())
    })
    .await;
    id
}

/// Stored messages on the order's timer subjects.
async fn timers_of(app: &TestApp, id: &str) -> (usize, usize) {
    let order_id = schemas::OrderId::parse(id).expect("an order id");
    let pending = app
        .stored(timer::STREAM, &timer::schedule_subject(order_id))
        .await
        .len();
    let fired = app.stored(timer::STREAM, &timer::fired_subject(order_id)).await.len();
    (pending, fired)
}

/// The order ended FAILED because its reservation expired, refunded and
/// released, the customer told; SKU-A has all its units again.
async fn assert_expired_and_undone(app: &TestApp, id: &str, ttl: &str) -> Value {
    let order = app.ended(id).await;
    assert_eq!(order["status"], "FAILED", "{order}");
    let reason = order["reason"].as_str().unwrap_or_default();
    assert_eq!(
        reason,
        format!("reservation of SKU SKU-A unconfirmed for {ttl}"),
        "{order}"
    );
    let events = history(&order);
    for step in ["compensating", "refund_confirmed", "release_confirmed", "failed"] {
        assert!(events.contains(&step.to_owned()), "{step} missing: {events:?}");
    }
    // Not before the time-to-live: from SKU-A's reservation to the compensation.
    let at = |event_type: &str| {
        let entry = order["history"].as_array()?.iter().find(|e| e["type"] == event_type)?;
        humantime::parse_rfc3339(entry["at"].as_str()?).ok()
    };
    let (reserved, undone) = (
        at("stock_reserved").expect("reserved"),
        at("compensating").expect("undone"),
    );
    let held = undone.duration_since(reserved).unwrap_or_default();
    assert!(
        held >= humantime::parse_duration(ttl).expect("a duration"),
        "expired after {held:?}"
    );
    let sku = app.sku("SKU-A").await;
    assert_eq!(
        (&sku["available"], &sku["reserved"]),
        (&Value::from(5), &Value::from(0)),
        "{sku}"
    );
    assert_eq!(
        app.stored("PAYMENTS", &format!("payments.{id}.refunded")).await.len(),
        1
    );
    eventually("the customer to be told", SAGA_DEADLINE, || async {
        let sent = app.stored("NOTIFICATIONS", &format!("notifications.{id}.sent")).await;
        (sent.len() == 1).then_some(())
    })
    .await;
    // The timer fired once; its schedule is gone.
    assert_eq!(timers_of(app, id).await, (0, 1));
    order
}

#[tokio::test]
async fn a_reservation_held_while_another_sku_is_stuck_expires_and_the_stock_comes_back() {
    let app = app_with_ttl(Duration::from_secs(3)).await;
    let poison = poison_sku(&app, "SKU-B").await;
    let id = order_stuck_holding_stock(&app).await;
    // SKU-B's step was dead-lettered: the order waits for an operator, holding SKU-A.
    let waiting = eventually("the order to ask for attention", SAGA_DEADLINE, || async {
        let order = app.order(&id).await;
        (order["status"] == "ATTENTION_REQUIRED").then_some(order)
    })
    .await;
    assert!(history(&waiting).contains(&"stock_reserved".to_owned()), "{waiting}");

    let order = assert_expired_and_undone(&app, &id, "3s").await;
    // The reason shows in the history too, on the compensation that undid it.
    let compensating = order["history"]
        .as_array()
        .and_then(|h| h.iter().find(|e| e["type"] == "compensating"))
        .expect("a compensating event")
        .clone();
    assert_eq!(compensating["event"]["outcome"], "FAILED", "{compensating}");
    assert_eq!(
        compensating["event"]["withdraw"],
        serde_json::json!(["SKU-B"]),
        "{compensating}"
    );

    // `orderflow trace` shows the timer that fired and the reason the order failed.
    let out = orderflow_cli(&app.nats.url(), &["trace", &id, "--json"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let trace: Value = serde_json::from_slice(&out.stdout).expect("trace JSON");
    let hops = trace["hops"].as_array().expect("hops");
    let fired = hops
        .iter()
        .find(|h| h["stream"] == "TIMERS" && h["event_type"] == "reservation_expired")
        .unwrap_or_else(|| panic!("no fired timer in {trace}"));
    assert_eq!(
        (&fired["event"]["sku"], &fired["event"]["ttl_ms"]),
        (&Value::from("SKU-A"), &Value::from(3000))
    );
    let failed = hops.iter().find(|h| h["event_type"] == "failed").expect("a failed hop");
    assert_eq!(failed["event"]["reason"], order["reason"], "{trace}");

    remove_poison(&app, poison).await;
    app.audit_passes().await;
}

#[tokio::test]
async fn a_timer_set_before_a_restart_fires_while_the_node_is_down_and_is_honoured_after() {
    let ttl = Duration::from_secs(3);
    let mut app = app_with_ttl(ttl).await;
    let poison = poison_sku(&app, "SKU-B").await;
    let id = order_stuck_holding_stock(&app).await;
    eventually("the reservation timer to be set", SAGA_DEADLINE, || async {
        (timers_of(&app, &id).await == (1, 0)).then_some(())
    })
    .await;

    // The node goes away before the timer is due…
    app.node.take().expect("a running node").shutdown().await;
    assert_eq!(
        app.stored("ORDERS", &format!("orders.{id}.compensating")).await.len(),
        0
    );
    // …the server fires it anyway, into the stream, where it waits…
    eventually("the timer to fire with no node up", SAGA_DEADLINE, || async {
        (timers_of(&app, &id).await == (0, 1)).then_some(())
    })
    .await;
    assert_eq!(
        app.stored("ORDERS", &format!("orders.{id}.*"))
            .await
            .iter()
            .filter(|m| m.subject.ends_with(".failed"))
            .count(),
        0,
        "nothing acted on the timer while the node was down"
    );

    // …and the next node honours it.
    let config = config_with_ttl(&app.nats.url(), ttl);
    app.restart_with(config).await;
    assert_expired_and_undone(&app, &id, "3s").await;

    remove_poison(&app, poison).await;
    app.audit_passes().await;
}

/// Waits until `stream`/`consumer` has handed out and settled everything.
async fn settled(app: &TestApp, stream: &str, consumer: &str) {
    eventually_true(&format!("{stream}/{consumer} to settle"), SAGA_DEADLINE, || async {
        let c: Result<PullConsumer, _> = app.js.get_consumer_from_stream(consumer, stream).await;
        let Ok(mut c) = c else {
            return false;
        };
        c.info()
            .await
            .is_ok_and(|i| i.num_pending == 0 && i.num_ack_pending == 0)
    })
    .await;
}

#[tokio::test]
async fn a_completed_orders_timer_fires_and_changes_nothing_and_orders_that_never_wait_set_none() {
    let app = app_with_ttl(Duration::from_secs(10)).await;
    for sku in ["SKU-A", "SKU-B", "SKU-C"] {
        app.restock(sku, 5).await;
    }

    // Every SKU answers in the input that asked: the order never holds
    // stock while waiting, so it sets no timer, with one SKU or two.
    let two = app
        .place_ok(&order_body("alice", &[("SKU-A", 1), ("SKU-B", 1)], "tok_visa"))
        .await;
    let one = app.place_ok(&order_body("bob", &[("SKU-A", 1)], "tok_visa")).await;
    for id in [&two, &one] {
        assert_eq!(app.ended(id).await["status"], "COMPLETED");
    }
    settled(&app, "ORDERS", topology::ORDER_STARTS.name).await;
    assert_eq!(timers_of(&app, &two).await, (0, 0), "a two-SKU order that never waited");
    assert_eq!(timers_of(&app, &one).await, (0, 0), "a one-SKU order");

    // SKU-C breaks: the order holds SKU-A, with a timer, and asks for an
    // operator, who repairs SKU-C and replays the input before the timer
    // is due; the order completes, and the timer, firing later, changes nothing.
    let poison = poison_sku(&app, "SKU-C").await;
    let held = app
        .place_ok(&order_body("carol", &[("SKU-A", 1), ("SKU-C", 1)], "tok_visa"))
        .await;
    eventually("the order to ask for attention", SAGA_DEADLINE, || async {
        (app.order(&held).await["status"] == "ATTENTION_REQUIRED").then_some(())
    })
    .await;
    assert_eq!(timers_of(&app, &held).await, (1, 0), "the held reservation is timed");
    remove_poison(&app, poison).await;
    let dead_letter = eventually("the dead letter to be listed", SAGA_DEADLINE, || async {
        let (_, open) = crate::support::send(app.http.get(app.url("/admin/dead-letters"))).await;
        open["items"]
            .as_array()?
            .iter()
            .find(|d| d["order_id"] == held.as_str())?["id"]
            .as_u64()
    })
    .await;
    let replay = app.url(&format!("/admin/dead-letters/{dead_letter}/replay"));
    let (status, body) = crate::support::send(app.http.post(replay)).await;
    assert!(status.is_success(), "{body}");
    let completed = app.ended(&held).await;
    assert_eq!(completed["status"], "COMPLETED", "{completed}");
    eventually("the completed order's timer to fire", SAGA_DEADLINE, || async {
        (timers_of(&app, &held).await == (0, 1)).then_some(())
    })
    .await;
    settled(&app, timer::STREAM, topology::ORDER_TIMERS).await;
    let after = app.order(&held).await;
    assert_eq!(after["status"], "COMPLETED", "{after}");
    assert_eq!(history(&after), history(&completed), "the timer appended nothing");
    for (sku, available) in [("SKU-A", 2), ("SKU-B", 4), ("SKU-C", 4)] {
        let stock = app.sku(sku).await;
        assert_eq!(stock["available"], Value::from(available), "{stock}");
    }

    eventually("every customer to be told", SAGA_DEADLINE, || async {
        (app.stored("NOTIFICATIONS", "notifications.*.sent").await.len() == 3).then_some(())
    })
    .await;
    app.audit_passes().await;
}
