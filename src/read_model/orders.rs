//! The order index behind `GET /api/v1/orders`: one compact entry per order
//! (id, customer, status, created, amount), keyed for the list's filters.
//!
//! Pure: it folds decoded events with their stream sequence and time; the
//! consumer that feeds it lives in [`super::follow`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;

use actors::order::{Order, OrderSaga, OrderStatus};
use actors::Aggregate;
use schemas::order::OrderEvent;
use schemas::{CustomerId, Money, OrderId};

/// Where an order sorts in a listing: newest placement first, the id breaking ties.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PageKey {
    /// When the order was placed, in milliseconds since the Unix epoch.
    pub created_ms: u64,
    /// The order's id as a number (a UUID's order), so a bound can start below every id.
    pub id: u128,
}

impl PageKey {
    /// The key of `order_id` placed at `created_ms`.
    pub fn of(created_ms: u64, order_id: OrderId) -> Self {
        Self {
            created_ms,
            id: order_id.as_uuid().as_u128(),
        }
    }

    /// Below every order placed at `created_ms` or later.
    fn first_at(created_ms: u64) -> Self {
        Self { created_ms, id: 0 }
    }
}

/// What the index keeps of one order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderEntry {
    /// The order.
    pub order_id: OrderId,
    /// Who placed it.
    pub customer_id: CustomerId,
    /// Where it stands, as of the last event applied.
    pub status: OrderStatus,
    /// When it was placed, in milliseconds since the Unix epoch.
    pub created_ms: u64,
    /// Its total.
    pub amount: Money,
}

impl OrderEntry {
    fn key(&self) -> PageKey {
        PageKey::of(self.created_ms, self.order_id)
    }
}

/// The filters of a listing; every one given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderFilter {
    /// Only orders in this status.
    pub status: Option<OrderStatus>,
    /// Only this customer's orders.
    pub customer: Option<CustomerId>,
    /// Placed at or after this instant (ms since the epoch).
    pub created_from_ms: Option<u64>,
    /// Placed before this instant (ms since the epoch).
    pub created_to_ms: Option<u64>,
}

impl OrderFilter {
    fn admits(&self, entry: &OrderEntry) -> bool {
        self.status.is_none_or(|s| s == entry.status) && self.customer.as_ref().is_none_or(|c| *c == entry.customer_id)
    }
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The entries, newest first.
    pub entries: Vec<OrderEntry>,
    /// Where the next page starts, if there may be one.
    pub next: Option<PageKey>,
}

/// The index itself.
#[derive(Debug, Default)]
pub struct OrderIndex {
    entries: BTreeMap<PageKey, OrderEntry>,
    keys: HashMap<OrderId, PageKey>,
    by_customer: HashMap<CustomerId, BTreeSet<PageKey>>,
    /// The folded state of orders still running: the status needs more than
    /// the last event. Dropped when the order ends, so an ended order costs
    /// only its entry.
    running: HashMap<OrderId, Order>,
    applied_seq: u64,
}

impl OrderIndex {
    /// The stream sequence of the last event applied.
    pub fn applied_seq(&self) -> u64 {
        self.applied_seq
    }

    /// How many orders the index holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True while no order has been applied.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Records that `seq` was read but held nothing to fold (an unreadable message).
    pub fn skip(&mut self, seq: u64) {
        self.applied_seq = self.applied_seq.max(seq);
    }

    /// Folds one event of order `order_id`, stored at `seq` at `time_ms`.
    /// Events at or below the applied sequence were seen already and are ignored.
    pub fn apply(&mut self, seq: u64, time_ms: u64, order_id: OrderId, event: &OrderEvent) {
        if seq <= self.applied_seq {
            return;
        }
        self.applied_seq = seq;
        let known = self.keys.get(&order_id).copied();
        if known.is_some() && !self.running.contains_key(&order_id) {
            // Ended orders do not change any more (a late duplicate changes nothing).
            return;
        }
        if known.is_none() && !matches!(event, OrderEvent::Placed { .. }) {
            // Its placement was never seen (purged from the stream): nothing to list.
            return;
        }
        let state = self.running.remove(&order_id);
        let Some(order) = OrderSaga::evolve(state, event) else {
            return;
        };
        let status = order.status();
        let key = known.unwrap_or(PageKey::of(time_ms, order_id));
        let entry = OrderEntry {
            order_id,
            customer_id: order.customer_id.clone(),
            status,
            created_ms: key.created_ms,
            amount: order.amount(),
        };
        if known.is_none() {
            self.keys.insert(order_id, key);
            self.by_customer
                .entry(entry.customer_id.clone())
                .or_default()
                .insert(key);
        }
        self.entries.insert(key, entry);
        if !status.is_terminal() {
            self.running.insert(order_id, order);
        }
    }

    /// Up to `limit` entries admitted by `filter`, newest first, starting after `after`.
    pub fn page(&self, filter: &OrderFilter, after: Option<PageKey>, limit: usize) -> Page {
        let lower = match filter.created_from_ms {
            Some(ms) => Bound::Included(PageKey::first_at(ms)),
            None => Bound::Unbounded,
        };
        let to = filter.created_to_ms.map(PageKey::first_at);
        // The smaller of the cursor and the `created_to` bound, both exclusive.
        let upper = match (after, to) {
            (Some(a), Some(t)) => Bound::Excluded(a.min(t)),
            (Some(k), None) | (None, Some(k)) => Bound::Excluded(k),
            (None, None) => Bound::Unbounded,
        };
        if matches!((lower, upper), (Bound::Included(l), Bound::Excluded(u)) if l >= u) {
            return Page {
                entries: Vec::new(),
                next: None,
            };
        }
        let keys: Box<dyn Iterator<Item = &PageKey>> = match &filter.customer {
            Some(c) => match self.by_customer.get(c) {
                Some(keys) => Box::new(keys.range((lower, upper)).rev()),
                None => Box::new(std::iter::empty()),
            },
            None => Box::new(self.entries.range((lower, upper)).rev().map(|(k, _)| k)),
        };
        let mut entries = Vec::new();
        let mut next = None;
        for key in keys {
            let Some(entry) = self.entries.get(key) else { continue };
            if !filter.admits(entry) {
                continue;
            }
            if entries.len() == limit {
                next = entries.last().map(OrderEntry::key);
                break;
            }
            entries.push(entry.clone());
        }
        Page { entries, next }
    }
}

#[cfg(test)]
mod tests;
