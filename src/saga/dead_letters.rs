//! Dead letters are never silent: each one that belongs to an order puts a
//! plain `attention_required` event, with the reason, in that order's journal.

use std::sync::Arc;

use super::sharded::Done;
use actors::order::OrderCommand;
use async_nats::jetstream::message::Message;
use async_nats::jetstream::Context;
use schemas::headers as h;
use schemas::subjects::EntityRef;
use schemas::OrderId;

use super::Actors;
use crate::bus::envelope;
use crate::bus::inbox::{Failure, Handler};
use crate::dead_letters::Advisory;
use crate::telemetry;

/// Flags the order of each dead-lettered message.
pub struct AttentionRoute {
    js: Context,
    actors: Arc<Actors>,
}

impl AttentionRoute {
    /// Reads originals through `js` and records on `actors`' orders.
    pub fn new(js: Context, actors: Arc<Actors>) -> Self {
        Self { js, actors }
    }
}

impl Handler for AttentionRoute {
    async fn handle(&self, message: &Message) -> Result<(), Failure> {
        let advisory = Advisory::parse(&message.payload)
            .map_err(|e| Failure::Poison(format!("{}: not a dead-letter advisory: {e}", message.subject)))?;
        self.flag(&advisory).await?;
        // Counted once handled, so a retried advisory is not counted twice.
        telemetry::dead_letter_received(&advisory.consumer);
        Ok(())
    }
}

impl AttentionRoute {
    async fn flag(&self, advisory: &Advisory) -> Result<(), Failure> {
        let stream = self
            .js
            .get_stream_no_info(&advisory.stream)
            .await
            .map_err(|e| Failure::Transient(format!("stream {}: {e}", advisory.stream)))?;
        // The original may have aged out of its stream; then there is no
        // order to tell, and the advisory itself remains the record.
        let Ok(original) = stream.direct_get(advisory.stream_seq).await else {
            return Ok(());
        };
        let order_id = envelope::header(Some(&original.headers), h::ORDER_ID).and_then(|id| OrderId::parse(id).ok());
        let Some(order_id) = order_id else { return Ok(()) };
        let order = EntityRef::order(order_id);
        let command = OrderCommand::RecordDeadLetter {
            reason: advisory.explain(&original.subject),
            stream: advisory.stream.clone(),
            stream_seq: advisory.stream_seq,
            consumer: advisory.consumer.clone(),
        };
        let cause = envelope::cause_of(Some(&original.headers));
        match self.actors.orders.execute(&order, command, cause).await? {
            // Refused only for an order never placed (a stray Order-Id): nothing to flag.
            Done::Appended(..) | Done::Refused(_) => Ok(()),
        }
    }
}

/// Counts operator actions on dead letters into the metrics.
pub struct ActionCounter;

impl Handler for ActionCounter {
    async fn handle(&self, message: &Message) -> Result<(), Failure> {
        match message.subject.rsplit('.').next() {
            Some("replayed") => telemetry::dead_letter_replayed(),
            Some("discarded") => telemetry::dead_letter_discarded(),
            _ => {}
        }
        Ok(())
    }
}
