//! When the sagas this node started were placed, taken from their `placed`
//! message, so timing an ending needs no read of the journal.
//!
//! A cache: an order it does not hold (placed before a restart, started on
//! another node, or evicted) is dated by reading its `placed` event instead.

use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::SystemTime;

use lru::LruCache;
use schemas::OrderId;

/// How many running sagas are dated at most: far more than run at once at
/// full load, and about a megabyte when full.
const CAPACITY: NonZeroUsize = NonZeroUsize::new(16_384).unwrap();

/// Placement times of running sagas, least recently placed evicted first.
pub struct PlacedTimes {
    times: Mutex<LruCache<OrderId, SystemTime>>,
}

impl Default for PlacedTimes {
    fn default() -> Self {
        Self {
            times: Mutex::new(LruCache::new(CAPACITY)),
        }
    }
}

impl PlacedTimes {
    /// Remembers that `order_id` was placed `at`.
    pub fn remember(&self, order_id: OrderId, at: SystemTime) {
        if let Ok(mut times) = self.times.lock() {
            times.put(order_id, at);
        }
    }

    /// When `order_id` was placed, if known; forgotten once asked, as an
    /// order ends once.
    pub fn take(&self, order_id: OrderId) -> Option<SystemTime> {
        self.times.lock().ok()?.pop(&order_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::CustomerId;

    fn order(n: usize) -> OrderId {
        OrderId::from_idempotency_key(&CustomerId::parse("alice").expect("a customer"), &n.to_string())
    }

    #[test]
    fn a_time_is_given_once_and_the_oldest_make_room() {
        let times = PlacedTimes::default();
        let at = SystemTime::UNIX_EPOCH;
        for n in 0..=CAPACITY.get() {
            times.remember(order(n), at);
        }
        assert_eq!(times.take(order(0)), None, "the oldest was evicted");
        assert_eq!(times.take(order(1)), Some(at));
        assert_eq!(times.take(order(1)), None, "taken once");
        assert_eq!(times.take(order(CAPACITY.get())), Some(at));
    }
}
