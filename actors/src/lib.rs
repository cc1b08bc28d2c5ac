//! orderflow's actors: the pure saga state machines (`decide`/`evolve`) and
//! the thin ractor shells that drive them against a journal.
//!
//! Nothing here knows NATS or sled: the shells see the [`journal::Journal`]
//! and [`payment::Gateway`] traits, which the `orderflow` binary implements.

pub mod aggregate;
pub mod inventory;
pub mod journal;
pub mod notification;
pub mod order;
pub mod payment;
pub mod saga;
pub mod shell;
pub mod snapshot;

pub use aggregate::{Aggregate, Answers};
