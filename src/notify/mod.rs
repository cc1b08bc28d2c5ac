//! Telling customers how their orders ended: the channels (email, webhook,
//! log), their templates and retries, customers' preferences, and the
//! history the API shows.

pub mod customers;
pub mod email;
pub mod history;
pub mod preferences;
pub mod signature;
pub mod templates;
pub mod webhook;

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};

use actors::notification::{Channels, Ending, SendResult};
use backon::{ExponentialBuilder, Retryable};
use schemas::notification::{global_notification_id, Channel};

use crate::config::NotificationsConfig;
use email::{Mail, Mailer};
use templates::{TemplateError, Templates};
use webhook::{Payload, PayloadData, Webhooks};

/// Why the notification channels could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("{0}")]
    Templates(#[from] TemplateError),
    #[error("{0}")]
    Email(#[from] email::EmailError),
    #[error("{0}")]
    Channels(#[from] preferences::ChannelConfigError),
    #[error("{0}")]
    Preferences(#[from] preferences::PreferenceError),
}

/// The channels, as the notification actors use them.
pub struct Notifier {
    templates: Templates,
    mailer: Mailer,
    webhooks: Webhooks,
    retry: ExponentialBuilder,
}

impl Notifier {
    /// Loads the templates and prepares the channels of `config`.
    pub fn new(config: &NotificationsConfig) -> Result<Self, SetupError> {
        let retry = ExponentialBuilder::default()
            .with_min_delay(config.retry_min_delay)
            .with_max_delay(config.retry_max_delay)
            .with_max_times(config.attempts.max(1) - 1);
        Ok(Self {
            templates: Templates::load(&config.templates_dir)?,
            mailer: Mailer::new(&config.email)?,
            webhooks: Webhooks::new(&config.webhook),
            retry,
        })
    }

    /// Runs `send` until it succeeds, fails for good, or runs out of tries;
    /// returns the result with the number of tries.
    async fn with_retries<F, Fut, E>(&self, send: F, transient: fn(&E) -> bool) -> (Result<(), E>, u32)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: std::fmt::Display,
    {
        let tries = AtomicU32::new(0);
        let mut send = send;
        let result = (|| {
            tries.fetch_add(1, Ordering::Relaxed);
            send()
        })
        .retry(self.retry)
        .when(transient)
        .notify(|e, wait| tracing::info!(error = %e, ?wait, "notification not delivered; trying again"))
        .await;
        (result, tries.load(Ordering::Relaxed).max(1))
    }

    async fn email(&self, ending: &Ending, to: &str, id: &str) -> (Result<String, String>, u32) {
        let rendered = self
            .templates
            .render(ending, "email_subject")
            .and_then(|subject| Ok((subject, self.templates.render(ending, "email")?)));
        let (subject, body) = match rendered {
            Ok(r) => r,
            Err(e) => return (Err(e.to_string()), 1),
        };
        let send = || {
            self.mailer.send(Mail {
                to,
                subject: subject.clone(),
                body: body.clone(),
                id,
            })
        };
        let (result, tries) = self.with_retries(send, email::EmailError::is_transient).await;
        (result.map(|()| body.clone()).map_err(|e| e.to_string()), tries)
    }

    async fn webhook(&self, ending: &Ending, url: &str, id: &str) -> (Result<String, String>, u32) {
        let message = match self.templates.render(ending, "webhook") {
            Ok(m) => m,
            Err(e) => return (Err(e.to_string()), 1),
        };
        let payload = Payload {
            kind: format!("order.{}", ending.outcome.event_type()),
            timestamp: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            data: PayloadData {
                order_id: ending.order_id.to_string(),
                customer_id: ending.customer_id.as_str(),
                status: ending.outcome.status(),
                reason: ending.reason.as_deref(),
                message: message.clone(),
            },
        };
        let send = || self.webhooks.post(url, id, &payload);
        let (result, tries) = self.with_retries(send, webhook::WebhookError::is_transient).await;
        (result.map(|()| message.clone()).map_err(|e| e.to_string()), tries)
    }
}

impl Channels for Notifier {
    async fn send(&self, ending: &Ending, channel: Channel, recipient: Option<&str>) -> SendResult {
        let id = global_notification_id(ending.order_id, ending.outcome, channel);
        let (result, attempts) = match (channel, recipient) {
            (Channel::Log, _) => match self.templates.render(ending, "log") {
                Ok(message) => {
                    tracing::info!(order_id = %ending.order_id, notification = %id, %message, "customer notified");
                    (Ok(message), 1)
                }
                Err(e) => (Err(e.to_string()), 1),
            },
            (Channel::Email, Some(to)) => self.email(ending, to, &id).await,
            (Channel::Webhook, Some(url)) => self.webhook(ending, url, &id).await,
            (_, None) => (Err(format!("no {channel} recipient known for this customer")), 0),
        };
        match result {
            Ok(message) => SendResult::Sent { message, attempts },
            Err(error) => {
                tracing::warn!(order_id = %ending.order_id, notification = %id, attempts, %error, "notification failed");
                SendResult::Failed { error, attempts }
            }
        }
    }
}

/// Everything notifications need, opened once per node.
#[derive(Clone)]
pub struct NotifySetup {
    /// The channels.
    pub notifier: std::sync::Arc<Notifier>,
    /// Customers' preferences.
    pub preferences: preferences::PreferenceStore,
    /// Preferences and defaults into plans.
    pub planner: preferences::Planner,
    /// Customer → notified orders (a projection of NOTIFICATIONS).
    pub customers: customers::CustomerIndex,
}

impl NotifySetup {
    /// Loads templates, checks settings and binds the preferences bucket.
    pub async fn open(js: &async_nats::jetstream::Context, config: &NotificationsConfig) -> Result<Self, SetupError> {
        Ok(Self {
            notifier: std::sync::Arc::new(Notifier::new(config)?),
            preferences: preferences::PreferenceStore::open(js).await?,
            planner: preferences::Planner::new(config)?,
            customers: customers::CustomerIndex::default(),
        })
    }
}
