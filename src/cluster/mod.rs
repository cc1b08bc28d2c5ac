//! Many nodes on one NATS cluster: who is up, who owns which partition, and
//! what the cluster looks like.

pub mod lag;
pub mod leases;
pub mod membership;
pub mod partitions;
pub mod status;
