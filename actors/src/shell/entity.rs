//! One actor per entity with work in hand: its mailbox serialises the
//! entity's inputs, its state is a cache of the journal, and a crash loses
//! nothing but the cache. Between bursts of work the state waits in the
//! [`ParkingLot`] without an actor.

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use schemas::subjects::EntityRef;

use super::directory::Slot;
use super::parked::{save_snapshot, Parked, ParkingLot};
use super::{execute, Behavior, Cached, Executed, Seed, StepError};
use crate::journal::{Cause, Journal};
use crate::snapshot::{self, SnapshotStore};
use crate::Aggregate;

/// What an executed input did, with where the entity then stands for its caller.
pub type Outcome<B> = Result<(Executed<<B as Behavior>::Aggregate>, <B as Behavior>::Answer), StepError>;

/// What an entity actor is asked.
pub enum EntityMsg<B: Behavior> {
    /// Handle one input and answer once its events are stored, with where
    /// the entity then stands.
    Execute {
        intent: B::Intent,
        cause: Cause,
        /// What the caller knows of a fresh entity (see [`Seed`]).
        seed: Seed<<B::Aggregate as Aggregate>::Event>,
        reply: RpcReplyPort<Outcome<B>>,
    },
}

/// The actor shell around one entity's state machine.
pub struct EntityActor<B: Behavior, J> {
    behavior: Arc<B>,
    journal: Arc<J>,
    snapshots: Arc<dyn SnapshotStore>,
    parking: Arc<ParkingLot<B::Aggregate>>,
    snapshot_every: usize,
}

impl<B: Behavior, J> EntityActor<B, J> {
    /// A shell that decides with `behavior`, stores in `journal`,
    /// snapshots after every `snapshot_every` events it folds in, and parks
    /// its state in `parking` when it stops.
    pub fn new(
        behavior: Arc<B>,
        journal: Arc<J>,
        snapshots: Arc<dyn SnapshotStore>,
        parking: Arc<ParkingLot<B::Aggregate>>,
        snapshot_every: usize,
    ) -> Self {
        Self {
            behavior,
            journal,
            snapshots,
            parking,
            snapshot_every: snapshot_every.max(1),
        }
    }
}

/// What an entity actor is started with.
pub struct EntityArgs<A: Aggregate> {
    /// Which entity.
    pub(crate) entity: EntityRef,
    /// Its place under the cap on live actors, given back when it stops.
    pub(crate) slot: Slot,
    /// The state the entity's last actor parked, if it is still held.
    pub(crate) parked: Option<Parked<A>>,
}

/// An entity actor's state: who it is and what it has read.
pub struct EntityState<A: Aggregate> {
    entity: EntityRef,
    cache: Cached<A>,
    /// `cache.folded` when the last snapshot was taken.
    snapshotted_at: usize,
    _slot: Slot,
}

impl<B: Behavior, J: Journal> Actor for EntityActor<B, J> {
    type Msg = EntityMsg<B>;
    type State = EntityState<B::Aggregate>;
    type Arguments = EntityArgs<B::Aggregate>;

    async fn pre_start(
        &self,
        _: ActorRef<Self::Msg>,
        args: EntityArgs<B::Aggregate>,
    ) -> Result<Self::State, ActorProcessingErr> {
        if let Some(parked) = args.parked {
            return Ok(EntityState {
                entity: args.entity,
                cache: parked.cache,
                snapshotted_at: parked.snapshotted_at,
                _slot: args.slot,
            });
        }
        // A snapshot is only a head start: the cache is not "loaded" until
        // the journal's tail after it has been read.
        let cache = match self.snapshots.load(&args.entity).and_then(|b| snapshot::decode(&b)) {
            Some((state, last_seq)) => Cached::from_snapshot(state, last_seq),
            None => Cached::default(),
        };
        Ok(EntityState {
            entity: args.entity,
            cache,
            snapshotted_at: 0,
            _slot: args.slot,
        })
    }

    async fn handle(
        &self,
        _: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let EntityMsg::Execute {
            intent,
            cause,
            seed,
            reply,
        } = msg;
        state.cache.seed(&seed);
        // Boxed: the step's future (NATS round trips, gateway calls) is large,
        // and inline it would size every idle actor's task for the worst case.
        let step = execute(
            &*self.behavior,
            &*self.journal,
            &state.entity,
            &mut state.cache,
            &intent,
            &cause,
        );
        let result = Box::pin(step).await;
        if result.is_err() {
            // Whatever failed may have left the cache behind the journal.
            state.cache.loaded = false;
        } else if state.cache.folded - state.snapshotted_at >= self.snapshot_every {
            // Every `snapshot_every` events, replayed or appended: a long
            // replay is kept at once, so the next start skips it.
            if save_snapshot(&*self.snapshots, &state.entity, &state.cache, state.snapshotted_at) {
                state.snapshotted_at = state.cache.folded;
            }
        }
        let answered = result.map(|executed| {
            let answer = self.behavior.answer(&state.cache.state, &intent);
            (executed, answer)
        });
        // The caller may have given up waiting; the input will be redelivered.
        let _ = reply.send(answered);
        Ok(())
    }

    async fn post_stop(&self, _: ActorRef<Self::Msg>, state: &mut Self::State) -> Result<(), ActorProcessingErr> {
        // Parked: the next actor starts from what this one read (a cache
        // left behind by a failed step keeps `loaded` false, so its next
        // actor reads the journal's tail first).
        if state.cache.loaded || state.cache.last_seq > 0 {
            let cache = std::mem::take(&mut state.cache);
            self.parking
                .park(state.entity.clone(), Parked::new(cache, state.snapshotted_at));
        }
        Ok(())
    }
}
