//! One pass over one stream: an ordered pull consumer from the first message
//! to the last sequence captured at start, copies folded, bodies decoded.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::{Duration, SystemTime};

use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use futures::StreamExt;
use schemas::headers as h;
use schemas::subjects::{EntityKind, EntityRef};
use schemas::wire::Event;

use super::report::{StreamReport, Unreadable};
use super::AuditError;
use crate::bus::envelope;

/// The ordered consumer heartbeats every few seconds, so this much silence
/// while messages are still due means the server stopped answering.
const IDLE_LIMIT: Duration = Duration::from_secs(30);

/// Where a decoded event was stored.
#[derive(Debug, Clone, Copy)]
pub(super) struct Meta<'a> {
    /// Its stream sequence.
    pub seq: u64,
    /// The subject's entity token (order id or SKU).
    pub entity: &'a str,
    /// When the server stored it.
    pub published: SystemTime,
}

/// Reads every message of `kind`'s stream up to its last sequence at start
/// and hands each logical event to `visit`; `visit` refuses (with a reason)
/// events it cannot place, which are then reported as unreadable.
pub(super) async fn scan<E, F>(
    js: &async_nats::jetstream::Context,
    kind: EntityKind,
    examples: usize,
    mut visit: F,
) -> Result<StreamReport, AuditError>
where
    E: Event,
    F: FnMut(Meta<'_>, E) -> Result<(), String>,
{
    let name = kind.stream();
    let mut stream = js
        .get_stream(name)
        .await
        .map_err(|source| AuditError::Stream { stream: name, source })?;
    // Captured first: the pass ends here even if writers keep appending.
    let state = stream
        .info()
        .await
        .map_err(|source| AuditError::Info { stream: name, source })?
        .state
        .clone();
    let mut report = StreamReport {
        stream: name.to_owned(),
        last_sequence: state.last_sequence,
        ..StreamReport::default()
    };
    if state.messages == 0 {
        return Ok(report);
    }
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            deliver_policy: DeliverPolicy::All,
            description: Some("orderflow audit".to_owned()),
            ..Default::default()
        })
        .await
        .map_err(|source| AuditError::Consumer { stream: name, source })?;
    if consumer.cached_info().num_pending == 0 {
        return Ok(report);
    }
    let mut messages = consumer
        .messages()
        .await
        .map_err(|source| AuditError::Open { stream: name, source })?;
    let mut seen: HashSet<u128> = HashSet::new();
    let mut at = 0;
    loop {
        let next = tokio::time::timeout(IDLE_LIMIT, messages.next())
            .await
            .map_err(|_| AuditError::Stalled {
                stream: name,
                idle: IDLE_LIMIT,
                at,
                last: state.last_sequence,
            })?;
        let Some(message) = next else { break };
        let message = message.map_err(|source| AuditError::Read { stream: name, source })?;
        let info = message.info().map_err(|e| AuditError::Metadata {
            stream: name,
            reason: e.to_string(),
        })?;
        let (seq, pending, published) = (info.stream_sequence, info.pending, SystemTime::from(info.published));
        at = seq;
        if seq > state.last_sequence {
            break;
        }
        report.messages += 1;
        let headers = message.headers.as_ref();
        let fresh = match envelope::header(headers, h::NATS_MSG_ID) {
            // A dead letter's replay (`<id>:replay:<n>`) is a copy of its original.
            Some(id) => seen.insert(fingerprint(&message.subject, replayed_from(id))),
            None => true,
        };
        if fresh {
            if let Err(reason) = read_one::<E, F>(kind, &message, seq, published, &mut visit) {
                report.unreadable += 1;
                if report.unreadable_examples.len() < examples {
                    report.unreadable_examples.push(Unreadable {
                        seq,
                        subject: message.subject.to_string(),
                        reason,
                    });
                }
            }
        } else {
            report.republished_copies += 1;
        }
        // pending == 0 also ends the pass when the last captured message was
        // removed (max_age) before the consumer reached it.
        if seq >= state.last_sequence || pending == 0 {
            break;
        }
    }
    Ok(report)
}

/// The message id a replayed dead letter's copy was made from (itself if none).
fn replayed_from(message_id: &str) -> &str {
    message_id.split(":replay:").next().unwrap_or(message_id)
}

/// Checks the subject and decodes the body of one logical event.
fn read_one<E, F>(
    kind: EntityKind,
    message: &async_nats::jetstream::Message,
    seq: u64,
    published: SystemTime,
    visit: &mut F,
) -> Result<(), String>
where
    E: Event,
    F: FnMut(Meta<'_>, E) -> Result<(), String>,
{
    let (entity, event_type) = EntityRef::parse_subject(&message.subject)
        .filter(|(e, _)| e.kind == kind)
        .ok_or_else(|| "subject is not <space>.<id>.<event_type>".to_owned())?;
    let event: E = envelope::decode(message.headers.as_ref(), &message.payload).map_err(|e| e.to_string())?;
    if event.event_type() != event_type {
        return Err(format!(
            "body is a {} event under a {event_type} subject",
            event.event_type()
        ));
    }
    visit(
        Meta {
            seq,
            entity: &entity.id,
            published,
        },
        event,
    )
}

/// A 128-bit digest of `(subject, Nats-Msg-Id)`: two messages are copies of
/// one logical event when these match, and keeping digests instead of the
/// strings keeps the set small on large journals.
fn fingerprint(subject: &str, msg_id: &str) -> u128 {
    let half = |salt: u8| {
        let mut hasher = DefaultHasher::new();
        salt.hash(&mut hasher);
        subject.hash(&mut hasher);
        msg_id.hash(&mut hasher);
        hasher.finish()
    };
    (u128::from(half(0)) << 64) | u128::from(half(1))
}
