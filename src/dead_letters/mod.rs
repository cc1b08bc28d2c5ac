//! Dead letters for operators: list, show, replay and discard the messages
//! the server gave up on (invariant 7). Works on the streams alone, so the
//! CLI needs no running node, and every node's API sees the same answers.
//!
//! A dead letter's id is its sequence in DEAD_LETTERS. The original stays in
//! its own stream (Limits retention), fetched by sequence; what operators did
//! is appended to DEAD_LETTER_ACTIONS, so nothing is deleted without a trace.

pub mod advisory;
pub mod ledger;

use std::collections::HashMap;
use std::time::SystemTime;

use async_nats::header::HeaderMap;
use async_nats::jetstream::message::StreamMessage;
use async_nats::jetstream::publish::PublishAck;
use async_nats::jetstream::stream::{DirectGetErrorKind, Stream};
use async_nats::jetstream::Context;
use schemas::headers as h;
use schemas::subjects::EntityRef;
use serde::Serialize;
use serde_json::Value;

use crate::bus::decoded;
use crate::bus::topology::DEAD_LETTERS;
pub use advisory::{Advisory, Cause};
pub use ledger::{Handling, DEAD_LETTER_ACTIONS};

/// The header naming the original a replayed copy was made from (`STREAM/SEQ`).
pub const REPLAY_OF: &str = "Orderflow-Replay-Of";
/// The header naming the dead letter a replayed copy answers.
pub const DEAD_LETTER: &str = "Orderflow-Dead-Letter";

/// How often a replay re-reads its journal after losing a race to another writer.
const OCC_ATTEMPTS: usize = 5;

/// The longest discard reason kept.
pub const MAX_REASON: usize = 500;

/// Why an operation on dead letters could not be done.
#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    /// No dead letter has this id.
    #[error("no dead letter {0}")]
    NotFound(u64),
    /// Someone already replayed or discarded it.
    #[error("dead letter {id} is already {}", .handling.state())]
    AlreadyHandled {
        /// The dead letter.
        id: u64,
        /// What was done with it.
        handling: Box<Handling>,
    },
    /// Its original aged out of its stream, so there is nothing to replay.
    #[error("the original of dead letter {id} ({stream} #{seq}) is no longer stored")]
    OriginalGone {
        /// The dead letter.
        id: u64,
        /// The original's stream.
        stream: String,
        /// The original's sequence.
        seq: u64,
    },
    /// A discard without a usable reason.
    #[error("reason: {0}")]
    InvalidReason(String),
    /// The DEAD_LETTERS message is not an advisory orderflow can read.
    #[error("dead letter {id} is not a readable advisory: {detail}")]
    Unreadable {
        /// The dead letter.
        id: u64,
        /// What is wrong with it.
        detail: String,
    },
    /// The broker failed or could not be reached.
    #[error("NATS: {0}")]
    Nats(String),
}

/// One dead letter: what was given up on, by whom, why, and what was done since.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    /// Its sequence in DEAD_LETTERS.
    pub id: u64,
    /// When the server gave up (RFC 3339).
    pub time: Option<String>,
    /// Delivered too often, or refused as poison.
    pub cause: Cause,
    /// The consumer that gave up.
    pub consumer: String,
    /// The original's stream.
    pub stream: String,
    /// The original's sequence there.
    pub stream_seq: u64,
    /// How often it was delivered.
    pub deliveries: u64,
    /// Why, in one sentence.
    pub reason: String,
    /// The original's subject, while it is stored.
    pub subject: Option<String>,
    /// The order it concerns, if its headers name one.
    pub order_id: Option<String>,
    /// What has been done with it.
    pub handling: Handling,
}

/// A dead letter with its original message.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetterDetail {
    /// The pointer and its handling.
    #[serde(flatten)]
    pub dead_letter: DeadLetter,
    /// The original, or `None` once it aged out of its stream.
    pub original: Option<Original>,
}

/// The message a dead letter points to.
#[derive(Debug, Clone, Serialize)]
pub struct Original {
    /// Where it was published.
    pub subject: String,
    /// When it was stored (RFC 3339).
    pub time: String,
    /// Its headers, as text.
    pub headers: Value,
    /// Its body decoded, or `{"undecodable": why, "raw_hex": bytes}` for poison.
    pub body: Value,
}

/// Which dead letters to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum StateFilter {
    /// Not yet replayed or discarded.
    #[default]
    Open,
    /// Replayed.
    Replayed,
    /// Discarded.
    Discarded,
    /// All of them.
    All,
}

impl StateFilter {
    fn admits(self, handling: &Handling) -> bool {
        match self {
            StateFilter::All => true,
            StateFilter::Open => matches!(handling, Handling::Open),
            StateFilter::Replayed => matches!(handling, Handling::Replayed { .. }),
            StateFilter::Discarded => matches!(handling, Handling::Discarded { .. }),
        }
    }
}

/// One page of a listing.
#[derive(Debug, Clone, Serialize)]
pub struct Page {
    /// The dead letters, oldest first.
    pub items: Vec<DeadLetter>,
    /// Pass as `after` for the next page; absent on the last one.
    pub next_after: Option<u64>,
}

/// The dead-letter operations, over one JetStream context.
#[derive(Clone)]
pub struct DeadLetters {
    js: Context,
}

fn nats(what: &str) -> impl Fn(async_nats::Error) -> DeadLetterError + '_ {
    move |e| DeadLetterError::Nats(format!("{what}: {e}"))
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

impl DeadLetters {
    /// Operations on the streams reached through `js`.
    pub fn new(js: Context) -> Self {
        Self { js }
    }

    async fn stream(&self, name: &str) -> Result<Stream<()>, DeadLetterError> {
        self.js
            .get_stream_no_info(name)
            .await
            .map_err(|e| DeadLetterError::Nats(format!("stream {name}: {e}")))
    }

    /// Up to `limit` dead letters in `state`, with ids above `after`, oldest first.
    pub async fn list(&self, state: StateFilter, after: u64, limit: usize) -> Result<Page, DeadLetterError> {
        let dead_letters = self.stream(DEAD_LETTERS).await?;
        let mut sources = HashMap::new();
        let mut items = Vec::new();
        let mut next = after.saturating_add(1);
        loop {
            let message = match dead_letters.direct_get_next_for_subject(">", Some(next)).await {
                Ok(m) => m,
                Err(e) if e.kind() == DirectGetErrorKind::NotFound => {
                    return Ok(Page {
                        items,
                        next_after: None,
                    })
                }
                Err(e) => return Err(DeadLetterError::Nats(format!("reading {DEAD_LETTERS}: {e}"))),
            };
            next = message.sequence + 1;
            let handling = ledger::handling(&self.js, message.sequence).await?;
            if !state.admits(&handling) {
                continue;
            }
            if items.len() == limit {
                return Ok(Page {
                    next_after: items.last().map(|d: &DeadLetter| d.id),
                    items,
                });
            }
            let (dead_letter, _) = self.describe(&message, handling, &mut sources).await?;
            items.push(dead_letter);
        }
    }

    /// One dead letter with its original message.
    pub async fn show(&self, id: u64) -> Result<DeadLetterDetail, DeadLetterError> {
        let message = self.advisory_message(id).await?;
        let handling = ledger::handling(&self.js, id).await?;
        let (dead_letter, original) = self.describe(&message, handling, &mut HashMap::new()).await?;
        let original = original.map(|o| {
            let kind = decoded::kind_of_stream(&dead_letter.stream);
            Original {
                time: humantime::format_rfc3339_millis(SystemTime::from(o.time)).to_string(),
                headers: decoded::headers_json(Some(&o.headers)),
                body: match kind {
                    Some(kind) => decoded::body_json(kind, Some(&o.headers), &o.payload),
                    None => serde_json::json!({ "raw_hex": decoded::hex(&o.payload) }),
                },
                subject: o.subject.to_string(),
            }
        });
        Ok(DeadLetterDetail { dead_letter, original })
    }

    /// Publishes the original again, to its own subject, for processing.
    ///
    /// The copy's `Nats-Msg-Id` is `<original id>:replay:<dead letter id>`:
    /// new, so the duplicate window cannot swallow it, and fixed per dead
    /// letter, so retrying a replay that was interrupted before it was
    /// recorded stores no second copy. Like every append to an entity's
    /// journal, it is checked against the journal's last sequence
    /// (invariant 2); every reader folds such a copy of a fact once.
    pub async fn replay(&self, id: u64, by: &str) -> Result<Handling, DeadLetterError> {
        let message = self.advisory_message(id).await?;
        let advisory = parse(&message)?;
        if let handled @ (Handling::Replayed { .. } | Handling::Discarded { .. }) =
            ledger::handling(&self.js, id).await?
        {
            return Err(DeadLetterError::AlreadyHandled {
                id,
                handling: Box::new(handled),
            });
        }
        let source = self.stream(&advisory.stream).await?;
        let original = match source.direct_get(advisory.stream_seq).await {
            Ok(m) => m,
            Err(e) if e.kind() == DirectGetErrorKind::NotFound => {
                return Err(DeadLetterError::OriginalGone {
                    id,
                    stream: advisory.stream,
                    seq: advisory.stream_seq,
                })
            }
            Err(e) => return Err(DeadLetterError::Nats(format!("reading the original: {e}"))),
        };
        let message_id = replay_message_id(&original, &advisory, id);
        let headers = replay_headers(&original.headers, &message_id, &advisory, id);
        let subject = original.subject.to_string();
        let ack = self.append_copy(&source, &subject, headers, &original.payload).await?;
        let handling = Handling::Replayed {
            at: now_rfc3339(),
            by: by.to_owned(),
            subject,
            replay_seq: ack.sequence,
            message_id,
            duplicate: ack.duplicate,
        };
        ledger::record(&self.js, id, &handling).await?;
        Ok(handling)
    }

    /// Marks a dead letter handled without processing it, keeping why and who.
    pub async fn discard(&self, id: u64, reason: &str, by: &str) -> Result<Handling, DeadLetterError> {
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(DeadLetterError::InvalidReason("say why it is discarded".into()));
        }
        if reason.chars().count() > MAX_REASON {
            return Err(DeadLetterError::InvalidReason(format!(
                "at most {MAX_REASON} characters"
            )));
        }
        self.advisory_message(id).await?;
        let handling = Handling::Discarded {
            at: now_rfc3339(),
            by: by.to_owned(),
            reason: reason.to_owned(),
        };
        ledger::record(&self.js, id, &handling).await?;
        Ok(handling)
    }

    /// Dead letters not yet replayed or discarded: every one has at most one
    /// action record, so this is a difference of two message counts.
    pub async fn backlog(&self) -> Result<u64, DeadLetterError> {
        let count = |name: &'static str| async move {
            let mut stream = self
                .js
                .get_stream(name)
                .await
                .map_err(|e| DeadLetterError::Nats(format!("stream {name}: {e}")))?;
            let info = stream.info().await.map_err(|e| nats(name)(e.into()))?;
            Ok::<u64, DeadLetterError>(info.state.messages)
        };
        let received = count(DEAD_LETTERS).await?;
        let handled = count(DEAD_LETTER_ACTIONS).await?;
        Ok(received.saturating_sub(handled))
    }

    /// Publishes a copy to `subject` under the optimistic-concurrency check
    /// of the entity the subject names, reading its last sequence again
    /// when another writer got in first.
    async fn append_copy(
        &self,
        source: &Stream<()>,
        subject: &str,
        headers: HeaderMap,
        payload: &bytes::Bytes,
    ) -> Result<PublishAck, DeadLetterError> {
        let journal = EntityRef::parse_subject(subject).map(|(entity, _)| entity.journal_filter());
        for _ in 0..OCC_ATTEMPTS {
            let mut headers = headers.clone();
            if let Some(journal) = &journal {
                let last = match source.direct_get_last_for_subject(journal.as_str()).await {
                    Ok(m) => m.sequence,
                    Err(e) if e.kind() == DirectGetErrorKind::NotFound => 0,
                    Err(e) => return Err(DeadLetterError::Nats(format!("reading {journal}: {e}"))),
                };
                headers.insert(h::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE, last.to_string().as_str());
                headers.insert(h::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE_SUBJECT, journal.as_str());
            }
            let published = self
                .js
                .publish_with_headers(subject.to_owned(), headers, payload.clone())
                .await
                .map_err(|e| nats("publishing the replay")(e.into()))?;
            match published.await {
                Ok(ack) => return Ok(ack),
                Err(e) if crate::bus::is_wrong_last_sequence(&e) => continue,
                Err(e) => return Err(nats("storing the replay")(e.into())),
            }
        }
        Err(DeadLetterError::Nats(format!(
            "{subject}: its journal kept changing during {OCC_ATTEMPTS} attempts; try again"
        )))
    }

    async fn advisory_message(&self, id: u64) -> Result<StreamMessage, DeadLetterError> {
        match self.stream(DEAD_LETTERS).await?.direct_get(id).await {
            Ok(m) => Ok(m),
            Err(e) if e.kind() == DirectGetErrorKind::NotFound => Err(DeadLetterError::NotFound(id)),
            Err(e) => Err(DeadLetterError::Nats(format!("reading {DEAD_LETTERS} #{id}: {e}"))),
        }
    }

    /// The dead letter `message` describes, and its original while stored.
    async fn describe(
        &self,
        message: &StreamMessage,
        handling: Handling,
        sources: &mut HashMap<String, Stream<()>>,
    ) -> Result<(DeadLetter, Option<StreamMessage>), DeadLetterError> {
        let advisory = parse(message)?;
        if !sources.contains_key(&advisory.stream) {
            let stream = self.stream(&advisory.stream).await?;
            sources.insert(advisory.stream.clone(), stream);
        }
        let original = match sources.get(&advisory.stream) {
            Some(stream) => match stream.direct_get(advisory.stream_seq).await {
                Ok(m) => Some(m),
                Err(e) if e.kind() == DirectGetErrorKind::NotFound => None,
                Err(e) => return Err(DeadLetterError::Nats(format!("reading the original: {e}"))),
            },
            None => None,
        };
        let subject = original.as_ref().map(|o| o.subject.to_string());
        let order_id = original
            .as_ref()
            .and_then(|o| o.headers.get(h::ORDER_ID))
            .map(|v| v.as_str().to_owned());
        let dead_letter = DeadLetter {
            id: message.sequence,
            time: advisory.timestamp.clone(),
            cause: advisory.cause(),
            reason: advisory.explain(subject.as_deref().unwrap_or("a message no longer stored")),
            consumer: advisory.consumer,
            stream: advisory.stream,
            stream_seq: advisory.stream_seq,
            deliveries: advisory.deliveries,
            subject,
            order_id,
            handling,
        };
        Ok((dead_letter, original))
    }
}

fn parse(message: &StreamMessage) -> Result<Advisory, DeadLetterError> {
    Advisory::parse(&message.payload).map_err(|e| DeadLetterError::Unreadable {
        id: message.sequence,
        detail: e.to_string(),
    })
}

/// `<original id>:replay:<dead letter>`, the original id stripped of any
/// earlier replay suffix so that ids stay short however often a message returns.
fn replay_message_id(original: &StreamMessage, advisory: &Advisory, id: u64) -> String {
    let root = original
        .headers
        .get(h::NATS_MSG_ID)
        .map(|v| v.as_str().to_owned())
        .unwrap_or_else(|| format!("{}:{}", advisory.stream, advisory.stream_seq));
    let root = root.split(":replay:").next().unwrap_or(&root).to_owned();
    format!("{root}:replay:{id}")
}

/// The original's own headers, without the server's (`Nats-*`: stream,
/// sequence, time, and the original's dedup id and OCC check), plus the
/// replay's id and where it comes from.
fn replay_headers(original: &HeaderMap, message_id: &str, advisory: &Advisory, id: u64) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, values) in original.iter() {
        if name.to_string().to_ascii_lowercase().starts_with("nats-") {
            continue;
        }
        for value in values {
            headers.append(name.clone(), value.clone());
        }
    }
    headers.insert(h::NATS_MSG_ID, message_id);
    headers.insert(
        REPLAY_OF,
        format!("{}/{}", advisory.stream, advisory.stream_seq).as_str(),
    );
    headers.insert(DEAD_LETTER, id.to_string().as_str());
    headers
}
