//! A durable pull consumer feeding actors: many messages in flight across
//! entities, each acked only after the events it caused are stored.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::message::{AckKind, Message};
use async_nats::jetstream::Context;
use backon::{ExponentialBuilder, Retryable};
use futures::StreamExt;
use tokio::sync::{watch, Semaphore};

use crate::bus::envelope;
use crate::config::ConsumerConfig;
use crate::telemetry::{self, trace_context};
use schemas::headers as h;
use tracing::Instrument;

/// What became of one message, and so how it is acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// Retry later: nak with a delay (a plain nak would redeliver at once).
    #[error("transient: {0}")]
    Transient(String),
    /// Never retry: terminate, so the server's advisory dead-letters it.
    #[error("poison: {0}")]
    Poison(String),
    /// Not now, by design (an outside party is known to be down): ask again after `retry_in`.
    #[error("waiting: {reason}")]
    Wait { reason: String, retry_in: Duration },
    /// The entity refused the input: poison, but believed only from the
    /// [`REFUSAL_BELIEVED_AT`]-th delivery on. In a cluster a consumer on a
    /// follower can deliver a message before the stream leader (which
    /// journal reads ask) has stored it, so the first refusal may come from
    /// a journal read that trails the input in hand.
    #[error("refused: {0}")]
    Refused(String),
}

/// The delivery from which a refusal is believed and dead-lettered.
pub const REFUSAL_BELIEVED_AT: i64 = 3;

impl From<actors::shell::StepError> for Failure {
    fn from(e: actors::shell::StepError) -> Self {
        match e {
            actors::shell::StepError::Transient(m) => Self::Transient(m),
            actors::shell::StepError::Permanent(m) => Self::Poison(m),
        }
    }
}

/// Handles one delivered message; must be idempotent, since any message may come twice.
pub trait Handler: Send + Sync + 'static {
    /// Does what the message asks, returning once its effects are stored.
    fn handle(&self, message: &Message) -> impl Future<Output = Result<(), Failure>> + Send;
}

/// Consumes the durable consumer `durable` of `stream` until `stop` turns true,
/// then waits for messages in flight.
pub async fn run<H: Handler>(
    js: Context,
    stream: &'static str,
    durable: &'static str,
    handler: Arc<H>,
    config: ConsumerConfig,
    mut stop: watch::Receiver<bool>,
) {
    let in_flight = Arc::new(Semaphore::new(config.max_in_flight.max(1)));
    'consume: while !*stop.borrow() {
        let bind = || async { js.get_consumer_from_stream::<_, _, _>(durable, stream).await };
        let consumer: PullConsumer = match bind
            .retry(
                ExponentialBuilder::default()
                    .with_max_delay(Duration::from_secs(5))
                    .with_max_times(10),
            )
            .notify(|e, wait| tracing::warn!(consumer = durable, stream, error = %e, ?wait, "binding consumer"))
            .await
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(consumer = durable, stream, error = %e, "consumer unavailable; trying again");
                continue;
            }
        };
        // Heartbeats detect a pull that went quiet after a reconnect; the
        // stream then errors and the loop re-creates it.
        let messages = consumer
            .stream()
            .max_messages_per_batch(config.max_in_flight.clamp(1, 256))
            .heartbeat(Duration::from_secs(5))
            .messages()
            .await;
        let mut messages = match messages {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(consumer = durable, stream, error = %e, "could not start pulling; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        loop {
            let next = tokio::select! {
                next = messages.next() => next,
                _ = stop.changed() => break 'consume,
            };
            match next {
                Some(Ok(message)) => {
                    telemetry::jetstream_op(telemetry::JetStreamOp::Deliver);
                    let Ok(permit) = in_flight.clone().acquire_owned().await else {
                        break 'consume;
                    };
                    let handler = handler.clone();
                    let (delivered, published) = match message.info() {
                        Ok(info) => (info.delivered, Some(info.published)),
                        Err(_) => (1, None),
                    };
                    let retry_delay = config.retry_delay(delivered);
                    let progress_every = config.progress_every();
                    let span = input_span(durable, &message);
                    tokio::spawn(
                        async move {
                            let outcome = match handle_in_progress(&*handler, &message, progress_every).await {
                                Err(Failure::Refused(why)) if delivered >= REFUSAL_BELIEVED_AT => {
                                    Err(Failure::Poison(why))
                                }
                                outcome => outcome,
                            };
                            if outcome.is_ok() {
                                if let Some(published) = published {
                                    telemetry::step_done(durable, published);
                                }
                            }
                            settle(durable, &message, outcome, retry_delay).await;
                            drop(permit);
                        }
                        .instrument(span),
                    );
                }
                Some(Err(e)) => {
                    tracing::warn!(consumer = durable, stream, error = %e, "pull interrupted; re-creating it");
                    continue 'consume;
                }
                None => continue 'consume,
            }
        }
    }
    // Let every message in flight finish and be acked before returning.
    let _ = in_flight.acquire_many(config.max_in_flight.max(1) as u32).await;
}

/// The longest an input is kept from redelivery by in-progress acks: a
/// handler stuck past it is given a twin (harmless: appends are checked).
const LONGEST_IN_PROGRESS: Duration = Duration::from_secs(300);

/// Handles `message`, telling the server every `every` that it is still
/// being worked on: one input drives a whole saga (a slow payment provider,
/// a mail server), which must not be redelivered to a twin meanwhile; but
/// only for [`LONGEST_IN_PROGRESS`], so a stuck handler cannot hold its
/// input for ever.
async fn handle_in_progress<H: Handler>(handler: &H, message: &Message, every: Duration) -> Result<(), Failure> {
    let handled = handler.handle(message);
    tokio::pin!(handled);
    let give_up = tokio::time::Instant::now() + LONGEST_IN_PROGRESS;
    loop {
        tokio::select! {
            outcome = &mut handled => return outcome,
            () = tokio::time::sleep(every), if tokio::time::Instant::now() < give_up => {
                telemetry::jetstream_op(telemetry::JetStreamOp::Ack);
                if let Err(e) = message.ack_with(AckKind::Progress).await {
                    tracing::debug!(error = %e, "progress not told; the input may be redelivered");
                }
            }
        }
    }
}

/// The span every line logged while handling `message` is in: which
/// consumer, which subject, and the order and trace it belongs to.
fn input_span(consumer: &'static str, message: &Message) -> tracing::Span {
    let headers = message.headers.as_ref();
    let trace = envelope::header(headers, h::TRACEPARENT).and_then(trace_context::TraceContext::parse);
    let span = tracing::info_span!(
        "input",
        consumer,
        subject = %message.subject,
        order_id = envelope::header(headers, h::ORDER_ID),
        trace_id = trace.map(|t| t.trace_id()),
    );
    if let Some(trace) = &trace {
        telemetry::otlp::adopt(&span, trace);
    }
    span
}

/// Terminates with `+TERM <reason>`, so the server's MSG_TERMINATED advisory
/// (and so the dead letter) says why. async-nats has no API for the reason.
async fn terminate_with_reason(message: &Message, reason: &str) -> bool {
    let Some(reply) = message.reply.clone() else {
        return false;
    };
    let reason: String = reason
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_TERM_REASON)
        .collect();
    message
        .context
        .client()
        .publish(reply, format!("+TERM {reason}").into())
        .await
        .is_ok()
}

/// The longest termination reason sent; advisories carry it verbatim.
const MAX_TERM_REASON: usize = 512;

async fn settle(consumer: &'static str, message: &Message, outcome: Result<(), Failure>, retry_delay: Duration) {
    telemetry::jetstream_op(telemetry::JetStreamOp::Ack);
    let kind = match &outcome {
        Ok(()) => {
            telemetry::inbox_settled(consumer, "ack");
            AckKind::Ack
        }
        Err(Failure::Transient(reason)) => {
            tracing::info!(consumer, subject = %message.subject, %reason, "retrying later");
            telemetry::inbox_settled(consumer, "nak");
            AckKind::Nak(Some(retry_delay))
        }
        Err(Failure::Refused(reason)) => {
            tracing::info!(consumer, subject = %message.subject, %reason, "refused; asking again before believing it");
            telemetry::inbox_settled(consumer, "nak");
            AckKind::Nak(Some(retry_delay))
        }
        Err(Failure::Wait { reason, retry_in }) => {
            tracing::debug!(consumer, subject = %message.subject, %reason, ?retry_in, "waiting");
            telemetry::inbox_settled(consumer, "wait");
            AckKind::Nak(Some(*retry_in))
        }
        Err(Failure::Poison(reason)) => {
            tracing::error!(consumer, subject = %message.subject, %reason, "terminating poison message");
            telemetry::inbox_settled(consumer, "term");
            if terminate_with_reason(message, reason).await {
                return;
            }
            AckKind::Term
        }
    };
    // A lost ack means one more delivery, which message ids and OCC make harmless.
    if let Err(e) = message.ack_with(kind).await {
        tracing::warn!(consumer, subject = %message.subject, error = %e, "ack not sent; the message will be redelivered");
    }
}
