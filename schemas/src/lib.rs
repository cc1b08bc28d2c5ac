//! orderflow's wire vocabulary: the typed events of every entity, the
//! subjects and headers they travel under, and their MessagePack encoding.
//!
//! Everything another team needs to read or write orderflow's streams lives
//! here, so the dependency arrow stays `schemas` <- `actors` <- `orderflow`.

pub mod headers;
pub mod ids;
pub mod inventory;
pub mod notification;
pub mod order;
pub mod payment;
pub mod subjects;
pub mod timer;
pub mod wire;

pub use ids::{Currency, CustomerId, IdError, Money, OrderId, Quantity, Sku};
pub use wire::{SchemaVersion, WireError, CURRENT_SCHEMA_VERSION, OLDEST_READABLE_SCHEMA_VERSION};
