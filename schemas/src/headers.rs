//! Header names, in one place. Every message carries the plain-text ones so
//! `nats stream view` is readable without decoding the MessagePack body.

/// The event's type, the last token of its subject (`placed`, `authorized`, ...).
pub const EVENT_TYPE: &str = "Event-Type";
/// The order this message belongs to; inventory events carry it too.
pub const ORDER_ID: &str = "Order-Id";
/// The body's schema version, a decimal integer.
pub const SCHEMA_VERSION: &str = "Schema-Version";
/// Always [`MSGPACK`].
pub const CONTENT_TYPE: &str = "Content-Type";
/// The body's media type.
pub const MSGPACK: &str = "application/msgpack";
/// W3C trace context, carried from the HTTP request through every hop.
pub const TRACEPARENT: &str = "traceparent";
/// The `Nats-Msg-Id` of the message that caused this one, for tracing a saga.
pub const CAUSATION_ID: &str = "Causation-Id";

/// JetStream's de-duplication key (invariant 3).
pub const NATS_MSG_ID: &str = "Nats-Msg-Id";
/// JetStream's optimistic-concurrency check (invariant 2).
pub const NATS_EXPECTED_LAST_SUBJECT_SEQUENCE: &str = "Nats-Expected-Last-Subject-Sequence";
/// Widens the check above from the literal subject to the entity's wildcard.
pub const NATS_EXPECTED_LAST_SUBJECT_SEQUENCE_SUBJECT: &str = "Nats-Expected-Last-Subject-Sequence-Subject";

/// JetStream message scheduling (ADR-51): when a schedule fires, e.g. `@at 2026-01-01T00:00:00Z`.
pub const NATS_SCHEDULE: &str = "Nats-Schedule";
/// The subject, in the same stream, a schedule publishes its body to.
pub const NATS_SCHEDULE_TARGET: &str = "Nats-Schedule-Target";
/// On a fired message: the subject of the schedule that produced it.
pub const NATS_SCHEDULER: &str = "Nats-Scheduler";
