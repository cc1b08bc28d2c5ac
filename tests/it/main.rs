//! Integration tests against real nats-server processes: one binary, a
//! module per feature, all built on `tests/support`.

#[path = "../support/mod.rs"]
mod support;

mod api;
mod audit;
mod cli;
mod cluster;
mod concurrency;
mod console;
mod crash;
mod dead_letters;
mod expiry;
mod idempotency;
mod interop;
mod journal;
mod nats_security;
mod notifications;
mod observability;
mod payments;
mod poison;
mod saga_paths;
mod security;
mod validation;
