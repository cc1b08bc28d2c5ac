//! Newtypes parsed at the edge, so inner code never re-checks them.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Why an identifier or amount was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("must be a UUID")]
    NotAUuid,
    #[error("must be 1 to {max} characters of A-Z a-z 0-9 _ -")]
    BadToken { max: usize },
    #[error("must be between 1 and {max}")]
    OutOfRange { max: u64 },
    #[error("must be a three-letter upper-case ISO 4217 code")]
    BadCurrency,
}

/// The identity of one order; also the payment's identity and the gateway's idempotency key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OrderId(Uuid);

impl OrderId {
    /// A fresh random order id.
    pub fn random() -> Self {
        Self(Uuid::new_v4())
    }

    /// The order id that a client's idempotency key always maps to, so the
    /// same key can never create a second order, on any node, without shared state.
    pub fn from_idempotency_key(customer: &CustomerId, key: &str) -> Self {
        const NAMESPACE: Uuid = Uuid::from_u128(0x6f72_6465_7266_6c6f_7700_0000_0000_0001);
        let name = format!("{}\u{1f}{}", customer.as_str(), key);
        Self(Uuid::new_v5(&NAMESPACE, name.as_bytes()))
    }

    /// Parses the hyphenated UUID form used in subjects and URLs.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        Uuid::try_parse(s).map(Self).map_err(|_| IdError::NotAUuid)
    }

    /// The UUID inside.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }

    /// The order id that is this UUID.
    pub fn from_uuid(uuid: Uuid) -> Self {
        Self(uuid)
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// Checks a string that will become one NATS subject token: no dots,
/// wildcards or spaces can reach a subject through it.
fn subject_token(s: &str, max: usize) -> Result<(), IdError> {
    let ok = !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(IdError::BadToken { max })
    }
}

macro_rules! token_newtype {
    ($(#[$doc:meta])* $name:ident, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Longest accepted value, in bytes.
            pub const MAX_LEN: usize = $max;

            /// Accepts 1..=MAX_LEN characters of `A-Z a-z 0-9 _ -`.
            pub fn parse(s: &str) -> Result<Self, IdError> {
                subject_token(s, Self::MAX_LEN).map(|()| Self(s.to_owned()))
            }

            /// The value as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                subject_token(&s, Self::MAX_LEN).map(|()| Self(s))
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

token_newtype!(
    /// A stock-keeping unit; one inventory actor and one subject token each.
    Sku,
    64
);
token_newtype!(
    /// The customer who placed an order.
    CustomerId,
    64
);

/// A number of units on one order line: at least 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Quantity(u32);

impl Quantity {
    /// The largest quantity one line may ask for.
    pub const MAX: u32 = 10_000;

    /// Accepts 1..=MAX.
    pub fn new(n: u32) -> Result<Self, IdError> {
        if (1..=Self::MAX).contains(&n) {
            Ok(Self(n))
        } else {
            Err(IdError::OutOfRange {
                max: u64::from(Self::MAX),
            })
        }
    }

    /// The count.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for Quantity {
    type Error = IdError;
    fn try_from(n: u32) -> Result<Self, IdError> {
        Self::new(n)
    }
}

impl From<Quantity> for u32 {
    fn from(q: Quantity) -> u32 {
        q.0
    }
}

/// An ISO 4217 currency code.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency(String);

impl Currency {
    /// Accepts three upper-case ASCII letters.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        if s.len() == 3 && s.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(Self(s.to_owned()))
        } else {
            Err(IdError::BadCurrency)
        }
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Currency {
    /// Schema version 1 had no currency: every amount was in euros.
    fn default() -> Self {
        Self("EUR".to_owned())
    }
}

impl TryFrom<String> for Currency {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        Self::parse(&s)
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> String {
        c.0
    }
}

/// An amount in minor units (cents) of a currency; never floating point.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    /// Minor units, e.g. cents.
    pub minor: u64,
    /// ISO 4217 code.
    #[serde(default)]
    pub currency: Currency,
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:02} {}",
            self.minor / 100,
            self.minor % 100,
            self.currency.as_str()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skus_refuse_subject_metacharacters() {
        for bad in ["", "a.b", "a*", ">", "a b", &"x".repeat(65)] {
            assert!(Sku::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(Sku::parse("SKU-1_a").map(|s| s.to_string()), Ok("SKU-1_a".into()));
    }

    #[test]
    fn idempotency_keys_map_to_one_order_per_customer() {
        let alice = CustomerId::parse("alice").unwrap();
        let bob = CustomerId::parse("bob").unwrap();
        let a1 = OrderId::from_idempotency_key(&alice, "k1");
        assert_eq!(a1, OrderId::from_idempotency_key(&alice, "k1"));
        assert_ne!(a1, OrderId::from_idempotency_key(&alice, "k2"));
        assert_ne!(a1, OrderId::from_idempotency_key(&bob, "k1"));
    }

    #[test]
    fn quantities_are_bounded() {
        assert!(Quantity::new(0).is_err());
        assert!(Quantity::new(Quantity::MAX + 1).is_err());
        assert_eq!(Quantity::new(3).map(Quantity::get), Ok(3));
    }
}
