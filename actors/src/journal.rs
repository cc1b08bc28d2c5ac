//! What an actor needs from its journal. The `orderflow` binary implements
//! it on JetStream; the actors never see NATS.

use serde::{Deserialize, Serialize};
use std::future::Future;

use schemas::subjects::EntityRef;
use schemas::wire::Event;

/// An event with its position in the stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Journaled<E> {
    /// The stream sequence it was stored at.
    pub seq: u64,
    /// The event.
    pub event: E,
}

/// Where an append landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// The stream sequence of the stored event.
    pub seq: u64,
    /// The server already had this message id: nothing new was stored.
    pub duplicate: bool,
}

/// Context carried from the input into every event it causes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cause {
    /// The message id of the input, recorded as `Causation-Id`.
    pub message_id: Option<String>,
    /// W3C trace context of the input, carried on.
    pub traceparent: Option<String>,
}

/// Why the journal could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JournalError {
    /// Someone appended to the entity since we last read it (invariant 2).
    #[error("another writer appended first")]
    Conflict,
    /// The journal could not be reached or did not answer; worth retrying.
    #[error("journal unavailable: {0}")]
    Unavailable(String),
    /// The entity's journal holds something this build cannot read.
    #[error("unreadable event at sequence {seq}: {reason}")]
    Corrupt { seq: u64, reason: String },
}

/// An append-only, per-entity journal with optimistic concurrency.
pub trait Journal: Send + Sync + 'static {
    /// Every event of `entity` stored after sequence `after_seq`, in order.
    fn load<E: Event>(
        &self,
        entity: &EntityRef,
        after_seq: u64,
    ) -> impl Future<Output = Result<Vec<Journaled<E>>, JournalError>> + Send;

    /// Appends `event` only if the entity's last event is still at
    /// `expected_last_seq` (0: the entity has no events yet).
    fn append<E: Event>(
        &self,
        entity: &EntityRef,
        expected_last_seq: u64,
        event: &E,
        cause: &Cause,
    ) -> impl Future<Output = Result<Appended, JournalError>> + Send;
}
