//! What operators see: metrics (one Prometheus recorder per process, the
//! families orderflow exports, gauges read from the broker), logs, and the
//! trace context carried across NATS.

pub mod gauges;
pub mod logs;
pub mod otlp;
pub mod partitions;
pub mod payments;
pub mod trace_context;

use std::sync::OnceLock;

use actors::shell::directory::LiveGauge;
use actors::shell::parked::ParkedGauge;
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use schemas::notification::{Channel, NotificationEvent};
use schemas::subjects::EntityKind;

/// Latency buckets (seconds), from a fast local step to a slow saga.
const SECONDS_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The process's recorder, installed on first use; its handle renders `/metrics`.
pub fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS_BUCKETS)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder was installed first; the
            // handle then renders nothing, which /metrics makes visible.
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics stays empty");
            }
            describe();
            payments::describe();
            partitions::describe();
            register_zeroes();
            payments::register_zeroes();
            handle
        })
        .clone()
}

fn describe() {
    describe_counter!(
        "orderflow_http_requests_total",
        "HTTP requests answered, by route and status"
    );
    describe_histogram!(
        "orderflow_http_request_duration_seconds",
        Unit::Seconds,
        "HTTP request latency, by route"
    );
    describe_counter!("orderflow_orders_ended_total", "Orders that ended, by final status");
    describe_histogram!(
        "orderflow_saga_duration_seconds",
        Unit::Seconds,
        "From placed to ended, by final status"
    );
    describe_histogram!(
        "orderflow_step_duration_seconds",
        Unit::Seconds,
        "From a saga step's request to its answer, by step"
    );
    describe_gauge!("orderflow_actors_live", "Live actors, by kind");
    describe_gauge!(
        "orderflow_actors_peak",
        "The most actors of a kind live at once since the node started"
    );
    describe_counter!(
        "orderflow_actor_passivations_total",
        "Actors stopped, idle or making room at the cap (their state parked), by kind"
    );
    describe_gauge!(
        "orderflow_entities_parked",
        "Entity states held in memory without an actor, by kind"
    );
    describe_counter!(
        "orderflow_entity_passivations_total",
        "Parked entity states dropped from memory (snapshotted if their journal is long), by kind"
    );
    describe_counter!(
        "orderflow_actor_restarts_total",
        "Actors that died and were replaced, by kind"
    );
    describe_counter!(
        "orderflow_occ_conflicts_total",
        "Appends refused by optimistic concurrency, then re-decided, by kind"
    );
    describe_counter!(
        "orderflow_duplicates_dropped_total",
        "Appends the server dropped as duplicates (Nats-Msg-Id), by kind"
    );
    describe_counter!(
        "orderflow_jetstream_operations_total",
        "Requests this node made of JetStream, by operation (publish, read, replay, deliver, ack)"
    );
    describe_counter!(
        "orderflow_inbox_messages_total",
        "Inputs settled, by consumer and outcome"
    );
    describe_gauge!("orderflow_consumer_pending", "Messages not yet delivered, by consumer");
    describe_gauge!(
        "orderflow_consumer_ack_pending",
        "Messages delivered and not yet acked, by consumer"
    );
    describe_counter!(
        "orderflow_dead_letters_received_total",
        "Dead letters received, by consumer"
    );
    describe_counter!(
        "orderflow_dead_letters_replayed_total",
        "Dead letters replayed by an operator"
    );
    describe_counter!(
        "orderflow_dead_letters_discarded_total",
        "Dead letters discarded by an operator"
    );
    describe_gauge!(
        "orderflow_dead_letters_backlog",
        "Dead letters neither replayed nor discarded"
    );
    describe_counter!(
        "orderflow_notifications_total",
        "Notification results journaled, by channel and status (sent, failed, fell_back, opted_out, read)"
    );
}

/// Counters that may stay at zero for a long time are exported from the
/// start, so a dashboard shows 0 rather than "no data".
fn register_zeroes() {
    for kind in EntityKind::ALL.map(kind_label) {
        counter!("orderflow_occ_conflicts_total", "kind" => kind).increment(0);
        counter!("orderflow_duplicates_dropped_total", "kind" => kind).increment(0);
        counter!("orderflow_actor_passivations_total", "kind" => kind).increment(0);
        counter!("orderflow_entity_passivations_total", "kind" => kind).increment(0);
        counter!("orderflow_actor_restarts_total", "kind" => kind).increment(0);
    }
    for status in ["COMPLETED", "FAILED", "CANCELLED"] {
        counter!("orderflow_orders_ended_total", "status" => status).increment(0);
    }
    counter!("orderflow_dead_letters_replayed_total").increment(0);
    counter!("orderflow_dead_letters_discarded_total").increment(0);
    for op in JetStreamOp::ALL {
        counter!("orderflow_jetstream_operations_total", "op" => op.label()).increment(0);
    }
    for channel in Channel::ALL.map(Channel::as_str) {
        for status in ["sent", "failed", "fell_back", "read"] {
            counter!("orderflow_notifications_total", "channel" => channel, "status" => status).increment(0);
        }
    }
    counter!("orderflow_notifications_total", "channel" => "none", "status" => "opted_out").increment(0);
}

/// Counts a journaled notification event.
pub fn notification_recorded(event: &NotificationEvent) {
    let channel = event.channel().map_or("none", Channel::as_str);
    let status = match event {
        NotificationEvent::Sent { .. } => "sent",
        NotificationEvent::Failed { fallback: Some(_), .. } => "fell_back",
        NotificationEvent::Failed { fallback: None, .. } => "failed",
        NotificationEvent::OptedOut { .. } => "opted_out",
        NotificationEvent::Read { .. } => "read",
        NotificationEvent::Claimed { .. } => return,
    };
    counter!("orderflow_notifications_total", "channel" => channel, "status" => status).increment(1);
}

/// A dead letter reached the node (from `consumer`).
pub fn dead_letter_received(consumer: &str) {
    counter!("orderflow_dead_letters_received_total", "consumer" => consumer.to_owned()).increment(1);
}

/// An operator replayed a dead letter.
pub fn dead_letter_replayed() {
    counter!("orderflow_dead_letters_replayed_total").increment(1);
}

/// An operator discarded a dead letter.
pub fn dead_letter_discarded() {
    counter!("orderflow_dead_letters_discarded_total").increment(1);
}

/// Dead letters waiting for an operator.
pub fn dead_letter_backlog(n: u64) {
    gauge!("orderflow_dead_letters_backlog").set(n as f64);
}

/// An input of `consumer` was settled with `outcome` (`ack`, `nak`, `term`).
pub fn inbox_settled(consumer: &'static str, outcome: &'static str) {
    counter!("orderflow_inbox_messages_total", "consumer" => consumer, "outcome" => outcome).increment(1);
}

/// A durable consumer's lag, as the server reports it.
pub fn consumer_lag(consumer: &str, pending: u64, ack_pending: usize) {
    let consumer = consumer.to_owned();
    gauge!("orderflow_consumer_pending", "consumer" => consumer.clone()).set(pending as f64);
    gauge!("orderflow_consumer_ack_pending", "consumer" => consumer).set(ack_pending as f64);
}

/// The step each consumer's inputs are, as the step latency labels it.
fn step_of(consumer: &str) -> &'static str {
    match consumer {
        "order-saga" => "saga",
        _ => "other",
    }
}

/// `consumer` finished an input published at `published`: from its storage
/// to done, queueing and every step it drove included.
pub fn step_done(consumer: &'static str, published: time::OffsetDateTime) {
    let seconds = (time::OffsetDateTime::now_utc() - published).as_seconds_f64().max(0.0);
    histogram!("orderflow_step_duration_seconds", "step" => step_of(consumer)).record(seconds);
}

/// The saga driver's request to one entity (`payment`, `stock`,
/// `notification`) took `took`, from asking to its answer stored.
pub fn step_took(step: &'static str, took: std::time::Duration) {
    histogram!("orderflow_step_duration_seconds", "step" => step).record(took.as_secs_f64());
}

/// An HTTP request was answered.
pub fn http_request(method: &str, route: String, status: u16, took: std::time::Duration) {
    let method = method.to_owned();
    counter!("orderflow_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status.to_string())
        .increment(1);
    histogram!("orderflow_http_request_duration_seconds", "method" => method, "route" => route)
        .record(took.as_secs_f64());
}

/// The `kind` label of an entity kind, as the actor metrics spell it.
fn kind_label(kind: EntityKind) -> &'static str {
    match kind {
        EntityKind::Order => "order",
        EntityKind::Payment => "payment",
        EntityKind::Inventory => "inventory",
        EntityKind::Notification => "notification",
    }
}

/// A request a node makes of JetStream: what `orderflow bench` divides by
/// the orders of a run to quote the saga's JetStream cost per order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JetStreamOp {
    /// A publish to a stream, awaiting its ack (an append, a timer).
    Publish,
    /// One read request: a direct or leader get of one message, or one
    /// batched direct get of many (journals, KV entries).
    Read,
    /// An ordered consumer created to stream a long journal.
    Replay,
    /// A message delivered to an inbox's pull consumer.
    Deliver,
    /// An ack, nak or term sent for a delivered message.
    Ack,
}

impl JetStreamOp {
    /// Every operation, as exported.
    pub const ALL: [Self; 5] = [Self::Publish, Self::Read, Self::Replay, Self::Deliver, Self::Ack];

    /// The `op` label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Publish => "publish",
            Self::Read => "read",
            Self::Replay => "replay",
            Self::Deliver => "deliver",
            Self::Ack => "ack",
        }
    }
}

/// This node made one JetStream request of kind `op`.
pub fn jetstream_op(op: JetStreamOp) {
    counter!("orderflow_jetstream_operations_total", "op" => op.label()).increment(1);
}

/// The server dropped an append of `kind` as a duplicate.
pub fn duplicate_dropped(kind: EntityKind) {
    counter!("orderflow_duplicates_dropped_total", "kind" => kind_label(kind)).increment(1);
}

/// An append of `kind` lost an optimistic-concurrency race.
pub fn occ_conflict(kind: EntityKind) {
    counter!("orderflow_occ_conflicts_total", "kind" => kind_label(kind)).increment(1);
}

/// An order ended with `status` (`COMPLETED`, `FAILED`, `CANCELLED`), `took` after it was placed.
pub fn order_ended(status: &'static str, took: Option<std::time::Duration>) {
    counter!("orderflow_orders_ended_total", "status" => status).increment(1);
    if let Some(took) = took {
        histogram!("orderflow_saga_duration_seconds", "status" => status).record(took.as_secs_f64());
    }
}

/// One kind of actor's numbers, as its directory counts them.
pub fn actors(kind: &'static str, actors: &LiveGauge, parked: &ParkedGauge) {
    gauge!("orderflow_actors_live", "kind" => kind).set(actors.now() as f64);
    gauge!("orderflow_actors_peak", "kind" => kind).set(actors.peak() as f64);
    counter!("orderflow_actor_passivations_total", "kind" => kind).absolute(actors.passivated());
    counter!("orderflow_actor_restarts_total", "kind" => kind).absolute(actors.replaced());
    gauge!("orderflow_entities_parked", "kind" => kind).set(parked.now() as f64);
    counter!("orderflow_entity_passivations_total", "kind" => kind).absolute(parked.passivated());
}
