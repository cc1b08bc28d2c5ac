//! Customers' notification preferences, kept in a NATS key-value bucket
//! (one JSON value per customer id), and the plan they make with the
//! node's defaults.
//!
//! Every ending needs its customer's preferences, so the node keeps the
//! ones it read in a bounded cache that a watch on the bucket keeps current
//! (see [`PreferenceCache`]): a KV read per order becomes one per customer.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use actors::notification::Plan;
use async_nats::jetstream::kv;
use futures::StreamExt;
use lru::LruCache;
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

/// The preferences bucket, read through the node's cache.
#[derive(Clone)]
pub struct PreferenceStore {
    kv: kv::Store,
    cache: Arc<PreferenceCache>,
}

impl PreferenceStore {
    /// Binds to the bucket (which `topology::ensure` created) and starts
    /// the watch that keeps the cache current.
    pub async fn open(js: &async_nats::jetstream::Context) -> Result<Self, PreferenceError> {
        let kv = js
            .get_key_value(BUCKET)
            .await
            .map_err(|e| PreferenceError::Unavailable(e.to_string()))?;
        let cache = Arc::new(PreferenceCache::new(CACHED_CUSTOMERS));
        tokio::spawn(watch(kv.clone(), Arc::downgrade(&cache)));
        Ok(Self { kv, cache })
    }

    /// A customer's preferences, if they set any.
    pub async fn get(&self, customer: &CustomerId) -> Result<Option<Preferences>, PreferenceError> {
        let stored = match self.cache.get(customer) {
            Ok(stored) => stored,
            Err(watch) => {
                crate::telemetry::jetstream_op(crate::telemetry::JetStreamOp::Read);
                let entry = self
                    .kv
                    .entry(customer.as_str())
                    .await
                    .map_err(|e| PreferenceError::Unavailable(e.to_string()))?;
                let stored = match entry {
                    Some(entry) => Stored::of(&entry),
                    None => Stored::default(),
                };
                self.cache.offer(customer, stored.clone(), watch);
                stored
            }
        };
        stored.value.map_err(|reason| PreferenceError::Corrupt {
            customer: customer.to_string(),
            reason,
        })
    }

    /// Replaces a customer's preferences.
    pub async fn put(&self, customer: &CustomerId, preferences: &Preferences) -> Result<(), PreferenceError> {
        let bytes = serde_json::to_vec(preferences).map_err(|e| PreferenceError::Unavailable(e.to_string()))?;
        let revision = self
            .kv
            .put(customer.as_str(), bytes.into())
            .await
            .map_err(|e| PreferenceError::Unavailable(e.to_string()))?;
        // At once, so this node's next ending sees them without waiting for the watch.
        let stored = Stored {
            revision,
            value: Ok(Some(preferences.clone())),
        };
        self.cache.offer(customer, stored, self.cache.watch());
        Ok(())
    }
}

/// How many customers' preferences a node keeps at most.
const CACHED_CUSTOMERS: usize = 10_000;

/// One customer's preferences as of a bucket revision (0: never set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The bucket revision they were read at.
    pub revision: u64,
    /// The preferences (none: unset or deleted), or why they are unreadable.
    pub value: Result<Option<Preferences>, String>,
}

impl Default for Stored {
    fn default() -> Self {
        Self {
            revision: 0,
            value: Ok(None),
        }
    }
}

impl Stored {
    fn of(entry: &kv::Entry) -> Self {
        let value = match entry.operation {
            kv::Operation::Put => serde_json::from_slice(&entry.value)
                .map(Some)
                .map_err(|e| e.to_string()),
            kv::Operation::Delete | kv::Operation::Purge => Ok(None),
        };
        Self {
            revision: entry.revision,
            value,
        }
    }
}

/// The preferences this node read or heard of, newest revision winning.
///
/// Only trusted while a watch on the bucket runs: the watch offers every
/// change, so an entry can only be replaced by a newer one, and a read that
/// raced a change cannot put the older value back. While no watch runs
/// (starting, or lost with the connection) nothing is cached, and a read
/// begun under an earlier watch is not kept: a change between it and the
/// new watch would be heard by neither.
pub struct PreferenceCache {
    entries: Mutex<LruCache<CustomerId, Stored>>,
    /// Odd while a watch runs; bumped whenever one starts or stops.
    watch: AtomicU64,
}

impl PreferenceCache {
    /// An empty cache of at most `capacity` customers, not yet watching.
    pub fn new(capacity: usize) -> Self {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        Self {
            entries: Mutex::new(LruCache::new(capacity)),
            watch: AtomicU64::new(0),
        }
    }

    /// Which watch runs now (even: none).
    pub fn watch(&self) -> u64 {
        self.watch.load(Ordering::Acquire)
    }

    /// What is cached for `customer`; else which watch a read starts under,
    /// to hand back to [`PreferenceCache::offer`].
    pub fn get(&self, customer: &CustomerId) -> Result<Stored, u64> {
        let watch = self.watch();
        if watch.is_multiple_of(2) {
            return Err(watch);
        }
        self.entries().get(customer).cloned().ok_or(watch)
    }

    /// Keeps `stored`, read or heard under `watch`, unless that watch has
    /// ended or something newer is cached already.
    pub fn offer(&self, customer: &CustomerId, stored: Stored, watch: u64) {
        let mut entries = self.entries();
        // Under the lock, so a watch cannot end between the check and the insert.
        if watch.is_multiple_of(2) || self.watch() != watch {
            return;
        }
        match entries.get_mut(customer) {
            Some(cached) if cached.revision >= stored.revision => {}
            Some(cached) => *cached = stored,
            None => {
                entries.put(customer.clone(), stored);
            }
        }
    }

    /// A watch started or stopped: the cache starts empty either way.
    /// Returns the new watch's number.
    fn turn(&self) -> u64 {
        let mut entries = self.entries();
        entries.clear();
        self.watch.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// The entries, locked. A panic while they were held leaves them whole
    /// (every change is one map operation), so a poisoned lock is used as is.
    fn entries(&self) -> std::sync::MutexGuard<'_, LruCache<CustomerId, Stored>> {
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A watch has started: every change from now on will be offered.
    pub fn watching(&self) -> u64 {
        let watch = self.turn();
        debug_assert!(!watch.is_multiple_of(2));
        watch
    }

    /// The watch was lost: nothing cached can be trusted any more.
    pub fn not_watching(&self) {
        self.turn();
    }
}

/// Feeds every change of the bucket to `cache`, re-watching after a loss,
/// until the cache is dropped (noticed at the next change, or when the
/// connection closes and the watch ends).
async fn watch(kv: kv::Store, cache: Weak<PreferenceCache>) {
    let retry = Duration::from_secs(1);
    loop {
        let changes = kv.watch_all().await;
        let Some(live) = cache.upgrade() else { return };
        let mut changes = match changes {
            Ok(changes) => changes,
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch notification preferences; reading them per ending");
                drop(live);
                tokio::time::sleep(retry).await;
                continue;
            }
        };
        // From here on every change is heard, so what is read may be kept.
        let watch = live.watching();
        drop(live);
        while let Some(change) = changes.next().await {
            let Some(live) = cache.upgrade() else { return };
            match change {
                Ok(entry) => match CustomerId::parse(&entry.key) {
                    Ok(customer) => live.offer(&customer, Stored::of(&entry), watch),
                    Err(_) => tracing::warn!(key = %entry.key, "a preferences key that names no customer"),
                },
                Err(e) => {
                    tracing::warn!(error = %e, "lost the preferences watch; watching again");
                    break;
                }
            }
        }
        let Some(live) = cache.upgrade() else { return };
        live.not_watching();
        drop(live);
        tokio::time::sleep(retry).await;
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

    fn stored(revision: u64, opt_out: bool) -> Stored {
        Stored {
            revision,
            value: Ok(Some(Preferences {
                channels: vec![Channel::Log],
                opt_out,
                email: None,
                webhook_url: None,
            })),
        }
    }

    #[test]
    fn nothing_is_cached_while_no_watch_runs() {
        let cache = PreferenceCache::new(4);
        let alice = CustomerId::parse("alice").expect("a customer");
        let before = cache.get(&alice).expect_err("no watch yet");
        cache.offer(&alice, stored(3, false), before);
        assert!(cache.get(&alice).is_err(), "a read from before any watch is not kept");
        let watch = cache.watching();
        cache.offer(&alice, stored(3, false), watch);
        assert_eq!(cache.get(&alice), Ok(stored(3, false)));
        cache.not_watching();
        assert!(cache.get(&alice).is_err(), "a lost watch empties the cache");
        cache.offer(&alice, stored(4, false), watch);
        assert!(cache.get(&alice).is_err(), "and refuses what the lost watch offers");
    }

    #[test]
    fn the_newest_revision_wins_whatever_arrives_last() {
        let cache = PreferenceCache::new(4);
        let alice = CustomerId::parse("alice").expect("a customer");
        let watch = cache.watching();
        // A read that raced a change: the watch's newer value came first.
        cache.offer(&alice, stored(7, true), watch);
        cache.offer(&alice, stored(5, false), watch);
        assert_eq!(cache.get(&alice), Ok(stored(7, true)));
        cache.offer(
            &alice,
            Stored {
                revision: 8,
                value: Ok(None),
            },
            watch,
        );
        assert_eq!(
            cache.get(&alice).map(|s| s.value),
            Ok(Ok(None)),
            "a delete is a change too"
        );
    }

    #[test]
    fn a_read_begun_under_an_earlier_watch_is_not_kept() {
        let cache = PreferenceCache::new(4);
        let alice = CustomerId::parse("alice").expect("a customer");
        let first = cache.watching();
        let read_under = cache.get(&alice).expect_err("nothing cached");
        assert_eq!(read_under, first);
        cache.not_watching();
        let _second = cache.watching();
        cache.offer(&alice, stored(2, false), read_under);
        assert!(
            cache.get(&alice).is_err(),
            "a change between the two watches could be missed"
        );
    }

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
