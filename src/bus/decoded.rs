//! Any stored message as JSON for people: headers as text, the body decoded
//! by its stream's schema, or the raw bytes when it cannot be.

use async_nats::header::HeaderMap;
use schemas::subjects::EntityKind;
use schemas::wire::Event;
use serde_json::{json, Map, Value};

use super::envelope;

/// The headers as a JSON object of text values (repeated values joined).
pub fn headers_json(headers: Option<&HeaderMap>) -> Value {
    let mut out = Map::new();
    if let Some(h) = headers {
        for (name, values) in h.iter() {
            let v: Vec<&str> = values.iter().map(|v| v.as_str()).collect();
            out.insert(name.to_string(), Value::from(v.join(", ")));
        }
    }
    Value::Object(out)
}

/// The body decoded as `kind`'s event, or `{"undecodable": why, "raw_hex": …}`.
pub fn body_json(kind: EntityKind, headers: Option<&HeaderMap>, payload: &[u8]) -> Value {
    match kind {
        EntityKind::Order => decoded::<schemas::order::OrderEvent>(headers, payload),
        EntityKind::Payment => decoded::<schemas::payment::PaymentEvent>(headers, payload),
        EntityKind::Inventory => decoded::<schemas::inventory::InventoryEvent>(headers, payload),
        EntityKind::Notification => decoded::<schemas::notification::NotificationEvent>(headers, payload),
    }
}

/// The entity kind whose stream is named `stream`.
pub fn kind_of_stream(stream: &str) -> Option<EntityKind> {
    EntityKind::ALL.into_iter().find(|k| k.stream() == stream)
}

fn decoded<E: Event>(headers: Option<&HeaderMap>, payload: &[u8]) -> Value {
    match envelope::decode::<E>(headers, payload) {
        Ok(event) => serde_json::to_value(event).unwrap_or(Value::Null),
        Err(e) => json!({ "undecodable": e.to_string(), "raw_hex": hex(payload) }),
    }
}

/// Bytes as lowercase hex, for bodies no schema explains.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(2 * bytes.len());
    push_hex(&mut out, bytes);
    out
}

/// Appends bytes as lowercase hex. Without the formatting machinery: a
/// trace context is written this way on every hop of every saga.
pub fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_writes_every_byte_as_two_lowercase_digits() {
        let every: Vec<u8> = (0..=u8::MAX).collect();
        let expected: String = every.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex(&every), expected);
        assert_eq!(hex(&[]), "");
    }
}
