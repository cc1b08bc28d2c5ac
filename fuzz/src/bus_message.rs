//! One arbitrary bus message through the decode paths a consumer runs on it
//! (`src/saga/handlers.rs`: the subject, the `Schema-Version` header, the
//! MessagePack body of every event type and of a fired timer). Shared by the
//! libFuzzer target and the regression tests, so a crash input replays the
//! exact same checks in the normal test suite.
//!
//! Input layout: `subject \0 schema-version \0 body`; a missing separator
//! leaves the later parts empty.

use schemas::inventory::InventoryEvent;
use schemas::notification::NotificationEvent;
use schemas::order::OrderEvent;
use schemas::payment::PaymentEvent;
use schemas::subjects::EntityRef;
use schemas::timer::{self, ReservationExpiry};
use schemas::wire::{self, Event};

/// Decodes `data` every way a consumer could; panics only on a real bug: a
/// panic inside a decoder, or an event that does not survive re-encoding.
pub fn check(data: &[u8]) {
    let mut parts = data.splitn(3, |b| *b == 0);
    let subject = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let version = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let body = parts.next().unwrap_or_default();

    if let Some((entity, event_type)) = EntityRef::parse_subject(&subject) {
        assert!(!entity.id.is_empty() && !event_type.is_empty(), "{subject:?}");
    }
    let _ = timer::order_of(&subject);
    let Ok(version) = wire::parse_schema_version(Some(&version)) else {
        return;
    };
    round_trips::<OrderEvent>(version, body);
    round_trips::<PaymentEvent>(version, body);
    round_trips::<InventoryEvent>(version, body);
    round_trips::<NotificationEvent>(version, body);
    if let Ok(expiry) = ReservationExpiry::decode(body) {
        let encoded = expiry.encode().expect("a decoded timer encodes");
        assert_eq!(ReservationExpiry::decode(&encoded).as_ref(), Ok(&expiry));
    }
}

/// Whatever decodes as `E` must be an event the node can use: it names its
/// type and dedup key, encodes, and decodes again to the same bytes.
fn round_trips<E: Event>(version: wire::SchemaVersion, body: &[u8]) {
    let Ok(event) = wire::decode::<E>(version, body) else {
        return;
    };
    let _ = (event.event_type(), event.dedup_key(), event.order_id());
    let encoded = wire::encode(&event).expect("a decoded event encodes");
    let again: E = wire::decode(version, &encoded).expect("a re-encoded event decodes");
    assert_eq!(
        wire::encode(&again).expect("encodes"),
        encoded,
        "{event:?} changed on a round trip"
    );
}
