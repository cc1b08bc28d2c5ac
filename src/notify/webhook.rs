//! Signed webhooks (Standard Webhooks): a JSON POST with `webhook-id`,
//! `webhook-timestamp` and `webhook-signature` headers.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::signature::{self, SecretError};
use crate::config::WebhookConfig;

/// Why a webhook was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("{0}")]
    Secret(#[from] SecretError),
    #[error("invalid webhook URL {0:?}")]
    Url(String),
    #[error("POST {url}: {reason}")]
    Post { url: String, reason: String },
    #[error("POST {url}: the receiver answered {status}")]
    Status { url: String, status: u16 },
    #[error("encoding the payload: {0}")]
    Encode(String),
}

impl WebhookError {
    /// True when trying again may help: the receiver was unreachable or
    /// answered 5xx, 408 or 429; other 4xx mean it will never accept this.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Post { .. } => true,
            Self::Status { status, .. } => *status >= 500 || *status == 408 || *status == 429,
            _ => false,
        }
    }
}

/// What a webhook says: the Standard Webhooks envelope.
#[derive(Debug, Serialize)]
pub struct Payload<'a> {
    /// `order.completed`, `order.failed` or `order.cancelled`.
    #[serde(rename = "type")]
    pub kind: String,
    /// When the order's notification was produced (RFC 3339).
    pub timestamp: String,
    /// The order and the rendered text.
    pub data: PayloadData<'a>,
}

/// The `data` of a [`Payload`].
#[derive(Debug, Serialize)]
pub struct PayloadData<'a> {
    pub order_id: String,
    pub customer_id: &'a str,
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'a str>,
    pub message: String,
}

/// Posts signed webhooks.
pub struct Webhooks {
    client: reqwest::Client,
    key: Result<Vec<u8>, SecretError>,
}

impl Webhooks {
    /// Signs with `config`'s secret; a missing secret fails each send, not the node.
    pub fn new(config: &WebhookConfig) -> Self {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Self {
            client,
            key: signature::secret_key(&config.secret),
        }
    }

    /// Posts `payload` to `url` as notification `id`, signed with a fresh timestamp.
    pub async fn post(&self, url: &str, id: &str, payload: &Payload<'_>) -> Result<(), WebhookError> {
        let key = self.key.as_ref().map_err(|e| e.clone())?;
        let parsed = reqwest::Url::parse(url).map_err(|_| WebhookError::Url(url.to_owned()))?;
        let body = serde_json::to_vec(payload).map_err(|e| WebhookError::Encode(e.to_string()))?;
        let timestamp = unix_now();
        let response = self
            .client
            .post(parsed)
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature::sign(key, id, timestamp, &body))
            .body(body)
            .send()
            .await
            .map_err(|e| WebhookError::Post {
                url: url.to_owned(),
                reason: e.to_string(),
            })?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(WebhookError::Status {
                url: url.to_owned(),
                status: status.as_u16(),
            })
        }
    }
}

fn unix_now() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
}
