//! Everything that touches JetStream: the topology, the journal, the inboxes.

pub mod decoded;
pub mod envelope;
pub mod inbox;
pub mod journal;
pub mod topology;

use std::time::Duration;

/// Connects to the broker; fails fast if it is down, reconnects forever once up.
pub async fn connect(url: &str) -> Result<async_nats::Client, async_nats::ConnectError> {
    async_nats::ConnectOptions::new()
        .name("orderflow")
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(5))
        .connect(servers(url))
        .await
}

/// The servers of `url`: one URL, or several separated by commas (the
/// members of a cluster; any one reachable is enough to start).
fn servers(url: &str) -> Vec<&str> {
    url.split(',').map(str::trim).filter(|s| !s.is_empty()).collect()
}
