//! Least-privilege NATS users (`nats-permissions.conf`): the read-only
//! `inspector` can look but not touch, and the app's `orderflow` user cannot
//! reach what it does not need. (That the app can do everything it does need
//! is shown by every other integration test: nodes connect as that user.)

use std::time::Duration;

use async_nats::jetstream::consumer::pull;
use async_nats::jetstream::stream::DirectGetErrorKind;
use async_nats::{Client, Event, ServerError};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

use crate::support::nats::NatsUser;
use crate::support::{eventually_true, order_body, NatsServer, TestApp, APP_USER, INSPECTOR_USER};

/// How long a refused request waits for an answer that never comes.
const REFUSED_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// How long the server may take to report a violation.
const VIOLATION_DEADLINE: Duration = Duration::from_secs(10);

/// A client connected as `user`, and the server's error reports to it.
async fn connect_watching(nats: &NatsServer, user: NatsUser) -> (Client, UnboundedReceiver<String>) {
    let (errors, reports) = unbounded_channel();
    let client = async_nats::ConnectOptions::new()
        .user_and_password(user.name.to_owned(), user.password.to_owned())
        .request_timeout(Some(REFUSED_REQUEST_TIMEOUT))
        .event_callback(move |event| {
            let errors = errors.clone();
            async move {
                if let Event::ServerError(ServerError::Other(text)) = event {
                    let _ = errors.send(text);
                }
            }
        })
        .connect(nats.url())
        .await
        .unwrap_or_else(|e| panic!("connect as {}: {e}", user.name));
    (client, reports)
}

/// Waits until the server reports a permissions violation naming `subject`.
async fn violation_reported(reports: &mut UnboundedReceiver<String>, subject: &str) {
    let deadline = tokio::time::Instant::now() + VIOLATION_DEADLINE;
    let mut seen = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, reports.recv()).await {
            Ok(Some(report)) => {
                if report.to_lowercase().contains("permissions violation") && report.contains(subject) {
                    return;
                }
                seen.push(report);
            }
            Ok(None) | Err(_) => panic!("no permissions violation for {subject:?} reported; saw {seen:?}"),
        }
    }
}

/// A request the server must refuse: no answer, and a violation naming it.
async fn request_refused(client: &Client, reports: &mut UnboundedReceiver<String>, subject: &str) {
    let answer = client.request(subject.to_owned(), "".into()).await;
    assert!(answer.is_err(), "{subject} was answered: {answer:?}");
    violation_reported(reports, subject).await;
}

async fn orders_count(app: &TestApp) -> u64 {
    let mut orders = app.js.get_stream("ORDERS").await.expect("ORDERS exists");
    orders.info().await.expect("ORDERS info").state.messages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inspector_reads_streams_but_cannot_publish_purge_update_or_delete() {
    let app = TestApp::spawn().await;
    app.restock("SEC-1", 5).await;
    let id = app.place_ok(&order_body("c-sec", &[("SEC-1", 1)], "tok_ok")).await;
    app.ended(&id).await;
    let stored = orders_count(&app).await;
    assert!(stored > 0, "the order left events in ORDERS");

    let (inspector, mut reports) = connect_watching(&app.nats, INSPECTOR_USER).await;
    let js = async_nats::jetstream::new(inspector.clone());

    // Looking: stream info, a message by direct get, the KV bucket.
    let mut orders = js.get_stream("ORDERS").await.expect("the inspector gets ORDERS' info");
    assert_eq!(orders.info().await.expect("stream info").state.messages, stored);
    let first = orders
        .direct_get_next_for_subject(format!("orders.{id}.>"), None)
        .await
        .expect("the inspector reads the order's first event");
    assert!(first.subject.ends_with(".placed"), "first event: {}", first.subject);
    let preferences = js
        .get_key_value(orderflow::notify::preferences::BUCKET)
        .await
        .expect("the inspector opens the preferences bucket");
    let missing = preferences.get("no-such-customer").await.expect("a KV read is allowed");
    assert!(missing.is_none());

    // Touching: every attempt is refused, and nothing changed.
    let forged = "orders.forged-by-inspector.placed".to_owned();
    inspector
        .publish(forged.clone(), "forged".into())
        .await
        .expect("the publish leaves the client");
    inspector.flush().await.expect("flush");
    violation_reported(&mut reports, &forged).await;
    request_refused(&inspector, &mut reports, "$JS.API.STREAM.PURGE.ORDERS").await;
    request_refused(&inspector, &mut reports, "$JS.API.STREAM.DELETE.ORDERS").await;
    request_refused(&inspector, &mut reports, "$JS.API.STREAM.UPDATE.ORDERS").await;
    request_refused(&inspector, &mut reports, "$JS.API.STREAM.MSG.DELETE.ORDERS").await;
    let consumer = js
        .create_consumer_on_stream(
            pull::Config {
                durable_name: Some("inspector-was-here".into()),
                ..Default::default()
            },
            "ORDERS",
        )
        .await;
    assert!(consumer.is_err(), "the inspector created a consumer");
    violation_reported(&mut reports, "$JS.API.CONSUMER.CREATE.ORDERS").await;

    assert_eq!(orders_count(&app).await, stored, "ORDERS is untouched");
    let by_harness = app.js.get_stream_no_info("ORDERS").await.expect("ORDERS still exists");
    let last = by_harness.direct_get_last_for_subject(&forged).await;
    assert!(
        matches!(&last, Err(e) if e.kind() == DirectGetErrorKind::NotFound),
        "the forged event was stored: {last:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_user_cannot_reach_what_it_does_not_need() {
    let app = TestApp::spawn().await;
    let stored = orders_count(&app).await;
    let (client, mut reports) = connect_watching(&app.nats, APP_USER).await;

    // The system account's events, and subjects that are not orderflow's.
    let _system = client.subscribe("$SYS.>").await.expect("the SUB leaves the client");
    client.flush().await.expect("flush");
    violation_reported(&mut reports, "$SYS.>").await;
    client
        .publish("billing.x.charged", "".into())
        .await
        .expect("the publish leaves the client");
    client.flush().await.expect("flush");
    violation_reported(&mut reports, "billing.x.charged").await;

    // Destroying history: the app never deletes or purges a stream.
    request_refused(&client, &mut reports, "$JS.API.STREAM.PURGE.ORDERS").await;
    request_refused(&client, &mut reports, "$JS.API.STREAM.DELETE.ORDERS").await;
    assert_eq!(orders_count(&app).await, stored, "ORDERS is untouched");
    // It never deletes a durable the nodes run: each one the topology
    // declares is refused, and is still there.
    let js = async_nats::jetstream::new(client.clone());
    let durables = orderflow::bus::topology::consumers(&app.config);
    assert!(durables.len() >= 4, "the topology's durables: {}", durables.len());
    for (stream, consumer) in durables {
        let name = consumer.durable_name.expect("a topology consumer is durable");
        request_refused(
            &client,
            &mut reports,
            &format!("$JS.API.CONSUMER.DELETE.{stream}.{name}"),
        )
        .await;
        let stream = js.get_stream(stream).await.expect("the stream");
        stream.consumer_info(&name).await.expect("the durable is still there");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_user_deletes_its_own_ephemeral_consumers() {
    // An ordered consumer that resets deletes the consumer it had before it
    // makes the next; refused, that delete waited out the request timeout
    // and the order index went silent meanwhile (the cluster bench's
    // one-second waits). Deleting an ephemeral consumer is answered.
    let app = TestApp::spawn().await;
    let (client, _reports) = connect_watching(&app.nats, APP_USER).await;
    let js = async_nats::jetstream::new(client);
    let orders = js.get_stream("ORDERS").await.expect("ORDERS");
    let ephemeral = orders
        .create_consumer(pull::OrderedConfig::default())
        .await
        .expect("the app creates an ordered consumer");
    let name = ephemeral.cached_info().name.clone();
    let deleted = orders.delete_consumer(&name).await.expect("the app deletes it");
    assert!(deleted.success, "deleting {name} was not a success");
    let gone = orders.consumer_info(&name).await;
    assert!(gone.is_err(), "{name} is still there: {gone:?}");
}

/// Shorter than the client's 10 s request timeout, which a refused delete
/// waited out before a reset ordered consumer came back.
const RESET_DEADLINE: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_order_index_comes_back_soon_after_its_consumer_is_deleted() {
    let app = TestApp::spawn().await;
    app.restock("SEC-R", 5).await;
    let first = app.place_ok(&order_body("c-reset", &[("SEC-R", 1)], "tok_ok")).await;
    app.ended(&first).await;

    // Deleting every ephemeral ORDERS consumer resets the node's ordered
    // consumers, its order index's among them.
    let durables: Vec<String> = orderflow::bus::topology::consumers(&app.config)
        .into_iter()
        .filter_map(|(_, c)| c.durable_name)
        .collect();
    let orders = app.js.get_stream("ORDERS").await.expect("ORDERS");
    let names: Vec<String> = futures::TryStreamExt::try_collect(orders.consumer_names())
        .await
        .expect("ORDERS' consumers");
    let ephemeral: Vec<&String> = names.iter().filter(|n| !durables.contains(n)).collect();
    assert!(!ephemeral.is_empty(), "the order index's consumer is among {names:?}");
    for name in ephemeral {
        orders.delete_consumer(name).await.expect("the harness deletes it");
    }

    let second = app.place_ok(&order_body("c-reset", &[("SEC-R", 1)], "tok_ok")).await;
    app.ended(&second).await;
    let mut orders = app.js.get_stream("ORDERS").await.expect("ORDERS");
    let last = orders.info().await.expect("ORDERS info").state.last_sequence;
    eventually_true("the order index folds what ORDERS holds", RESET_DEADLINE, || async {
        app.metric("orderflow_read_model_applied_seq")
            .await
            .is_some_and(|seq| seq >= last as f64)
    })
    .await;
}
