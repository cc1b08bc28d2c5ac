//! The HTTP payment provider against a real payment service on loopback:
//! retried charges are one charge, the circuit breaker opens and half-opens
//! as configured, orders wait while it is open and complete when the
//! provider returns, or fail with the reason past the wait deadline.

use std::time::Duration;

use orderflow::config::{Config, Provider};
use serde_json::Value;

use crate::support::nats::NatsServer;
use crate::support::payment_service::{PaymentService, DECLINE, FAIL_TWICE, SLOW_ONCE};
use crate::support::{eventually, eventually_true, history, order_body, test_config, TestApp, SAGA_DEADLINE};

const STATE: &str = r#"orderflow_gateway_breaker_state{provider="http"}"#;

fn transitions(to: &str) -> String {
    format!(r#"orderflow_gateway_breaker_transitions_total{{provider="http",to="{to}"}}"#)
}

/// A node charging through `service`, with quick timeouts and retries.
fn http_config(nats: &NatsServer, service: &PaymentService) -> Config {
    let mut config = test_config(&nats.url());
    config.gateway.provider = Provider::Http;
    config.gateway.http.url = service.url();
    config.gateway.http.timeout = Duration::from_millis(300);
    config.gateway.http.retries = 3;
    config.gateway.http.retry_base = Duration::from_millis(50);
    config.gateway.http.retry_max = Duration::from_millis(200);
    config
}

/// A node whose breaker opens after `failures` failed attempts (no retries)
/// for `open_for`, and the provider it charges through, already gone.
async fn provider_gone(failures: u32, open_for: Duration, tune: impl FnOnce(&mut Config)) -> (TestApp, PaymentService) {
    let mut service = PaymentService::start().await;
    let nats = NatsServer::start().await;
    let mut config = http_config(&nats, &service);
    config.gateway.http.retries = 0;
    config.gateway.breaker.failures = failures;
    config.gateway.breaker.open_for = open_for;
    tune(&mut config);
    let app = TestApp::spawn_on(nats, config).await;
    app.restock("P1", 10).await;
    service.stop().await;
    (app, service)
}

async fn waiting_reason(app: &TestApp, id: &str) -> Option<String> {
    let order = app.order(id).await;
    (order["status"] == "PENDING")
        .then(|| order["waiting"].as_str().map(str::to_owned))
        .flatten()
}

/// A wait whose order does not end in time answers the order as it stands
/// at the deadline: nothing ended, so nothing woke it, and its answer is
/// what the journal holds then.
#[tokio::test]
async fn a_wait_that_outlasts_its_deadline_answers_the_order_as_it_stands() {
    let (app, _service) = provider_gone(1, Duration::from_secs(30), |_| {}).await;
    let (status, order) = app
        .place_waiting(&order_body("ann", &[("P1", 1)], "tok_visa"), "1500ms")
        .await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{order}");
    assert_eq!(order["status"], "PENDING", "the charge waits: {order}");
    let id = order["order_id"].as_str().expect("an order id");
    let history = history(&order);
    assert_eq!(history.first().map(String::as_str), Some("placed"), "{order}");
    assert!(history.contains(&"payment_requested".to_owned()), "{order}");
    let now = app.order(id).await;
    assert_eq!(now["status"], "PENDING", "{now}");
}

#[tokio::test]
async fn retried_charges_are_one_charge_and_declines_fail_the_order() {
    let service = PaymentService::start().await;
    let nats = NatsServer::start().await;
    let mut config = http_config(&nats, &service);
    config.gateway.http.api_key = "test-key-not-a-secret".into();
    let app = TestApp::spawn_on(nats, config).await;
    app.restock("P1", 10).await;

    let slow = app.place_ok(&order_body("ann", &[("P1", 1)], SLOW_ONCE)).await;
    let flaky = app.place_ok(&order_body("bob", &[("P1", 1)], FAIL_TWICE)).await;
    let declined = app.place_ok(&order_body("cat", &[("P1", 1)], DECLINE)).await;

    assert_eq!(app.ended(&slow).await["status"], "COMPLETED");
    assert_eq!(app.ended(&flaky).await["status"], "COMPLETED");
    let failed = app.ended(&declined).await;
    assert_eq!(failed["status"], "FAILED");
    let reason = failed["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("insufficient funds"), "{failed}");

    // The timed-out attempt was stored by the provider; its retry carried
    // the same key and got the same charge back.
    assert!(service.requests_for(&slow) >= 2, "the slow charge was retried");
    assert_eq!(service.requests_for(&flaky), 3, "two 503s, then the charge");
    assert_eq!(
        service.charges(),
        2,
        "one charge per approved order: {:?}",
        service.ledger()
    );
    assert_eq!(
        service.ledger().last_authorization.as_deref(),
        Some("Bearer test-key-not-a-secret")
    );
    assert_eq!(app.metric(STATE).await, Some(0.0), "the breaker stayed closed");
    app.audit_passes().await;
}

#[tokio::test]
async fn orders_wait_while_the_breaker_is_open_and_complete_when_the_provider_returns() {
    let (app, mut service) = provider_gone(2, Duration::from_millis(700), |c| {
        c.gateway.breaker.open_max = Duration::from_millis(1400);
    })
    .await;

    let mut ids = Vec::new();
    for customer in ["ann", "bob", "cat"] {
        ids.push(app.place_ok(&order_body(customer, &[("P1", 1)], "tok_visa")).await);
    }
    for id in &ids {
        let reason = eventually(&format!("order {id} to show why it waits"), SAGA_DEADLINE, || {
            waiting_reason(&app, id)
        })
        .await;
        assert!(reason.contains("circuit breaker open"), "{reason}");
    }
    // Still down after the open period: a probe (half-open) fails and the
    // breaker opens again, for longer.
    eventually_true("a failed probe to re-open the breaker", SAGA_DEADLINE, || async {
        app.metric(&transitions("half_open")).await >= Some(1.0) && app.metric(&transitions("open")).await >= Some(2.0)
    })
    .await;
    assert_eq!(app.metric(STATE).await, Some(2.0), "open while the provider is gone");
    assert!(
        app.metric(r#"orderflow_gateway_breaker_rejected_total{provider="http"}"#)
            .await
            > Some(0.0)
    );
    assert_eq!(service.charges(), 0);

    service.restart().await;
    for id in &ids {
        let order = app.ended(id).await;
        assert_eq!(order["status"], "COMPLETED", "{order}");
        assert!(order.get("waiting").is_none(), "no longer waiting: {order}");
        assert!(history(&order).contains(&"payment_waiting".to_owned()), "{order}");
        assert_eq!(service.requests_for(id), 1, "the provider was asked once, when back");
    }
    assert_eq!(service.charges(), 3);
    eventually_true("the breaker to close", SAGA_DEADLINE, || async {
        app.metric(STATE).await == Some(0.0)
    })
    .await;
    app.audit_passes().await;
}

#[tokio::test]
async fn a_charge_waiting_past_the_deadline_fails_the_order_with_the_reason() {
    let (app, service) = provider_gone(1, Duration::from_millis(300), |c| {
        c.gateway.wait_deadline = Duration::from_secs(2);
    })
    .await;

    let id = app.place_ok(&order_body("ann", &[("P1", 1)], "tok_visa")).await;
    let order = app.ended(&id).await;
    assert_eq!(order["status"], "FAILED", "{order}");
    let reason = order["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("payment provider unavailable for over 2s"),
        "a clear reason: {reason}"
    );
    let payments: Vec<Value> = app
        .stored("PAYMENTS", &format!("payments.{id}.>"))
        .await
        .iter()
        .map(|m| Value::String(m.subject.to_string()))
        .collect();
    assert_eq!(
        payments,
        [format!("payments.{id}.waiting"), format!("payments.{id}.abandoned")],
        "told once that it waits, then given up"
    );
    assert_eq!(app.sku("P1").await["available"], 10, "nothing reserved");
    assert_eq!(service.charges(), 0);
    app.audit_passes().await;
}

/// A charge slower than the saga consumer's ack wait: the input tells the
/// server it is in progress, so it is not handed to a twin while the
/// provider thinks; it is delivered once and charged once.
#[tokio::test]
async fn a_charge_slower_than_the_ack_wait_keeps_its_input_from_redelivery() {
    let service = PaymentService::start().await;
    let nats = NatsServer::start().await;
    let mut config = http_config(&nats, &service);
    // The provider answers this charge after a second; the ack wait is shorter.
    config.gateway.http.timeout = Duration::from_secs(5);
    config.consumers.ack_wait = Duration::from_millis(400);
    config.consumers.backoff = Vec::new();
    let app = TestApp::spawn_on(nats, config).await;
    app.restock("P1", 1).await;

    let slow = app.place_ok(&order_body("ann", &[("P1", 1)], SLOW_ONCE)).await;
    assert_eq!(app.ended(&slow).await["status"], "COMPLETED");
    assert_eq!(service.requests_for(&slow), 1, "one call to the provider");
    let mut saga: async_nats::jetstream::consumer::PullConsumer = app
        .js
        .get_consumer_from_stream("order-saga", "ORDERS")
        .await
        .expect("the saga's consumer");
    let info = saga.info().await.expect("consumer info");
    assert_eq!(info.delivered.consumer_sequence, 1, "placed delivered once: {info:?}");
}
