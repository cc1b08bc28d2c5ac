//! Poison on any input subject is terminated at once and dead-lettered with
//! its reason; the consumers go on with the next messages.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use async_nats::header::HeaderMap;
use orderflow::bus::topology::{DEAD_LETTERS, INBOXES};
use serde_json::Value;

use crate::support::{eventually, order_body, TestApp, SAGA_DEADLINE};

#[tokio::test]
async fn poison_on_every_input_is_dead_lettered_and_the_saga_goes_on() {
    let app = TestApp::spawn().await;
    app.restock("SKU-1", 5).await;

    // Random bytes, and a body claiming a schema version from the future,
    // on every subject some consumer reads.
    let mut poisoned: BTreeSet<(String, u64)> = BTreeSet::new();
    for inbox in INBOXES {
        for event_type in inbox.event_types {
            let id = uuid::Uuid::new_v4();
            let subject = format!("{}.{id}.{event_type}", inbox.source.space());
            let random = app.js.publish(subject.clone(), vec![0xc1, 0xff, 0x00, 0x13].into());
            let ack = random.await.expect("sent").await.expect("stored");
            poisoned.insert((inbox.source.stream().to_owned(), ack.sequence));
            let mut future = HeaderMap::new();
            future.insert("Schema-Version", "99");
            let unknown = app.js.publish_with_headers(subject, future, vec![0x80].into());
            let ack = unknown.await.expect("sent").await.expect("stored");
            poisoned.insert((inbox.source.stream().to_owned(), ack.sequence));
        }
    }

    let id = app.place_ok(&order_body("alice", &[("SKU-1", 1)], "tok_visa")).await;
    assert_eq!(app.ended(&id).await["status"], "COMPLETED");

    // Each poison message is in DEAD_LETTERS as a termination advisory
    // naming its stream, sequence and why; none was retried.
    let advisories: Vec<Value> = eventually("every poison message to be dead-lettered", SAGA_DEADLINE, || async {
        let stored = app.stored(DEAD_LETTERS, ">").await;
        let advisories: Vec<Value> = stored
            .iter()
            .filter_map(|m| serde_json::from_slice(&m.payload).ok())
            .collect();
        let pointed: BTreeSet<(String, u64)> = advisories
            .iter()
            .filter_map(|a| Some((a["stream"].as_str()?.to_owned(), a["stream_seq"].as_u64()?)))
            .collect();
        poisoned.is_subset(&pointed).then_some(advisories)
    })
    .await;
    for advisory in &advisories {
        assert_eq!(
            advisory["type"], "io.nats.jetstream.advisory.v1.terminated",
            "{advisory}"
        );
        assert_eq!(advisory["deliveries"], 1, "terminated at once: {advisory}");
        let reason = advisory["reason"].as_str().unwrap_or_default();
        let why = ["Schema-Version", "schema version", "not a valid"];
        assert!(
            why.iter().any(|w| reason.contains(w)),
            "the reason says why: {advisory}"
        );
        // The original stays fetchable by sequence for inspection and replay.
        let stream = app
            .js
            .get_stream(advisory["stream"].as_str().expect("stream"))
            .await
            .expect("stream");
        let seq = advisory["stream_seq"].as_u64().expect("seq");
        stream.direct_get(seq).await.expect("the original is still stored");
    }
}

#[tokio::test]
async fn a_step_that_always_fails_is_dead_lettered_after_max_deliver() {
    let nats = crate::support::NatsServer::start().await;
    let mut config = crate::support::test_config(&nats.url());
    config.consumers.max_deliver = 3;
    config.consumers.nak_delay = std::time::Duration::from_millis(50);
    let app = TestApp::spawn_on(nats, config).await;
    let id = app
        .place_ok(&order_body("alice", &[("SKU-1", 1)], "tok_unavailable"))
        .await;
    let advisory: Value = eventually("the order's input to be dead-lettered", SAGA_DEADLINE, || async {
        let requested_seq = app
            .stored("ORDERS", &format!("orders.{id}.placed"))
            .await
            .first()?
            .sequence;
        app.stored(DEAD_LETTERS, "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>")
            .await
            .iter()
            .filter_map(|m| serde_json::from_slice::<Value>(&m.payload).ok())
            .find(|a| a["stream_seq"].as_u64() == Some(requested_seq))
    })
    .await;
    assert_eq!(advisory["consumer"], "order-saga", "{advisory}");
    assert_eq!(advisory["deliveries"], 3, "{advisory}");
    assert_eq!(
        app.stored("ORDERS", &format!("orders.{id}.payment_requested"))
            .await
            .len(),
        1
    );
    // Nothing was charged, and the order says plainly that it needs an operator.
    assert!(app.stored("PAYMENTS", &format!("payments.{id}.*")).await.is_empty());
    let order = eventually("the order to ask for attention", SAGA_DEADLINE, || async {
        let order = app.order(&id).await;
        (order["status"] == "ATTENTION_REQUIRED").then_some(order)
    })
    .await;
    let reason = order["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("order-saga gave up") && reason.contains("after 3 deliveries"),
        "{order}"
    );
    assert_eq!(
        crate::support::history(&order).last().map(String::as_str),
        Some("attention_required")
    );
}

#[tokio::test]
async fn a_step_that_fails_twice_is_retried_with_the_backoff_and_completes_without_a_dead_letter() {
    let nats = crate::support::NatsServer::start().await;
    let mut config = crate::support::test_config(&nats.url());
    let backoff = [Duration::from_millis(400), Duration::from_millis(800)];
    config.consumers.backoff = backoff.iter().map(|d| (*d).into()).collect();
    let app = TestApp::spawn_on(nats, config).await;
    app.restock("SKU-1", 5).await;
    let placed = Instant::now();
    let id = app.place_ok(&order_body("alice", &[("SKU-1", 1)], "tok_flaky")).await;
    let order = app.ended(&id).await;
    assert_eq!(order["status"], "COMPLETED", "{order}");
    // Two failures, so two waits: the schedule's first and second steps
    // (the 100 ms nak_delay, doubling, would be done in a quarter of that).
    let waited = placed.elapsed();
    assert!(waited >= backoff[0] + backoff[1], "redelivered too early: {waited:?}");
    assert_eq!(
        app.stored("PAYMENTS", &format!("payments.{id}.authorized")).await.len(),
        1
    );
    assert!(
        app.stored(DEAD_LETTERS, ">").await.is_empty(),
        "a retried step is no dead letter"
    );
    assert!(!crate::support::history(&order).contains(&"attention_required".to_owned()));
}

/// An input its entity refuses (a cancel for an order never placed)
/// is dead-lettered with the refusal as its reason, but only on its third
/// delivery: a first refusal may come from a journal read that trails the
/// input in a cluster.
#[tokio::test]
async fn a_refused_input_is_believed_on_its_third_delivery_then_dead_lettered() {
    use actors::journal::{Cause, Journal};
    use orderflow::bus::journal::NatsJournal;
    use schemas::order::OrderEvent;
    use schemas::subjects::EntityRef;

    let nats = crate::support::NatsServer::start().await;
    let mut config = crate::support::test_config(&nats.url());
    config.consumers.nak_delay = Duration::from_millis(50);
    let app = TestApp::spawn_on(nats, config).await;
    let stray = schemas::OrderId::parse(&uuid::Uuid::new_v4().to_string()).expect("an order id");
    let journal = NatsJournal::open(app.js.clone()).await.expect("journal");
    let cancel = OrderEvent::CancelRequested {
        reason: "changed my mind".into(),
    };
    let stored = journal
        .append(&EntityRef::order(stray), 0, &cancel, &Cause::default())
        .await
        .expect("stored");
    let advisory: Value = eventually("the refused cancel to be dead-lettered", SAGA_DEADLINE, || async {
        app.stored(DEAD_LETTERS, "$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.>")
            .await
            .iter()
            .filter_map(|m| serde_json::from_slice::<Value>(&m.payload).ok())
            .find(|a| a["stream"] == "ORDERS" && a["stream_seq"].as_u64() == Some(stored.seq))
    })
    .await;
    assert_eq!(advisory["consumer"], "order-saga", "{advisory}");
    assert_eq!(advisory["deliveries"], 3, "{advisory}");
    let reason = advisory["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("refused") && reason.contains("does not exist"),
        "{advisory}"
    );
}
