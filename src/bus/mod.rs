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
    e.kind() == PublishErrorKind::WrongLastSequence
        || error_code(e) == Some(ErrorCode::STREAM_WRONG_LAST_SEQUENCE_CONSTANT)
}

/// True when a replicated stream refused a publish because another with
/// the same `Nats-Msg-Id` is still being proposed (error 10158): the same
/// decision, re-taken after a lost race, sent while the leader had not yet
/// settled the first. Found by the cluster bench, as a 503 to a cancel.
pub fn is_duplicate_in_process(e: &PublishError) -> bool {
    error_code(e) == Some(ErrorCode::STREAM_DUPLICATE_MESSAGE_CONFLICT)
}

/// The JetStream error code a publish was refused with, if it was.
fn error_code(e: &PublishError) -> Option<ErrorCode> {
    std::error::Error::source(e)
        .and_then(|source| source.downcast_ref::<async_nats::jetstream::Error>())
        .map(async_nats::jetstream::Error::error_code)
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
