//! The thin shells: how a pure state machine meets its journal and the
//! outside world. One actor per busy entity serialises its inputs, idle
//! entities wait parked without one; optimistic concurrency on the journal
//! keeps any second writer harmless.

pub mod behavior;
pub mod directory;
pub mod entity;
pub mod execute;
#[cfg(test)]
mod memory_journal;
pub mod parked;

pub use behavior::{Behavior, PaymentBehavior, Pure};
pub use directory::{Directory, DirectoryError};
pub use entity::{EntityActor, EntityMsg};
pub use execute::{execute, Cached, Executed, Seed, StepError};
