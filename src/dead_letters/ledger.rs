//! What operators did with dead letters, in the DEAD_LETTER_ACTIONS stream:
//! one record per dead letter, appended under optimistic concurrency so two
//! operators cannot both handle it, and never deleted (the trace).

use async_nats::header::HeaderMap;
use async_nats::jetstream::stream::DirectGetErrorKind;
use async_nats::jetstream::Context;
use schemas::headers as h;
use serde::{Deserialize, Serialize};

use super::DeadLetterError;

/// The stream of operator actions on dead letters.
pub const DEAD_LETTER_ACTIONS: &str = "DEAD_LETTER_ACTIONS";

/// Its subjects: `dead_letters.<id>.<replayed|discarded>`.
pub const ACTION_SUBJECTS: &str = "dead_letters.*.*";

/// What has been done with one dead letter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Handling {
    /// Waiting for an operator.
    Open,
    /// Published again for processing.
    Replayed {
        /// When (RFC 3339).
        at: String,
        /// Who asked.
        by: String,
        /// Where the copy went.
        subject: String,
        /// The copy's sequence in its stream.
        replay_seq: u64,
        /// The copy's `Nats-Msg-Id`.
        message_id: String,
        /// True when an earlier, interrupted attempt had already stored the copy.
        #[serde(default)]
        duplicate: bool,
    },
    /// Set aside on purpose.
    Discarded {
        /// When (RFC 3339).
        at: String,
        /// Who decided.
        by: String,
        /// Why.
        reason: String,
    },
}

impl Handling {
    /// `open`, `replayed` or `discarded`.
    pub fn state(&self) -> &'static str {
        match self {
            Handling::Open => "open",
            Handling::Replayed { .. } => "replayed",
            Handling::Discarded { .. } => "discarded",
        }
    }
}

fn subject_filter(id: u64) -> String {
    format!("dead_letters.{id}.*")
}

/// The recorded handling of dead letter `id`; `Open` when none is.
pub async fn handling(js: &Context, id: u64) -> Result<Handling, DeadLetterError> {
    let stream = js
        .get_stream_no_info(DEAD_LETTER_ACTIONS)
        .await
        .map_err(|e| DeadLetterError::Nats(format!("stream {DEAD_LETTER_ACTIONS}: {e}")))?;
    match stream.direct_get_next_for_subject(subject_filter(id), None).await {
        Ok(record) => serde_json::from_slice(&record.payload)
            .map_err(|e| DeadLetterError::Nats(format!("action record of dead letter {id}: {e}"))),
        Err(e) if e.kind() == DirectGetErrorKind::NotFound => Ok(Handling::Open),
        Err(e) => Err(DeadLetterError::Nats(format!(
            "reading actions of dead letter {id}: {e}"
        ))),
    }
}

/// Records `handling` for dead letter `id`, unless something already is.
pub async fn record(js: &Context, id: u64, handling: &Handling) -> Result<(), DeadLetterError> {
    let body = serde_json::to_vec(handling).map_err(|e| DeadLetterError::Nats(e.to_string()))?;
    let mut headers = HeaderMap::new();
    headers.insert(
        h::NATS_MSG_ID,
        format!("dead_letters:{id}:{}", handling.state()).as_str(),
    );
    // "No record yet" as an optimistic-concurrency check: of two operators
    // acting at once, exactly one is recorded.
    headers.insert(h::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE, "0");
    headers.insert(
        h::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE_SUBJECT,
        subject_filter(id).as_str(),
    );
    headers.insert(h::CONTENT_TYPE, "application/json");
    let subject = format!("dead_letters.{id}.{}", handling.state());
    let stored = async { js.publish_with_headers(subject, headers, body.into()).await?.await };
    match stored.await {
        Ok(_) => Ok(()),
        Err(e) if crate::bus::is_wrong_last_sequence(&e) => Err(DeadLetterError::AlreadyHandled {
            id,
            handling: Box::new(self::handling(js, id).await?),
        }),
        Err(e) => Err(DeadLetterError::Nats(format!("recording dead letter {id}: {e}"))),
    }
}
