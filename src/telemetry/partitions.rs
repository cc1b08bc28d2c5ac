//! Partition ownership's metrics: what this node owns, how leases move, and
//! where inputs were executed.

use metrics::{counter, describe_counter, describe_gauge, gauge};

pub(super) fn describe() {
    describe_gauge!("orderflow_partitions_owned", "Partitions whose lease this node holds");
    describe_counter!(
        "orderflow_partition_moves_total",
        "Partition leases acquired, released (handed over) or lost by this node"
    );
    describe_counter!(
        "orderflow_inputs_routed_total",
        "Inputs by where they were executed: local (owned here), forwarded (to the owner), unowned (nobody held the lease; executed here)"
    );
    describe_counter!(
        "orderflow_inputs_reasked_total",
        "Forwarded inputs sent to their partition's owner again, unanswered (a request lost while the partition changed hands, or a slow owner)"
    );
}

/// This node now holds `count` leases.
pub fn owned(count: usize) {
    gauge!("orderflow_partitions_owned").set(count as f64);
}

/// A lease was `acquired`, `released` or `lost`.
pub fn moved(how: &'static str) {
    counter!("orderflow_partition_moves_total", "how" => how).increment(1);
}

/// An input was executed `local`ly, `forwarded` or `unowned`.
pub fn routed(route: &'static str) {
    counter!("orderflow_inputs_routed_total", "route" => route).increment(1);
}

/// A forwarded input went unanswered and was sent again.
pub fn reasked() {
    counter!("orderflow_inputs_reasked_total").increment(1);
}
