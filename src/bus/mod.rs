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
        .connect(url)
        .await
}
