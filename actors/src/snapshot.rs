//! Snapshots: a cache of `(state, last_seq)` per entity, so recovery reads
//! only the journal's tail. Losing or corrupting one costs replay time, never data.

use schemas::subjects::EntityRef;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The layout version of a snapshot; any other is ignored and replayed.
pub const SNAPSHOT_FORMAT: u32 = 1;

/// Where snapshots are kept. Implementations swallow their own errors
/// (logging them): a snapshot that cannot be read or written only means a
/// longer replay.
pub trait SnapshotStore: Send + Sync + 'static {
    /// The stored bytes of `entity`'s snapshot, if any.
    fn load(&self, entity: &EntityRef) -> Option<Vec<u8>>;
    /// Replaces `entity`'s snapshot.
    fn save(&self, entity: &EntityRef, bytes: Vec<u8>);
}

/// A store that keeps nothing: every recovery is a full replay.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoSnapshots;

impl SnapshotStore for NoSnapshots {
    fn load(&self, _: &EntityRef) -> Option<Vec<u8>> {
        None
    }
    fn save(&self, _: &EntityRef, _: Vec<u8>) {}
}

#[derive(Serialize, Deserialize)]
struct Snapshot<S> {
    format: u32,
    last_seq: u64,
    state: S,
}

/// Encodes a state and the sequence it is current to.
pub fn encode<S: Serialize>(state: &S, last_seq: u64) -> Option<Vec<u8>> {
    rmp_serde::to_vec_named(&Snapshot {
        format: SNAPSHOT_FORMAT,
        last_seq,
        state,
    })
    .ok()
}

/// Decodes a snapshot; `None` for anything unreadable or of another format.
pub fn decode<S: DeserializeOwned>(bytes: &[u8]) -> Option<(S, u64)> {
    let snapshot: Snapshot<S> = rmp_serde::from_slice(bytes).ok()?;
    (snapshot.format == SNAPSHOT_FORMAT).then_some((snapshot.state, snapshot.last_seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_and_other_formats_are_ignored() {
        assert_eq!(decode::<u64>(b"\xc1garbage"), None);
        let other = rmp_serde::to_vec_named(&Snapshot {
            format: SNAPSHOT_FORMAT + 1,
            last_seq: 3,
            state: 7u64,
        })
        .unwrap();
        assert_eq!(decode::<u64>(&other), None);
        assert_eq!(decode::<u64>(&encode(&7u64, 3).unwrap()), Some((7, 3)));
    }
}
