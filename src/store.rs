//! Snapshots in sled: a cache only. Deleting the directory, or finding it
//! unreadable, costs replay time and never data (invariant 6).

use std::path::{Path, PathBuf};
use std::time::Duration;

use actors::snapshot::SnapshotStore;
use backon::{BlockingRetryable, ConstantBuilder};
use schemas::subjects::EntityRef;

/// Why the snapshot store could not be opened at all.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("snapshot store at {path}: {source}")]
    Open { path: PathBuf, source: sled::Error },
    #[error("moving the unreadable snapshot store at {path} aside: {source}")]
    MoveAside { path: PathBuf, source: std::io::Error },
}

/// True when another handle still holds the database's file lock.
fn is_locked(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock || io.to_string().contains("lock"))
}

/// Snapshots keyed by `<space>.<id>` in one sled database.
#[derive(Clone)]
pub struct SledSnapshots {
    db: sled::Db,
}

impl SledSnapshots {
    /// Opens (or creates) the store, keeping at most `cache_bytes` of it in
    /// memory. An unreadable one is moved aside and replaced by an empty
    /// one: snapshots are a cache, so starting cold is safe.
    pub fn open(path: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        let config = || sled::Config::new().path(path).cache_capacity(cache_bytes);
        // A store just closed in this process (a node restarting) may still be
        // locked for a moment by sled's background flusher: wait it out.
        let opened = (|| config().open())
            .retry(
                ConstantBuilder::default()
                    .with_delay(Duration::from_millis(50))
                    .with_max_times(60),
            )
            .sleep(std::thread::sleep)
            .when(is_locked)
            .call();
        match opened {
            Ok(db) => Ok(Self { db }),
            Err(e @ (sled::Error::Corruption { .. } | sled::Error::Unsupported(_))) => {
                let aside = path.with_extension(format!("unreadable-{}", std::process::id()));
                tracing::error!(path = %path.display(), error = %e, aside = %aside.display(), "snapshot store unreadable; starting with an empty one");
                std::fs::rename(path, &aside).map_err(|source| StoreError::MoveAside {
                    path: path.into(),
                    source,
                })?;
                config()
                    .open()
                    .map(|db| Self { db })
                    .map_err(|source| StoreError::Open {
                        path: path.into(),
                        source,
                    })
            }
            Err(source) => Err(StoreError::Open {
                path: path.into(),
                source,
            }),
        }
    }

    /// Whether the database answers (for readiness).
    pub fn is_open(&self) -> bool {
        self.db.contains_key(b"\0probe").is_ok()
    }

    /// Writes buffered snapshots to disk (on shutdown).
    pub fn flush(&self) {
        if let Err(e) = self.db.flush() {
            tracing::warn!(error = %e, "could not flush snapshots; they will be rebuilt by replay");
        }
    }
}

fn key(entity: &EntityRef) -> String {
    entity.to_string()
}

impl SnapshotStore for SledSnapshots {
    fn load(&self, entity: &EntityRef) -> Option<Vec<u8>> {
        match self.db.get(key(entity)) {
            Ok(v) => v.map(|v| v.to_vec()),
            Err(e) => {
                tracing::warn!(%entity, error = %e, "snapshot unreadable; replaying the journal");
                None
            }
        }
    }

    fn save(&self, entity: &EntityRef, bytes: Vec<u8>) {
        if let Err(e) = self.db.insert(key(entity), bytes) {
            tracing::warn!(%entity, error = %e, "snapshot not written; the next start replays more");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CACHE: u64 = 1024 * 1024;

    #[test]
    fn snapshots_survive_a_reopen_and_a_garbage_store_starts_cold() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("snapshots");
        let entity = EntityRef::order(schemas::OrderId::random());
        {
            let store = SledSnapshots::open(&path, CACHE).expect("opens");
            store.save(&entity, vec![1, 2, 3]);
            store.flush();
        }
        assert_eq!(
            SledSnapshots::open(&path, CACHE).expect("reopens").load(&entity),
            Some(vec![1, 2, 3])
        );

        let garbage = dir.path().join("garbage");
        std::fs::create_dir_all(&garbage).expect("a directory");
        std::fs::write(garbage.join("conf"), b"\xff\xfe not a sled config").expect("written");
        std::fs::write(garbage.join("db"), vec![0xa5; 4096]).expect("written");
        let store = SledSnapshots::open(&garbage, CACHE).expect("an unreadable store is replaced by an empty one");
        assert!(store.is_open());
        assert_eq!(store.load(&entity), None);
        let aside = garbage.with_extension(format!("unreadable-{}", std::process::id()));
        assert!(
            aside.join("db").is_file(),
            "the unreadable store is kept aside for inspection"
        );
    }
}
