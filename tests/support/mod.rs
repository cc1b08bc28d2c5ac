//! The shared test kit: a real nats-server, a real node on port 0, an HTTP
//! client, and readers of the streams. Every integration test starts here.
#![allow(dead_code)]

pub mod cluster;
pub mod load;
pub mod nats;
pub mod payment_service;
pub mod process;

use std::sync::OnceLock;
use std::time::Duration;

use async_nats::jetstream::message::StreamMessage;
use async_nats::jetstream::stream::DirectGetErrorKind;
use orderflow::auth::token::{mint_hs256, Claims};
use orderflow::auth::Role;
use orderflow::config::{AuthMode, Config};
use orderflow::node::Node;
use reqwest::StatusCode;
use serde_json::{json, Value};

pub use nats::{
    eventually, eventually_true, NatsOptions, NatsServer, NatsUser, APP_USER, HARNESS_USER, INSPECTOR_USER,
};

/// How long any saga in these tests may take to end.
pub const SAGA_DEADLINE: Duration = Duration::from_secs(30);

/// A nats-server and an orderflow node wired to it.
pub struct TestApp {
    /// The broker.
    pub nats: NatsServer,
    /// The node under test.
    pub node: Option<Node>,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// A client for the API.
    pub http: reqwest::Client,
    /// JetStream, for looking at the streams directly.
    pub js: async_nats::jetstream::Context,
    /// What the node was started with.
    pub config: Config,
    /// The node's snapshot directory, removed with the app.
    pub store: tempfile::TempDir,
}

/// The configuration tests run nodes with: loopback, port 0, quick retries.
/// Its snapshot path must be set per node (see [`TestApp::spawn_on`]).
pub fn test_config(nats_url: &str) -> Config {
    let mut config = Config::default();
    config.nats.url = nats_url.to_owned();
    config.nats.user = APP_USER.name.to_owned();
    config.nats.password = APP_USER.password.to_owned();
    config.http.addr = "127.0.0.1:0".parse().expect("a literal address");
    config.consumers.nak_delay = Duration::from_millis(100);
    config.consumers.ack_wait = Duration::from_secs(5);
    // JWT mode with this test process's secret; no rate limit, so load
    // tests measure the saga (the rate-limit tests turn it on).
    config.auth.mode = AuthMode::Jwt;
    config.auth.hs256_secret = test_secret().to_owned();
    config.http.rate_limit.per_second = 0;
    config
}

/// The HS256 secret of this test process (nextest runs each test in its
/// own process, so each test has its own); random, never in the repo.
pub fn test_secret() -> &'static str {
    static SECRET: OnceLock<String> = OnceLock::new();
    SECRET.get_or_init(|| format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple()))
}

/// A token for `sub` in `role`, signed with [`test_secret`], valid for an hour.
pub fn token(role: Role, sub: &str) -> String {
    let claims = Claims::new(sub, role, Duration::from_secs(3600), &Config::default().auth);
    mint_hs256(test_secret().as_bytes(), &claims).expect("a test token")
}

/// An HTTP client sending `token` as its bearer, or none.
pub fn client_with(token: Option<&str>) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = token {
        let value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).expect("a header value");
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("an HTTP client")
}

/// The client tests use by default: an admin may do everything.
pub fn admin_client() -> reqwest::Client {
    client_with(Some(&token(Role::Admin, "test-admin")))
}

/// A client acting as customer `id`.
pub fn customer_client(id: &str) -> reqwest::Client {
    client_with(Some(&token(Role::Customer, id)))
}

/// The settings a node process needs to accept this test's tokens.
pub fn auth_env() -> Vec<(&'static str, String)> {
    vec![
        ("ORDERFLOW_AUTH__MODE", "jwt".to_owned()),
        ("ORDERFLOW_AUTH__HS256_SECRET", test_secret().to_owned()),
        ("ORDERFLOW_HTTP__RATE_LIMIT__PER_SECOND", "0".to_owned()),
    ]
}

impl TestApp {
    /// A fresh nats-server and a node on it.
    pub async fn spawn() -> TestApp {
        let nats = NatsServer::start().await;
        let config = test_config(&nats.url());
        Self::spawn_on(nats, config).await
    }

    /// A node with `config` on an already running server.
    pub async fn spawn_on(nats: NatsServer, mut config: Config) -> TestApp {
        let store = tempfile::tempdir().expect("a temporary snapshot directory");
        config.store.path = store.path().join("snapshots");
        let node = Node::start(config.clone()).await.expect("the node starts");
        let base = format!("http://{}", node.http_addr);
        let js = nats.jetstream().await;
        TestApp {
            nats,
            node: Some(node),
            base,
            http: admin_client(),
            js,
            config,
            store,
        }
    }

    /// The node's API URL for `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }

    /// Adds units to a SKU.
    pub async fn restock(&self, sku: &str, quantity: u64) -> Value {
        let r = self
            .http
            .post(self.url(&format!("/skus/{sku}/restock")))
            .json(&json!({ "quantity": quantity }));
        let (status, body) = send(r).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// A SKU's stock.
    pub async fn sku(&self, sku: &str) -> Value {
        let (status, body) = send(self.http.get(self.url(&format!("/skus/{sku}")))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// Places an order; returns the status and body.
    pub async fn place(&self, body: &Value, key: Option<&str>) -> (StatusCode, Value) {
        let mut r = self.http.post(self.url("/orders")).json(body);
        if let Some(key) = key {
            r = r.header("Idempotency-Key", key);
        }
        send(r).await
    }

    /// Places an order with `?wait=`: the answer holds until it ends, or `wait`.
    pub async fn place_waiting(&self, body: &Value, wait: &str) -> (StatusCode, Value) {
        send(self.http.post(self.url(&format!("/orders?wait={wait}"))).json(body)).await
    }

    /// Places an order and returns its id.
    pub async fn place_ok(&self, body: &Value) -> String {
        let (status, body) = self.place(body, None).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["order_id"].as_str().expect("an order id").to_owned()
    }

    /// Reads an order.
    pub async fn order(&self, id: &str) -> Value {
        let (status, body) = send(self.http.get(self.url(&format!("/orders/{id}")))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// Polls an order until it ends, and returns it.
    pub async fn ended(&self, id: &str) -> Value {
        eventually(&format!("order {id} to end"), SAGA_DEADLINE, || async {
            let order = self.order(id).await;
            matches!(order["status"].as_str(), Some("COMPLETED" | "FAILED" | "CANCELLED")).then_some(order)
        })
        .await
    }

    /// Runs `orderflow audit`'s checks on the streams and fails on any violation.
    pub async fn audit_passes(&self) -> orderflow::audit::AuditReport {
        audit_passes(&self.js).await
    }

    /// Stops the node gracefully and starts a new one with `config` on the
    /// same server and snapshot store, as an operator's redeploy would.
    pub async fn restart_with(&mut self, mut config: Config) {
        if let Some(node) = self.node.take() {
            node.shutdown().await;
        }
        config.store.path = self.config.store.path.clone();
        let node = Node::start(config.clone()).await.expect("the node restarts");
        self.base = format!("http://{}", node.http_addr);
        self.node = Some(node);
        self.config = config;
    }

    /// The node's `/metrics` page.
    pub async fn metrics_text(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .expect("the node answers")
            .text()
            .await
            .expect("a text body")
    }

    /// The value of one series on `/metrics`, e.g.
    /// `orderflow_dead_letters_backlog` or `x_total{consumer="payments"}`.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        metric_value(&self.metrics_text().await, series)
    }

    /// Every stored message of `stream` matching `filter`, oldest first.
    pub async fn stored(&self, stream: &str, filter: &str) -> Vec<StreamMessage> {
        stored(&self.js, stream, filter).await
    }
}

/// Every stored message of `stream` matching `filter`, oldest first.
pub async fn stored(js: &async_nats::jetstream::Context, stream: &str, filter: &str) -> Vec<StreamMessage> {
    let stream = js.get_stream_no_info(stream).await.expect("the stream exists");
    let mut out = Vec::new();
    let mut next = 1;
    loop {
        match stream.direct_get_next_for_subject(filter, Some(next)).await {
            Ok(m) => {
                next = m.sequence + 1;
                out.push(m);
            }
            Err(e) if e.kind() == DirectGetErrorKind::NotFound => return out,
            Err(e) => panic!("reading {filter}: {e}"),
        }
    }
}

/// The value of `series` in a Prometheus text page.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .find_map(|value| value.trim().parse().ok())
}

/// Runs `orderflow audit`'s checks on the streams and fails on any violation.
pub async fn audit_passes(js: &async_nats::jetstream::Context) -> orderflow::audit::AuditReport {
    let options = orderflow::audit::AuditOptions {
        grace: Duration::ZERO,
        ..Default::default()
    };
    let report = orderflow::audit::run(js, &options)
        .await
        .expect("the audit reads the streams");
    assert!(report.violations().is_empty(), "the audit found violations:\n{report}");
    report
}

/// [`audit_passes`] once the audit stops finding violations, polling for up
/// to `deadline`: what follows an ending (its notification) may still be
/// on its way through a retry when every order is seen ended, as after a
/// broker node was killed under load.
pub async fn audit_settles(js: &async_nats::jetstream::Context, deadline: Duration) -> orderflow::audit::AuditReport {
    let options = orderflow::audit::AuditOptions {
        grace: Duration::ZERO,
        ..Default::default()
    };
    let clean = || async {
        let report = orderflow::audit::run(js, &options).await.ok()?;
        report.violations().is_empty().then_some(())
    };
    let until = tokio::time::Instant::now() + deadline;
    // Each audit reads every stream: poll gently.
    while clean().await.is_none() && tokio::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    audit_passes(js).await
}

/// Runs the `orderflow` binary against `nats_url` as the app's NATS user.
/// Asynchronously: a blocking wait would stall the runtime an in-process
/// node shares.
pub async fn orderflow_cli(nats_url: &str, args: &[&str]) -> std::process::Output {
    orderflow_cli_as(nats_url, APP_USER, args).await
}

/// Like [`orderflow_cli`], connecting to NATS as `user`.
pub async fn orderflow_cli_as(nats_url: &str, user: NatsUser, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_orderflow"))
        .args(args)
        .env("ORDERFLOW_NATS__URL", nats_url)
        .env("ORDERFLOW_NATS__USER", user.name)
        .env("ORDERFLOW_NATS__PASSWORD", user.password)
        .env("ORDERFLOW_LOG", "warn")
        .env("ORDERFLOW_TOKEN", token(Role::Admin, "test-admin"))
        .kill_on_drop(true)
        .output()
        .await
        .expect("the orderflow binary runs")
}

/// Sends a request and reads its JSON answer.
pub async fn send(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let response = request.send().await.expect("the node answers");
    let status = response.status();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

/// An order body for one customer with the given `(sku, quantity)` lines.
pub fn order_body(customer: &str, lines: &[(&str, u32)], payment_method: &str) -> Value {
    let items: Vec<Value> = lines
        .iter()
        .map(|(sku, q)| json!({ "sku": sku, "quantity": q, "unit_price": 1250 }))
        .collect();
    json!({ "customer_id": customer, "items": items, "payment_method": payment_method })
}

/// The event types of an order's history.
pub fn history(order: &Value) -> Vec<String> {
    order["history"]
        .as_array()
        .map(|h| h.iter().filter_map(|e| e["type"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}
