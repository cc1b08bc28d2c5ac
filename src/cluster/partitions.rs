//! Which partition an entity is in, and which live node should own each
//! partition: pure functions, so every node computes the same answer from
//! the same membership.
//!
//! An entity's partition is FNV-1a (32 bit) of its id modulo the partition
//! count, the hash NATS's own `partition(n, …)` subject mapping uses. The
//! owner of a partition is chosen by rendezvous (highest random weight)
//! hashing over the live nodes: a node joining takes about 1/n of the
//! partitions and a node leaving hands only its own over, so a change of
//! membership moves as little work as it can.

use std::collections::BTreeSet;

/// A partition number, `0..count`.
pub type Partition = u16;

/// The partition of the entity named `id` (an order id or a SKU).
pub fn partition_of(id: &str, count: Partition) -> Partition {
    let hash = fnv1a32(id.as_bytes());
    // The remainder is below `count`, so it fits.
    (hash % u32::from(count.max(1))) as Partition
}

/// The node that should own `partition`, among `nodes` (none if empty).
pub fn owner_of<'a>(partition: Partition, nodes: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    nodes
        .into_iter()
        .map(|node| (weight(node, partition), node))
        .max()
        .map(|(_, node)| node)
}

/// The partitions `me` should own when `nodes` are live (`me` counted live).
pub fn assigned_to(me: &str, nodes: &BTreeSet<String>, count: Partition) -> BTreeSet<Partition> {
    let mut live: BTreeSet<&str> = nodes.iter().map(String::as_str).collect();
    live.insert(me);
    (0..count)
        .filter(|p| owner_of(*p, live.iter().copied()) == Some(me))
        .collect()
}

/// How much `node` wants `partition`: a hash of both, so every pair is an
/// independent draw.
fn weight(node: &str, partition: Partition) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let partition = partition.to_be_bytes();
    let bytes = node.as_bytes().iter().chain(&[0xff]).chain(&partition);
    let h = bytes.fold(OFFSET, |h, b| (h ^ u64::from(*b)).wrapping_mul(PRIME));
    // FNV mixes its last bytes poorly; SplitMix64's finaliser spreads them.
    let h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// FNV-1a, 32 bit (the reference algorithm; a few lines, no crate needed).
fn fnv1a32(bytes: &[u8]) -> u32 {
    const OFFSET: u32 = 0x811c_9dc5;
    const PRIME: u32 = 0x0100_0193;
    bytes
        .iter()
        .fold(OFFSET, |h, b| (h ^ u32::from(*b)).wrapping_mul(PRIME))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn nodes(n: usize) -> BTreeSet<String> {
        (0..n).map(|i| format!("node-{i}")).collect()
    }

    #[test]
    fn fnv1a32_matches_the_published_test_vectors() {
        // From the FNV reference: "" and "a" and "foobar".
        assert_eq!(fnv1a32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a32(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn a_lone_node_owns_everything() {
        let mine = assigned_to("solo", &BTreeSet::new(), 16);
        assert_eq!(mine.len(), 16);
    }

    #[test]
    fn three_nodes_share_sixty_four_partitions_roughly_evenly() {
        let live = nodes(3);
        let counts: Vec<usize> = live.iter().map(|n| assigned_to(n, &live, 64).len()).collect();
        assert_eq!(counts.iter().sum::<usize>(), 64, "{counts:?}");
        assert!(counts.iter().all(|c| (10..=32).contains(c)), "{counts:?}");
    }

    proptest! {
        #[test]
        fn every_partition_has_exactly_one_owner(n in 1usize..6, count in 1u16..80) {
            let live = nodes(n);
            let mut seen = vec![0u32; usize::from(count)];
            for node in &live {
                for p in assigned_to(node, &live, count) {
                    seen[usize::from(p)] += 1;
                }
            }
            prop_assert!(seen.iter().all(|s| *s == 1), "{:?}", seen);
        }

        #[test]
        fn a_leaving_node_hands_over_only_its_own(n in 2usize..6, leaver in 0usize..6, count in 1u16..80) {
            let live = nodes(n);
            let leaver = format!("node-{}", leaver % n);
            let rest: BTreeSet<String> = live.iter().filter(|x| **x != leaver).cloned().collect();
            for node in &rest {
                let before = assigned_to(node, &live, count);
                let after = assigned_to(node, &rest, count);
                prop_assert!(before.is_subset(&after), "{node} lost partitions when {leaver} left");
            }
        }

        #[test]
        fn partitions_are_in_range(id in "[A-Za-z0-9-]{1,40}", count in 1u16..1000) {
            prop_assert!(partition_of(&id, count) < count);
        }
    }
}
