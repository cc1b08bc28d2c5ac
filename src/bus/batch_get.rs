//! Batched direct get (nats-server 2.11+, ADR-31): one request returns up
//! to `batch` messages of a subject filter from a sequence on, then an
//! end-of-batch marker, where a plain direct get costs one round trip per
//! message. async-nats has no API for it, so the requests go out on the
//! core connection and every answer comes back on one wildcard inbox
//! subscription, routed to its request by the inbox's last token.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::message::StreamMessage;
use async_nats::{Client, Message};
use futures::StreamExt;
use tokio::sync::mpsc;

/// Statuses of the answers: a message, the end of a batch, nothing on the filter.
const OK: u16 = 200;
const END_OF_BATCH: u16 = 204;
const NOT_FOUND: u16 = 404;

/// The header with which the end of a batch says how many matching messages remain.
const NUM_PENDING: &str = "Nats-Num-Pending";

/// How long a batch may go quiet before the read fails (and is retried by its caller).
const QUIET: Duration = Duration::from_secs(5);

/// Why a batch read failed.
#[derive(Debug, thiserror::Error)]
pub enum BatchGetError {
    /// The request could not be sent, or the answers stopped.
    #[error("batch get: {0}")]
    Unavailable(String),
    /// The server answered with an error status.
    #[error("batch get refused: {status} {description}")]
    Refused { status: u16, description: String },
}

type Waiting = Arc<Mutex<HashMap<u64, mpsc::UnboundedSender<Message>>>>;

/// Batched reads over one client, answers muxed on one subscription.
#[derive(Debug, Clone)]
pub struct BatchGets {
    client: Client,
    inbox: String,
    next_id: Arc<AtomicU64>,
    waiting: Waiting,
}

/// Takes a request's sender out of the map when its read ends, however it ends.
struct Registration<'a> {
    waiting: &'a Waiting,
    id: u64,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.remove(&self.id);
        }
    }
}

impl BatchGets {
    /// Subscribes to this reader's inbox and routes its answers.
    pub async fn start(client: Client) -> Result<Self, BatchGetError> {
        let inbox = client.new_inbox();
        let mut answers = client
            .subscribe(format!("{inbox}.*"))
            .await
            .map_err(|e| BatchGetError::Unavailable(e.to_string()))?;
        let waiting: Waiting = Arc::default();
        let routes = waiting.clone();
        tokio::spawn(async move {
            while let Some(answer) = answers.next().await {
                let Some(id) = answer.subject.rsplit('.').next().and_then(|t| t.parse::<u64>().ok()) else {
                    continue;
                };
                let sender = routes.lock().ok().and_then(|w| w.get(&id).cloned());
                if let Some(sender) = sender {
                    // The reader gave up (timed out): nobody to tell.
                    let _ = sender.send(answer);
                }
            }
        });
        Ok(Self {
            client,
            inbox,
            next_id: Arc::default(),
            waiting,
        })
    }

    /// Up to `batch` messages of `stream` on `filter` from sequence `from`
    /// on, oldest first, and whether more follow them.
    pub async fn next_for_subject(
        &self,
        stream: &str,
        filter: &str,
        from: u64,
        batch: usize,
    ) -> Result<(Vec<StreamMessage>, bool), BatchGetError> {
        let request = serde_json::json!({ "seq": from, "next_by_subj": filter, "batch": batch });
        self.ask(stream, filter, request, batch).await
    }

    /// The last message of each subject of `stream` matching `filter` (up
    /// to `batch` subjects), in one request and with no consumer: what a KV
    /// bucket's `keys()` would list, with each key's latest entry.
    pub async fn last_per_subject(
        &self,
        stream: &str,
        filter: &str,
        batch: usize,
    ) -> Result<Vec<StreamMessage>, BatchGetError> {
        let request = serde_json::json!({ "multi_last": [filter], "batch": batch });
        Ok(self.ask(stream, filter, request, batch).await?.0)
    }

    /// Sends one batched direct get and gathers its answers up to the end
    /// of the batch, or `batch` messages.
    async fn ask(
        &self,
        stream: &str,
        filter: &str,
        request: serde_json::Value,
        batch: usize,
    ) -> Result<(Vec<StreamMessage>, bool), BatchGetError> {
        let unavailable = |e: &dyn std::fmt::Display| BatchGetError::Unavailable(e.to_string());
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (sender, mut answers) = mpsc::unbounded_channel();
        self.waiting.lock().map_err(|e| unavailable(&e))?.insert(id, sender);
        let _registration = Registration {
            waiting: &self.waiting,
            id,
        };
        // The default JetStream API prefix: the node uses no JetStream domain.
        self.client
            .publish_with_reply(
                format!("$JS.API.DIRECT.GET.{stream}"),
                format!("{}.{id}", self.inbox),
                request.to_string().into(),
            )
            .await
            .map_err(|e| unavailable(&e))?;
        let mut messages = Vec::new();
        loop {
            let answer = tokio::time::timeout(QUIET, answers.recv())
                .await
                .map_err(|_| unavailable(&format!("no answer for {QUIET:?} from {stream} on {filter}")))?
                .ok_or_else(|| unavailable(&"the answers' subscription ended"))?;
            match answer.status.map(|s| s.as_u16()) {
                // End of batch: the server says what it left for the next one.
                Some(END_OF_BATCH) => {
                    let pending = answer
                        .headers
                        .as_ref()
                        .and_then(|h| h.get(NUM_PENDING))
                        .and_then(|v| v.as_str().parse::<u64>().ok())
                        .unwrap_or(0);
                    return Ok((messages, pending > 0));
                }
                Some(NOT_FOUND) => return Ok((messages, false)),
                Some(status) if status != OK => {
                    return Err(BatchGetError::Refused {
                        status,
                        description: answer.description.unwrap_or_default(),
                    })
                }
                _ => {
                    let message = StreamMessage::try_from(answer).map_err(|e| unavailable(&e))?;
                    messages.push(message);
                    if messages.len() >= batch {
                        return Ok((messages, true));
                    }
                }
            }
        }
    }
}
