//! A SKU's events, journaled under `inventory.<sku>.<type>`. Each carries
//! the units available after it, so one event shows the stock level.

use serde::{Deserialize, Serialize};

use crate::subjects::EntityKind;
use crate::wire::Event;
use crate::{OrderId, Quantity, Sku};

/// Every event of a SKU's journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InventoryEvent {
    /// Units were added to the stock.
    Restocked {
        sku: Sku,
        quantity: u64,
        restock_id: String,
        available: u64,
    },
    /// Units were set aside for an order.
    Reserved {
        sku: Sku,
        order_id: OrderId,
        quantity: Quantity,
        available: u64,
    },
    /// Too few units were available for an order.
    Rejected {
        sku: Sku,
        order_id: OrderId,
        quantity: Quantity,
        available: u64,
    },
    /// An order's reservation went back to the stock.
    Released {
        sku: Sku,
        order_id: OrderId,
        quantity: Quantity,
        available: u64,
    },
    /// The order gave up before this SKU answered it (its reservation
    /// expired elsewhere): a later request of that order is ignored.
    Withdrawn {
        sku: Sku,
        order_id: OrderId,
        available: u64,
    },
}

impl Event for InventoryEvent {
    const KIND: EntityKind = EntityKind::Inventory;

    fn event_type(&self) -> &'static str {
        match self {
            Self::Restocked { .. } => "restocked",
            Self::Reserved { .. } => "reserved",
            Self::Rejected { .. } => "rejected",
            Self::Released { .. } => "released",
            Self::Withdrawn { .. } => "withdrawn",
        }
    }

    fn dedup_key(&self) -> String {
        match self {
            Self::Restocked { restock_id, .. } => format!("restocked:{restock_id}"),
            Self::Reserved { order_id, .. }
            | Self::Rejected { order_id, .. }
            | Self::Released { order_id, .. }
            | Self::Withdrawn { order_id, .. } => format!("{}:{order_id}", self.event_type()),
        }
    }

    fn order_id(&self) -> Option<OrderId> {
        match self {
            Self::Restocked { .. } => None,
            Self::Reserved { order_id, .. }
            | Self::Rejected { order_id, .. }
            | Self::Released { order_id, .. }
            | Self::Withdrawn { order_id, .. } => Some(*order_id),
        }
    }
}
