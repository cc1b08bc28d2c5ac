//! A payment service spoken to over HTTP, behind retries and a circuit breaker.
//!
//! The protocol (documented in the README, "Payments"):
//! - `POST <url>/charges` with `Idempotency-Key: <order id>` and
//!   `{"order_id","amount","currency","payment_method"}` answers
//!   `{"status":"approved","payment_id"}` or `{"status":"declined","reason"}`
//!   (402 with `{"reason"}` is a decline too);
//! - `POST <url>/refunds` with `Idempotency-Key: <order id>:refund` and
//!   `{"order_id","payment_id","amount","currency"}` answers `{"refund_id"}`.
//!
//! Timeouts, refused connections, 408, 409 (the same key still in flight),
//! 429 and 5xx are transient: retried with exponential backoff and jitter
//! (backon), and counted by the breaker (failsafe). Any other answer is the
//! provider's word and is not retried.

use std::time::{Duration, Instant};

use actors::payment::{ChargeResult, GatewayError};
use backon::{ExponentialBuilder, Retryable};
use reqwest::StatusCode;
use schemas::{Money, OrderId};
use serde::{Deserialize, Serialize};

use super::breaker::{self, Breaker};
use crate::config::{BreakerConfig, HttpGatewayConfig};
use crate::telemetry::payments as metrics;

/// The provider label of this gateway in metrics and logs.
const PROVIDER: &str = "http";

/// Why the HTTP gateway could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum HttpGatewayError {
    #[error("gateway.http.url {url:?} is not an http(s) URL: {reason}")]
    Url { url: String, reason: String },
    #[error("HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// One attempt's failure, as the retry and the breaker see it.
#[derive(Debug, thiserror::Error)]
enum Attempt {
    /// Worth retrying; counts against the provider.
    #[error("{0}")]
    Transient(String),
    /// The breaker refused the call; the provider was not asked.
    #[error("circuit open")]
    Open,
}

/// A payment service over HTTP.
#[derive(Debug)]
pub struct HttpGateway {
    client: reqwest::Client,
    charges: reqwest::Url,
    refunds: reqwest::Url,
    api_key: Option<String>,
    retry: ExponentialBuilder,
    breaker: Breaker,
}

#[derive(Serialize)]
struct ChargeRequest<'a> {
    order_id: String,
    amount: u64,
    currency: &'a str,
    payment_method: &'a str,
}

#[derive(Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
enum ChargeAnswer {
    Approved { payment_id: String },
    Declined { reason: String },
}

#[derive(Deserialize)]
struct DeclineAnswer {
    reason: String,
}

#[derive(Serialize)]
struct RefundRequest<'a> {
    order_id: String,
    payment_id: &'a str,
    amount: u64,
    currency: &'a str,
}

#[derive(Deserialize)]
struct RefundAnswer {
    refund_id: String,
}

impl HttpGateway {
    /// A gateway to the service at `config.url`, guarded by a breaker built from `breaker`.
    pub fn new(config: &HttpGatewayConfig, breaker: &BreakerConfig) -> Result<Self, HttpGatewayError> {
        let bad_url = |reason: String| HttpGatewayError::Url {
            url: config.url.clone(),
            reason,
        };
        let base = reqwest::Url::parse(&config.url).map_err(|e| bad_url(e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(bad_url("needs an http:// or https:// base".into()));
        }
        let endpoint = |name: &str| {
            let mut url = base.clone();
            url.path_segments_mut()
                .map_err(|()| bad_url("needs an http:// or https:// base".into()))?
                .pop_if_empty()
                .push(name);
            Ok::<_, HttpGatewayError>(url)
        };
        Ok(Self {
            client: reqwest::Client::builder().timeout(config.timeout).build()?,
            charges: endpoint("charges")?,
            refunds: endpoint("refunds")?,
            api_key: Some(config.api_key.clone()).filter(|k| !k.is_empty()),
            retry: ExponentialBuilder::default()
                .with_min_delay(config.retry_base)
                .with_max_delay(config.retry_max.max(config.retry_base))
                .with_max_times(config.retries)
                .with_jitter(),
            breaker: breaker::breaker(PROVIDER, breaker),
        })
    }

    /// Why charges should wait instead of calling now: the breaker is open.
    pub fn circuit_open(&self) -> Option<String> {
        (!self.breaker.is_call_permitted())
            .then(|| "payment provider unavailable (circuit breaker open); the charge waits".to_owned())
    }

    /// POSTs `body` to `url` once, through the breaker; the status and body on any answer.
    async fn attempt<B: Serialize>(
        &self,
        operation: &'static str,
        url: &reqwest::Url,
        key: &str,
        body: &B,
    ) -> Result<(StatusCode, bytes::Bytes), Attempt> {
        if !self.breaker.is_call_permitted() {
            return Err(Attempt::Open);
        }
        let started = Instant::now();
        let mut request = self.client.post(url.clone()).header("Idempotency-Key", key).json(body);
        if let Some(api_key) = &self.api_key {
            request = request.bearer_auth(api_key);
        }
        let answer = match request.send().await {
            Ok(response) => {
                let status = response.status();
                response.bytes().await.map(|body| (status, body))
            }
            Err(e) => Err(e),
        };
        let (outcome, result) = match answer {
            Ok((status, _)) if is_transient(status) => (
                "transient",
                Err(Attempt::Transient(format!("{operation}: HTTP {status}"))),
            ),
            Ok((status, body)) => ("answered", Ok((status, body))),
            Err(e) if e.is_timeout() => (
                "timeout",
                Err(Attempt::Transient(format!("{operation}: no answer within the timeout"))),
            ),
            Err(e) => (
                "unreachable",
                Err(Attempt::Transient(format!("{operation}: {}", error_chain(&e)))),
            ),
        };
        metrics::call(PROVIDER, operation, outcome, started.elapsed());
        match &result {
            Ok(_) => self.breaker.on_success(),
            Err(_) => self.breaker.on_error(),
        }
        result
    }

    /// `attempt`, retried while transient and the breaker lets calls through.
    async fn call<B: Serialize>(
        &self,
        operation: &'static str,
        url: &reqwest::Url,
        key: &str,
        body: &B,
    ) -> Result<(StatusCode, bytes::Bytes), GatewayError> {
        (|| self.attempt(operation, url, key, body))
            .retry(self.retry)
            .when(|e| matches!(e, Attempt::Transient(_)))
            .notify(|e, wait: Duration| tracing::info!(operation, error = %e, ?wait, "payment provider; retrying"))
            .await
            .map_err(|e| match e {
                Attempt::Open => GatewayError::CircuitOpen(format!("{operation} not attempted")),
                Attempt::Transient(reason) => GatewayError::Unavailable(reason),
            })
    }
}

fn is_transient(status: StatusCode) -> bool {
    status.is_server_error()
        || matches!(
            status,
            StatusCode::REQUEST_TIMEOUT | StatusCode::CONFLICT | StatusCode::TOO_MANY_REQUESTS
        )
}

/// The error and its causes, since reqwest's top-level message hides why a connection failed.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The provider's words, shortened for a reason shown to customers and operators.
fn excerpt(body: &[u8]) -> String {
    String::from_utf8_lossy(body).chars().take(200).collect()
}

impl actors::payment::Gateway for HttpGateway {
    async fn charge(
        &self,
        order_id: OrderId,
        amount: &Money,
        payment_method: &str,
    ) -> Result<ChargeResult, GatewayError> {
        let body = ChargeRequest {
            order_id: order_id.to_string(),
            amount: amount.minor,
            currency: amount.currency.as_str(),
            payment_method,
        };
        let (status, answer) = self.call("charge", &self.charges, &order_id.to_string(), &body).await?;
        Ok(if status.is_success() {
            match serde_json::from_slice::<ChargeAnswer>(&answer) {
                Ok(ChargeAnswer::Approved { payment_id }) => ChargeResult::Approved { payment_id },
                Ok(ChargeAnswer::Declined { reason }) => ChargeResult::Declined { reason },
                // An answer we cannot read may hide a charge: retry the same key.
                Err(e) => {
                    return Err(GatewayError::Unavailable(format!(
                        "charge: unreadable answer ({e}): {}",
                        excerpt(&answer)
                    )))
                }
            }
        } else if status == StatusCode::PAYMENT_REQUIRED {
            let reason = serde_json::from_slice::<DeclineAnswer>(&answer)
                .map(|d| d.reason)
                .unwrap_or_else(|_| excerpt(&answer));
            ChargeResult::Declined { reason }
        } else {
            // The provider refused the request itself (4xx): no charge was made.
            ChargeResult::Declined {
                reason: format!(
                    "payment provider refused the charge (HTTP {status}): {}",
                    excerpt(&answer)
                ),
            }
        })
    }

    async fn refund(&self, order_id: OrderId, payment_id: &str, amount: &Money) -> Result<String, GatewayError> {
        let body = RefundRequest {
            order_id: order_id.to_string(),
            payment_id,
            amount: amount.minor,
            currency: amount.currency.as_str(),
        };
        let key = format!("{order_id}:refund");
        let (status, answer) = self.call("refund", &self.refunds, &key, &body).await?;
        match serde_json::from_slice::<RefundAnswer>(&answer) {
            Ok(RefundAnswer { refund_id }) if status.is_success() => Ok(refund_id),
            // A refund is owed whatever the provider says now: keep asking
            // (the step ends in a dead letter if it never succeeds).
            _ => Err(GatewayError::Unavailable(format!(
                "refund: HTTP {status}: {}",
                excerpt(&answer)
            ))),
        }
    }
}
