//! Configuration: built-in defaults ← an optional TOML file ← environment
//! variables `ORDERFLOW_<SECTION>__<KEY>` (e.g. `ORDERFLOW_NATS__URL`).
//! Every setting is listed, with its default, in `orderflow.example.toml`.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// Everything a node can be told.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The broker and the streams.
    pub nats: NatsConfig,
    /// The HTTP facade.
    pub http: HttpConfig,
    /// The durable consumers that feed the actors.
    pub consumers: ConsumerConfig,
    /// The entity actors.
    pub actors: ActorConfig,
    /// The payment provider, its retries and circuit breaker.
    pub gateway: GatewayConfig,
    /// Local snapshots.
    pub store: StoreConfig,
    /// Logs and metrics.
    pub telemetry: TelemetryConfig,
    /// The node process.
    pub node: NodeConfig,
    /// Stock reservations.
    pub inventory: InventoryConfig,
    /// Telling customers how their orders ended.
    pub notifications: NotificationsConfig,
    /// Who may call the API.
    pub auth: AuthConfig,
    /// How work is shared among nodes.
    pub cluster: ClusterConfig,
}

/// How work is shared among nodes: partitions and their leases.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// Partitions orders and SKUs are hashed into; the same on every node.
    pub partitions: u16,
    /// A partition lease outlives its last renewal by this long: how soon a
    /// dead node's partitions move to the others. Renewed five times per TTL.
    #[serde(with = "humantime_serde")]
    pub lease_ttl: Duration,
    /// How long a node waits for a partition's owner to execute an input it
    /// forwarded: longer than the slowest step (a charge with its retries),
    /// and how soon a request lost with the owner's connection is retried.
    #[serde(with = "humantime_serde")]
    pub forward_timeout: Duration,
    /// A forwarded input not answered this soon is sent again, then after
    /// twice as long, and so on within `forward_timeout`: a request sent
    /// while its partition changes hands can be lost in transit.
    #[serde(with = "humantime_serde")]
    pub forward_reask: Duration,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            partitions: 32,
            lease_ttl: Duration::from_secs(5),
            forward_timeout: Duration::from_secs(10),
            forward_reask: Duration::from_secs(1),
        }
    }
}

/// How callers of the API are authenticated.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// Tokens signed with a random secret made at each start; an admin and a
    /// customer token are printed at start-up. Never for production.
    #[default]
    Dev,
    /// Bearer JWTs signed by an issuer: HS256 with `hs256_secret` or RS256
    /// verified with `rs256_public_key_file`.
    Jwt,
}

/// Bearer JWT authentication.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// `dev` (the quickstart's default) or `jwt`.
    pub mode: AuthMode,
    /// The HS256 signing secret; from the environment only
    /// (`ORDERFLOW_AUTH__HS256_SECRET`), never a file in the repo.
    pub hs256_secret: String,
    /// A PEM RSA public key verifying RS256 tokens; `""`: none.
    pub rs256_public_key_file: std::path::PathBuf,
    /// The `iss` tokens must carry; `""`: not checked.
    pub issuer: String,
    /// The `aud` tokens must carry; `""`: not checked.
    pub audience: String,
    /// Clock skew tolerated on `exp`.
    #[serde(with = "humantime_serde")]
    pub leeway: Duration,
    /// Dev mode: the customer the printed customer token is for.
    pub dev_customer: String,
    /// Dev mode: how long the printed tokens are valid.
    #[serde(with = "humantime_serde")]
    pub dev_token_ttl: Duration,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            mode: AuthMode::Dev,
            hs256_secret: String::new(),
            rs256_public_key_file: std::path::PathBuf::new(),
            issuer: String::new(),
            audience: String::new(),
            leeway: Duration::from_secs(30),
            dev_customer: "alice".into(),
            dev_token_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

/// Requests per principal (token subject, else client IP).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Sustained requests per second per principal; 0 turns limiting off.
    pub per_second: u32,
    /// Requests a principal may send at once above the sustained rate.
    pub burst: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            per_second: 50,
            burst: 100,
        }
    }
}

/// Stock reservations.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct InventoryConfig {
    /// How long an order may hold a reservation without completing (another
    /// SKU's step stuck, a node down) before it fails and the stock is released.
    #[serde(with = "humantime_serde")]
    pub reservation_ttl: Duration,
}

impl Default for InventoryConfig {
    fn default() -> Self {
        Self {
            reservation_ttl: Duration::from_secs(15 * 60),
        }
    }
}

/// The node process.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// On SIGTERM/SIGINT: how long to finish in-flight requests and
    /// messages and snapshot live actors before giving up (exit 1).
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

/// Logs and metrics.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// How often gauges read from the broker (consumer lag, dead-letter backlog) are refreshed.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// `text` for people at a terminal, `json` for log collectors.
    pub log_format: LogFormat,
    /// An OpenTelemetry collector's OTLP/HTTP base URL (e.g.
    /// `http://127.0.0.1:4318`); spans are exported when set, not when empty.
    pub otlp_endpoint: String,
    /// The `service.name` exported spans carry.
    pub service_name: String,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, with span fields (`order_id`, `trace_id`).
    Json,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(5),
            log_format: LogFormat::Text,
            otlp_endpoint: String::new(),
            service_name: "orderflow".into(),
        }
    }
}

/// Local snapshots (a cache; deleting them costs only replay time).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// The sled directory.
    pub path: std::path::PathBuf,
    /// The most bytes of snapshots sled keeps in memory (its page cache;
    /// sled's own default is 1 GiB, more than a node should hold for a cache).
    pub cache_bytes: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            path: "var/orderflow/snapshots".into(),
            cache_bytes: 64 * 1024 * 1024,
        }
    }
}

/// The broker and the streams.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct NatsConfig {
    /// Server URL(s), comma-separated.
    pub url: String,
    /// Stream replicas: 1 on a single server, 3 in a cluster.
    pub replicas: usize,
    /// How long events are kept. Limits retention, never WorkQueue: a
    /// dead-lettered message must still be in its stream to be inspected.
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    /// The server's de-duplication window for `Nats-Msg-Id`.
    #[serde(with = "humantime_serde")]
    pub duplicate_window: Duration,
    /// The NATS user to connect as (`orderflow` in the repo's server configs); empty: no authentication.
    pub user: String,
    /// That user's password; from the environment (`ORDERFLOW_NATS__PASSWORD`), never a file in the repo.
    pub password: String,
    /// Refuse to talk to a server that does not offer TLS.
    pub tls_required: bool,
    /// PEM file of the CA(s) that signed the server's certificate; empty: the system's roots.
    pub tls_ca: String,
}

/// The HTTP facade.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Listen address; port 0 picks a free one.
    pub addr: SocketAddr,
    /// The longest `?wait=` a client may ask for.
    #[serde(with = "humantime_serde")]
    pub max_wait: Duration,
    /// The largest request body accepted, in bytes.
    pub body_limit: usize,
    /// The most orders one `POST /api/v1/orders/bulk` may place.
    pub bulk_max: usize,
    /// The largest `limit` a page of `GET /api/v1/orders` may ask for.
    pub list_max_limit: usize,
    /// Per-principal rate limits.
    pub rate_limit: RateLimitConfig,
    /// Origins allowed to call the API from a browser (CORS); empty: none.
    pub cors_allowed_origins: Vec<String>,
}

/// The durable consumers that feed the actors.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ConsumerConfig {
    /// Deliveries before a message is given up and dead-lettered.
    pub max_deliver: i64,
    /// How long the server waits for an ack before redelivering.
    #[serde(with = "humantime_serde")]
    pub ack_wait: Duration,
    /// Redelivery delays after ack timeouts (the first replaces `ack_wait`).
    pub backoff: Vec<humantime_serde::Serde<Duration>>,
    /// The delay asked for when a step first fails transiently; it doubles
    /// with each further delivery up to `nak_delay_max` (when `backoff` is empty).
    #[serde(with = "humantime_serde")]
    pub nak_delay: Duration,
    /// The longest delay between transient retries. With the defaults, ten
    /// deliveries span about two minutes: long enough to ride out a stream
    /// leader election in a cluster (seconds) before anything is dead-lettered.
    #[serde(with = "humantime_serde")]
    pub nak_delay_max: Duration,
    /// Messages in flight per consumer; also the server's `max_ack_pending`.
    pub max_in_flight: usize,
}

/// The entity actors.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ActorConfig {
    /// How long a consumer waits for an actor to handle one input.
    #[serde(with = "humantime_serde")]
    pub call_timeout: Duration,
    /// The most live actors per kind (order, payment, inventory,
    /// notification), and the most entity states parked per kind.
    pub max_live: usize,
    /// An actor with nothing to do this long parks its state and stops
    /// (never later than `idle_timeout`).
    #[serde(with = "humantime_serde")]
    pub park_after: Duration,
    /// An entity unused this long is dropped from memory (snapshotted if its journal is long).
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Snapshot an entity after this many events folded in (and on passivation).
    pub snapshot_every: usize,
}

/// Which payment provider charges orders.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// Rules in this process (test tokens, an amount limit); for demos and tests.
    #[default]
    Simulated,
    /// A payment service over HTTP (`gateway.http`), behind retries and a circuit breaker.
    Http,
}

/// The payment provider.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// `simulated` or `http`.
    pub provider: Provider,
    /// Simulated: charges above this many minor units are declined.
    pub decline_above: u64,
    /// Simulated: a provider outage, for drills: every charge fails
    /// transiently until the node runs without it (then dead letters can be replayed).
    pub outage: bool,
    /// How long a charge waits while the breaker is open before the order
    /// fails ("payment not possible"), counted from the payment request.
    #[serde(with = "humantime_serde")]
    pub wait_deadline: Duration,
    /// The HTTP provider.
    pub http: HttpGatewayConfig,
    /// The circuit breaker in front of the HTTP provider.
    pub breaker: BreakerConfig,
}

/// A payment service spoken to over HTTP.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HttpGatewayConfig {
    /// Base URL; charges go to `<url>/charges`, refunds to `<url>/refunds`.
    pub url: String,
    /// Sent as `Authorization: Bearer <api_key>` when not empty. Set it from
    /// the environment (`ORDERFLOW_GATEWAY__HTTP__API_KEY`), never in a file in git.
    pub api_key: String,
    /// Per attempt.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Further attempts after a transient failure (timeouts, 408, 429, 5xx, refused connections).
    pub retries: usize,
    /// The first retry's delay; it doubles, with jitter, up to `retry_max`.
    #[serde(with = "humantime_serde")]
    pub retry_base: Duration,
    /// The longest delay between attempts.
    #[serde(with = "humantime_serde")]
    pub retry_max: Duration,
}

/// When the breaker opens and how long it stays open.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerConfig {
    /// Consecutive failed attempts that open it.
    pub failures: u32,
    /// How long it first stays open before letting calls probe (half-open).
    #[serde(with = "humantime_serde")]
    pub open_for: Duration,
    /// The open time doubles after each failed probe, up to this.
    #[serde(with = "humantime_serde")]
    pub open_max: Duration,
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            url: "nats://127.0.0.1:4222".into(),
            replicas: 1,
            max_age: Duration::from_secs(7 * 24 * 3600),
            duplicate_window: Duration::from_secs(120),
            user: String::new(),
            password: String::new(),
            tls_required: false,
            tls_ca: String::new(),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_wait: Duration::from_secs(30),
            body_limit: 64 * 1024,
            bulk_max: 100,
            list_max_limit: 500,
            rate_limit: RateLimitConfig::default(),
            cors_allowed_origins: Vec::new(),
        }
    }
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            max_deliver: 10,
            ack_wait: Duration::from_secs(30),
            backoff: Vec::new(),
            nak_delay: Duration::from_millis(500),
            nak_delay_max: Duration::from_secs(30),
            max_in_flight: 512,
        }
    }
}

impl ConsumerConfig {
    /// How often a long input tells the server it is in progress: a third
    /// of the time the server waits for its ack before redelivering.
    pub fn progress_every(&self) -> Duration {
        let wait = self.backoff.first().map_or(self.ack_wait, |d| **d);
        (wait / 3).max(Duration::from_millis(100))
    }

    /// How long to wait before redelivering a message that failed
    /// transiently on its `delivered`-th delivery: the `backoff` schedule
    /// (its last value repeating) when one is configured, else `nak_delay`
    /// doubling per delivery up to `nak_delay_max`.
    pub fn retry_delay(&self, delivered: i64) -> Duration {
        let attempt = usize::try_from(delivered.max(1) - 1).unwrap_or(0);
        match self.backoff.get(attempt).or(self.backoff.last()) {
            Some(delay) => **delay,
            None => {
                let doubled = self.nak_delay.saturating_mul(1 << attempt.min(20) as u32);
                doubled.min(self.nak_delay_max.max(self.nak_delay))
            }
        }
    }
}

impl Default for ActorConfig {
    fn default() -> Self {
        Self {
            call_timeout: Duration::from_secs(20),
            max_live: 10_000,
            park_after: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(30),
            snapshot_every: 500,
        }
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            provider: Provider::default(),
            decline_above: 1_000_000,
            outage: false,
            wait_deadline: Duration::from_secs(300),
            http: HttpGatewayConfig::default(),
            breaker: BreakerConfig::default(),
        }
    }
}

impl GatewayConfig {
    /// How many deliveries a charge may spend waiting for an open breaker:
    /// one every `breaker.open_for` until `wait_deadline`, and one more to
    /// give up; none for the simulated provider, which has no breaker.
    pub fn wait_deliveries(&self) -> i64 {
        if self.provider == Provider::Simulated {
            return 0;
        }
        let recheck = self.breaker.open_for.max(Duration::from_millis(100)).as_millis();
        let waits = self.wait_deadline.as_millis().div_ceil(recheck);
        i64::try_from(waits).unwrap_or(i64::MAX).saturating_add(1)
    }
}

impl Default for HttpGatewayConfig {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:9090".into(),
            api_key: String::new(),
            timeout: Duration::from_secs(2),
            retries: 2,
            retry_base: Duration::from_millis(100),
            retry_max: Duration::from_secs(1),
        }
    }
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failures: 5,
            open_for: Duration::from_secs(5),
            open_max: Duration::from_secs(60),
        }
    }
}

/// Telling customers how their orders ended: channels, templates, retries.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct NotificationsConfig {
    /// Channels for customers without preferences, in order: the first is
    /// the primary, each next one the fallback of the one before.
    pub default_channels: Vec<String>,
    /// Appended to every customer's channels as the last resort (`""`: none).
    pub fallback_channel: String,
    /// A directory of template files (`<ending>.<channel>.txt`,
    /// `<ending>.email_subject.txt`) overriding the embedded ones; `""`: none.
    pub templates_dir: std::path::PathBuf,
    /// Tries per channel before it counts as failed.
    pub attempts: usize,
    /// The first delay between tries; it doubles up to `retry_max_delay`.
    #[serde(with = "humantime_serde")]
    pub retry_min_delay: Duration,
    /// The longest delay between tries.
    #[serde(with = "humantime_serde")]
    pub retry_max_delay: Duration,
    /// Email over SMTP.
    pub email: EmailConfig,
    /// Signed webhooks.
    pub webhook: WebhookConfig,
}

/// Email over SMTP (plain SMTP to a relay; see the README).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct EmailConfig {
    /// The SMTP server (a local relay).
    pub smtp_host: String,
    /// Its port.
    pub smtp_port: u16,
    /// SMTP AUTH user; `""`: no authentication.
    pub smtp_username: String,
    /// SMTP AUTH password; from the environment, never a file in the repo.
    pub smtp_password: String,
    /// How long one SMTP conversation may take.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// The `From` mailbox; its domain also ends every `Message-ID`.
    pub from: String,
}

/// Signed webhooks (Standard Webhooks).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// The URL for customers whose preferences name none; `""`: none.
    pub default_url: String,
    /// The signing secret (`whsec_<base64>` or plain text); from the
    /// environment. Webhooks fail (and fall back) while it is empty.
    pub secret: String,
    /// How long one POST may take.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        Self {
            default_channels: vec!["log".into()],
            fallback_channel: "log".into(),
            templates_dir: std::path::PathBuf::new(),
            attempts: 3,
            retry_min_delay: Duration::from_millis(200),
            retry_max_delay: Duration::from_secs(2),
            email: EmailConfig::default(),
            webhook: WebhookConfig::default(),
        }
    }
}

impl Default for EmailConfig {
    fn default() -> Self {
        Self {
            smtp_host: "127.0.0.1".into(),
            smtp_port: 25,
            smtp_username: String::new(),
            smtp_password: String::new(),
            timeout: Duration::from_secs(10),
            from: "orderflow <orders@orderflow.localhost>".into(),
        }
    }
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            default_url: String::new(),
            secret: String::new(),
            timeout: Duration::from_secs(5),
        }
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(#[from] Box<figment::Error>);

impl Config {
    /// Defaults, then `file` if given, then `ORDERFLOW_*` environment variables.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            // A signing secret in a file ends up in a repository or a backup:
            // it is taken from the environment only.
            let in_file = Figment::from(Toml::file_exact(file)).find_value("auth.hs256_secret");
            if in_file.is_ok_and(|v| v.as_str().is_some_and(|s| !s.is_empty())) {
                return Err(ConfigError(Box::new(figment::Error::from(
                    "auth.hs256_secret must come from ORDERFLOW_AUTH__HS256_SECRET, not a file".to_owned(),
                ))));
            }
            figment = figment.merge(Toml::file_exact(file));
        }
        // Only `SECTION__KEY` variables are settings; ORDERFLOW_CONFIG,
        // ORDERFLOW_LOG and the scripts' own variables share the prefix.
        let settings = Env::prefixed("ORDERFLOW_")
            .filter(|k| k.as_str().contains("__"))
            .split("__");
        figment.merge(settings).extract().map_err(|e| ConfigError(Box::new(e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    // figment::Jail's closure must return figment's own (large) error type.
    #[allow(clippy::result_large_err)]
    fn environment_overrides_defaults_and_other_variables_are_ignored() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("ORDERFLOW_NATS__URL", "nats://10.0.0.1:4222");
            jail.set_env("ORDERFLOW_CONSUMERS__NAK_DELAY", "2s");
            jail.set_env("ORDERFLOW_LOG", "debug");
            let config = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(config.nats.url, "nats://10.0.0.1:4222");
            assert_eq!(config.consumers.nak_delay, Duration::from_secs(2));
            jail.set_env("ORDERFLOW_NATS__URLL", "typo");
            assert!(Config::load(None).is_err(), "a misspelt setting must fail fast");
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn a_signing_secret_is_refused_in_a_file_and_taken_from_the_environment() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("secret.toml", "[auth]\nmode = \"jwt\"\nhs256_secret = \"in-a-file\"\n")?;
            let refused = Config::load(Some(Path::new("secret.toml")))
                .map(drop)
                .map_err(|e| e.to_string());
            assert!(refused.is_err_and(|e| e.contains("ORDERFLOW_AUTH__HS256_SECRET")));
            jail.create_file("mode.toml", "[auth]\nmode = \"jwt\"\n")?;
            jail.set_env("ORDERFLOW_AUTH__HS256_SECRET", "from-the-environment");
            let config = Config::load(Some(Path::new("mode.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(config.auth.mode, AuthMode::Jwt);
            assert_eq!(config.auth.hs256_secret, "from-the-environment");
            Ok(())
        });
    }

    #[test]
    fn the_example_file_lists_every_default() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("orderflow.example.toml");
        let example = Config::load(Some(&path)).expect("the example file loads");
        assert_eq!(example, Config::default());
    }

    #[test]
    fn waiting_for_an_open_breaker_gets_its_own_delivery_budget() {
        let mut gateway = GatewayConfig::default();
        assert_eq!(gateway.wait_deliveries(), 0, "the simulated provider never waits");
        gateway.provider = Provider::Http;
        gateway.wait_deadline = Duration::from_secs(300);
        gateway.breaker.open_for = Duration::from_secs(5);
        assert_eq!(gateway.wait_deliveries(), 61);
        gateway.breaker.open_for = Duration::from_secs(7);
        assert_eq!(gateway.wait_deliveries(), 44, "rounded up, plus the one that gives up");
    }

    #[test]
    fn transient_retries_follow_the_backoff_schedule_then_repeat_its_last_step() {
        let mut consumers = ConsumerConfig::default();
        assert_eq!(consumers.retry_delay(1), consumers.nak_delay);
        let doubling: Vec<u128> = (1..=9).map(|d| consumers.retry_delay(d).as_millis()).collect();
        assert_eq!(doubling, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
        consumers.backoff = [1, 5, 30].map(|s| Duration::from_secs(s).into()).to_vec();
        let delays: Vec<u64> = (0..6).map(|d| consumers.retry_delay(d).as_secs()).collect();
        assert_eq!(delays, [1, 1, 5, 30, 30, 30]);
    }
}
