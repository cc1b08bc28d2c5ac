//! The shape every state machine has: `decide` what happens, `evolve` by what happened.

use std::fmt::Debug;

use schemas::wire::Event;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// A pure, journaled state machine. No I/O, no clocks, no randomness: the
/// same journal always folds to the same state, so replay is recovery.
pub trait Aggregate: Send + Sync + 'static {
    /// What the journal folds into; `Default` is "nothing happened yet".
    /// Serializable, so it can be snapshotted.
    type State: Default + Clone + Debug + Send + Sync + Serialize + DeserializeOwned + 'static;
    /// What the journal holds.
    type Event: Event;
    /// What may be asked of the entity.
    type Command: Debug + Send + Sync + 'static;
    /// Why a command was refused.
    type Rejection: std::error::Error + Send + Sync + 'static;

    /// The events a command causes in `state`, or why it may not happen.
    /// An empty list means "already done": repeating an input is harmless.
    fn decide(state: &Self::State, command: &Self::Command) -> Result<Vec<Self::Event>, Self::Rejection>;

    /// The state after `event`. Total: it never fails, whatever the journal holds.
    fn evolve(state: Self::State, event: &Self::Event) -> Self::State;

    /// Folds a whole journal.
    fn replay<'a>(events: impl IntoIterator<Item = &'a Self::Event>) -> Self::State {
        events.into_iter().fold(Self::State::default(), Self::evolve)
    }
}

/// A machine that tells whoever drove it where it stands, whatever the
/// command appended (nothing, when it had been handled before): the saga
/// learns an entity's answer from this, not from the events of one call.
pub trait Answers: Aggregate {
    /// Small: it may cross the wire to the node that asked.
    type Answer: Clone + Debug + Send + Sync + Serialize + DeserializeOwned + 'static;

    /// What `state` says to the one who sent `command`.
    fn answer(state: &Self::State, command: &Self::Command) -> Self::Answer;
}
