//! A real payment service over HTTP on a loopback port, speaking the
//! protocol of `orderflow::gateway::http`, that a test can make slow,
//! failing, declining, or gone. Like a real provider it keeps one charge per
//! `Idempotency-Key`, however often it is asked.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Charges with this payment method are declined.
pub const DECLINE: &str = "tok_decline";
/// Charges with this payment method answer 503 for their first two requests.
pub const FAIL_TWICE: &str = "tok_fail_twice";
/// Charges with this payment method are stored at once but answered only
/// after a second: a client with a shorter timeout retries the same key.
pub const SLOW_ONCE: &str = "tok_slow_once";

/// What the service has seen and done.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Every charge request's idempotency key, in arrival order.
    pub charge_requests: Vec<String>,
    /// One payment id per idempotency key.
    pub charges: HashMap<String, String>,
    /// One refund id per idempotency key.
    pub refunds: HashMap<String, String>,
    /// Charge requests answered so far, per key.
    answered: HashMap<String, u32>,
    /// The `Authorization` header of the last request.
    pub last_authorization: Option<String>,
    /// Answer every request with this status (e.g. 503) while set.
    pub failing: Option<StatusCode>,
}

/// A running (or stopped) payment service.
pub struct PaymentService {
    /// Where it listens, across restarts.
    pub addr: SocketAddr,
    ledger: Arc<Mutex<Ledger>>,
    running: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl PaymentService {
    /// Starts on a free loopback port.
    pub async fn start() -> PaymentService {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free loopback port");
        let addr = listener.local_addr().expect("a bound address");
        let mut service = PaymentService {
            addr,
            ledger: Arc::default(),
            running: None,
        };
        service.serve(listener);
        service
    }

    /// The base URL orderflow's `gateway.http.url` should name.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What it has seen so far.
    pub fn ledger(&self) -> MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let app = Router::new()
            .route("/charges", post(charge))
            .route("/refunds", post(refund))
            .with_state(self.ledger.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        self.running = Some((stop, task));
    }

    /// Goes away: stops listening and closes its connections, so calls are refused.
    pub async fn stop(&mut self) {
        if let Some((stop, task)) = self.running.take() {
            let _ = stop.send(());
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }

    /// Comes back on the same port, with the same ledger.
    pub async fn restart(&mut self) {
        self.stop().await;
        let listener = tokio::net::TcpListener::bind(self.addr)
            .await
            .expect("the same port again");
        self.serve(listener);
    }

    /// How many distinct charges it made.
    pub fn charges(&self) -> usize {
        self.ledger().charges.len()
    }

    /// How many charge requests carried `key`.
    pub fn requests_for(&self, key: &str) -> usize {
        self.ledger().charge_requests.iter().filter(|k| *k == key).count()
    }
}

impl Drop for PaymentService {
    fn drop(&mut self) {
        if let Some((stop, task)) = self.running.take() {
            let _ = stop.send(());
            task.abort();
        }
    }
}

type Shared = State<Arc<Mutex<Ledger>>>;

fn key_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

async fn charge(State(ledger): Shared, headers: HeaderMap, Json(body): Json<Value>) -> (StatusCode, Json<Value>) {
    let Some(key) = key_of(&headers) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "Idempotency-Key required"})),
        );
    };
    let method = body["payment_method"].as_str().unwrap_or_default().to_owned();
    let (answer, slow) = {
        let mut l = ledger.lock().unwrap_or_else(|p| p.into_inner());
        l.last_authorization = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        l.charge_requests.push(key.clone());
        if let Some(status) = l.failing {
            return (status, Json(json!({"error": "failing on purpose"})));
        }
        let asked = {
            let n = l.answered.entry(key.clone()).or_insert(0);
            *n += 1;
            *n
        };
        if method == FAIL_TWICE && asked <= 2 {
            return (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"error": "try again"})));
        }
        if method == DECLINE {
            return (
                StatusCode::OK,
                Json(json!({"status": "declined", "reason": "insufficient funds"})),
            );
        }
        let next = l.charges.len() + 1;
        let payment_id = l
            .charges
            .entry(key.clone())
            .or_insert_with(|| format!("ch_{next}"))
            .clone();
        (
            Json(json!({"status": "approved", "payment_id": payment_id})),
            method == SLOW_ONCE && asked == 1,
        )
    };
    if slow {
        // The provider being slow is the behaviour under test, not a wait for
        // anything: the charge is already stored, only the answer is late.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    (StatusCode::OK, answer)
}

async fn refund(State(ledger): Shared, headers: HeaderMap) -> (StatusCode, Json<Value>) {
    let Some(key) = key_of(&headers) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "Idempotency-Key required"})),
        );
    };
    let mut l = ledger.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(status) = l.failing {
        return (status, Json(json!({"error": "failing on purpose"})));
    }
    let next = l.refunds.len() + 1;
    let refund_id = l.refunds.entry(key).or_insert_with(|| format!("re_{next}")).clone();
    (StatusCode::OK, Json(json!({"refund_id": refund_id})))
}
