//! Stream names and subjects, in one place, chosen to read well in the nats CLI.
//!
//! Every entity owns one subject space, `<space>.<id>.<event_type>`, and its
//! journal is `<space>.<id>.*` — the filter used both to replay it and as the
//! subject of the optimistic-concurrency check.

use std::fmt;

use crate::{OrderId, Sku};

/// The kinds of entity that keep a journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntityKind {
    /// One per order: the saga itself.
    Order,
    /// One per order: the money side.
    Payment,
    /// One per SKU: the stock.
    Inventory,
    /// One per order: what the customer was told.
    Notification,
}

impl EntityKind {
    /// Every kind, in saga order.
    pub const ALL: [EntityKind; 4] = [Self::Order, Self::Payment, Self::Inventory, Self::Notification];

    /// The JetStream stream holding this kind's journals.
    pub fn stream(self) -> &'static str {
        match self {
            Self::Order => "ORDERS",
            Self::Payment => "PAYMENTS",
            Self::Inventory => "INVENTORY",
            Self::Notification => "NOTIFICATIONS",
        }
    }

    /// The first subject token of this kind.
    pub fn space(self) -> &'static str {
        match self {
            Self::Order => "orders",
            Self::Payment => "payments",
            Self::Inventory => "inventory",
            Self::Notification => "notifications",
        }
    }

    /// The stream's subject filter, e.g. `orders.>`.
    pub fn stream_subjects(self) -> String {
        format!("{}.>", self.space())
    }

    /// A filter for one event type across all entities, e.g. `orders.*.placed`.
    pub fn event_filter(self, event_type: &str) -> String {
        format!("{}.*.{}", self.space(), event_type)
    }
}

/// One entity's identity: its kind and the id that names its journal.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntityRef {
    /// What kind of entity.
    pub kind: EntityKind,
    /// The subject token naming it (an order id or a SKU).
    pub id: String,
}

impl EntityRef {
    /// The order saga of `id`.
    pub fn order(id: OrderId) -> Self {
        Self {
            kind: EntityKind::Order,
            id: id.to_string(),
        }
    }

    /// The payment of order `id`.
    pub fn payment(id: OrderId) -> Self {
        Self {
            kind: EntityKind::Payment,
            id: id.to_string(),
        }
    }

    /// The stock of `sku`.
    pub fn inventory(sku: &Sku) -> Self {
        Self {
            kind: EntityKind::Inventory,
            id: sku.to_string(),
        }
    }

    /// The notifications of order `id`.
    pub fn notification(id: OrderId) -> Self {
        Self {
            kind: EntityKind::Notification,
            id: id.to_string(),
        }
    }

    /// `<space>.<id>.*`: replays the journal and scopes the concurrency check.
    pub fn journal_filter(&self) -> String {
        format!("{}.{}.*", self.kind.space(), self.id)
    }

    /// The subject an event of `event_type` is appended under.
    pub fn subject(&self, event_type: &str) -> String {
        format!("{}.{}.{}", self.kind.space(), self.id, event_type)
    }

    /// Splits `<space>.<id>.<event_type>` back into its entity and event type.
    pub fn parse_subject(subject: &str) -> Option<(EntityRef, &str)> {
        let mut tokens = subject.split('.');
        let (space, id, event_type) = (tokens.next()?, tokens.next()?, tokens.next()?);
        if tokens.next().is_some() || id.is_empty() || event_type.is_empty() {
            return None;
        }
        let kind = EntityKind::ALL.into_iter().find(|k| k.space() == space)?;
        Some((
            EntityRef {
                kind,
                id: id.to_owned(),
            },
            event_type,
        ))
    }
}

impl fmt::Display for EntityRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.kind.space(), self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_round_trip() {
        let sku = Sku::parse("SKU-1").unwrap();
        let e = EntityRef::inventory(&sku);
        assert_eq!(e.journal_filter(), "inventory.SKU-1.*");
        let subject = e.subject("reserved");
        assert_eq!(EntityRef::parse_subject(&subject), Some((e, "reserved")));
        assert_eq!(EntityRef::parse_subject("orders.x"), None);
        assert_eq!(EntityRef::parse_subject("orders.x.y.z"), None);
        assert_eq!(EntityRef::parse_subject("nope.x.y"), None);
    }
}
