//! Customers' notification preferences, kept in a NATS key-value bucket
//! (one JSON value per customer id), and the plan they make with the
//! node's defaults.

use actors::notification::Plan;
use async_nats::jetstream::kv;
use schemas::notification::Channel;
use schemas::CustomerId;
use serde::{Deserialize, Serialize};

use crate::config::NotificationsConfig;
use crate::http::problem::FieldError;

/// The bucket holding every customer's preferences.
pub const BUCKET: &str = "NOTIFICATION_PREFERENCES";

/// The longest email address or URL accepted.
const MAX_ADDRESS: usize = 2048;

/// One customer's wishes, as stored and as the API shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preferences {
    /// Channels in order: the first is the primary, each next one the
    /// fallback of the one before.
    pub channels: Vec<Channel>,
    /// Tell this customer nothing.
    pub opt_out: bool,
    /// Where emails go.
    pub email: Option<String>,
    /// Where webhooks go (else the node's default URL).
    pub webhook_url: Option<String>,
}

/// The body of `PUT …/notification-preferences`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreferencesBody {
    pub channels: Vec<String>,
    #[serde(default)]
    pub opt_out: bool,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub webhook_url: Option<String>,
}

fn field(errors: &mut Vec<FieldError>, field: impl Into<String>, message: impl Into<String>) {
    errors.push(FieldError {
        field: field.into(),
        message: message.into(),
    });
}

impl PreferencesBody {
    /// Checks every field, naming each one at fault.
    pub fn parse(self, default_webhook_url: &str) -> Result<Preferences, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut channels = Vec::new();
        if self.channels.is_empty() && !self.opt_out {
            field(&mut errors, "channels", "at least one channel, unless opt_out is true");
        }
        for (i, name) in self.channels.iter().enumerate() {
            match Channel::parse(name) {
                Some(c) if channels.contains(&c) => field(&mut errors, format!("channels[{i}]"), "listed twice"),
                Some(c) => channels.push(c),
                None => field(
                    &mut errors,
                    format!("channels[{i}]"),
                    format!("unknown channel {name:?}; use email, webhook or log"),
                ),
            }
        }
        let email = self.email.filter(|e| !e.is_empty());
        match &email {
            Some(e) if e.len() > MAX_ADDRESS || e.parse::<lettre::Address>().is_err() => {
                field(&mut errors, "email", "not an email address")
            }
            None if channels.contains(&Channel::Email) => {
                field(&mut errors, "email", "required when channels include email")
            }
            _ => {}
        }
        let webhook_url = self.webhook_url.filter(|u| !u.is_empty());
        match &webhook_url {
            Some(u) if u.len() > MAX_ADDRESS => field(&mut errors, "webhook_url", "too long"),
            Some(u) => match reqwest::Url::parse(u) {
                Ok(url) if url.scheme() == "http" && url.host().is_some() => {}
                Ok(_) => field(&mut errors, "webhook_url", "must be an http:// URL with a host"),
                Err(e) => field(&mut errors, "webhook_url", format!("not a URL: {e}")),
            },
            None if channels.contains(&Channel::Webhook) && default_webhook_url.is_empty() => field(
                &mut errors,
                "webhook_url",
                "required when channels include webhook (the node has no default URL)",
            ),
            None => {}
        }
        if errors.is_empty() {
            Ok(Preferences {
                channels,
                opt_out: self.opt_out,
                email,
                webhook_url,
            })
        } else {
            Err(errors)
        }
    }
}

/// Why preferences could not be read or stored.
#[derive(Debug, thiserror::Error)]
pub enum PreferenceError {
    #[error("preferences bucket: {0}")]
    Unavailable(String),
    #[error("stored preferences of {customer} are unreadable: {reason}")]
    Corrupt { customer: String, reason: String },
}

/// The preferences bucket.
#[derive(Clone)]
pub struct PreferenceStore {
    kv: kv::Store,
}

impl PreferenceStore {
    /// Binds to the bucket (which `topology::ensure` created).
    pub async fn open(js: &async_nats::jetstream::Context) -> Result<Self, PreferenceError> {
        let kv = js
            .get_key_value(BUCKET)
            .await
            .map_err(|e| PreferenceError::Unavailable(e.to_string()))?;
        Ok(Self { kv })
    }

    /// A customer's preferences, if they set any.
    pub async fn get(&self, customer: &CustomerId) -> Result<Option<Preferences>, PreferenceError> {
        crate::telemetry::jetstream_op(crate::telemetry::JetStreamOp::Read);
        let Some(bytes) = self
            .kv
            .get(customer.as_str())
            .await
            .map_err(|e| PreferenceError::Unavailable(e.to_string()))?
        else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| PreferenceError::Corrupt {
                customer: customer.to_string(),
                reason: e.to_string(),
            })
    }

    /// Replaces a customer's preferences.
    pub async fn put(&self, customer: &CustomerId, preferences: &Preferences) -> Result<(), PreferenceError> {
        let bytes = serde_json::to_vec(preferences).map_err(|e| PreferenceError::Unavailable(e.to_string()))?;
        self.kv
            .put(customer.as_str(), bytes.into())
            .await
            .map(drop)
            .map_err(|e| PreferenceError::Unavailable(e.to_string()))
    }
}

/// Why the notification settings cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("notifications.{field}: unknown channel {name:?} (use email, webhook or log)")]
pub struct ChannelConfigError {
    field: &'static str,
    name: String,
}

/// Turns preferences into plans, with the node's defaults.
#[derive(Debug, Clone)]
pub struct Planner {
    default_channels: Vec<Channel>,
    fallback: Option<Channel>,
    default_webhook_url: String,
}

impl Planner {
    /// Checks the configured channel names.
    pub fn new(config: &NotificationsConfig) -> Result<Self, ChannelConfigError> {
        let parse = |field, name: &str| {
            Channel::parse(name).ok_or_else(|| ChannelConfigError {
                field,
                name: name.to_owned(),
            })
        };
        let default_channels = config
            .default_channels
            .iter()
            .map(|n| parse("default_channels", n))
            .collect::<Result<_, _>>()?;
        let fallback = match config.fallback_channel.as_str() {
            "" => None,
            name => Some(parse("fallback_channel", name)?),
        };
        Ok(Self {
            default_channels,
            fallback,
            default_webhook_url: config.webhook.default_url.clone(),
        })
    }

    /// The node's default webhook URL (`""`: none).
    pub fn default_webhook_url(&self) -> &str {
        &self.default_webhook_url
    }

    /// How to tell a customer with `preferences` (none: the defaults).
    pub fn plan(&self, customer: &CustomerId, preferences: Option<&Preferences>) -> Plan {
        let channels = preferences.map_or(&self.default_channels, |p| &p.channels);
        let mut chain: Vec<Channel> = channels.clone();
        if let Some(fallback) = self.fallback.filter(|f| !chain.contains(f)) {
            chain.push(fallback);
        }
        let recipient = |channel: Channel| match channel {
            Channel::Email => preferences.and_then(|p| p.email.clone()),
            Channel::Webhook => preferences
                .and_then(|p| p.webhook_url.clone())
                .or_else(|| Some(self.default_webhook_url.clone()).filter(|u| !u.is_empty())),
            Channel::Log => Some(customer.to_string()),
        };
        Plan {
            opted_out: preferences.is_some_and(|p| p.opt_out),
            chain: chain.into_iter().map(|c| (c, recipient(c))).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(channels: &[&str], email: Option<&str>, url: Option<&str>) -> PreferencesBody {
        PreferencesBody {
            channels: channels.iter().map(|c| c.to_string()).collect(),
            opt_out: false,
            email: email.map(str::to_owned),
            webhook_url: url.map(str::to_owned),
        }
    }

    fn fields(r: Result<Preferences, Vec<FieldError>>) -> Vec<String> {
        r.err().unwrap_or_default().into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn every_field_is_checked_and_named() {
        assert_eq!(
            fields(body(&["email", "sms", "email"], Some("nope"), Some("ftp://x")).parse("")),
            ["channels[1]", "channels[2]", "email", "webhook_url"]
        );
        assert_eq!(fields(body(&["email"], None, None).parse("")), ["email"]);
        assert_eq!(fields(body(&["webhook"], None, None).parse("")), ["webhook_url"]);
        assert_eq!(fields(body(&[], None, None).parse("")), ["channels"]);
        assert!(body(&["webhook"], None, None).parse("http://default").is_ok());
        let ok = body(&["email", "webhook"], Some("a@example.com"), Some("http://h:1/x")).parse("");
        assert_eq!(ok.unwrap().channels, [Channel::Email, Channel::Webhook]);
    }

    #[test]
    fn the_fallback_channel_ends_every_chain_once() {
        let planner = Planner::new(&NotificationsConfig::default()).unwrap();
        let alice = CustomerId::parse("alice").unwrap();
        let prefs = body(&["email"], Some("a@example.com"), None).parse("").unwrap();
        let plan = planner.plan(&alice, Some(&prefs));
        let channels: Vec<_> = plan.chain.iter().map(|(c, _)| *c).collect();
        assert_eq!(channels, [Channel::Email, Channel::Log]);
        assert_eq!(planner.plan(&alice, None).chain.len(), 1);
        let config = NotificationsConfig {
            default_channels: vec!["pigeon".into()],
            ..NotificationsConfig::default()
        };
        assert!(Planner::new(&config).is_err());
    }
}
