//! MessagePack encoding with an explicit schema version.
//!
//! Bodies are rmp-serde with named fields (a map per struct), so other
//! languages decode them with any MessagePack library, and so fields added
//! later (with a default) do not break older messages.

use std::fmt::Debug;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::subjects::EntityKind;
use crate::OrderId;

/// A schema version as carried in the `Schema-Version` header.
pub type SchemaVersion = u32;

/// The version every message is written with.
///
/// Version 2 added `currency` to `Placed` and to `Money`; version 1 bodies
/// (amounts in euros) still decode, with `EUR` filled in.
pub const CURRENT_SCHEMA_VERSION: SchemaVersion = 2;

/// The oldest version a reader still accepts.
pub const OLDEST_READABLE_SCHEMA_VERSION: SchemaVersion = 1;

/// Why a message could not be read. Every variant is permanent: the same
/// bytes will never decode, so the message is terminated, not retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("missing Schema-Version header")]
    MissingSchemaVersion,
    #[error("unreadable Schema-Version header {0:?}")]
    BadSchemaVersion(String),
    #[error("schema version {0} is not readable (this build reads {OLDEST_READABLE_SCHEMA_VERSION}..={CURRENT_SCHEMA_VERSION})")]
    UnknownSchemaVersion(SchemaVersion),
    #[error("body is not a valid {expected} event: {reason}")]
    Malformed { expected: &'static str, reason: String },
    #[error("could not encode event: {0}")]
    Encode(String),
}

/// What every journaled event tells about itself.
pub trait Event: Serialize + DeserializeOwned + Clone + Debug + Send + Sync + 'static {
    /// The kind of entity whose journal holds this event.
    const KIND: EntityKind;

    /// The subject's last token and the `Event-Type` header.
    fn event_type(&self) -> &'static str;

    /// What makes this event unique within its entity; with the entity it
    /// forms the `Nats-Msg-Id`, so a re-decided event gets the same id.
    fn dedup_key(&self) -> String;

    /// The order this event concerns, when the entity is not the order itself.
    fn order_id(&self) -> Option<OrderId> {
        None
    }
}

/// Encodes an event as MessagePack with named fields.
pub fn encode<E: Event>(event: &E) -> Result<Vec<u8>, WireError> {
    rmp_serde::to_vec_named(event).map_err(|e| WireError::Encode(e.to_string()))
}

/// Parses the `Schema-Version` header and checks this build can read it.
pub fn parse_schema_version(header: Option<&str>) -> Result<SchemaVersion, WireError> {
    let raw = header.ok_or(WireError::MissingSchemaVersion)?;
    let version: SchemaVersion = raw
        .trim()
        .parse()
        .map_err(|_| WireError::BadSchemaVersion(raw.to_owned()))?;
    if (OLDEST_READABLE_SCHEMA_VERSION..=CURRENT_SCHEMA_VERSION).contains(&version) {
        Ok(version)
    } else {
        Err(WireError::UnknownSchemaVersion(version))
    }
}

/// Decodes a body written with `version` (already checked readable).
///
/// Versions 1 and 2 share one decoder: the fields version 2 added all carry
/// serde defaults. A future incompatible version would branch here.
pub fn decode<E: Event>(_version: SchemaVersion, body: &[u8]) -> Result<E, WireError> {
    rmp_serde::from_slice(body).map_err(|e| WireError::Malformed {
        expected: E::KIND.space(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::inventory::InventoryEvent;
    use crate::order::{Line, OrderEvent, Outcome, Reservation};
    use crate::payment::PaymentEvent;
    use crate::{Currency, CustomerId, Money, Quantity, Sku};

    fn sku() -> impl Strategy<Value = Sku> {
        "[A-Za-z0-9_-]{1,64}".prop_map(|s| Sku::parse(&s).unwrap())
    }

    fn money() -> impl Strategy<Value = Money> {
        (any::<u64>(), "[A-Z]{3}").prop_map(|(minor, c)| Money {
            minor,
            currency: Currency::parse(&c).unwrap(),
        })
    }

    fn line() -> impl Strategy<Value = Line> {
        (sku(), 1..=Quantity::MAX, any::<u64>()).prop_map(|(sku, q, unit_price)| Line {
            sku,
            quantity: Quantity::new(q).unwrap(),
            unit_price,
        })
    }

    fn order_event() -> impl Strategy<Value = OrderEvent> {
        prop_oneof![
            (
                any::<u128>(),
                "[a-z]{1,10}",
                proptest::collection::vec(line(), 1..4),
                ".{0,20}"
            )
                .prop_map(|(id, c, lines, pm)| OrderEvent::Placed {
                    order_id: OrderId::parse(&uuid::Uuid::from_u128(id).to_string()).unwrap(),
                    customer_id: CustomerId::parse(&c).unwrap(),
                    lines,
                    currency: Currency::default(),
                    payment_method: pm,
                }),
            (money(), ".{0,20}")
                .prop_map(|(amount, payment_method)| OrderEvent::PaymentRequested { amount, payment_method }),
            (".{0,20}", proptest::collection::vec(line(), 1..4))
                .prop_map(|(payment_id, lines)| OrderEvent::StockRequested { payment_id, lines }),
            (
                proptest::option::of(money()),
                proptest::collection::vec(sku(), 0..3),
                proptest::collection::vec(sku(), 0..3),
                ".{0,20}"
            )
                .prop_map(|(refund, release, withdraw, reason)| OrderEvent::Compensating {
                    outcome: Outcome::Cancelled,
                    reason,
                    refund,
                    release,
                    withdraw,
                }),
            ("[a-z]{1,10}", proptest::option::of((sku(), 1..=Quantity::MAX))).prop_map(|(c, reserved)| {
                OrderEvent::Completed {
                    customer_id: CustomerId::parse(&c).unwrap(),
                    reserved: reserved.map(|(sku, q)| Reservation {
                        sku,
                        quantity: Quantity::new(q).unwrap(),
                    }),
                }
            }),
            ".{0,30}".prop_map(|reason| OrderEvent::Failed {
                customer_id: CustomerId::parse("bob").unwrap(),
                reason
            }),
        ]
    }

    proptest! {
        #[test]
        fn order_events_round_trip(event in order_event()) {
            let bytes = encode(&event).unwrap();
            prop_assert_eq!(decode::<OrderEvent>(CURRENT_SCHEMA_VERSION, &bytes).unwrap(), event);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode::<OrderEvent>(CURRENT_SCHEMA_VERSION, &bytes);
            let _ = decode::<InventoryEvent>(CURRENT_SCHEMA_VERSION, &bytes);
        }
    }

    /// A `placed` body as schema version 1 wrote it: no currency anywhere.
    #[derive(serde::Serialize)]
    struct PlacedV1<'a> {
        r#type: &'a str,
        order_id: &'a str,
        customer_id: &'a str,
        lines: Vec<LineV1<'a>>,
        payment_method: &'a str,
    }

    #[derive(serde::Serialize)]
    struct LineV1<'a> {
        sku: &'a str,
        quantity: u32,
        unit_price: u64,
    }

    #[derive(serde::Serialize)]
    struct AuthorizedV1<'a> {
        r#type: &'a str,
        order_id: &'a str,
        payment_id: &'a str,
        amount: MoneyV1,
    }

    #[derive(serde::Serialize)]
    struct MoneyV1 {
        minor: u64,
    }

    #[test]
    fn previous_version_still_decodes() {
        let id = OrderId::random().to_string();
        let v1 = rmp_serde::to_vec_named(&PlacedV1 {
            r#type: "placed",
            order_id: &id,
            customer_id: "alice",
            lines: vec![LineV1 {
                sku: "SKU-1",
                quantity: 2,
                unit_price: 1250,
            }],
            payment_method: "tok_visa",
        })
        .unwrap();
        let version = parse_schema_version(Some("1")).unwrap();
        match decode::<OrderEvent>(version, &v1).unwrap() {
            OrderEvent::Placed { currency, lines, .. } => {
                assert_eq!(currency.as_str(), "EUR");
                assert_eq!(lines[0].quantity.get(), 2);
            }
            other => panic!("decoded as {other:?}"),
        }

        let v1 = rmp_serde::to_vec_named(&AuthorizedV1 {
            r#type: "authorized",
            order_id: &id,
            payment_id: "pay_1",
            amount: MoneyV1 { minor: 2500 },
        })
        .unwrap();
        match decode::<PaymentEvent>(version, &v1).unwrap() {
            PaymentEvent::Authorized { amount, .. } => assert_eq!(amount.to_string(), "25.00 EUR"),
            other => panic!("decoded as {other:?}"),
        }
    }

    /// A `completed` as builds before 2026-12-03 wrote it, and read it.
    #[derive(Debug, serde::Serialize, serde::Deserialize)]
    struct CompletedBefore {
        r#type: String,
        customer_id: String,
    }

    #[test]
    fn a_completed_naming_its_reservation_is_read_by_old_and_new_builds() {
        let old = rmp_serde::to_vec_named(&CompletedBefore {
            r#type: "completed".into(),
            customer_id: "alice".into(),
        })
        .unwrap();
        match decode::<OrderEvent>(CURRENT_SCHEMA_VERSION, &old).unwrap() {
            OrderEvent::Completed { reserved, .. } => assert_eq!(reserved, None),
            other => panic!("decoded as {other:?}"),
        }
        // The field is additive, so the schema version stays: a build from
        // before it, reading a new `completed` during a rolling upgrade,
        // skips the field and still sees the order completed.
        let new = encode(&OrderEvent::Completed {
            customer_id: CustomerId::parse("alice").unwrap(),
            reserved: Some(Reservation {
                sku: Sku::parse("SKU-1").unwrap(),
                quantity: Quantity::new(2).unwrap(),
            }),
        })
        .unwrap();
        let read: CompletedBefore = rmp_serde::from_slice(&new).unwrap();
        assert_eq!(
            (read.r#type.as_str(), read.customer_id.as_str()),
            ("completed", "alice")
        );
    }

    #[test]
    fn unreadable_versions_are_refused() {
        assert_eq!(parse_schema_version(None), Err(WireError::MissingSchemaVersion));
        assert_eq!(
            parse_schema_version(Some("x")),
            Err(WireError::BadSchemaVersion("x".into()))
        );
        assert_eq!(parse_schema_version(Some("0")), Err(WireError::UnknownSchemaVersion(0)));
        assert_eq!(
            parse_schema_version(Some("3")),
            Err(WireError::UnknownSchemaVersion(CURRENT_SCHEMA_VERSION + 1))
        );
    }

    #[test]
    fn invalid_field_values_are_malformed_not_accepted() {
        #[derive(serde::Serialize)]
        struct BadSku<'a> {
            r#type: &'a str,
            sku: &'a str,
            quantity: u64,
            restock_id: &'a str,
            available: u64,
        }
        let bytes = rmp_serde::to_vec_named(&BadSku {
            r#type: "restocked",
            sku: "has.dots",
            quantity: 1,
            restock_id: "r",
            available: 1,
        })
        .unwrap();
        assert!(matches!(
            decode::<InventoryEvent>(CURRENT_SCHEMA_VERSION, &bytes),
            Err(WireError::Malformed { .. })
        ));
    }
}
