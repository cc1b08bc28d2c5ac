//! The thin shells: how a pure state machine meets its journal and the
//! outside world. One actor per entity serialises its inputs; optimistic
//! concurrency on the journal keeps any second writer harmless.

pub mod behavior;
pub mod directory;
pub mod entity;
pub mod execute;

pub use behavior::{Behavior, PaymentBehavior, Pure};
pub use directory::{Directory, DirectoryError};
pub use entity::{EntityActor, EntityMsg};
pub use execute::{execute, Cached, Executed, StepError};
