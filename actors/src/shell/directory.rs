//! Finds or spawns the actor of an entity, under one supervisor per kind,
//! and keeps memory bounded (invariant 8): an actor with nothing to do
//! parks its state and stops, parked states idle for long passivate
//! (dropped, snapshotted if their journal is long), and both are capped: at the cap the least recently
//! used idle actor parks, and the least recently parked state passivates.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lru::LruCache;
use ractor::rpc::CallResult;
use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};
use schemas::subjects::EntityRef;
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};

use super::entity::{EntityActor, EntityArgs, EntityMsg};
use super::parked::ParkingLot;
use super::{Behavior, Seed, StepError};
use crate::journal::{Cause, Journal};
use crate::snapshot::SnapshotStore;
use crate::Aggregate;

/// How many actors one input may see die before it is left to redelivery.
const RESPAWNS: usize = 3;

/// A state let go is snapshotted only if it folded this many events since
/// its last snapshot (or `snapshot_every`, if smaller): a shorter journal
/// is read back in one batched request, which a snapshot would not save.
const PASSIVATION_SNAPSHOT_AFTER: usize = 16;

/// Why the directory could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    #[error("could not start the supervisor: {0}")]
    Supervisor(String),
}

/// How a directory treats its actors.
#[derive(Debug, Clone)]
pub struct DirectoryConfig {
    /// How long a caller waits for an actor to handle one input.
    pub call_timeout: Duration,
    /// The most actors of this kind alive at once, and the most states parked.
    pub max_live: usize,
    /// An actor unused this long parks its state and stops (at most `idle_timeout`).
    pub park_after: Duration,
    /// An entity unused this long is dropped from memory (snapshotted if its journal is long).
    pub idle_timeout: Duration,
    /// Snapshot after this many events folded into an entity.
    pub snapshot_every: usize,
}

struct Entry {
    cell: ActorCell,
    last_used: Instant,
    /// Inputs handed to the actor and not yet answered: a busy actor is never evicted.
    busy: Arc<AtomicUsize>,
}

struct Live {
    by_id: LruCache<String, Entry>,
    by_actor: std::collections::HashMap<ActorId, String>,
}

impl Live {
    /// Removes and returns the least recently used actor with nothing in flight.
    fn pop_idle_lru(&mut self, idle_for: Duration) -> Option<ActorCell> {
        let now = Instant::now();
        let id = self
            .by_id
            .iter()
            .rev()
            .find(|(_, e)| e.busy.load(Ordering::Acquire) == 0 && now.duration_since(e.last_used) >= idle_for)
            .map(|(id, _)| id.clone())?;
        let entry = self.by_id.pop(&id)?;
        self.by_actor.remove(&entry.cell.get_id());
        Some(entry.cell)
    }
}

type SharedLive = Arc<Mutex<Live>>;

/// Counts live actors and remembers the most ever alive at once, how many
/// were stopped (their state parked) and how many died and were replaced.
#[derive(Debug, Default)]
pub struct LiveGauge {
    now: AtomicUsize,
    peak: AtomicUsize,
    passivated: AtomicU64,
    replaced: AtomicU64,
}

impl LiveGauge {
    fn up(&self) {
        let now = self.now.fetch_add(1, Ordering::AcqRel) + 1;
        self.peak.fetch_max(now, Ordering::AcqRel);
    }
    fn down(&self) {
        self.now.fetch_sub(1, Ordering::AcqRel);
    }
    /// Actors alive now.
    pub fn now(&self) -> usize {
        self.now.load(Ordering::Acquire)
    }
    /// The most actors ever alive at once.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Acquire)
    }
    /// Actors asked to stop and park their state, idle or making room, so far.
    pub fn passivated(&self) -> u64 {
        self.passivated.load(Ordering::Acquire)
    }
    /// Actors that died with an input in hand and were replaced, so far.
    pub fn replaced(&self) -> u64 {
        self.replaced.load(Ordering::Acquire)
    }
}

/// A place under the cap on live actors, held for an actor's life; it also
/// keeps the live gauge honest however the actor stops.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    gauge: Arc<LiveGauge>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.gauge.down();
    }
}

/// Routes inputs to entity actors, spawning them on demand.
pub struct Directory<B: Behavior, J: Journal> {
    kind: &'static str,
    live: SharedLive,
    slots: Arc<Semaphore>,
    gauge: Arc<LiveGauge>,
    supervisor: ActorCell,
    behavior: Arc<B>,
    journal: Arc<J>,
    snapshots: Arc<dyn SnapshotStore>,
    parking: Arc<ParkingLot<B::Aggregate>>,
    config: DirectoryConfig,
}

impl<B: Behavior, J: Journal> Directory<B, J> {
    /// Starts the supervisor of one kind of entity and its passivation sweep.
    pub async fn start(
        kind: &'static str,
        behavior: Arc<B>,
        journal: Arc<J>,
        snapshots: Arc<dyn SnapshotStore>,
        config: DirectoryConfig,
    ) -> Result<Self, DirectoryError> {
        let live = Arc::new(Mutex::new(Live {
            by_id: LruCache::unbounded(),
            by_actor: std::collections::HashMap::new(),
        }));
        let (supervisor, _) = Actor::spawn(None, Supervisor { kind }, live.clone())
            .await
            .map_err(|e| DirectoryError::Supervisor(e.to_string()))?;
        let gauge = Arc::<LiveGauge>::default();
        let max_live = NonZeroUsize::new(config.max_live).map_or(1, NonZeroUsize::get);
        let snapshot_after = PASSIVATION_SNAPSHOT_AFTER.min(config.snapshot_every);
        let parking = Arc::new(ParkingLot::new(max_live, snapshots.clone(), snapshot_after));
        tokio::spawn(sweep(
            kind,
            Arc::downgrade(&live),
            Arc::downgrade(&parking),
            gauge.clone(),
            config.park_after.min(config.idle_timeout),
            config.idle_timeout,
        ));
        Ok(Self {
            kind,
            live,
            slots: Arc::new(Semaphore::new(max_live)),
            gauge,
            supervisor: supervisor.get_cell(),
            behavior,
            journal,
            snapshots,
            parking,
            config,
        })
    }

    /// Live actors now and at most so far.
    pub fn gauge(&self) -> &LiveGauge {
        &self.gauge
    }

    /// The states parked without an actor.
    pub fn parked(&self) -> &super::parked::ParkedGauge {
        self.parking.gauge()
    }

    /// The ids of the live actors (for tests that kill them).
    pub async fn live_ids(&self) -> Vec<String> {
        self.live.lock().await.by_id.iter().map(|(id, _)| id.clone()).collect()
    }

    /// The actor of `entity`, if one is alive (for tests that kill actors).
    pub async fn actor_of(&self, entity: &EntityRef) -> Option<ActorCell> {
        self.live.lock().await.by_id.peek(&entity.id).map(|e| e.cell.clone())
    }

    /// Passivates every entity: actors stop and park (waiting up to
    /// `deadline`), then every parked state is let go, with a snapshot if
    /// its journal is long.
    pub async fn passivate_all(&self, deadline: Duration) {
        {
            let mut live = self.live.lock().await;
            while let Some((_, entry)) = live.by_id.pop_lru() {
                live.by_actor.remove(&entry.cell.get_id());
                entry.cell.drain().ok();
            }
        }
        let until = Instant::now() + deadline;
        while self.gauge.now() > 0 && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.parking.passivate_all();
    }

    /// Hands one input to the entity's actor and waits until its events
    /// are stored; answers with them and where the entity then stands.
    /// `seed` is what the caller knows of the entity, so an actor that
    /// knows nothing yet need not read it (see [`Seed`]).
    pub async fn execute(
        &self,
        entity: &EntityRef,
        intent: B::Intent,
        cause: Cause,
        seed: Seed<<B::Aggregate as Aggregate>::Event>,
    ) -> super::entity::Outcome<B> {
        // An actor that dies with the input in hand (killed, panicked) is
        // replaced at once by one that reloads from snapshot and journal; the
        // input is handed over again a few times before NATS redelivers it.
        for _ in 0..RESPAWNS {
            let (actor, busy) = self.actor(entity).await?;
            let message = intent.clone();
            let reply_to = cause.clone();
            let seed = seed.clone();
            let call = actor
                .call(
                    |reply| EntityMsg::Execute {
                        intent: message,
                        cause: reply_to,
                        seed,
                        reply,
                    },
                    Some(self.config.call_timeout),
                )
                .await;
            busy.fetch_sub(1, Ordering::AcqRel);
            match call {
                Ok(CallResult::Success(result)) => return result,
                Ok(CallResult::Timeout) => {
                    return Err(StepError::Transient(format!(
                        "{entity}: no answer in {:?}",
                        self.config.call_timeout
                    )))
                }
                Ok(CallResult::SenderError) | Err(_) => {
                    self.gauge.replaced.fetch_add(1, Ordering::AcqRel);
                    self.forget(entity, &actor.get_cell()).await
                }
            }
        }
        Err(StepError::Transient(format!(
            "{entity}: actor stopped {RESPAWNS} times"
        )))
    }

    /// Drops a dead actor from the directory, unless it was already replaced.
    async fn forget(&self, entity: &EntityRef, dead: &ActorCell) {
        let mut live = self.live.lock().await;
        if live
            .by_id
            .peek(&entity.id)
            .is_some_and(|e| e.cell.get_id() == dead.get_id())
        {
            live.by_id.pop(&entity.id);
            live.by_actor.remove(&dead.get_id());
        }
    }

    /// The entity's actor, marked busy; spawned if needed, making room at the cap.
    async fn actor(&self, entity: &EntityRef) -> Result<(ActorRef<EntityMsg<B>>, Arc<AtomicUsize>), StepError> {
        let mut permit: Option<OwnedSemaphorePermit> = None;
        loop {
            {
                let mut live = self.live.lock().await;
                if let Some(entry) = live.by_id.get_mut(&entity.id) {
                    entry.last_used = Instant::now();
                    entry.busy.fetch_add(1, Ordering::AcqRel);
                    return Ok((ActorRef::from(entry.cell.clone()), entry.busy.clone()));
                }
                if permit.is_none() {
                    permit = self.slots.clone().try_acquire_owned().ok();
                }
                if let Some(p) = permit.take() {
                    return self.spawn(&mut live, entity, p).await;
                }
                // At the cap: the least recently used idle actor passivates.
                // Draining lets it finish anything queued, then snapshot and stop.
                if let Some(victim) = live.pop_idle_lru(Duration::ZERO) {
                    victim.drain().ok();
                    self.gauge.passivated.fetch_add(1, Ordering::AcqRel);
                }
            }
            // Wait (briefly, then look again) for a stopping actor's slot.
            if let Ok(Ok(p)) = tokio::time::timeout(Duration::from_millis(50), self.slots.clone().acquire_owned()).await
            {
                permit = Some(p);
            }
        }
    }

    async fn spawn(
        &self,
        live: &mut Live,
        entity: &EntityRef,
        permit: OwnedSemaphorePermit,
    ) -> Result<(ActorRef<EntityMsg<B>>, Arc<AtomicUsize>), StepError> {
        self.gauge.up();
        let slot = Slot {
            _permit: permit,
            gauge: self.gauge.clone(),
        };
        let shell = EntityActor::new(
            self.behavior.clone(),
            self.journal.clone(),
            self.snapshots.clone(),
            self.parking.clone(),
            self.config.snapshot_every,
        );
        let args = EntityArgs {
            entity: entity.clone(),
            slot,
            parked: self.parking.take(entity),
        };
        let (actor, _) = Actor::spawn_linked(None, shell, args, self.supervisor.clone())
            .await
            .map_err(|e| StepError::Transient(format!("{}: could not spawn {entity}: {e}", self.kind)))?;
        let busy = Arc::new(AtomicUsize::new(1));
        live.by_actor.insert(actor.get_id(), entity.id.clone());
        live.by_id.put(
            entity.id.clone(),
            Entry {
                cell: actor.get_cell(),
                last_used: Instant::now(),
                busy: busy.clone(),
            },
        );
        Ok((actor, busy))
    }
}

/// Parks actors idle for `park_after` and passivates states parked for
/// `idle_timeout`, until the directory is dropped.
async fn sweep<A: Aggregate>(
    kind: &'static str,
    live: std::sync::Weak<Mutex<Live>>,
    parking: std::sync::Weak<ParkingLot<A>>,
    gauge: Arc<LiveGauge>,
    park_after: Duration,
    idle_timeout: Duration,
) {
    let period = (park_after / 2).max(Duration::from_millis(50));
    loop {
        tokio::time::sleep(period).await;
        let (Some(live), Some(parking)) = (live.upgrade(), parking.upgrade()) else {
            return;
        };
        let mut parked = 0;
        {
            let mut live = live.lock().await;
            while let Some(cell) = live.pop_idle_lru(park_after) {
                // Draining lets it finish anything queued; it parks as it stops.
                cell.drain().ok();
                parked += 1u64;
            }
        }
        if parked > 0 {
            gauge.passivated.fetch_add(parked, Ordering::AcqRel);
            tracing::debug!(kind, parked, "idle actors parked");
        }
        parking.expire(idle_timeout);
    }
}

/// Forgets entity actors that stop or fail, so their next input respawns them.
struct Supervisor {
    kind: &'static str,
}

impl Actor for Supervisor {
    type Msg = ();
    type State = SharedLive;
    type Arguments = SharedLive;

    async fn pre_start(&self, _: ActorRef<()>, live: SharedLive) -> Result<SharedLive, ActorProcessingErr> {
        Ok(live)
    }

    async fn handle_supervisor_evt(
        &self,
        _: ActorRef<()>,
        event: SupervisionEvent,
        live: &mut SharedLive,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, failure) = match event {
            SupervisionEvent::ActorTerminated(cell, _, reason) => (cell, reason),
            SupervisionEvent::ActorFailed(cell, err) => (cell, Some(err.to_string())),
            _ => return Ok(()),
        };
        let mut live = live.lock().await;
        if let Some(id) = live.by_actor.remove(&cell.get_id()) {
            live.by_id.pop(&id);
            if let Some(reason) = failure {
                tracing::warn!(kind = self.kind, entity = %id, %reason, "entity actor stopped; it restarts from its snapshot and journal on its next input");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use schemas::order::OrderEvent;
    use schemas::wire::Event;
    use schemas::OrderId;

    use super::*;
    use crate::journal::Journaled;
    use crate::order::{OrderCommand, OrderSaga, OrderState, PaymentReply};
    use crate::shell::memory_journal::{placed, Memory};
    use crate::shell::Executed;
    use crate::shell::Pure;
    use crate::snapshot::NoSnapshots;

    async fn parked_alone(directory: &Directory<Pure<OrderSaga>, Memory>) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !(directory.gauge().now() == 0 && directory.parked().now() == 1) {
            assert!(Instant::now() < deadline, "the idle actor did not park");
            // Pacing between looks at the gauges, not a wait for an event.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn appended(result: Result<(Executed<OrderSaga>, OrderState), StepError>) -> Vec<&'static str> {
        match result {
            Ok((Executed::Appended(events), _)) => events.iter().map(Event::event_type).collect(),
            other => panic!("executing: {other:?}"),
        }
    }

    /// A parked state is a cache: when another writer (a twin node) moved
    /// the journal on while it was parked, the next actor starts from the
    /// stale state, the append check refuses its decision, and the journal
    /// is read: the step is not taken twice.
    #[tokio::test]
    async fn a_parked_state_behind_the_journal_never_takes_a_step_twice() {
        let order_id = OrderId::random();
        let entity = EntityRef::order(order_id);
        let journal = Arc::new(Memory::default());
        let config = DirectoryConfig {
            call_timeout: Duration::from_secs(5),
            max_live: 4,
            park_after: Duration::from_millis(20),
            idle_timeout: Duration::from_secs(3600),
            snapshot_every: 500,
        };
        let directory = Directory::start("order", Arc::default(), journal.clone(), Arc::new(NoSnapshots), config)
            .await
            .expect("started");
        journal.stored.lock().expect("not poisoned").push(placed(order_id));
        let first = Seed::First(Journaled {
            seq: 1,
            event: placed(order_id),
        });
        let advanced = directory
            .execute(&entity, OrderCommand::Advance, Cause::default(), first)
            .await;
        assert_eq!(appended(advanced), ["payment_requested"]);
        parked_alone(&directory).await;

        // The twin records the payment behind the parked state's back.
        let authorized = OrderCommand::RecordPayment(PaymentReply::Authorized {
            payment_id: "pay_1".into(),
        });
        {
            let mut stored = journal.stored.lock().expect("not poisoned");
            let state = stored.iter().fold(Default::default(), OrderSaga::evolve);
            let events = OrderSaga::decide(&state, &authorized).expect("the twin decides");
            stored.extend(events);
        }
        let again = directory
            .execute(&entity, authorized, Cause::default(), Seed::None)
            .await;
        assert!(appended(again).is_empty(), "a step taken twice");
        let stored = journal.stored.lock().expect("not poisoned");
        let stock_requests = stored
            .iter()
            .filter(|e| matches!(e, OrderEvent::StockRequested { .. }))
            .count();
        assert_eq!(stock_requests, 1, "{stored:?}");
        assert_eq!(
            journal.conflicts.load(Ordering::Acquire),
            1,
            "the actor decided from the parked state and the append check caught it"
        );
    }
}
