//! Finds or spawns the actor of an entity, under one supervisor per kind.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};
use schemas::subjects::EntityRef;
use tokio::sync::Mutex;

use super::entity::{EntityActor, EntityMsg};
use super::{Behavior, Executed, StepError};
use crate::journal::{Cause, Journal, Journaled};
use crate::Aggregate;

/// Why the directory could not reach an entity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    #[error("could not start the supervisor: {0}")]
    Supervisor(String),
}

#[derive(Default)]
struct Live {
    by_id: HashMap<String, ActorCell>,
    by_actor: HashMap<ActorId, String>,
}

type SharedLive = Arc<Mutex<Live>>;

/// Routes inputs to entity actors, spawning them on demand.
pub struct Directory<B: Behavior, J: Journal> {
    kind: &'static str,
    live: SharedLive,
    supervisor: ActorCell,
    behavior: Arc<B>,
    journal: Arc<J>,
    timeout: Duration,
}

impl<B: Behavior, J: Journal> Directory<B, J> {
    /// Starts the supervisor of one kind of entity.
    pub async fn start(
        kind: &'static str,
        behavior: Arc<B>,
        journal: Arc<J>,
        timeout: Duration,
    ) -> Result<Self, DirectoryError> {
        let live = SharedLive::default();
        let (supervisor, _) = Actor::spawn(None, Supervisor { kind }, live.clone())
            .await
            .map_err(|e| DirectoryError::Supervisor(e.to_string()))?;
        Ok(Self {
            kind,
            live,
            supervisor: supervisor.get_cell(),
            behavior,
            journal,
            timeout,
        })
    }

    /// How many entity actors are alive.
    pub async fn live_count(&self) -> usize {
        self.live.lock().await.by_id.len()
    }

    /// The actor of `entity`, if one is alive (for tests that kill actors).
    pub async fn actor_of(&self, entity: &EntityRef) -> Option<ActorCell> {
        self.live.lock().await.by_id.get(&entity.id).cloned()
    }

    /// Hands one input to the entity's actor and waits until its events are stored.
    pub async fn execute(
        &self,
        entity: &EntityRef,
        intent: B::Intent,
        cause: Cause,
        first: Option<Journaled<<B::Aggregate as Aggregate>::Event>>,
    ) -> Result<Executed<B::Aggregate>, StepError> {
        let actor = self.actor(entity).await?;
        let call = actor
            .call(
                |reply| EntityMsg::Execute {
                    intent,
                    cause,
                    first,
                    reply,
                },
                Some(self.timeout),
            )
            .await;
        match call {
            Ok(CallResult::Success(result)) => result,
            Ok(CallResult::Timeout) => Err(StepError::Transient(format!(
                "{entity}: no answer in {:?}",
                self.timeout
            ))),
            // The actor died with the input in its mailbox; the supervisor
            // has dropped it and the next input spawns a fresh one.
            Ok(CallResult::SenderError) | Err(_) => Err(StepError::Transient(format!("{entity}: actor stopped"))),
        }
    }

    async fn actor(&self, entity: &EntityRef) -> Result<ActorRef<EntityMsg<B>>, StepError> {
        let mut live = self.live.lock().await;
        if let Some(actor) = live.by_id.get(&entity.id) {
            return Ok(ActorRef::from(actor.clone()));
        }
        let shell = EntityActor::new(self.behavior.clone(), self.journal.clone());
        let (actor, _) = Actor::spawn_linked(None, shell, entity.clone(), self.supervisor.clone())
            .await
            .map_err(|e| StepError::Transient(format!("{}: could not spawn {entity}: {e}", self.kind)))?;
        live.by_actor.insert(actor.get_id(), entity.id.clone());
        live.by_id.insert(entity.id.clone(), actor.get_cell());
        Ok(actor)
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
            live.by_id.remove(&id);
            if let Some(reason) = failure {
                tracing::warn!(kind = self.kind, entity = %id, %reason, "entity actor stopped; it restarts from its journal on its next input");
            }
        }
        Ok(())
    }
}
