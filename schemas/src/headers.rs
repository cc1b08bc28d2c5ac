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
