//! The server's MAX_DELIVERIES and MSG_TERMINATED advisories, as read from
//! the DEAD_LETTERS stream: pointers to a message, without its payload.

use serde::{Deserialize, Serialize};

/// What orderflow reads of one advisory.
#[derive(Debug, Clone, Deserialize)]
pub struct Advisory {
    /// `io.nats.jetstream.advisory.v1.max_deliver` or `….terminated`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The stream holding the original.
    pub stream: String,
    /// The consumer that gave up on it.
    pub consumer: String,
    /// The original's sequence in `stream`.
    pub stream_seq: u64,
    /// How many times it was delivered.
    pub deliveries: u64,
    /// The `+TERM` reason, for terminated messages.
    #[serde(default)]
    pub reason: Option<String>,
    /// When the server gave up (RFC 3339).
    #[serde(default)]
    pub timestamp: Option<String>,
}

/// Why a message became a dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// Delivered `MaxDeliver` times without an ack.
    MaxDeliveries,
    /// Refused as poison by its consumer.
    Terminated,
}

impl Advisory {
    /// Parses an advisory body.
    pub fn parse(payload: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(payload)
    }

    /// Why the server gave up.
    pub fn cause(&self) -> Cause {
        if self.kind.ends_with(".terminated") {
            Cause::Terminated
        } else {
            Cause::MaxDeliveries
        }
    }

    /// One sentence for people: who gave up on what, and why.
    pub fn explain(&self, subject: &str) -> String {
        match (&self.reason, self.cause()) {
            (Some(reason), Cause::Terminated) => format!(
                "{} refused {subject} (stream {} #{}): {reason}",
                self.consumer, self.stream, self.stream_seq
            ),
            _ => format!(
                "{} gave up on {subject} (stream {} #{}) after {} deliveries",
                self.consumer, self.stream, self.stream_seq, self.deliveries
            ),
        }
    }
}
