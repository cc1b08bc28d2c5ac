//! Everything that touches JetStream: the topology, the journal, the inboxes.

pub mod decoded;
pub mod envelope;
pub mod inbox;
pub mod journal;
pub mod topology;

use std::path::PathBuf;
use std::time::Duration;

use crate::config::NatsConfig;

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
