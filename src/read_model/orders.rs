//! The order index behind `GET /api/v1/orders`: one compact entry per order
//! (id, customer, status, created, amount), keyed for the list's filters.
//! It holds every order the stream holds, so an ended order is kept small
//! (40 bytes sorted by key, and 24 in its customer's list): customers and
//! currencies are numbered once, sorted vectors replace tree nodes (orders
//! arrive almost in key order), and only running orders are found by id.
//!
//! Pure: it folds decoded events with their stream sequence and time; the
//! consumer that feeds it lives in [`super::follow`].

use std::collections::HashMap;
use std::ops::Bound;

use actors::order::{Order, OrderSaga, OrderStatus};
use actors::Aggregate;
use schemas::order::OrderEvent;
use schemas::{Currency, CustomerId, Money, OrderId};

use super::interned::Interned;

/// Where an order sorts in a listing: newest placement first, the id breaking ties.
///
/// The id is kept as two halves, high first, so the key sorts as
/// `(created_ms, id as u128)` but is aligned to 8 bytes: 24 bytes, where a
/// `u128` field would make it 32, once for every order and again in its
/// customer's list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PageKey {
    /// When the order was placed, in milliseconds since the Unix epoch.
    pub created_ms: u64,
    id_high: u64,
    id_low: u64,
}

impl PageKey {
    /// The key of `order_id` placed at `created_ms`.
    pub fn of(created_ms: u64, order_id: OrderId) -> Self {
        Self::from_parts(created_ms, order_id.as_uuid().as_u128())
    }

    /// The key of the order whose id, as a number (a UUID's order), is `id`.
    pub fn from_parts(created_ms: u64, id: u128) -> Self {
        Self {
            created_ms,
            // The two halves of a u128: truncation is the point.
            id_high: (id >> 64) as u64,
            id_low: id as u64,
        }
    }

    /// The order's id as a number, so a bound can start below every id.
    pub fn id(&self) -> u128 {
        (u128::from(self.id_high) << 64) | u128::from(self.id_low)
    }

    /// Below every order placed at `created_ms` or later.
    fn first_at(created_ms: u64) -> Self {
        Self::from_parts(created_ms, 0)
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

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The entries, newest first.
    pub entries: Vec<OrderEntry>,
    /// Where the next page starts, if there may be one.
    pub next: Option<PageKey>,
}

/// What the index keeps of one order besides its key (16 bytes).
#[derive(Debug, Clone, Copy)]
struct Slot {
    minor: u64,
    customer: u32,
    /// ISO 4217 allows 26^3 codes, well inside 16 bits.
    currency: u16,
    status: OrderStatus,
}

/// What the index keeps of an order still running.
#[derive(Debug)]
struct Running {
    /// When it was placed, which with its id gives its key.
    created_ms: u64,
    /// Its state, folded from every event so far.
    order: Order,
}

/// The index itself.
#[derive(Debug, Default)]
pub struct OrderIndex {
    /// Every order, sorted by key.
    entries: Vec<(PageKey, Slot)>,
    /// By customer number, the keys of that customer's orders, sorted.
    by_customer: Vec<Vec<PageKey>>,
    customers: Interned<CustomerId>,
    currencies: Interned<Currency>,
    /// Orders still running, by id: their next event must find their entry,
    /// and their status needs more than the last event. Dropped when the
    /// order ends, so an ended order costs only its entry and its key in
    /// the customer's list, not a place in a map by id as well.
    running: HashMap<OrderId, Running>,
    applied_seq: u64,
}

/// Inserts `key` into the sorted `keys` (almost always at the end).
fn insert_sorted<T>(items: &mut Vec<T>, key: PageKey, item: T, key_of: impl Fn(&T) -> PageKey) {
    let at = items.partition_point(|i| key_of(i) < key);
    items.insert(at, item);
}

/// The positions of `keys` inside the bounds, as a range of indices.
fn within<T>(
    items: &[T],
    lower: Bound<PageKey>,
    upper: Bound<PageKey>,
    key_of: impl Fn(&T) -> PageKey,
) -> std::ops::Range<usize> {
    let from = match lower {
        Bound::Included(l) => items.partition_point(|i| key_of(i) < l),
        Bound::Excluded(l) => items.partition_point(|i| key_of(i) <= l),
        Bound::Unbounded => 0,
    };
    let to = match upper {
        Bound::Included(u) => items.partition_point(|i| key_of(i) <= u),
        Bound::Excluded(u) => items.partition_point(|i| key_of(i) < u),
        Bound::Unbounded => items.len(),
    };
    from..to.max(from)
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
        let (known, state) = match self.running.remove(&order_id) {
            Some(running) => (Some(running.created_ms), Some(running.order)),
            // Not running and not a placement: it ended (an ended order does
            // not change, and a late duplicate changes nothing), or it was
            // placed before the stream's first message (purged): either way
            // there is nothing to do. A second placement of an order cannot
            // be on the stream: the journal appends it only to an empty one.
            None if !matches!(event, OrderEvent::Placed { .. }) => return,
            None => (None, None),
        };
        let Some(order) = OrderSaga::evolve(state, event) else {
            return;
        };
        let status = order.status();
        let amount = order.amount();
        let key = PageKey::of(known.unwrap_or(time_ms), order_id);
        let customer = self.customers.number(&order.customer_id);
        let slot = Slot {
            minor: amount.minor,
            customer,
            currency: u16::try_from(self.currencies.number(&amount.currency)).unwrap_or(u16::MAX),
            status,
        };
        if known.is_some() {
            if let Ok(at) = self.entries.binary_search_by_key(&key, |(k, _)| *k) {
                self.entries[at].1 = slot;
            }
        } else {
            insert_sorted(&mut self.entries, key, (key, slot), |(k, _)| *k);
            let n = customer as usize;
            if self.by_customer.len() <= n {
                self.by_customer.resize_with(n + 1, Vec::new);
            }
            insert_sorted(&mut self.by_customer[n], key, key, |k| *k);
        }
        if !status.is_terminal() {
            self.running.insert(
                order_id,
                Running {
                    created_ms: key.created_ms,
                    order,
                },
            );
        }
    }

    /// The entry of the order at `key`, as the API shows it.
    fn entry(&self, key: PageKey, slot: &Slot) -> Option<OrderEntry> {
        Some(OrderEntry {
            order_id: OrderId::from_uuid(uuid::Uuid::from_u128(key.id())),
            customer_id: self.customers.get(slot.customer)?.clone(),
            status: slot.status,
            created_ms: key.created_ms,
            amount: Money {
                minor: slot.minor,
                currency: self
                    .currencies
                    .get(u32::from(slot.currency))
                    .cloned()
                    .unwrap_or_default(),
            },
        })
    }

    /// Up to `limit` entries admitted by `filter`, newest first, starting after `after`.
    pub fn page(&self, filter: &OrderFilter, after: Option<PageKey>, limit: usize) -> Page {
        let empty = Page {
            entries: Vec::new(),
            next: None,
        };
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
        let keys: Box<dyn Iterator<Item = PageKey>> = match &filter.customer {
            Some(c) => match self.customers.find(c).and_then(|n| self.by_customer.get(n as usize)) {
                Some(keys) => Box::new(keys[within(keys, lower, upper, |k| *k)].iter().rev().copied()),
                None => return empty,
            },
            None => Box::new(
                self.entries[within(&self.entries, lower, upper, |(k, _)| *k)]
                    .iter()
                    .rev()
                    .map(|(k, _)| *k),
            ),
        };
        let mut entries = Vec::new();
        let mut next = None;
        for key in keys {
            let Ok(at) = self.entries.binary_search_by_key(&key, |(k, _)| *k) else {
                continue;
            };
            let slot = &self.entries[at].1;
            if filter.status.is_some_and(|s| s != slot.status) {
                continue;
            }
            if entries.len() == limit {
                next = entries.last().map(OrderEntry::key);
                break;
            }
            entries.extend(self.entry(key, slot));
        }
        Page { entries, next }
    }
}

#[cfg(test)]
mod tests;
