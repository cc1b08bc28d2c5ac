//! Notifications as a real integration: email to a real SMTP server
//! (aiosmtpd, started here), signed webhooks to a real HTTP receiver that
//! verifies every signature itself, preferences and history over the API,
//! template overrides from files, fallback when the primary fails, and at
//! most one notification per order, ending and channel through
//! redeliveries, replays and a SIGKILLed node.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::header::HeaderMap as NatsHeaders;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use orderflow::bus::topology;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::support::nats::free_port;
use crate::support::process::ProcessRig;
use crate::support::{eventually, eventually_true, order_body, send, test_config, NatsServer, TestApp, SAGA_DEADLINE};

/// A Standard Webhooks secret for the tests (random bytes, base64).
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// How long a delivery may take to show up at a receiver.
const DELIVERY: Duration = Duration::from_secs(30);

/// aiosmtpd on a free loopback port, storing mails as files in a temp dir.
struct SmtpSink {
    port: u16,
    dir: tempfile::TempDir,
    _child: Child,
}

impl SmtpSink {
    async fn start() -> SmtpSink {
        let dir = tempfile::tempdir().expect("a mail directory");
        let port = free_port();
        let python = std::env::var("ORDERFLOW_PYTHON").unwrap_or_else(|_| "python3".into());
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/smtp_sink.py");
        let mut child = Command::new(python)
            .arg(script)
            .arg(port.to_string())
            .arg(dir.path())
            // Its stdin is our pipe: when this process goes, the sink exits.
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the SMTP sink starts (is ORDERFLOW_PYTHON set, with aiosmtpd on PYTHONPATH?)");
        let stdout = child.stdout.take().expect("a stdout pipe");
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(20), lines.next_line()).await;
        assert!(
            matches!(&ready, Ok(Ok(Some(l))) if l == "ready"),
            "the SMTP sink did not start: {ready:?}"
        );
        SmtpSink {
            port,
            dir,
            _child: child,
        }
    }

    /// Every mail received so far, in arrival order.
    fn mails(&self) -> Vec<String> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .expect("the mail directory")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        files.sort_by_key(|p| p.file_stem().and_then(|s| s.to_str()?.parse::<u64>().ok()).unwrap_or(0));
        files
            .iter()
            .map(|p| std::fs::read_to_string(p).expect("a readable mail"))
            .collect()
    }

    fn mails_about(&self, order: &str) -> Vec<String> {
        self.mails().into_iter().filter(|m| m.contains(order)).collect()
    }
}

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Delivery {
    id: String,
    body: Value,
}

#[derive(Default)]
struct ReceiverState {
    deliveries: Mutex<Vec<Delivery>>,
    refused: Mutex<Vec<String>>,
    /// Requests to leave unanswered until `release` (a node dies meanwhile).
    hold: Mutex<usize>,
    release: tokio::sync::Notify,
}

/// A webhook receiver as a customer would write it: it checks the
/// signature and the timestamp with its own HMAC, and records ids.
struct Receiver {
    url: String,
    state: Arc<ReceiverState>,
    _server: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start() -> Receiver {
        let state = Arc::new(ReceiverState::default());
        let app = axum::Router::new()
            .route("/hooks", axum::routing::post(receive))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let url = format!("http://{}/hooks", listener.local_addr().expect("an address"));
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.ok();
        });
        Receiver {
            url,
            state,
            _server: server,
        }
    }

    fn deliveries_about(&self, order: &str) -> Vec<Delivery> {
        let all = self.state.deliveries.lock().expect("lock").clone();
        all.into_iter().filter(|d| d.id.starts_with(order)).collect()
    }

    fn refused(&self) -> Vec<String> {
        self.state.refused.lock().expect("lock").clone()
    }
}

/// Verifies a Standard Webhooks request: `v1,<base64 HMAC-SHA256(key, "id.ts.body")>`
/// with a timestamp within five minutes.
fn verify(headers: &HeaderMap, body: &[u8]) -> Result<String, String> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or(format!("no {name}"))
    };
    let (id, timestamp, signature) = (
        header("webhook-id")?,
        header("webhook-timestamp")?,
        header("webhook-signature")?,
    );
    let ts: i64 = timestamp.parse().map_err(|_| "timestamp not a number".to_owned())?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs() as i64;
    if (now - ts).abs() > 300 {
        return Err(format!("timestamp {ts} too far from {now}"));
    }
    let key = STANDARD
        .decode(SECRET.trim_start_matches("whsec_"))
        .map_err(|e| e.to_string())?;
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).map_err(|e| e.to_string())?;
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    // The header may carry several space-separated signatures.
    if signature.split(' ').any(|s| s == expected) {
        Ok(id)
    } else {
        Err(format!("bad signature {signature}"))
    }
}

async fn receive(State(state): State<Arc<ReceiverState>>, headers: HeaderMap, body: Bytes) -> AxumStatus {
    let id = match verify(&headers, &body) {
        Ok(id) => id,
        Err(why) => {
            state.refused.lock().expect("lock").push(why);
            return AxumStatus::UNAUTHORIZED;
        }
    };
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    state.deliveries.lock().expect("lock").push(Delivery { id, body });
    let hold = {
        let mut hold = state.hold.lock().expect("lock");
        let now = *hold > 0;
        *hold = hold.saturating_sub(1);
        now
    };
    if hold {
        // Bounded: the test releases it, or it gives up by itself.
        let _ = tokio::time::timeout(Duration::from_secs(60), state.release.notified()).await;
        return AxumStatus::SERVICE_UNAVAILABLE;
    }
    AxumStatus::NO_CONTENT
}

/// A node whose channels point at `smtp_port` and the receiver, with quick retries.
fn notify_config(nats_url: &str, smtp_port: u16, templates: Option<&Path>) -> orderflow::config::Config {
    let mut config = test_config(nats_url);
    let n = &mut config.notifications;
    n.email.smtp_port = smtp_port;
    n.email.timeout = Duration::from_secs(5);
    n.webhook.secret = SECRET.into();
    n.attempts = 2;
    n.retry_min_delay = Duration::from_millis(20);
    n.retry_max_delay = Duration::from_millis(50);
    if let Some(dir) = templates {
        n.templates_dir = dir.to_owned();
    }
    config
}

async fn put_preferences(app: &TestApp, customer: &str, body: Value) -> (StatusCode, Value) {
    let url = app.url(&format!("/customers/{customer}/notification-preferences"));
    send(app.http.put(url).json(&body)).await
}

async fn notifications_of(app: &TestApp, order: &str) -> Vec<Value> {
    let (status, body) = send(app.http.get(app.url(&format!("/orders/{order}/notifications")))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["notifications"].as_array().cloned().unwrap_or_default()
}

/// Polls until the order's notifications are settled (none still `sending`).
async fn settled_notifications(app: &TestApp, order: &str) -> Vec<Value> {
    eventually(
        &format!("order {order}'s notifications to settle"),
        DELIVERY,
        || async {
            let n = notifications_of(app, order).await;
            let done = !n.is_empty() && n.iter().all(|v| v["status"] != "sending");
            let settled = n.iter().any(|v| {
                matches!(v["status"].as_str(), Some("sent" | "read" | "opted_out")) || (v["status"] == "failed")
            });
            (done && settled).then_some(n)
        },
    )
    .await
}

fn fields(problem: &Value) -> BTreeSet<String> {
    problem["errors"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter_map(|e| e["field"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn preferences_choose_email_webhook_or_nothing_with_templates_from_files_and_a_history() {
    let smtp = SmtpSink::start().await;
    let receiver = Receiver::start().await;
    let templates = tempfile::tempdir().expect("a template dir");
    std::fs::write(
        templates.path().join("completed.email_subject.txt"),
        "Done: {{ order_id }}",
    )
    .expect("written");
    std::fs::write(
        templates.path().join("failed.webhook.txt"),
        "Sorry {{ customer_id }}, {{ status }} because {{ reason }}",
    )
    .expect("written");
    let nats = NatsServer::start().await;
    let config = notify_config(&nats.url(), smtp.port, Some(templates.path()));
    let app = TestApp::spawn_on(nats, config).await;
    app.restock("N-1", 10).await;

    // Preferences: set, read back, and refused field by field.
    let alice = json!({ "channels": ["email"], "email": "alice@example.com" });
    let (status, body) = put_preferences(&app, "alice", alice.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let url = app.url("/customers/alice/notification-preferences");
    let (status, body) = send(app.http.get(&url)).await;
    assert_eq!(
        (status, &body["channels"], &body["email"]),
        (StatusCode::OK, &alice["channels"], &alice["email"])
    );
    let bob = json!({ "channels": ["webhook"], "webhook_url": receiver.url });
    assert_eq!(put_preferences(&app, "bob", bob).await.0, StatusCode::OK);
    let carol = json!({ "channels": ["email"], "email": "carol@example.com", "opt_out": true });
    assert_eq!(put_preferences(&app, "carol", carol).await.0, StatusCode::OK);

    let bad = json!({ "channels": ["sms", "email", "email"], "email": "not-an-address", "webhook_url": "ftp://x" });
    let (status, problem) = put_preferences(&app, "dave", bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(
        fields(&problem),
        ["channels[0]", "channels[2]", "email", "webhook_url"]
            .map(String::from)
            .into(),
        "{problem}"
    );
    let (status, problem) = put_preferences(&app, "dave", json!({ "channels": "email" })).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("malformed-body"))
    );
    assert_eq!(fields(&problem), ["channels".to_owned()].into(), "{problem}");
    let (status, problem) = put_preferences(&app, "no.dots", json!({ "channels": ["log"] })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(fields(&problem), ["customer_id".to_owned()].into(), "{problem}");
    let (status, _) = send(app.http.get(app.url("/customers/dave/notification-preferences"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let a = app.place_ok(&order_body("alice", &[("N-1", 1)], "tok_visa")).await;
    let b = app.place_ok(&order_body("bob", &[("N-1", 1)], "tok_decline")).await;
    let c = app.place_ok(&order_body("carol", &[("N-1", 1)], "tok_visa")).await;
    let e = app.place_ok(&order_body("erin", &[("N-1", 1)], "tok_visa")).await;
    for id in [&a, &b, &c, &e] {
        app.ended(id).await;
    }

    // Alice: one real email, with the overridden subject and a Message-ID
    // that names the notification.
    let mails = eventually("alice's email", DELIVERY, || async {
        let m = smtp.mails_about(&a);
        (!m.is_empty()).then_some(m)
    })
    .await;
    assert_eq!(mails.len(), 1, "{mails:?}");
    let mail = &mails[0];
    assert!(mail.contains("To: alice@example.com"), "{mail}");
    assert!(mail.contains(&format!("Subject: Done: {a}")), "{mail}");
    assert!(
        mail.contains(&format!("Message-ID: <{a}.completed.email@orderflow.localhost>")),
        "{mail}"
    );
    let alice_n = settled_notifications(&app, &a).await;
    assert_eq!(alice_n.len(), 1, "{alice_n:?}");
    let n = &alice_n[0];
    assert_eq!(
        (
            &n["id"],
            &n["channel"],
            &n["status"],
            &n["attempts"],
            &n["recipient"],
            &n["ending"]
        ),
        (
            &json!("completed.email"),
            &json!("email"),
            &json!("sent"),
            &json!(1),
            &json!("alice@example.com"),
            &json!("COMPLETED")
        ),
        "{n}"
    );
    assert!(n["created_at"].is_string() && n["settled_at"].is_string(), "{n}");

    // Bob: one signed webhook (the receiver verified it), the overridden text.
    let hooks = eventually("bob's webhook", DELIVERY, || async {
        let d = receiver.deliveries_about(&b);
        (!d.is_empty()).then_some(d)
    })
    .await;
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    assert_eq!(hooks[0].id, format!("{b}.failed.webhook"));
    assert_eq!(hooks[0].body["type"], "order.failed");
    assert_eq!(hooks[0].body["data"]["order_id"], b.as_str());
    let message = hooks[0].body["data"]["message"].as_str().unwrap_or_default();
    assert!(message.starts_with("Sorry bob, FAILED because"), "{message}");
    assert!(receiver.refused().is_empty(), "{:?}", receiver.refused());

    // Carol opted out: recorded, nothing sent.
    let carol_n = settled_notifications(&app, &c).await;
    assert_eq!(carol_n.len(), 1);
    assert_eq!(carol_n[0]["status"], "opted_out");
    assert!(smtp.mails_about(&c).is_empty());

    // Erin has no preferences: the default channel (the log).
    let erin_n = settled_notifications(&app, &e).await;
    assert_eq!(
        (&erin_n[0]["channel"], &erin_n[0]["status"]),
        (&json!("log"), &json!("sent"))
    );

    // Read receipts: journaled once, shown in the history.
    let read = app.url(&format!("/orders/{a}/notifications/completed.email/read"));
    let (status, view) = send(app.http.post(&read)).await;
    assert_eq!((status, &view["status"]), (StatusCode::OK, &json!("read")), "{view}");
    let read_at = view["read_at"].clone();
    assert!(read_at.is_string(), "{view}");
    let (status, again) = send(app.http.post(&read)).await;
    assert_eq!(
        (status, &again["read_at"]),
        (StatusCode::OK, &read_at),
        "marking twice changes nothing"
    );
    let receipts = app.stored("NOTIFICATIONS", &format!("notifications.{a}.read")).await;
    assert_eq!(receipts.len(), 1);
    let (status, _) = send(
        app.http
            .post(app.url(&format!("/orders/{a}/notifications/completed.webhook/read"))),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, problem) = send(
        app.http
            .post(app.url(&format!("/orders/{a}/notifications/nonsense/read"))),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(fields(&problem), ["notification_id".to_owned()].into());
    let (status, _) = send(
        app.http
            .post(app.url(&format!("/orders/{c}/notifications/cancelled.email/read"))),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "carol's order completed and was never emailed"
    );

    // Per customer (an eventually consistent projection of the stream).
    let alice_all = eventually("alice's notifications by customer", DELIVERY, || async {
        let (status, body) = send(app.http.get(app.url("/customers/alice/notifications"))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let list = body["notifications"].as_array().cloned().unwrap_or_default();
        list.iter().any(|n| n["status"] == "read").then_some(list)
    })
    .await;
    assert_eq!(alice_all.len(), 1, "{alice_all:?}");
    assert_eq!(alice_all[0]["order_id"], a.as_str());
    let (status, _) = send(
        app.http
            .get(app.url(&format!("/orders/{}/notifications", uuid::Uuid::new_v4()))),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let sent_email = app
        .metric(r#"orderflow_notifications_total{channel="email",status="sent"}"#)
        .await;
    assert_eq!(sent_email, Some(1.0));
    let opted_out = app
        .metric(r#"orderflow_notifications_total{channel="none",status="opted_out"}"#)
        .await;
    assert_eq!(opted_out, Some(1.0));
    app.audit_passes().await;
}

/// Republishes the stored ending of `order` (a copy, as a replay or a
/// producer's retry leaves), and recreates the saga's consumer from the
/// start, so every order is driven again to its ending and the
/// notifications it owes; waits until it has all settled.
async fn redeliver_everything(js: &async_nats::jetstream::Context, config: &orderflow::config::Config, order: &str) {
    let endings = crate::support::stored(js, "ORDERS", &format!("orders.{order}.*")).await;
    let ending = endings
        .into_iter()
        .find(|m| {
            m.subject.ends_with(".completed") || m.subject.ends_with(".failed") || m.subject.ends_with(".cancelled")
        })
        .expect("the order ended");
    let mut headers = NatsHeaders::new();
    for (name, values) in ending.headers.iter() {
        if !name.to_string().starts_with("Nats-Expected") {
            for v in values {
                headers.append(name.to_string(), v.as_str());
            }
        }
    }
    // The same message id, as a republished copy has: the audit folds it once.
    let subject = ending.subject.to_string();
    eventually(
        "a copy of the ending stored past the duplicate window",
        Duration::from_secs(10),
        || {
            let (headers, payload, subject) = (headers.clone(), ending.payload.clone(), subject.clone());
            async move {
                let ack = js
                    .publish_with_headers(subject, headers, payload)
                    .await
                    .ok()?
                    .await
                    .ok()?;
                (!ack.duplicate).then_some(())
            }
        },
    )
    .await;

    let inbox = topology::ORDER_STARTS;
    js.get_stream(inbox.source.stream())
        .await
        .expect("stream")
        .delete_consumer(inbox.name)
        .await
        .expect("deleted");
    topology::ensure(js, config).await.expect("consumer recreated");
    eventually_true("every ending to be handled again", SAGA_DEADLINE, || async {
        let mut c: async_nats::jetstream::consumer::PullConsumer = js
            .get_consumer_from_stream(inbox.name, inbox.source.stream())
            .await
            .expect("consumer");
        c.info()
            .await
            .map(|i| i.num_pending == 0 && i.num_ack_pending == 0)
            .unwrap_or(false)
    })
    .await;
}

#[tokio::test]
async fn a_failed_primary_falls_back_and_redelivered_endings_never_send_twice() {
    let smtp = SmtpSink::start().await;
    let receiver = Receiver::start().await;
    let nats = NatsServer::start().await;
    // Nothing listens on this port: every email fails.
    let mut config = notify_config(&nats.url(), free_port(), None);
    // A short duplicate window, so a republished ending is stored, as it
    // would be hours later in production.
    config.nats.duplicate_window = Duration::from_millis(500);
    let app = TestApp::spawn_on(nats, config.clone()).await;
    app.restock("N-2", 10).await;
    let prefs = json!({ "channels": ["email", "webhook"], "email": "dave@example.com", "webhook_url": receiver.url });
    assert_eq!(put_preferences(&app, "dave", prefs).await.0, StatusCode::OK);
    let prefs = json!({ "channels": ["email"], "email": "erin@example.com" });
    assert_eq!(put_preferences(&app, "erin", prefs).await.0, StatusCode::OK);

    let d = app.place_ok(&order_body("dave", &[("N-2", 1)], "tok_visa")).await;
    let e = app.place_ok(&order_body("erin", &[("N-2", 1)], "tok_visa")).await;
    app.ended(&d).await;
    app.ended(&e).await;

    // Dave: email failed after its 2 tries, the webhook went out instead.
    let n = settled_notifications(&app, &d).await;
    let by_id = |id: &str| n.iter().find(|v| v["id"] == id).cloned().unwrap_or(Value::Null);
    let email = by_id("completed.email");
    assert_eq!(
        (&email["status"], &email["attempts"], &email["fallback"]),
        (&json!("fell_back"), &json!(2), &json!("webhook")),
        "{n:?}"
    );
    assert!(email["error"].as_str().is_some_and(|e| e.contains("SMTP")), "{email}");
    let webhook = by_id("completed.webhook");
    assert_eq!(
        (&webhook["status"], &webhook["fallback_of"]),
        (&json!("sent"), &json!("email")),
        "{n:?}"
    );
    // Erin: email failed and the node's fallback, the log, told her.
    let n = settled_notifications(&app, &e).await;
    let channels: Vec<_> = n.iter().map(|v| (v["channel"].clone(), v["status"].clone())).collect();
    assert_eq!(
        channels,
        [(json!("email"), json!("fell_back")), (json!("log"), json!("sent"))],
        "{n:?}"
    );
    let delivered = receiver.deliveries_about(&d).len();
    assert_eq!(delivered, 1);
    let before = app.stored("NOTIFICATIONS", ">").await.len();
    let fell_back = r#"orderflow_notifications_total{channel="email",status="fell_back"}"#;
    // Metrics are per process, which this test's nodes share.
    let fell_back_before = app.metric(fell_back).await;
    assert_eq!(fell_back_before, Some(2.0));

    // Replayed and redelivered endings, then a restarted node that has
    // lost its snapshots: nothing more is sent or journaled.
    redeliver_everything(&app.js, &app.config, &d).await;
    let mut app = app;
    let _ = std::fs::remove_dir_all(&app.config.store.path);
    app.restart_with(config).await;
    redeliver_everything(&app.js, &app.config, &e).await;
    assert_eq!(receiver.deliveries_about(&d).len(), 1, "one webhook for dave, ever");
    assert!(smtp.mails().is_empty(), "no email reached the (other) SMTP server");
    assert_eq!(
        app.stored("NOTIFICATIONS", ">").await.len(),
        before,
        "nothing new journaled"
    );
    assert_eq!(
        app.metric(fell_back).await,
        fell_back_before,
        "no failure recorded again"
    );
    app.audit_passes().await;
}

/// How many `event_type` events the order's notification journal holds.
async fn journaled(js: &async_nats::jetstream::Context, order: &str, event_type: &str) -> usize {
    let filter = format!("notifications.{order}.{event_type}");
    crate::support::stored(js, "NOTIFICATIONS", &filter).await.len()
}

#[tokio::test]
async fn a_node_killed_mid_send_resends_with_the_same_webhook_id_and_records_once() {
    let receiver = Receiver::start().await;
    *receiver.state.hold.lock().expect("lock") = 1;
    let url = receiver.url.clone();
    let env = [
        ("ORDERFLOW_NOTIFICATIONS__DEFAULT_CHANNELS", "[\"webhook\"]"),
        ("ORDERFLOW_NOTIFICATIONS__WEBHOOK__DEFAULT_URL", url.as_str()),
        ("ORDERFLOW_NOTIFICATIONS__WEBHOOK__SECRET", SECRET),
        ("ORDERFLOW_NOTIFICATIONS__WEBHOOK__TIMEOUT", "30s"),
        ("ORDERFLOW_ACTORS__CALL_TIMEOUT", "60s"),
    ];
    let mut rig = ProcessRig::start(&env).await;
    rig.restock("N-3", 5).await;
    let (status, body) = send(
        rig.http
            .post(format!("{}/api/v1/orders", rig.node.base()))
            .json(&order_body("frank", &[("N-3", 1)], "tok_visa")),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let order = body["order_id"].as_str().expect("an order id").to_owned();

    // The first POST arrives and is held: the claim is journaled, no result.
    eventually("the first webhook to arrive", DELIVERY, || async {
        (!receiver.deliveries_about(&order).is_empty()).then_some(())
    })
    .await;
    assert_eq!(journaled(&rig.js, &order, "claimed").await, 1);
    assert_eq!(journaled(&rig.js, &order, "sent").await, 0);

    // SIGKILL mid-send, then a new process: the ending is redelivered, the
    // claim is found, and the same notification is sent again, once.
    rig.node.kill().await;
    receiver.state.release.notify_waiters();
    rig.node.restart().await;
    eventually("the notification to be recorded as sent", DELIVERY, || async {
        (journaled(&rig.js, &order, "sent").await > 0).then_some(())
    })
    .await;
    let deliveries = receiver.deliveries_about(&order);
    let ids: BTreeSet<_> = deliveries.iter().map(|d| d.id.clone()).collect();
    assert_eq!(
        deliveries.len(),
        2,
        "sent once before the kill, once after: {deliveries:?}"
    );
    assert_eq!(
        ids,
        [format!("{order}.completed.webhook")].into(),
        "a receiver dedupes on webhook-id"
    );
    assert_eq!(journaled(&rig.js, &order, "claimed").await, 1);
    assert_eq!(journaled(&rig.js, &order, "sent").await, 1);
    assert!(receiver.refused().is_empty(), "{:?}", receiver.refused());
    crate::support::audit_passes(&rig.js).await;
}

/// Preferences changed behind the node's back (another node, an operator
/// with the nats CLI) reach its cache through the bucket's watch: the
/// node's own answer and its next ending follow the bucket, not what it
/// read for the customer's previous order.
#[tokio::test]
async fn preferences_changed_in_the_bucket_reach_a_node_that_cached_them() {
    let app = TestApp::spawn().await;
    changes_in_the_bucket_reach_the_node(&app).await;
}

/// A broker restart breaks the watch's consumer: the node must not go on
/// trusting a cache nobody keeps current, so a change made after the
/// restart still reaches it.
#[tokio::test]
async fn preferences_changed_after_a_broker_restart_reach_a_node_that_cached_them() {
    let mut app = TestApp::spawn().await;
    app.nats.restart().await;
    changes_in_the_bucket_reach_the_node(&app).await;
}

/// Frank's log preference is cached by an order; an opt-out written straight
/// into the bucket must still govern his next order.
async fn changes_in_the_bucket_reach_the_node(app: &TestApp) {
    eventually_true("the node to take a restock", SAGA_DEADLINE, || async {
        let r = app
            .http
            .post(app.url("/skus/SKU-1/restock"))
            .json(&json!({ "quantity": 5 }));
        send(r).await.0 == StatusCode::OK
    })
    .await;
    let (status, body) = put_preferences(app, "frank", json!({ "channels": ["log"] })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let first = app.place_ok(&order_body("frank", &[("SKU-1", 1)], "tok_visa")).await;
    let told = settled_notifications(app, &first).await;
    assert_eq!(
        (&told[0]["channel"], &told[0]["status"]),
        (&json!("log"), &json!("sent"))
    );

    // Straight into the bucket, as another node's PUT would land.
    let js = app.nats.jetstream().await;
    let bucket = js.get_key_value("NOTIFICATION_PREFERENCES").await.expect("the bucket");
    let opted_out = json!({ "channels": [], "opt_out": true, "email": null, "webhook_url": null });
    bucket
        .put("frank", serde_json::to_vec(&opted_out).expect("json").into())
        .await
        .expect("stored");
    let url = app.url("/customers/frank/notification-preferences");
    eventually("the node to hear of the change", SAGA_DEADLINE, || async {
        let (status, body) = send(app.http.get(url.clone())).await;
        (status == StatusCode::OK && body["opt_out"] == true).then_some(())
    })
    .await;
    let second = app.place_ok(&order_body("frank", &[("SKU-1", 1)], "tok_visa")).await;
    let told = settled_notifications(app, &second).await;
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(told[0]["status"], "opted_out");
}
