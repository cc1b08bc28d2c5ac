//! Many nodes on one NATS cluster: who is up, and what the cluster looks like.

pub mod membership;
pub mod status;
