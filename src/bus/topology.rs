//! The streams and durable consumers, created idempotently at start-up and
//! by `orderflow setup`. Each setting names the trap it avoids (DESIGN.md).

use async_nats::jetstream::consumer::pull;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy};
use async_nats::jetstream::kv;
use async_nats::jetstream::stream::{self, DiscardPolicy, RetentionPolicy, StorageType};
use async_nats::jetstream::Context;
use backon::{ExponentialBuilder, Retryable};
use schemas::subjects::EntityKind;
use schemas::timer;

use crate::config::Config;
use crate::dead_letters::ledger::{ACTION_SUBJECTS, DEAD_LETTER_ACTIONS};

/// Why the topology could not be put in place.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error("stream {stream}: {source}")]
    Stream {
        stream: String,
        source: async_nats::jetstream::context::CreateStreamError,
    },
    #[error("consumer {stream}/{consumer}: {source}")]
    Consumer {
        stream: &'static str,
        consumer: String,
        source: async_nats::jetstream::stream::ConsumerError,
    },
    #[error("retiring consumer {stream}/{consumer}: {reason}")]
    Retire {
        stream: &'static str,
        consumer: &'static str,
        reason: String,
    },
    #[error("key-value bucket {bucket}: {source}")]
    Bucket {
        bucket: String,
        source: async_nats::jetstream::context::CreateKeyValueError,
    },
}

impl TopologyError {
    /// True when the cluster was not ready to answer (no JetStream leader yet,
    /// a request timed out, too few peers known yet to place replicas): worth
    /// trying again shortly, unlike a refusal.
    pub fn is_transient(&self) -> bool {
        let text = match self {
            Self::Stream { source, .. } => source.to_string(),
            Self::Consumer { source, .. } => source.to_string(),
            Self::Bucket { source, .. } => source.to_string(),
            Self::Retire { reason, .. } => reason.clone(),
        };
        [
            "timed out",
            "temporarily unavailable",
            "no responders",
            "insufficient resources",
            "no suitable peers",
        ]
        .iter()
        .any(|t| text.contains(t))
    }
}

/// Creates or updates the topology, riding out a cluster that is still
/// electing its leaders (nodes often start together with the servers).
pub async fn ensure_patiently(js: &Context, config: &Config) -> Result<(), TopologyError> {
    (|| ensure(js, config))
        .retry(
            ExponentialBuilder::default()
                .with_min_delay(std::time::Duration::from_millis(200))
                .with_max_delay(std::time::Duration::from_secs(5))
                .with_max_times(15),
        )
        .when(TopologyError::is_transient)
        .notify(|e, wait| tracing::warn!(error = %e, ?wait, "topology not ready; trying again"))
        .await
}

/// One durable consumer: which stream, under what name, which event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inbox {
    /// The kind whose stream is read.
    pub source: EntityKind,
    /// The durable name; one per role, so `nats consumer info` reads like the flow.
    pub name: &'static str,
    /// The event types delivered.
    pub event_types: &'static [&'static str],
}

impl Inbox {
    /// The consumer's subject filters, e.g. `orders.*.placed`.
    pub fn filters(&self) -> Vec<String> {
        self.event_types.iter().map(|t| self.source.event_filter(t)).collect()
    }
}

/// The order saga hears its own starts and cancels.
pub const ORDER_STARTS: Inbox = Inbox {
    source: EntityKind::Order,
    name: "order-saga",
    event_types: &["placed", "cancel_requested"],
};
/// Every inbox a node runs on the entity streams: the saga driver
/// carries each order input through payment, stock and notification
/// itself (`saga::driver`), so no step's event is delivered to a consumer.
pub const INBOXES: [Inbox; 1] = [ORDER_STARTS];

/// Consumers earlier versions ran, one per saga step (stream, durable):
/// deleted when the topology is ensured, so none keeps collecting messages
/// nobody reads. The NATS user may delete exactly these.
pub const RETIRED_CONSUMERS: [(&str, &str); 5] = [
    ("ORDERS", "payments"),
    ("ORDERS", "inventory"),
    ("ORDERS", "notifications"),
    ("PAYMENTS", "order-saga"),
    ("INVENTORY", "order-saga"),
];

/// The configuration of one entity kind's stream.
pub fn stream_config(kind: EntityKind, config: &Config) -> stream::Config {
    stream::Config {
        name: kind.stream().to_owned(),
        subjects: vec![kind.stream_subjects()],
        // Limits, not WorkQueue or Interest: a message that is dead-lettered
        // must still be here for an operator to inspect and replay.
        retention: RetentionPolicy::Limits,
        max_age: config.nats.max_age,
        discard: DiscardPolicy::Old,
        storage: StorageType::File,
        num_replicas: config.nats.replicas,
        // Redelivered inputs re-publish the same Nats-Msg-Id; the server
        // drops the copy inside this window (invariant 3).
        duplicate_window: config.nats.duplicate_window,
        // Direct get serves journal replay and lets operators fetch any
        // message by sequence (`nats stream get`).
        allow_direct: true,
        ..Default::default()
    }
}

/// The configuration of one durable inbox.
pub fn consumer_config(inbox: &Inbox, config: &Config) -> pull::Config {
    let mut consumer = durable_config(inbox.name, inbox.source.stream(), inbox.filters(), config);
    if *inbox == ORDER_STARTS {
        // An order whose charge waits for an open breaker is redelivered
        // every `open_for` until `wait_deadline`; those deliveries must not
        // use up the budget meant for failures.
        consumer.max_deliver = consumer.max_deliver.saturating_add(config.gateway.wait_deliveries());
    }
    consumer
}

/// A durable consumer named `name` on `stream`, reading `filters` (all if
/// empty), with the settings every orderflow consumer shares.
fn durable_config(name: &str, stream: &str, filters: Vec<String>, config: &Config) -> pull::Config {
    let c = &config.consumers;
    pull::Config {
        durable_name: Some(name.to_owned()),
        description: Some(format!("orderflow {name} <- {stream}")),
        filter_subjects: filters,
        deliver_policy: DeliverPolicy::All,
        // Ack after effect (invariant 4): a message is done only when the
        // events it caused are stored.
        ack_policy: AckPolicy::Explicit,
        ack_wait: c.ack_wait,
        // MaxDeliver bounds poison; BackOff applies to ack timeouts only (a
        // Nak carries its own delay), and its first value replaces AckWait.
        max_deliver: c.max_deliver,
        backoff: c.backoff.iter().map(|d| **d).collect(),
        max_ack_pending: i64::try_from(c.max_in_flight).unwrap_or(i64::MAX),
        // No inactive_threshold: the server would delete a durable that
        // looked idle, and the node depends on it.
        inactive_threshold: std::time::Duration::ZERO,
        ..Default::default()
    }
}

/// The stream that keeps every dead letter (invariant 7).
pub const DEAD_LETTERS: &str = "DEAD_LETTERS";

/// The server advisories that mark a message as given up: delivered
/// `max_deliver` times, or terminated as poison.
pub const DEAD_LETTER_ADVISORIES: [&str; 2] = [
    "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>",
    "$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.>",
];

/// The dead-letter stream: the server's advisories, captured. They are
/// pointers (stream, sequence, consumer, deliveries, reason) without the
/// payload; the original stays fetchable by sequence from its own stream,
/// which is why those use Limits retention.
pub fn dead_letter_config(config: &Config) -> stream::Config {
    let subjects = DEAD_LETTER_ADVISORIES.iter().map(|s| s.to_string()).collect();
    record_stream_config(DEAD_LETTERS, subjects, config)
}

/// A stream of operational records (JSON), kept as long as the events they
/// concern, and readable by sequence.
fn record_stream_config(name: &str, subjects: Vec<String>, config: &Config) -> stream::Config {
    stream::Config {
        name: name.to_owned(),
        subjects,
        retention: RetentionPolicy::Limits,
        max_age: config.nats.max_age,
        storage: StorageType::File,
        num_replicas: config.nats.replicas,
        allow_direct: true,
        ..Default::default()
    }
}

/// The consumer that flags orders whose messages were dead-lettered.
pub const ORDER_ATTENTION: &str = "order-attention";

/// Reads every dead letter once, to flag the order it belongs to.
pub fn attention_consumer_config(config: &Config) -> pull::Config {
    durable_config(ORDER_ATTENTION, DEAD_LETTERS, Vec::new(), config)
}

/// The stream of operator actions on dead letters: one record each, kept
/// as long as the dead letters themselves.
pub fn dead_letter_actions_config(config: &Config) -> stream::Config {
    record_stream_config(DEAD_LETTER_ACTIONS, vec![ACTION_SUBJECTS.to_owned()], config)
}

/// The consumer that counts operator actions into the metrics, whichever
/// process (a node's API or the CLI) recorded them.
pub const ACTION_COUNTER: &str = "dead-letter-actions";

/// Reads every operator action once.
pub fn action_counter_config(config: &Config) -> pull::Config {
    durable_config(ACTION_COUNTER, DEAD_LETTER_ACTIONS, Vec::new(), config)
}

/// The stream of timers: schedules waiting to fire and what they fired.
/// The server keeps the clock (message schedules, nats-server 2.12+), so a
/// timer survives the node that set it, and a fired timer waits in the
/// stream for whichever node consumes it next.
pub fn timers_config(config: &Config) -> stream::Config {
    stream::Config {
        name: timer::STREAM.to_owned(),
        subjects: vec![timer::SUBJECTS.to_owned()],
        allow_message_schedules: true,
        // The server stores each schedule as a per-subject rollup and turns
        // rollups on with schedules; saying so keeps `setup` idempotent.
        allow_rollup: true,
        // Limits, like the entity streams: a fired timer that is dead-lettered
        // stays to be inspected and replayed. Schedules refuse DiscardPolicy::New.
        retention: RetentionPolicy::Limits,
        discard: DiscardPolicy::Old,
        max_age: config.nats.max_age,
        storage: StorageType::File,
        num_replicas: config.nats.replicas,
        // A redelivered stock reply re-schedules with the same Nats-Msg-Id.
        duplicate_window: config.nats.duplicate_window,
        allow_direct: true,
        ..Default::default()
    }
}

/// The order saga hears fired reservation timers under its own name, so its
/// lag gauge sums this stream with the other three it reads.
pub const ORDER_TIMERS: &str = "order-saga";

/// Reads every fired reservation timer once (schedules themselves are not delivered).
pub fn timers_consumer_config(config: &Config) -> pull::Config {
    durable_config(ORDER_TIMERS, timer::STREAM, vec![timer::fired_filter()], config)
}

/// Every stream a node needs: the four entity streams, the dead letters
/// and the operators' actions on them.
pub fn streams(config: &Config) -> Vec<stream::Config> {
    let mut streams: Vec<stream::Config> = EntityKind::ALL.map(|kind| stream_config(kind, config)).into();
    streams.push(dead_letter_config(config));
    streams.push(dead_letter_actions_config(config));
    streams.push(timers_config(config));
    streams
}

/// Every durable consumer a node runs, with the stream it reads.
pub fn consumers(config: &Config) -> Vec<(&'static str, pull::Config)> {
    let mut consumers: Vec<(&'static str, pull::Config)> = INBOXES
        .iter()
        .map(|inbox| (inbox.source.stream(), consumer_config(inbox, config)))
        .collect();
    consumers.push((DEAD_LETTERS, attention_consumer_config(config)));
    consumers.push((DEAD_LETTER_ACTIONS, action_counter_config(config)));
    consumers.push((timer::STREAM, timers_consumer_config(config)));
    consumers
}

/// The key-value buckets a node needs: the live nodes, partition leases, and customers'
/// notification preferences. Replicated like the streams; one value per key
/// (the latest wins).
pub fn buckets(config: &Config) -> Vec<kv::Config> {
    vec![
        crate::cluster::membership::bucket_config(config.nats.replicas),
        crate::cluster::leases::bucket_config(config.nats.replicas, config.cluster.lease_ttl),
        kv::Config {
            bucket: crate::notify::preferences::BUCKET.to_owned(),
            description: "orderflow: customers' notification preferences".to_owned(),
            history: 1,
            storage: StorageType::File,
            num_replicas: config.nats.replicas,
            ..Default::default()
        },
    ]
}

/// Creates or updates every stream and consumer; safe to run any number of times.
pub async fn ensure(js: &Context, config: &Config) -> Result<(), TopologyError> {
    for stream in streams(config) {
        let name = stream.name.clone();
        js.create_or_update_stream(stream)
            .await
            .map_err(|source| TopologyError::Stream { stream: name, source })?;
    }
    for (stream, consumer) in consumers(config) {
        let name = consumer.durable_name.clone().unwrap_or_default();
        js.create_consumer_on_stream(consumer, stream)
            .await
            .map_err(|source| TopologyError::Consumer {
                stream,
                consumer: name,
                source,
            })?;
    }
    for (stream, consumer) in RETIRED_CONSUMERS {
        retire(js, stream, consumer).await?;
    }
    for bucket in buckets(config) {
        let name = bucket.bucket.clone();
        js.create_or_update_key_value(bucket)
            .await
            .map_err(|source| TopologyError::Bucket { bucket: name, source })?;
    }
    Ok(())
}

/// Deletes a consumer an earlier version ran, if it is still there.
async fn retire(js: &Context, stream: &'static str, consumer: &'static str) -> Result<(), TopologyError> {
    let stream_handle = match js.get_stream_no_info(stream).await {
        Ok(s) => s,
        Err(source) => {
            return Err(TopologyError::Retire {
                stream,
                consumer,
                reason: source.to_string(),
            })
        }
    };
    match stream_handle.delete_consumer(consumer).await {
        Ok(_) => {
            tracing::info!(stream, consumer, "deleted a consumer this version no longer runs");
            Ok(())
        }
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(TopologyError::Retire {
            stream,
            consumer,
            reason: e.to_string(),
        }),
    }
}

/// The server's "consumer not found" (JetStream error code 10014).
fn is_not_found(e: &async_nats::jetstream::stream::ConsumerError) -> bool {
    use async_nats::jetstream::stream::ConsumerErrorKind;
    match e.kind() {
        ConsumerErrorKind::JetStream(js) => js.error_code() == async_nats::jetstream::ErrorCode::CONSUMER_NOT_FOUND,
        _ => false,
    }
}
