//! One actor per entity: its mailbox serialises the entity's inputs, its
//! state is a cache of the journal, and a crash loses nothing but the cache.

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use schemas::subjects::EntityRef;

use super::{execute, Behavior, Cached, Executed, StepError};
use crate::journal::{Cause, Journal, Journaled};
use crate::Aggregate;

type EventOf<B> = <<B as Behavior>::Aggregate as Aggregate>::Event;

/// What an entity actor is asked.
pub enum EntityMsg<B: Behavior> {
    /// Handle one input and answer once its events are stored.
    Execute {
        intent: B::Intent,
        cause: Cause,
        /// The entity's first event, when the input is that event: saves
        /// reading a journal that holds nothing else yet.
        first: Option<Journaled<EventOf<B>>>,
        reply: RpcReplyPort<Result<Executed<B::Aggregate>, StepError>>,
    },
}

/// The actor shell around one entity's state machine.
pub struct EntityActor<B, J> {
    behavior: Arc<B>,
    journal: Arc<J>,
}

impl<B, J> EntityActor<B, J> {
    /// A shell that decides with `behavior` and stores in `journal`.
    pub fn new(behavior: Arc<B>, journal: Arc<J>) -> Self {
        Self { behavior, journal }
    }
}

/// An entity actor's state: who it is and what it has read.
pub struct EntityState<A: Aggregate> {
    entity: EntityRef,
    cache: Cached<A>,
}

impl<B: Behavior, J: Journal> Actor for EntityActor<B, J> {
    type Msg = EntityMsg<B>;
    type State = EntityState<B::Aggregate>;
    type Arguments = EntityRef;

    async fn pre_start(&self, _: ActorRef<Self::Msg>, entity: EntityRef) -> Result<Self::State, ActorProcessingErr> {
        Ok(EntityState {
            entity,
            cache: Cached::default(),
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
            first,
            reply,
        } = msg;
        if let (false, Some(first)) = (state.cache.loaded, &first) {
            state.cache = Cached::from_first(first);
        }
        let result = execute(
            &*self.behavior,
            &*self.journal,
            &state.entity,
            &mut state.cache,
            &intent,
            &cause,
        )
        .await;
        if result.is_err() {
            // Whatever failed may have left the cache behind the journal.
            state.cache = Cached::default();
        }
        // The caller may have given up waiting; the input will be redelivered.
        let _ = reply.send(result);
        Ok(())
    }
}
