//! The journal on JetStream: an entity's events are the messages on
//! `<space>.<id>.*`; appends are publishes guarded by the expected last
//! subject sequence; replay is direct get, one message after another.

use std::time::SystemTime;

use actors::journal::{Appended, Cause, Journal, JournalError, Journaled};
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::StreamMessage;
use async_nats::jetstream::stream::{DirectGetErrorKind, Stream};
use async_nats::jetstream::Context;
use schemas::subjects::{EntityKind, EntityRef};
use schemas::wire::{self, Event};

use super::envelope;

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

/// The journal of every entity kind, on one JetStream context.
#[derive(Clone)]
pub struct NatsJournal {
    js: Context,
    /// One per kind, in `EntityKind::ALL` order.
    streams: Vec<Stream<()>>,
}

impl NatsJournal {
    /// Binds to the four entity streams (which `topology::ensure` created).
    pub async fn open(js: Context) -> Result<Self, JournalError> {
        let mut streams = Vec::new();
        for kind in EntityKind::ALL {
            let stream = js
                .get_stream_no_info(kind.stream())
                .await
                .map_err(|e| JournalError::Unavailable(format!("stream {}: {e}", kind.stream())))?;
            streams.push(stream);
        }
        Ok(Self { js, streams })
    }

    fn stream(&self, kind: EntityKind) -> &Stream<()> {
        // `open` bound every kind in declaration order.
        &self.streams[kind as usize]
    }

    /// Every message of `entity` after `after_seq`, undecoded.
    pub async fn records(&self, entity: &EntityRef, after_seq: u64) -> Result<Vec<Record>, JournalError> {
        let stream = self.stream(entity.kind);
        let filter = entity.journal_filter();
        let mut records = Vec::new();
        let mut next = after_seq + 1;
        loop {
            match stream.direct_get_next_for_subject(filter.as_str(), Some(next)).await {
                Ok(message) => {
                    next = message.sequence + 1;
                    records.push(Record {
                        seq: message.sequence,
                        subject: message.subject.to_string(),
                        time: SystemTime::from(message.time),
                        message,
                    });
                }
                Err(e) if e.kind() == DirectGetErrorKind::NotFound => return Ok(records),
                Err(e) => return Err(JournalError::Unavailable(format!("reading {filter}: {e}"))),
            }
        }
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
        let ack = self
            .js
            .publish_with_headers(subject, headers, body.into())
            .await
            .map_err(unavailable)?;
        match ack.await {
            Ok(ack) => Ok(Appended {
                seq: ack.sequence,
                duplicate: ack.duplicate,
            }),
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => Err(JournalError::Conflict),
            Err(e) => Err(unavailable(e)),
        }
    }
}
