//! Read models: per-node, eventually consistent projections of the streams,
//! held in memory and rebuilt from the stream at every start (never the record).

pub mod follow;
pub mod interned;
pub mod orders;
pub mod waiters;

pub use orders::{OrderEntry, OrderFilter, OrderIndex, Page, PageKey};
