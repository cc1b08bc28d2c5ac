//! The headers around every MessagePack body, and reading them back.

use actors::journal::Cause;
use async_nats::header::{HeaderMap, HeaderName};
use schemas::headers as h;
use schemas::subjects::{EntityKind, EntityRef};
use schemas::wire::{self, Event, WireError};
use schemas::OrderId;

use crate::telemetry::trace_context::TraceContext;

/// The `Nats-Msg-Id` of `event` in `entity`'s journal: it names the cause,
/// so re-deciding the same step yields the same id (invariant 3).
pub fn message_id<E: Event>(entity: &EntityRef, event: &E) -> String {
    format!("{}:{}:{}", entity.kind.space(), entity.id, event.dedup_key())
}

/// The order an event concerns, for the `Order-Id` header.
pub fn order_of<E: Event>(entity: &EntityRef, event: &E) -> Option<String> {
    match entity.kind {
        EntityKind::Order | EntityKind::Payment | EntityKind::Notification => Some(entity.id.clone()),
        EntityKind::Inventory => event.order_id().map(|id: OrderId| id.to_string()),
    }
}

/// Every header of an append: readable metadata, dedup id and the
/// optimistic-concurrency check scoped to the entity's whole journal.
pub fn append_headers<E: Event>(entity: &EntityRef, event: &E, expected_last_seq: u64, cause: &Cause) -> HeaderMap {
    // Names made once and values handed over owned: an append is the
    // hottest path of the saga, and each &str would be validated and copied.
    const MSG_ID: HeaderName = HeaderName::from_static(h::NATS_MSG_ID);
    const LAST_SEQ: HeaderName = HeaderName::from_static(h::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE);
    const LAST_SEQ_SUBJECT: HeaderName = HeaderName::from_static(h::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE_SUBJECT);
    const EVENT_TYPE: HeaderName = HeaderName::from_static(h::EVENT_TYPE);
    const SCHEMA_VERSION: HeaderName = HeaderName::from_static(h::SCHEMA_VERSION);
    const CONTENT_TYPE: HeaderName = HeaderName::from_static(h::CONTENT_TYPE);
    const ORDER_ID: HeaderName = HeaderName::from_static(h::ORDER_ID);
    const CAUSATION_ID: HeaderName = HeaderName::from_static(h::CAUSATION_ID);
    const TRACEPARENT: HeaderName = HeaderName::from_static(h::TRACEPARENT);
    let mut headers = HeaderMap::new();
    headers.insert(MSG_ID, message_id(entity, event));
    headers.insert(LAST_SEQ, expected_last_seq.to_string());
    headers.insert(LAST_SEQ_SUBJECT, entity.journal_filter());
    headers.insert(EVENT_TYPE, event.event_type());
    headers.insert(SCHEMA_VERSION, wire::CURRENT_SCHEMA_VERSION.to_string());
    headers.insert(CONTENT_TYPE, h::MSGPACK);
    if let Some(order) = order_of(entity, event) {
        headers.insert(ORDER_ID, order);
    }
    if let Some(id) = &cause.message_id {
        headers.insert(CAUSATION_ID, id.as_str());
    }
    if let Some(tp) = &cause.traceparent {
        headers.insert(TRACEPARENT, tp.as_str());
    }
    headers
}

/// True when the server stored this message only because `entity` had no
/// events yet: it was appended expecting the entity's journal to be empty,
/// and stored messages keep the headers the server checked them by.
pub fn stored_as_first(headers: Option<&HeaderMap>, entity: &EntityRef) -> bool {
    header(headers, h::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE) == Some("0")
        && header(headers, h::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE_SUBJECT) == Some(entity.journal_filter().as_str())
}

/// One header's value as text.
pub fn header<'a>(headers: Option<&'a HeaderMap>, name: &str) -> Option<&'a str> {
    headers?.get(name).map(|v| v.as_str())
}

/// Decodes a body after checking its schema version is readable.
pub fn decode<E: Event>(headers: Option<&HeaderMap>, payload: &[u8]) -> Result<E, WireError> {
    let version = wire::parse_schema_version(header(headers, h::SCHEMA_VERSION))?;
    wire::decode(version, payload)
}

/// The context an input hands on to the events it causes.
pub fn cause_of(headers: Option<&HeaderMap>) -> Cause {
    Cause {
        message_id: header(headers, h::NATS_MSG_ID).map(str::to_owned),
        // Each hop is a child span of the message that caused it; a
        // message without (valid) context starts a trace here.
        traceparent: Some(
            header(headers, h::TRACEPARENT)
                .and_then(TraceContext::parse)
                .map_or_else(TraceContext::start, |parent| parent.child())
                .to_string(),
        ),
    }
}
