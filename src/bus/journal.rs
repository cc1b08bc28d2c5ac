//! The journal on JetStream: an entity's events are the messages on
//! `<space>.<id>.*`; appends are publishes guarded by the expected last
//! subject sequence; replay is batched direct get on a single server, and
//! reads from the stream leader in a cluster.

use std::time::SystemTime;

use actors::journal::{Appended, Cause, Journal, JournalError, Journaled};
use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use async_nats::jetstream::message::StreamMessage;
use async_nats::jetstream::stream::{DirectGetErrorKind, LastRawMessageErrorKind, Stream};
use async_nats::jetstream::Context;
use futures::StreamExt;
use schemas::subjects::{EntityKind, EntityRef};
use schemas::wire::{self, Event};

use super::batch_get::BatchGets;
use super::envelope;
use crate::telemetry::{self, JetStreamOp};

/// One stored message of a journal, with what the stream knows of it.
#[derive(Debug, Clone)]
pub struct Record {
    /// Stream sequence.
    pub seq: u64,
    /// Full subject.
    pub subject: String,
    /// When the server stored it.
    pub time: SystemTime,
    /// The message itself.
    pub message: StreamMessage,
}

/// How long a replay's ordered consumer may stay silent before it is
/// replaced: one with messages pending sends the next within milliseconds.
const REPLAY_IDLE: std::time::Duration = std::time::Duration::from_secs(2);

/// How many ordered consumers one replay tries before the read fails: with
/// [`REPLAY_IDLE`], the 10 s a single consumer was once given.
const REPLAY_CONSUMERS: u32 = 5;

/// Why reading the journal on `filter` failed.
fn unreadable(filter: &str, why: &dyn std::fmt::Display) -> JournalError {
    JournalError::Unavailable(format!("reading {filter}: {why}"))
}

/// How one ordered consumer's part of a replay ended.
#[derive(Debug, PartialEq, Eq)]
enum Tail {
    /// Nothing left pending: the journal is read.
    Read,
    /// The consumer fell silent with messages still pending.
    Quiet,
}

/// How many messages of one journal are read by direct get before the
/// rest is streamed (see [`NatsJournal::records`]).
pub const DIRECT_GETS: usize = 16;

impl Record {
    /// The record of a stored message.
    pub fn of(message: StreamMessage) -> Self {
        Record {
            seq: message.sequence,
            subject: message.subject.to_string(),
            time: SystemTime::from(message.time),
            message,
        }
    }
}

/// Who answers a journal read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reads {
    /// Direct get: any replica answers, fastest. Exact on a single server.
    Direct,
    /// The stream leader answers (`STREAM.MSG.GET`): in a cluster, a replica
    /// may lag behind a write just acknowledged, and a reader on another
    /// node must see it (read-your-writes across nodes).
    Leader,
}

impl Reads {
    /// Leader reads when streams are replicated, direct otherwise.
    pub fn for_replicas(replicas: usize) -> Self {
        if replicas > 1 {
            Self::Leader
        } else {
            Self::Direct
        }
    }
}

/// Messages asked for per batched read: an order's whole journal, or a
/// long journal's tail in a few round trips.
const BATCH: usize = 256;

/// The journal of every entity kind, on one JetStream context.
#[derive(Clone)]
pub struct NatsJournal {
    js: Context,
    /// One per kind, in `EntityKind::ALL` order.
    streams: Vec<Stream<()>>,
    reads: Reads,
    /// Batched direct gets, for `Reads::Direct`.
    batches: Option<BatchGets>,
}

impl NatsJournal {
    /// Binds to the four entity streams (which `topology::ensure` created), reading directly.
    pub async fn open(js: Context) -> Result<Self, JournalError> {
        Self::open_with(js, Reads::Direct).await
    }

    /// Binds to the four entity streams, reading as `reads` says.
    pub async fn open_with(js: Context, reads: Reads) -> Result<Self, JournalError> {
        let mut streams = Vec::new();
        for kind in EntityKind::ALL {
            let stream = js
                .get_stream_no_info(kind.stream())
                .await
                .map_err(|e| JournalError::Unavailable(format!("stream {}: {e}", kind.stream())))?;
            streams.push(stream);
        }
        let batches = match reads {
            Reads::Direct => Some(
                BatchGets::start(js.client())
                    .await
                    .map_err(|e| JournalError::Unavailable(e.to_string()))?,
            ),
            Reads::Leader => None,
        };
        Ok(Self {
            js,
            streams,
            reads,
            batches,
        })
    }

    fn stream(&self, kind: EntityKind) -> &Stream<()> {
        // `open` bound every kind in declaration order.
        &self.streams[kind as usize]
    }

    /// Every message of `entity` after `after_seq`, undecoded.
    ///
    /// On a single server, batched direct gets: an order's whole journal in
    /// one round trip, a long one [`BATCH`] messages per round trip. Reading
    /// from the leader (a cluster), short journals (an order's dozen events,
    /// the tail after a snapshot) take one request per message and no
    /// server state; past [`DIRECT_GETS`] messages the rest is streamed by
    /// an ordered consumer, so a hot SKU's long journal replays at consumer
    /// speed.
    pub async fn records(&self, entity: &EntityRef, after_seq: u64) -> Result<Vec<Record>, JournalError> {
        let stream = self.stream(entity.kind);
        let filter = entity.journal_filter();
        let unavailable = |e: &dyn std::fmt::Display| unreadable(&filter, e);
        let mut records = Vec::new();
        let mut next = after_seq + 1;
        if let Some(batches) = &self.batches {
            loop {
                telemetry::jetstream_op(JetStreamOp::Read);
                let (messages, more) = batches
                    .next_for_subject(entity.kind.stream(), &filter, next, BATCH)
                    .await
                    .map_err(|e| unavailable(&e))?;
                if let Some(last) = messages.last() {
                    next = last.sequence + 1;
                }
                let empty = messages.is_empty();
                records.extend(messages.into_iter().map(Record::of));
                if !more || empty {
                    return Ok(records);
                }
            }
        }
        while records.len() < DIRECT_GETS {
            match self.next_message(stream, filter.as_str(), next).await {
                Ok(Some(message)) => {
                    next = message.sequence + 1;
                    records.push(Record::of(message));
                }
                Ok(None) => return Ok(records),
                Err(e) => return Err(unavailable(&e)),
            }
        }
        // A consumer that goes quiet mid-replay must not hang the actor, so
        // it is replaced from where it stopped. Seen in a three-server
        // cluster just after start-up: a replay's consumer sent nothing for
        // 10 s with messages pending, and async-nats notices only after two
        // missed 15 s heartbeats. Past the last replacement the read fails
        // and the input is retried.
        for _ in 0..REPLAY_CONSUMERS {
            if Self::stream_tail(stream, &filter, &mut next, &mut records).await? == Tail::Read {
                return Ok(records);
            }
            tracing::warn!(%filter, next, "replay consumer quiet; replacing it from where it stopped");
        }
        let quiet = REPLAY_IDLE * REPLAY_CONSUMERS;
        Err(unavailable(&format!("no message for {quiet:?} mid-replay")))
    }

    /// Streams `filter`'s messages from `next` onto `records` with one
    /// ordered consumer, until nothing is pending or it stays quiet for
    /// [`REPLAY_IDLE`]; `next` follows what was read.
    async fn stream_tail(
        stream: &Stream<()>,
        filter: &str,
        next: &mut u64,
        records: &mut Vec<Record>,
    ) -> Result<Tail, JournalError> {
        let unavailable = |e: &dyn std::fmt::Display| unreadable(filter, e);
        telemetry::jetstream_op(JetStreamOp::Replay);
        let consumer = stream
            .create_consumer(pull::OrderedConfig {
                filter_subject: filter.to_owned(),
                deliver_policy: DeliverPolicy::ByStartSequence { start_sequence: *next },
                ..Default::default()
            })
            .await
            .map_err(|e| unavailable(&e))?;
        if consumer.cached_info().num_pending == 0 {
            return Ok(Tail::Read);
        }
        let mut messages = consumer.messages().await.map_err(|e| unavailable(&e))?;
        loop {
            let Ok(next_message) = tokio::time::timeout(REPLAY_IDLE, messages.next()).await else {
                return Ok(Tail::Quiet);
            };
            let Some(message) = next_message else {
                return Ok(Tail::Read);
            };
            let message = message.map_err(|e| unavailable(&e))?;
            telemetry::jetstream_op(JetStreamOp::Deliver);
            let info = message.info().map_err(|e| unavailable(&e))?;
            let (sequence, time, pending) = (info.stream_sequence, info.published, info.pending);
            // An ordered consumer that async-nats re-creates before it
            // delivered anything (a server went away) starts again from the
            // stream's first message, not from `next`: skip what was read
            // already, or the journal would be folded twice.
            if sequence < *next {
                if pending == 0 {
                    return Ok(Tail::Read);
                }
                continue;
            }
            *next = sequence + 1;
            let message = message.message;
            records.push(Record::of(StreamMessage {
                subject: message.subject,
                sequence,
                headers: message.headers.unwrap_or_default(),
                payload: message.payload,
                time,
            }));
            if pending == 0 {
                return Ok(Tail::Read);
            }
        }
    }

    /// The first message on `filter` at or after `sequence`, from whoever `reads` names.
    async fn next_message(
        &self,
        stream: &Stream<()>,
        filter: &str,
        sequence: u64,
    ) -> Result<Option<StreamMessage>, async_nats::Error> {
        telemetry::jetstream_op(JetStreamOp::Read);
        match self.reads {
            Reads::Direct => match stream.direct_get_next_for_subject(filter, Some(sequence)).await {
                Ok(message) => Ok(Some(message)),
                Err(e) if e.kind() == DirectGetErrorKind::NotFound => Ok(None),
                Err(e) => Err(e.into()),
            },
            Reads::Leader => {
                let request = stream.raw_message_builder().sequence(sequence).next_by_subject(filter);
                match request.send().await {
                    Ok(message) => Ok(Some(message)),
                    Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
                    Err(e) => Err(e.into()),
                }
            }
        }
    }

    /// When the first message on `subject` of `kind`'s stream was stored, if any.
    pub async fn first_time(&self, kind: EntityKind, subject: &str) -> Option<SystemTime> {
        telemetry::jetstream_op(JetStreamOp::Read);
        let message = self
            .stream(kind)
            .direct_get_next_for_subject(subject, None)
            .await
            .ok()?;
        Some(SystemTime::from(message.time))
    }

    /// Decodes one record of a journal of `E`s.
    pub fn decode<E: Event>(record: &Record) -> Result<E, JournalError> {
        envelope::decode(Some(&record.message.headers), &record.message.payload).map_err(|e| JournalError::Corrupt {
            seq: record.seq,
            reason: e.to_string(),
        })
    }
}

impl Journal for NatsJournal {
    async fn load<E: Event>(&self, entity: &EntityRef, after_seq: u64) -> Result<Vec<Journaled<E>>, JournalError> {
        self.records(entity, after_seq)
            .await?
            .iter()
            .map(|r| {
                Ok(Journaled {
                    seq: r.seq,
                    event: Self::decode(r)?,
                })
            })
            .collect()
    }

    async fn append<E: Event>(
        &self,
        entity: &EntityRef,
        expected_last_seq: u64,
        event: &E,
        cause: &Cause,
    ) -> Result<Appended, JournalError> {
        let body = wire::encode(event).map_err(|e| JournalError::Corrupt {
            seq: 0,
            reason: e.to_string(),
        })?;
        let headers = envelope::append_headers(entity, event, expected_last_seq, cause);
        let subject = entity.subject(event.event_type());
        let unavailable = |e: async_nats::jetstream::context::PublishError| JournalError::Unavailable(e.to_string());
        telemetry::jetstream_op(JetStreamOp::Publish);
        let ack = self
            .js
            .publish_with_headers(subject, headers, body.into())
            .await
            .map_err(unavailable)?;
        match ack.await {
            Ok(ack) => {
                if ack.duplicate {
                    telemetry::duplicate_dropped(entity.kind);
                }
                Ok(Appended {
                    seq: ack.sequence,
                    duplicate: ack.duplicate,
                })
            }
            Err(e) if crate::bus::is_wrong_last_sequence(&e) => {
                telemetry::occ_conflict(entity.kind);
                Err(JournalError::Conflict)
            }
            // Settled in a moment, stored or refused: a race like a
            // conflict, won by reading the journal again after a pause.
            Err(e) if crate::bus::is_duplicate_in_process(&e) => {
                telemetry::occ_conflict(entity.kind);
                Err(JournalError::Conflict)
            }
            Err(e) => Err(unavailable(e)),
        }
    }
}
