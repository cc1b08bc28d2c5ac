//! What operators see: one trace id across the whole saga, metrics with
//! sane values, readiness that follows the broker, JSON logs naming the
//! order and trace, and a SIGTERM under load that loses nothing.

use std::collections::BTreeSet;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use prost::Message;
use reqwest::StatusCode;
use serde_json::Value;

use orderflow::read_model::follow::{stream_last_seq, OrderReadModel};

use crate::support::load::{all_ended, place_mixed, Mix};
use crate::support::process::ProcessRig;
use crate::support::{
    audit_passes, eventually, metric_value, order_body, orderflow_cli, send, test_config, NatsServer, TestApp,
    SAGA_DEADLINE,
};

/// Every message of the order's saga, across the four streams and its
/// reservation timer, if it set one.
async fn saga_messages(app: &TestApp, id: &str) -> Vec<async_nats::jetstream::message::StreamMessage> {
    let mut all = Vec::new();
    for (stream, filter) in [
        ("ORDERS", format!("orders.{id}.*")),
        ("PAYMENTS", format!("payments.{id}.*")),
        ("NOTIFICATIONS", format!("notifications.{id}.*")),
        ("TIMERS", format!("timers.{id}.*")),
    ] {
        all.extend(app.stored(stream, &filter).await);
    }
    let inventory = app.stored("INVENTORY", "inventory.*.*").await;
    all.extend(
        inventory
            .into_iter()
            .filter(|m| m.headers.get("Order-Id").map(|v| v.as_str()) == Some(id)),
    );
    all
}

fn trace_id_of(traceparent: &str) -> &str {
    traceparent.split('-').nth(1).unwrap_or_default()
}

#[tokio::test]
async fn a_trace_id_from_the_request_is_on_every_message_of_the_saga() {
    let app = TestApp::spawn().await;
    app.restock("SKU-1", 5).await;
    app.restock("SKU-2", 5).await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let given = format!("00-{trace_id}-00f067aa0ba902b7-01");
    let response = app
        .http
        .post(app.url("/orders"))
        .header("traceparent", &given)
        .json(&order_body("alice", &[("SKU-1", 1), ("SKU-2", 2)], "tok_visa"))
        .send()
        .await
        .expect("the node answers");
    assert_eq!(response.status(), StatusCode::CREATED);
    let echoed = response
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    assert_eq!(echoed.as_deref().map(trace_id_of), Some(trace_id));
    let id = response.json::<Value>().await.expect("json")["order_id"]
        .as_str()
        .expect("an id")
        .to_owned();
    assert_eq!(app.ended(&id).await["status"], "COMPLETED");

    let messages = eventually("the notification to be stored", SAGA_DEADLINE, || async {
        let all = saga_messages(&app, &id).await;
        all.iter()
            .any(|m| m.subject.starts_with("notifications."))
            .then_some(all)
    })
    .await;
    let streams: BTreeSet<&str> = messages
        .iter()
        .map(|m| m.subject.split('.').next().unwrap_or(""))
        .collect();
    assert_eq!(
        streams,
        BTreeSet::from(["inventory", "notifications", "orders", "payments"])
    );
    let mut spans = BTreeSet::new();
    for m in &messages {
        let tp = m.headers.get("traceparent").map(|v| v.as_str()).unwrap_or_default();
        assert_eq!(trace_id_of(tp), trace_id, "{}: traceparent {tp:?}", m.subject);
        spans.insert(tp.split('-').nth(2).unwrap_or_default().to_owned());
    }
    assert!(spans.len() > 3, "each step is a child span: {spans:?}");

    // `orderflow trace` tells the same story, in order, with step durations.
    let out = orderflow_cli(&app.nats.url(), &["trace", &id, "--json"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let trace: Value = serde_json::from_slice(&out.stdout).expect("trace JSON");
    let hops = trace["hops"].as_array().expect("hops");
    assert_eq!(hops.len(), messages.len(), "{trace}");
    assert_eq!(hops[0]["event_type"], "placed");
    assert!(hops.iter().all(|h| h["trace_id"] == trace_id));
    let offsets: Vec<f64> = hops.iter().filter_map(|h| h["offset_seconds"].as_f64()).collect();
    assert!(offsets.windows(2).all(|w| w[0] <= w[1]), "time order: {offsets:?}");
    let steps: Vec<&str> = trace["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter_map(|s| s["step"].as_str())
        .collect();
    assert_eq!(steps, ["payment", "stock", "notification", "saga"]);

    // Without a traceparent, the node starts a trace and the saga keeps it.
    let other = app.place_ok(&order_body("bob", &[("SKU-1", 1)], "tok_visa")).await;
    app.ended(&other).await;
    let traces: BTreeSet<String> = saga_messages(&app, &other)
        .await
        .iter()
        .map(|m| trace_id_of(m.headers.get("traceparent").map(|v| v.as_str()).unwrap_or_default()).to_owned())
        .collect();
    assert_eq!(traces.len(), 1, "{traces:?}");
    assert!(!traces.contains(trace_id) && !traces.contains(""));
}

#[tokio::test]
async fn metrics_expose_every_family_with_sane_values_after_a_small_load() {
    let nats = NatsServer::start().await;
    let mut config = test_config(&nats.url());
    config.telemetry.poll_interval = Duration::from_millis(200);
    let app = TestApp::spawn_on(nats, config).await;
    app.restock("SKU-1", 100).await;
    let mut ids = Vec::new();
    for i in 0..8 {
        let token = if i % 4 == 3 { "tok_decline" } else { "tok_visa" };
        ids.push(
            app.place_ok(&order_body(&format!("c{i}"), &[("SKU-1", 1)], token))
                .await,
        );
    }
    for id in &ids {
        app.ended(id).await;
    }
    let (status, _) = send(app.http.get(app.url("/orders/not-an-id"))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // Endings are counted when notified, which may trail the status a little.
    let ended = |status: &'static str| format!("orderflow_orders_ended_total{{status=\"{status}\"}}");
    eventually("every ending to be counted", SAGA_DEADLINE, || async {
        (app.metric(&ended("COMPLETED")).await == Some(6.0) && app.metric(&ended("FAILED")).await == Some(2.0))
            .then_some(())
    })
    .await;
    eventually("consumer lag to drain to zero", SAGA_DEADLINE, || async {
        (app.metric(r#"orderflow_consumer_pending{consumer="order-saga"}"#).await == Some(0.0)).then_some(())
    })
    .await;

    let text = app.metrics_text().await;
    let value = |series: &str| -> f64 {
        metric_value(&text, series).unwrap_or_else(|| panic!("no series {series} in /metrics:\n{text}"))
    };
    assert_eq!(
        value(r#"orderflow_http_requests_total{method="POST",route="/api/v1/orders",status="201"}"#),
        8.0
    );
    assert_eq!(
        value(r#"orderflow_http_requests_total{method="GET",route="/api/v1/orders/{id}",status="422"}"#),
        1.0
    );
    assert!(value(r#"orderflow_http_request_duration_seconds_count{method="POST",route="/api/v1/orders"}"#) >= 8.0);
    assert_eq!(
        value(r#"orderflow_saga_duration_seconds_count{status="COMPLETED"}"#),
        6.0
    );
    let saga_seconds = value(r#"orderflow_saga_duration_seconds_sum{status="COMPLETED"}"#);
    assert!(
        saga_seconds > 0.0 && saga_seconds < 6.0 * SAGA_DEADLINE.as_secs_f64(),
        "{saga_seconds}"
    );
    assert_eq!(value(r#"orderflow_step_duration_seconds_count{step="payment"}"#), 8.0);
    assert!(value(r#"orderflow_step_duration_seconds_count{step="stock"}"#) >= 6.0);
    assert_eq!(
        value(r#"orderflow_inbox_messages_total{consumer="order-saga",outcome="ack"}"#),
        8.0
    );
    assert!(value(r#"orderflow_actors_live{kind="order"}"#) <= 8.0);
    // JetStream requests, as `orderflow bench` counts them: every placed
    // order was published, read back, delivered and acked at least once.
    let op = |op: &str| value(&format!(r#"orderflow_jetstream_operations_total{{op="{op}"}}"#));
    assert!(op("publish") >= 8.0, "publishes {}", op("publish"));
    assert!(
        op("read") >= 1.0 && op("deliver") >= 8.0,
        "reads {}, deliveries {}",
        op("read"),
        op("deliver")
    );
    assert!(op("ack") >= 8.0 && op("ack") <= op("deliver"), "acks {}", op("ack"));
    for family in [
        r#"orderflow_actor_passivations_total{kind="order"}"#,
        r#"orderflow_entities_parked{kind="order"}"#,
        r#"orderflow_entity_passivations_total{kind="order"}"#,
        r#"orderflow_actor_restarts_total{kind="order"}"#,
        r#"orderflow_occ_conflicts_total{kind="order"}"#,
        r#"orderflow_duplicates_dropped_total{kind="order"}"#,
        r#"orderflow_consumer_ack_pending{consumer="order-saga"}"#,
        "orderflow_dead_letters_replayed_total",
        "orderflow_dead_letters_discarded_total",
    ] {
        assert!(value(family) >= 0.0);
    }
    assert_eq!(value("orderflow_dead_letters_backlog"), 0.0);
    assert!(
        text.contains("# TYPE orderflow_saga_duration_seconds histogram"),
        "histograms, not summaries"
    );
}

/// `/readyz` is 503 naming `missing`, and ready again after `orderflow setup`.
async fn unready_until_setup(app: &TestApp, ready: &str, missing: &str) {
    let (status, problem) = send(app.http.get(ready)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap_or_default().contains(missing),
        "{problem}"
    );
    let out = orderflow_cli(&app.nats.url(), &["setup"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(send(app.http.get(ready)).await.0, StatusCode::OK);
}

#[tokio::test]
async fn readiness_follows_the_broker_down_and_back() {
    let mut app = TestApp::spawn().await;
    let ready = format!("{}/readyz", app.base);
    let (status, body) = send(app.http.get(&ready)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["checks"]["snapshots"], "open");

    app.nats.stop().await;
    let problem = eventually("readiness to fail with NATS down", SAGA_DEADLINE, || async {
        let (status, body) = send(app.http.get(&ready)).await;
        (status == StatusCode::SERVICE_UNAVAILABLE).then_some(body)
    })
    .await;
    assert_eq!(problem["code"], "not-ready", "{problem}");
    let (status, _) = send(app.http.get(format!("{}/healthz", app.base))).await;
    assert_eq!(status, StatusCode::OK, "alive all along");

    app.nats.restart().await;
    eventually("readiness to recover by itself", SAGA_DEADLINE, || async {
        (send(app.http.get(&ready)).await.0 == StatusCode::OK).then_some(())
    })
    .await;

    // A missing stream or bucket is noticed (asked of the server, not
    // assumed), named, and `orderflow setup` puts it back.
    app.js.delete_stream("DEAD_LETTER_ACTIONS").await.expect("deleted");
    unready_until_setup(&app, &ready, "DEAD_LETTER_ACTIONS").await;
    app.js.delete_key_value("ORDERFLOW_NODES").await.expect("deleted");
    unready_until_setup(&app, &ready, "KV_ORDERFLOW_NODES").await;
    // And the node works again.
    app.restock("SKU-1", 1).await;
    let id = app.place_ok(&order_body("alice", &[("SKU-1", 1)], "tok_visa")).await;
    assert_eq!(app.ended(&id).await["status"], "COMPLETED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_exits_zero_and_loses_nothing() {
    let mut rig = ProcessRig::start(&[
        ("ORDERFLOW_NODE__SHUTDOWN_TIMEOUT", "20s"),
        ("ORDERFLOW_TELEMETRY__LOG_FORMAT", "json"),
        ("ORDERFLOW_LOG", "info"),
    ])
    .await;
    rig.restock("T1", 500).await;
    let (js, http, base) = (rig.js.clone(), rig.http.clone(), rig.node.base());
    let node = &mut rig.node;

    let mix = Mix::new(300, &["T1"]);
    let load = {
        let (http, base, mix) = (http.clone(), base.clone(), mix.clone());
        tokio::spawn(async move { place_mixed(&http, || base.clone(), &mix).await })
    };
    let orders_stream = js.get_stream("ORDERS").await.expect("ORDERS");
    eventually("the load to be under way", SAGA_DEADLINE, || {
        let mut s = orders_stream.clone();
        async move { s.info().await.ok().filter(|i| i.state.messages >= 400).map(drop) }
    })
    .await;
    let exit = node.terminate(Duration::from_secs(25)).await;
    assert!(
        exit.is_some_and(|s| s.success()),
        "SIGTERM must end in exit 0 within the timeout: {exit:?}"
    );
    let log = std::fs::read_to_string(node.log()).expect("the node's log");
    assert!(log.contains("stopped cleanly"), "{log}");

    // The load's client retries through the restart; every order ends once.
    node.restart().await;
    let ids = load.await.expect("the load ran");
    let orders = all_ended(&http, &base, &ids, Duration::from_secs(120)).await;
    assert_eq!(orders.len(), 300);
    audit_passes(&js).await;

    // JSON log lines about an order name it and its trace.
    let log = std::fs::read_to_string(node.log()).expect("the node's log");
    let about_orders: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["span"]["order_id"].is_string())
        .collect();
    assert!(!about_orders.is_empty(), "no JSON line names an order:\n{log}");
    assert!(
        about_orders
            .iter()
            .all(|l| l["span"]["trace_id"].as_str().is_some_and(|t| t.len() == 32)),
        "every line about an order names its trace"
    );
    node.kill().await;
}

/// Spans an OTLP/HTTP collector on loopback received: every
/// `ExportTraceServiceRequest` posted to `/v1/traces`, decoded.
#[derive(Clone, Default)]
struct Collector {
    requests: std::sync::Arc<std::sync::Mutex<Vec<ExportTraceServiceRequest>>>,
}

impl Collector {
    /// Starts one on a free port; returns its base URL.
    async fn start(&self) -> String {
        let requests = self.requests.clone();
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |body: axum::body::Bytes| async move {
                match ExportTraceServiceRequest::decode(body) {
                    Ok(request) => {
                        requests.lock().unwrap_or_else(|p| p.into_inner()).push(request);
                        StatusCode::OK
                    }
                    Err(_) => StatusCode::BAD_REQUEST,
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let url = format!("http://{}", listener.local_addr().expect("an address"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    /// (span name, consumer attribute, service.name) of every span in `trace_id`.
    fn spans_of(&self, trace_id: &[u8]) -> Vec<(String, String, String)> {
        let requests = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        let mut spans = Vec::new();
        for resource_spans in requests.iter().flat_map(|r| &r.resource_spans) {
            let service = resource_spans
                .resource
                .as_ref()
                .and_then(|r| string_attribute(&r.attributes, "service.name"))
                .unwrap_or_default();
            for span in resource_spans.scope_spans.iter().flat_map(|s| &s.spans) {
                if span.trace_id == trace_id {
                    // An input's span names its consumer; a step's, the step.
                    let consumer = string_attribute(&span.attributes, "consumer")
                        .or_else(|| string_attribute(&span.attributes, "step"))
                        .unwrap_or_default();
                    spans.push((span.name.clone(), consumer, service.clone()));
                }
            }
        }
        spans
    }
}

fn string_attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes.iter().find(|a| a.key == key).and_then(|a| match &a.value {
        Some(AnyValue {
            value: Some(any_value::Value::StringValue(s)),
        }) => Some(s.clone()),
        _ => None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_are_exported_over_otlp_as_one_trace_per_saga() {
    let collector = Collector::default();
    let endpoint = collector.start().await;
    let mut rig = ProcessRig::start(&[
        ("ORDERFLOW_TELEMETRY__OTLP_ENDPOINT", endpoint.as_str()),
        ("ORDERFLOW_TELEMETRY__SERVICE_NAME", "orderflow-under-test"),
        ("ORDERFLOW_LOG", "info"),
        // The SDK's batch delay (ms), so spans leave within the test's patience.
        ("OTEL_BSP_SCHEDULE_DELAY", "200"),
    ])
    .await;
    rig.restock("O1", 5).await;
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let placed = rig
        .http
        .post(format!("{}/api/v1/orders?wait=10s", rig.node.base()))
        .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
        .json(&order_body("otto", &[("O1", 1)], "tok_visa"));
    let (status, order) = send(placed).await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    let trace_id: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&trace[2 * i..2 * i + 2], 16).expect("hex"))
        .collect();
    let wanted = ["payment", "stock", "notification", "order-saga"];
    let spans = eventually("the saga's spans at the collector", SAGA_DEADLINE, || {
        let spans = collector.spans_of(&trace_id);
        let consumers: BTreeSet<&str> = spans.iter().map(|(_, c, _)| c.as_str()).collect();
        let complete =
            spans.iter().any(|(name, _, _)| name == "request") && wanted.iter().all(|c| consumers.contains(c));
        std::future::ready(complete.then_some(spans.clone()))
    })
    .await;
    assert!(
        spans.iter().all(|(_, _, service)| service == "orderflow-under-test"),
        "{spans:?}"
    );
    rig.node.kill().await;
}

/// Once its SKU's actor is live and its customer's preferences are cached,
/// an order reads only what must be consulted before acting on the world:
/// its payment's journal (before charging) and its notification's (before
/// sending). Its own journal is seeded from the delivered `placed`, its
/// saga is dated from it, and a settled notification is not asked again.
#[tokio::test]
async fn a_running_order_reads_only_the_journals_it_must_consult() {
    let app = TestApp::spawn().await;
    app.restock("SKU-1", 10).await;
    let completed = r#"orderflow_orders_ended_total{status="COMPLETED"}"#;
    let reads = r#"orderflow_jetstream_operations_total{op="read"}"#;
    app.place_ok(&order_body("alice", &[("SKU-1", 1)], "tok_visa")).await;
    eventually("the first order to be counted", SAGA_DEADLINE, || async {
        (app.metric(completed).await == Some(1.0)).then_some(())
    })
    .await;
    let before = app.metric(reads).await.expect("reads are counted");
    let id = app.place_ok(&order_body("alice", &[("SKU-1", 1)], "tok_visa")).await;
    eventually("the second order to be counted", SAGA_DEADLINE, || async {
        (app.metric(completed).await == Some(2.0)).then_some(())
    })
    .await;
    // One more: the 201 reads the just-placed order back for its body.
    let read = app.metric(reads).await.expect("reads are counted") - before - 1.0;
    assert!(read <= 2.0, "the second order's saga read {read} times");
    assert_eq!(app.order(&id).await["status"], "COMPLETED");
}

/// `?wait=` is answered from what the node's follower of ORDERS heard: the
/// order it returns is the one the journal holds, history, sequences and
/// times included, and neither the wait nor the saga read a journal (the
/// saga's entities are seeded by the drive that made them).
#[tokio::test]
async fn a_wait_is_answered_from_what_the_follower_heard_without_a_read() {
    let app = TestApp::spawn().await;
    app.restock("SKU-1", 10).await;
    let reads = r#"orderflow_jetstream_operations_total{op="read"}"#;
    // The SKU's actor live and the customer's preferences cached first.
    let warm = app.place_ok(&order_body("alice", &[("SKU-1", 1)], "tok_visa")).await;
    app.ended(&warm).await;
    let before = app.metric(reads).await.expect("reads are counted");
    let (status, waited) = app
        .place_waiting(&order_body("alice", &[("SKU-1", 1)], "tok_visa"), "10s")
        .await;
    assert_eq!(status, StatusCode::CREATED, "{waited}");
    assert_eq!(waited["status"], "COMPLETED", "{waited}");
    let read = app.metric(reads).await.expect("reads are counted") - before;
    assert_eq!(read, 0.0, "the wait and its saga read {read} times");
    let id = waited["order_id"].as_str().expect("an order id");
    assert_eq!(app.order(id).await, waited, "the journal holds what the wait answered");
}

/// A node's follower says it is caught up only once it has folded what
/// ORDERS held when it started: until then a wait cannot count on hearing
/// a new order's events from it, and re-reads the journal instead.
#[tokio::test]
async fn the_follower_is_caught_up_only_once_it_folded_the_stream_it_found() {
    let app = TestApp::spawn().await;
    app.restock("SKU-1", 100).await;
    let ids = place_mixed(&app.http, || app.base.clone(), &Mix::new(40, &["SKU-1"])).await;
    all_ended(&app.http, &app.base, &ids, SAGA_DEADLINE).await;
    let found = stream_last_seq(&app.js).await.expect("ORDERS answers");
    let model = OrderReadModel::default();
    assert!(!model.caught_up(), "a follower that has not started is not caught up");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let follower = tokio::spawn(model.clone().follow(app.js.clone(), stopped));
    // Polled as fast as it goes, so a flag raised early would be seen early.
    let deadline = tokio::time::Instant::now() + SAGA_DEADLINE;
    while !model.caught_up() {
        assert!(tokio::time::Instant::now() < deadline, "the follower never caught up");
        tokio::task::yield_now().await;
    }
    let applied = model.read().applied_seq();
    assert!(
        applied >= found,
        "caught up at sequence {applied}, but ORDERS held {found} when it started"
    );
    let _ = stop.send(true);
    follower.await.expect("the follower stops");
}
