//! Entities held in memory without an actor. An actor costs about 7 KiB
//! (ractor's task and mailboxes) whether it works or waits, while an
//! entity's state is a few hundred bytes; so an actor that has had nothing
//! to do for a moment parks its state here and stops, and the entity's next
//! input starts a new actor from it, with no snapshot or journal read.
//!
//! Parked states are a cache like any other (invariant 6): the journal may
//! have moved on since, which the next append's optimistic check catches,
//! and a "nothing to do" or a refusal is believed only after a fresh read.
//! They are bounded: past the capacity, or idle for the idle timeout, the
//! least recently parked is dropped (passivation), with a snapshot if it
//! saves its next actor a long replay.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use lru::LruCache;
use schemas::subjects::EntityRef;

use super::Cached;
use crate::snapshot::{self, SnapshotStore};
use crate::Aggregate;

/// One entity's state between actors.
#[derive(Debug)]
pub struct Parked<A: Aggregate> {
    /// What the last actor had read and decided.
    pub(crate) cache: Cached<A>,
    /// `cache.folded` when its last snapshot was taken.
    pub(crate) snapshotted_at: usize,
    since: Instant,
}

impl<A: Aggregate> Parked<A> {
    /// A state parked now.
    pub(crate) fn new(cache: Cached<A>, snapshotted_at: usize) -> Self {
        Self {
            cache,
            snapshotted_at,
            since: Instant::now(),
        }
    }
}

/// Counts what the parking lot holds and how many states it passivated.
#[derive(Debug, Default)]
pub struct ParkedGauge {
    now: AtomicUsize,
    passivated: AtomicU64,
}

impl ParkedGauge {
    /// Entities parked now.
    pub fn now(&self) -> usize {
        self.now.load(Ordering::Acquire)
    }
    /// Parked entities let go so far (full, idle or at shutdown).
    pub fn passivated(&self) -> u64 {
        self.passivated.load(Ordering::Acquire)
    }
}

/// The parked states of one kind of entity, least recently parked first out.
pub struct ParkingLot<A: Aggregate> {
    states: Mutex<LruCache<EntityRef, Parked<A>>>,
    capacity: NonZeroUsize,
    snapshots: Arc<dyn SnapshotStore>,
    snapshot_after: usize,
    gauge: ParkedGauge,
}

impl<A: Aggregate> ParkingLot<A> {
    /// A lot holding at most `capacity` states; of those it lets go, it
    /// snapshots into `snapshots` the ones that folded at least
    /// `snapshot_after` events since their last snapshot.
    ///
    /// Most entities (an order, its payment) end after a handful of events
    /// and are never read again; their journal is one batched read, so a
    /// snapshot would cost a disk write and sled's memory to save nothing.
    pub fn new(capacity: usize, snapshots: Arc<dyn SnapshotStore>, snapshot_after: usize) -> Self {
        Self {
            states: Mutex::new(LruCache::unbounded()),
            capacity: NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN),
            snapshots,
            snapshot_after: snapshot_after.max(1),
            gauge: ParkedGauge::default(),
        }
    }

    /// What the lot holds.
    pub fn gauge(&self) -> &ParkedGauge {
        &self.gauge
    }

    fn states(&self) -> MutexGuard<'_, LruCache<EntityRef, Parked<A>>> {
        // Nothing is left half-done under this lock, so a poisoned one is used as is.
        self.states.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes `entity`'s parked state out, for the actor about to start.
    pub fn take(&self, entity: &EntityRef) -> Option<Parked<A>> {
        let taken = self.states().pop(entity);
        if taken.is_some() {
            self.gauge.now.fetch_sub(1, Ordering::AcqRel);
        }
        taken
    }

    /// Parks `entity`'s state. A state already parked that has read further
    /// (a stopping actor raced a newer one) is kept instead.
    pub fn park(&self, entity: EntityRef, parked: Parked<A>) {
        let mut leaving = Vec::new();
        {
            let mut states = self.states();
            match states.get_mut(&entity) {
                Some(held) if held.cache.last_seq >= parked.cache.last_seq => return,
                Some(held) => {
                    *held = parked;
                    return;
                }
                None => {}
            }
            states.put(entity, parked);
            self.gauge.now.fetch_add(1, Ordering::AcqRel);
            while states.len() > self.capacity.get() {
                leaving.extend(states.pop_lru());
            }
        }
        self.let_go(leaving);
    }

    /// Lets go of the states parked longer than `idle_for`.
    pub fn expire(&self, idle_for: Duration) {
        let now = Instant::now();
        let mut leaving = Vec::new();
        {
            let mut states = self.states();
            while states
                .peek_lru()
                .is_some_and(|(_, p)| now.duration_since(p.since) >= idle_for)
            {
                leaving.extend(states.pop_lru());
            }
        }
        self.let_go(leaving);
    }

    /// Lets go of every parked state (the node is stopping).
    pub fn passivate_all(&self) {
        let leaving: Vec<_> = std::iter::from_fn(|| self.states().pop_lru()).collect();
        self.let_go(leaving);
    }

    /// Counts the states let go and snapshots the long ones; outside the
    /// lock, since the store writes to disk.
    fn let_go(&self, leaving: Vec<(EntityRef, Parked<A>)>) {
        if leaving.is_empty() {
            return;
        }
        self.gauge.now.fetch_sub(leaving.len(), Ordering::AcqRel);
        self.gauge.passivated.fetch_add(leaving.len() as u64, Ordering::AcqRel);
        for (entity, parked) in leaving {
            if parked.cache.folded.saturating_sub(parked.snapshotted_at) >= self.snapshot_after {
                save_snapshot(&*self.snapshots, &entity, &parked.cache, parked.snapshotted_at);
            }
        }
    }
}

/// Saves `cache` as `entity`'s snapshot if it folded anything since the
/// last one (at `snapshotted_at`); true if saved.
pub(crate) fn save_snapshot<A: Aggregate>(
    snapshots: &dyn SnapshotStore,
    entity: &EntityRef,
    cache: &Cached<A>,
    snapshotted_at: usize,
) -> bool {
    if cache.folded == snapshotted_at || cache.last_seq == 0 {
        return false;
    }
    match snapshot::encode(&cache.state, cache.last_seq) {
        Some(bytes) => {
            snapshots.save(entity, bytes);
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use schemas::subjects::EntityKind;

    use super::*;
    use crate::order::OrderSaga;

    #[derive(Default)]
    struct Remembered(Mutex<HashMap<EntityRef, Vec<u8>>>);

    impl SnapshotStore for Remembered {
        fn load(&self, entity: &EntityRef) -> Option<Vec<u8>> {
            self.0.lock().expect("not poisoned").get(entity).cloned()
        }
        fn save(&self, entity: &EntityRef, bytes: Vec<u8>) {
            self.0.lock().expect("not poisoned").insert(entity.clone(), bytes);
        }
    }

    fn entity(n: usize) -> EntityRef {
        EntityRef {
            kind: EntityKind::Order,
            id: format!("o{n}"),
        }
    }

    fn read_to(last_seq: u64, folded: usize) -> Parked<OrderSaga> {
        let mut cache = Cached::<OrderSaga>::from_snapshot(Default::default(), last_seq);
        cache.loaded = true;
        cache.folded = folded;
        Parked::new(cache, 0)
    }

    #[test]
    fn past_its_capacity_the_lot_snapshots_the_least_recently_parked() {
        let snapshots = Arc::new(Remembered::default());
        let lot = ParkingLot::<OrderSaga>::new(2, snapshots.clone(), 1);
        for n in 0..3 {
            lot.park(entity(n), read_to(10 + n as u64, 1));
        }
        assert_eq!(lot.gauge().now(), 2);
        assert_eq!(lot.gauge().passivated(), 1);
        assert!(lot.take(&entity(0)).is_none(), "the oldest was let go");
        let kept = snapshots
            .load(&entity(0))
            .and_then(|b| snapshot::decode::<Option<()>>(&b).map(|(_, s)| s));
        assert_eq!(kept, Some(10), "and snapshotted at its last sequence");
        assert_eq!(lot.take(&entity(2)).map(|p| p.cache.last_seq), Some(12));
        assert_eq!(lot.gauge().now(), 1);
    }

    #[test]
    fn a_stopping_actor_never_replaces_a_state_that_read_further() {
        let lot = ParkingLot::<OrderSaga>::new(8, Arc::new(Remembered::default()), 1);
        lot.park(entity(1), read_to(7, 2));
        lot.park(entity(1), read_to(5, 1));
        assert_eq!(lot.take(&entity(1)).map(|p| p.cache.last_seq), Some(7));
        lot.park(entity(1), read_to(5, 1));
        lot.park(entity(1), read_to(9, 3));
        assert_eq!(lot.take(&entity(1)).map(|p| p.cache.last_seq), Some(9));
        assert_eq!(lot.gauge().now(), 0);
    }

    #[test]
    fn idle_states_and_a_stopping_node_leave_snapshots_behind() {
        let snapshots = Arc::new(Remembered::default());
        let lot = ParkingLot::<OrderSaga>::new(8, snapshots.clone(), 1);
        lot.park(entity(1), read_to(3, 1));
        lot.expire(Duration::from_secs(3600));
        assert_eq!(lot.gauge().now(), 1, "not idle long enough");
        lot.expire(Duration::ZERO);
        assert_eq!(lot.gauge().now(), 0);
        lot.park(entity(2), read_to(4, 1));
        // Unchanged since its last snapshot: nothing to write.
        lot.park(entity(3), Parked::new(read_to(6, 2).cache, 2));
        lot.passivate_all();
        assert_eq!(lot.gauge().now(), 0);
        assert_eq!(lot.gauge().passivated(), 3);
        assert!(snapshots.load(&entity(1)).is_some() && snapshots.load(&entity(2)).is_some());
        assert!(snapshots.load(&entity(3)).is_none());
    }

    #[test]
    fn a_short_journal_is_let_go_without_a_snapshot() {
        let snapshots = Arc::new(Remembered::default());
        let lot = ParkingLot::<OrderSaga>::new(8, snapshots.clone(), 16);
        lot.park(entity(1), read_to(40, 15));
        lot.park(entity(2), read_to(90, 16));
        // Sixteen events since an older snapshot count too.
        lot.park(entity(3), Parked::new(read_to(700, 520).cache, 504));
        lot.passivate_all();
        assert_eq!(lot.gauge().passivated(), 3);
        assert!(snapshots.load(&entity(1)).is_none(), "fifteen events are one read");
        assert!(snapshots.load(&entity(2)).is_some() && snapshots.load(&entity(3)).is_some());
    }
}
