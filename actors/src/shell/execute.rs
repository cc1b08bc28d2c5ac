//! The decide → append → (conflict? reload, re-decide) loop, shared by the
//! entity actors and by HTTP handlers that write directly.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use schemas::subjects::EntityRef;
use serde::{Deserialize, Serialize};

use super::Behavior;
use crate::journal::{Cause, Journal, JournalError, Journaled};
use crate::Aggregate;

/// How often one input re-decides after losing a race before giving up
/// (and letting the input be redelivered later).
pub const MAX_ATTEMPTS: usize = 8;

/// The pauses between lost races: 1 ms, doubling, jittered, at most
/// [`MAX_PAUSE`]. Racing straight back loses again and again to a writer
/// in the middle of a burst (the saga storing an order's steps while an
/// HTTP cancel of it tries to land), above all on replicated streams where
/// a read and an append take milliseconds; a few ms apart, the race is won.
fn race_pauses() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::new()
        .with_min_delay(Duration::from_millis(1))
        .with_max_delay(MAX_PAUSE)
        .with_jitter()
        .without_max_times()
        .build()
}

/// The longest pause between two attempts.
const MAX_PAUSE: Duration = Duration::from_millis(64);

/// What a step can fail with, and so what becomes of the input that caused it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    /// Worth retrying later: the input is nak'ed with a delay.
    #[error("transient: {0}")]
    Transient(String),
    /// Will never succeed: the input is terminated and dead-lettered.
    #[error("permanent: {0}")]
    Permanent(String),
}

impl From<JournalError> for StepError {
    fn from(e: JournalError) -> Self {
        match e {
            JournalError::Conflict | JournalError::Unavailable(_) => Self::Transient(e.to_string()),
            JournalError::Corrupt { .. } => Self::Permanent(e.to_string()),
        }
    }
}

/// What one input did to an entity.
#[derive(Debug)]
pub enum Executed<A: Aggregate> {
    /// These events were appended (none: the input was already handled).
    Appended(Vec<A::Event>),
    /// The state machine refused the command.
    Rejected(A::Rejection),
}

/// What a caller tells a fresh actor about its entity, saving it a read.
/// Only an actor that knows nothing yet (no parked state, no snapshot)
/// takes it; either way optimistic concurrency checks it at the next append.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Seed<E> {
    /// Nothing: the actor reads the journal when it must.
    None,
    /// The entity's first event with its stream sequence (see [`Cached::seed_first`]).
    First(Journaled<E>),
    /// The entity's journal is empty: the caller just journaled the request
    /// that brings the entity into being (an order's `payment_requested`
    /// for its payment, its ending for its notifications), so nothing can
    /// have been stored for it but by a twin holding the same request,
    /// which the next append's check catches. Only for intents whose first
    /// step on an empty journal appends: a refusal decided on the empty
    /// state is not checked by any append.
    Empty,
}

// By hand: a derived `Default` would ask `E: Default` of every event type.
#[allow(clippy::derivable_impls)]
impl<E> Default for Seed<E> {
    fn default() -> Self {
        Self::None
    }
}

/// An entity's state as far as this process has read its journal.
#[derive(Debug, Clone)]
pub struct Cached<A: Aggregate> {
    /// The folded state.
    pub state: A::State,
    /// The sequence of the last event folded in (0: none).
    pub last_seq: u64,
    /// False until the journal was read once; before that `state` is only
    /// a guess that the entity is new, which optimistic concurrency checks.
    pub loaded: bool,
    /// Events folded in by this process (replayed or appended): tells the
    /// shell when a snapshot would save a long replay.
    pub folded: usize,
}

impl<A: Aggregate> Default for Cached<A> {
    fn default() -> Self {
        Self::from_snapshot(A::State::default(), 0)
    }
}

impl<A: Aggregate> Cached<A> {
    /// A cache that starts from a snapshot current to `last_seq`; the
    /// journal's tail after it is still to be read.
    pub fn from_snapshot(state: A::State, last_seq: u64) -> Self {
        Self {
            state,
            last_seq,
            loaded: false,
            folded: 0,
        }
    }

    /// Starts a cache that knows nothing from `first`, an event the caller
    /// holds with its stream sequence and knows to be the entity's first
    /// (the server stored it expecting an empty journal). Saves reading
    /// back what was just delivered; if more was stored after it, the next
    /// append is refused and the journal read, as for any guess.
    pub fn seed_first(&mut self, first: &Journaled<A::Event>) {
        if self.last_seq != 0 || self.loaded {
            return;
        }
        self.state = A::evolve(std::mem::take(&mut self.state), &first.event);
        self.last_seq = first.seq;
        self.folded += 1;
    }

    /// Takes what `seed` says, if this cache knows nothing yet.
    pub fn seed(&mut self, seed: &Seed<A::Event>) {
        match seed {
            Seed::None => {}
            Seed::First(first) => self.seed_first(first),
            Seed::Empty if self.last_seq == 0 && !self.loaded => self.loaded = true,
            Seed::Empty => {}
        }
    }

    /// Folds in whatever the journal holds after `last_seq`.
    pub async fn catch_up<J: Journal>(&mut self, journal: &J, entity: &EntityRef) -> Result<(), JournalError> {
        let from = self.last_seq;
        let records = journal.load::<A::Event>(entity, from).await?;
        tracing::debug!(%entity, from, read = records.len(), seqs = ?records.iter().map(|j| j.seq).collect::<Vec<_>>(), "caught up");
        for Journaled { seq, event } in records {
            self.state = A::evolve(std::mem::take(&mut self.state), &event);
            self.last_seq = seq;
            self.folded += 1;
        }
        self.loaded = true;
        Ok(())
    }
}

/// Runs one input against an entity until its events are stored.
///
/// Appends carry the cache's `last_seq` as the expected last subject
/// sequence: if anyone appended since, the server refuses, we reload and
/// decide again, so a stale or duplicate writer never overwrites history.
pub async fn execute<B, J>(
    behavior: &B,
    journal: &J,
    entity: &EntityRef,
    cache: &mut Cached<B::Aggregate>,
    intent: &B::Intent,
    cause: &Cause,
) -> Result<Executed<B::Aggregate>, StepError>
where
    B: Behavior,
    J: Journal,
{
    if !cache.loaded && behavior.needs_history(intent) {
        cache.catch_up(journal, entity).await?;
    }
    // Whether the cache was read from the journal during this call. Any
    // writer may have appended since the actor last looked (an HTTP cancel,
    // a twin node), so "nothing to do" and "refused" are only believed once
    // the cache is known to be current; appends need no such check, OCC does it.
    let mut fresh = false;
    let mut pauses = race_pauses();
    for _ in 0..MAX_ATTEMPTS {
        let decision = match behavior.command(entity, &cache.state, intent).await? {
            Some(command) => B::Aggregate::decide(&cache.state, &command),
            None => Ok(Vec::new()),
        };
        let events = match decision {
            Ok(events) if !events.is_empty() => events,
            _ if !fresh => {
                let before = cache.last_seq;
                cache.catch_up(journal, entity).await?;
                fresh = true;
                if cache.last_seq != before {
                    continue;
                }
                match decision {
                    Ok(_) => return Ok(Executed::Appended(Vec::new())),
                    Err(rejection) => return Ok(Executed::Rejected(rejection)),
                }
            }
            Ok(_) => return Ok(Executed::Appended(Vec::new())),
            Err(rejection) => return Ok(Executed::Rejected(rejection)),
        };
        let mut appended = Vec::with_capacity(events.len());
        let mut stale = false;
        let mut duplicate = false;
        let single = events.len() == 1;
        for event in events {
            match journal.append(entity, cache.last_seq, &event, cause).await {
                Ok(a) if !a.duplicate => {
                    cache.state = B::Aggregate::evolve(std::mem::take(&mut cache.state), &event);
                    cache.last_seq = a.seq;
                    cache.folded += 1;
                    appended.push(event);
                }
                // A duplicate means our copy is behind the journal: the
                // event was stored before, by us or by a twin.
                Ok(_) => {
                    stale = true;
                    duplicate = true;
                    break;
                }
                Err(JournalError::Conflict) => {
                    stale = true;
                    break;
                }
                Err(e) => return Err(e.into()),
            }
        }
        if !stale {
            cache.loaded = true;
            return Ok(Executed::Appended(appended));
        }
        if let Some(pause) = pauses.next() {
            tokio::time::sleep(pause).await;
        }
        let before = cache.last_seq;
        cache.catch_up(journal, entity).await?;
        fresh = true;
        if duplicate && single && cache.last_seq == before {
            // The server holds this decision's only event (its id names the
            // entity) and the journal shows nothing newer: deciding again
            // would repeat it forever, as a restock retried under its key with
            // another quantity did. A longer decision is re-decided as before,
            // so no event after the duplicate can be skipped.
            cache.loaded = true;
            return Ok(Executed::Appended(Vec::new()));
        }
        if !appended.is_empty() {
            // Part of the decision landed; the rest is re-decided from the
            // reloaded state, which knows what is still missing.
            tracing::debug!(%entity, "re-deciding the rest after a concurrent append");
        }
    }
    Err(StepError::Transient(format!(
        "{entity}: still losing races after {MAX_ATTEMPTS} attempts"
    )))
}

#[cfg(test)]
mod tests {
    use schemas::order::OrderEvent;
    use schemas::wire::Event;
    use schemas::OrderId;

    use super::*;
    use crate::order::OrderRejection;
    use crate::order::{OrderCommand, OrderSaga};
    use crate::shell::memory_journal::{place, placed, Memory};
    use crate::shell::Pure;

    /// `command` on an order, as its actor would execute it from `cache`.
    async fn order_step(
        journal: &Memory,
        entity: &EntityRef,
        cache: &mut Cached<OrderSaga>,
        command: &OrderCommand,
    ) -> Result<Executed<OrderSaga>, StepError> {
        let behavior = Pure::<OrderSaga>::default();
        execute(&behavior, journal, entity, cache, command, &Cause::default()).await
    }

    async fn advance(journal: &Memory, entity: &EntityRef, first: &Journaled<OrderEvent>) -> Vec<OrderEvent> {
        let mut cache = Cached::<OrderSaga>::default();
        cache.seed_first(first);
        match order_step(journal, entity, &mut cache, &OrderCommand::Advance).await {
            Ok(Executed::Appended(events)) => events,
            other => panic!("advancing: {other:?}"),
        }
    }

    /// A new order whose journal holds its `placed`.
    fn placed_order() -> (OrderId, EntityRef, Memory) {
        let order_id = OrderId::random();
        let journal = Memory::default();
        journal.stored.lock().expect("not poisoned").push(placed(order_id));
        (order_id, EntityRef::order(order_id), journal)
    }

    /// A seeded actor decides from its first event alone while that is the
    /// whole journal, and reads the journal when it is not (a `placed`
    /// redelivered after the saga moved on): never a step taken twice.
    #[tokio::test]
    async fn a_seed_is_trusted_only_as_far_as_the_journal_agrees() {
        let (order_id, entity, journal) = placed_order();
        let first = Journaled {
            seq: 1,
            event: placed(order_id),
        };
        let steps = advance(&journal, &entity, &first).await;
        assert_eq!(
            steps.iter().map(Event::event_type).collect::<Vec<_>>(),
            ["payment_requested"]
        );
        // The same `placed` again, to an actor that knows nothing else.
        let again = advance(&journal, &entity, &first).await;
        assert!(again.is_empty(), "a step taken twice: {again:?}");
        assert_eq!(journal.stored.lock().expect("not poisoned").len(), 2);
    }

    /// A wrong `Seed::Empty` (a twin stored the entity's first event after
    /// all): the decision taken on the empty state is refused by the
    /// append's check, the journal is read, and the decision is taken again
    /// against it; nothing is stored twice.
    #[tokio::test]
    async fn a_wrong_empty_seed_costs_a_refused_append_never_a_second_event() {
        let (order_id, entity, journal) = placed_order();
        let mut cache = Cached::<OrderSaga>::default();
        cache.seed(&Seed::Empty);
        let placed_again = order_step(&journal, &entity, &mut cache, &place(order_id)).await;
        assert!(
            matches!(placed_again, Ok(Executed::Rejected(OrderRejection::AlreadyPlaced))),
            "{placed_again:?}"
        );
        assert_eq!(journal.conflicts.load(std::sync::atomic::Ordering::Acquire), 1);
        assert_eq!(journal.stored.lock().expect("not poisoned").len(), 1);
    }
}
