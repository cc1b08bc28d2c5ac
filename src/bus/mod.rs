//! Everything that touches JetStream: the topology, the journal, the inboxes.

pub mod batch_get;
pub mod decoded;
pub mod envelope;
pub mod inbox;
pub mod journal;
pub mod topology;

use std::path::PathBuf;
use std::time::Duration;

use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::jetstream::ErrorCode;

use crate::config::NatsConfig;

/// True when a publish was refused by its expected-last-sequence check (an
/// optimistic-concurrency conflict). A replicated stream's leader refuses
/// with error code 10164 rather than 10071, which async-nats does not map to
/// `WrongLastSequence`; found by the cluster bench, where every conflict was
/// retried as an outage.
pub fn is_wrong_last_sequence(e: &PublishError) -> bool {
    if e.kind() == PublishErrorKind::WrongLastSequence {
        return true;
    }
    std::error::Error::source(e)
        .and_then(|source| source.downcast_ref::<async_nats::jetstream::Error>())
        .is_some_and(|e| e.error_code() == ErrorCode::STREAM_WRONG_LAST_SEQUENCE_CONSTANT)
}

/// Connects to the broker as `nats.user` (over TLS if asked); fails fast if
/// it is down, reconnects forever once up.
pub async fn connect(nats: &NatsConfig) -> Result<async_nats::Client, async_nats::ConnectError> {
    let mut options = async_nats::ConnectOptions::new()
        .name("orderflow")
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(5))
        .require_tls(nats.tls_required);
    if !nats.user.is_empty() {
        options = options.user_and_password(nats.user.clone(), nats.password.clone());
    }
    if !nats.tls_ca.is_empty() {
        options = options.add_root_certificates(PathBuf::from(&nats.tls_ca));
    }
    options.connect(servers(&nats.url)).await
}

/// The servers of `url`: one URL, or several separated by commas (the
/// members of a cluster; any one reachable is enough to start).
fn servers(url: &str) -> Vec<&str> {
    url.split(',').map(str::trim).filter(|s| !s.is_empty()).collect()
}
