//! What the API shows of orders and SKUs, built from their journals.

use std::time::SystemTime;

use actors::inventory::{Inventory, Stock};
use actors::order::{Order, OrderSaga, OrderStatus};
use actors::Aggregate;
use schemas::inventory::InventoryEvent;
use schemas::order::{Line, OrderEvent};
use schemas::subjects::EntityRef;
use schemas::wire::Event;
use schemas::{Money, OrderId, Sku};
use serde::Serialize;

use crate::bus::journal::{NatsJournal, Record};
use crate::http::problem::Problem;

/// One event of an order's history.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntry {
    /// Stream sequence.
    pub seq: u64,
    /// The event type.
    #[serde(rename = "type")]
    pub event_type: &'static str,
    /// When it was stored (RFC 3339).
    pub at: String,
    /// The event itself.
    pub event: OrderEvent,
}

/// An order as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct OrderView {
    /// Its id.
    pub order_id: OrderId,
    /// Who placed it.
    pub customer_id: String,
    /// Where it stands.
    pub status: OrderStatus,
    /// Why it failed or was cancelled, or why it needs attention.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Why it waits, while a step waits for an outside party (a payment provider whose breaker is open).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting: Option<String>,
    /// What was ordered.
    pub items: Vec<Line>,
    /// The total.
    pub amount: Money,
    /// Every event, oldest first.
    pub history: Vec<HistoryEntry>,
}

impl OrderView {
    /// True once the order has ended.
    pub fn is_terminal(&self) -> bool {
        self.status.is_terminal()
    }
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

fn decode_all<E: Event>(records: &[Record]) -> Result<Vec<E>, Problem> {
    records
        .iter()
        .map(|r| NatsJournal::decode(r).map_err(Problem::from))
        .collect()
}

/// Reads an order's journal; `None` if it was never placed.
pub async fn order(journal: &NatsJournal, id: OrderId) -> Result<Option<OrderView>, Problem> {
    let records = journal.records(&EntityRef::order(id), 0).await?;
    order_of(&records)
}

/// Folds an order's whole journal, as read; `None` if it holds no `placed`.
pub fn order_of(records: &[Record]) -> Result<Option<OrderView>, Problem> {
    let events: Vec<OrderEvent> = decode_all(records)?;
    let Some(order): Option<Order> = OrderSaga::replay(&events) else {
        return Ok(None);
    };
    // Why it ended, why it waits for an operator, or why it is being undone
    // (an expired reservation says so while the refund and release run).
    let reason = match &order.ended {
        Some((_, r)) => Some(r.clone()).filter(|r| !r.is_empty()),
        None => order
            .attention
            .clone()
            .or_else(|| order.compensation.as_ref().map(|c| c.reason.clone())),
    };
    let history = records
        .iter()
        .zip(events)
        .map(|(r, event)| HistoryEntry {
            seq: r.seq,
            event_type: event.event_type(),
            at: rfc3339(r.time),
            event,
        })
        .collect();
    Ok(Some(OrderView {
        order_id: order.id,
        customer_id: order.customer_id.to_string(),
        status: order.status(),
        reason,
        waiting: order.waiting.clone(),
        amount: order.amount(),
        items: order.lines,
        history,
    }))
}

/// A SKU's stock as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SkuView {
    /// Which SKU.
    pub sku: Sku,
    /// Units free to reserve.
    pub available: u64,
    /// Units held by orders (including sold ones).
    pub reserved: u64,
    /// Units ever restocked.
    pub restocked: u64,
}

impl SkuView {
    /// The view of `stock`.
    pub fn of(sku: Sku, stock: &Stock) -> Self {
        Self {
            sku,
            available: stock.available,
            reserved: stock.reserved,
            restocked: stock.restocked,
        }
    }
}

/// Reads a SKU's journal; `None` if nothing ever happened to it.
pub async fn sku(journal: &NatsJournal, sku: Sku) -> Result<Option<SkuView>, Problem> {
    let records = journal.records(&EntityRef::inventory(&sku), 0).await?;
    if records.is_empty() {
        return Ok(None);
    }
    let events: Vec<InventoryEvent> = decode_all(&records)?;
    Ok(Some(SkuView::of(sku, &Inventory::replay(&events))))
}
