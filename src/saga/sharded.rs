//! Inputs executed on the node that owns the entity's partition.
//!
//! Every node pulls from every inbox, so a message may arrive anywhere. The
//! node that gets it asks the partition's owner to execute it there, over a
//! NATS request to `orderflow.partitions.<p>.<kind>`, and acks the message
//! only when the owner answered that the events are stored (invariant 4
//! holds across the hop: a lost answer is a redelivery). So each entity's
//! actor lives on one node, and a hot SKU's reservations queue on one
//! actor instead of racing on three.
//!
//! Nobody answering (no owner: a lease between nodes, or a node alone that
//! has not taken its leases yet) means the input is executed here; a double
//! owner is harmless, since appends carry optimistic-concurrency checks.

use std::sync::Arc;
use std::time::Duration;

use actors::journal::{Cause, Journaled};
use actors::shell::{Behavior, Directory, Executed, StepError};
use actors::Aggregate;
use async_nats::client::RequestErrorKind;
use bytes::Bytes;
use schemas::subjects::{EntityKind, EntityRef};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::bus::journal::NatsJournal;
use crate::cluster::leases::Ownership;
use crate::cluster::partitions::Partition;
use crate::telemetry::{self, trace_context::TraceContext};
use tracing::Instrument;

/// The events of an executed input, or why the entity refused it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Done<E> {
    /// Stored (none: it had been handled before).
    Appended(Vec<E>),
    /// The state machine refused, for this reason.
    Refused(String),
}

/// An input sent to the partition's owner.
#[derive(Debug, Serialize, Deserialize)]
struct Forward<I, E> {
    entity: String,
    intent: I,
    cause: Cause,
    /// The entity's first event, when the sender held it; absent from
    /// nodes that predate it.
    // `Option::default`, not plain `default`, which would ask `E: Default`.
    #[serde(default = "Option::default")]
    first: Option<Journaled<E>>,
}

/// The owner's answer.
#[derive(Debug, Serialize, Deserialize)]
enum Answer<E> {
    Done(Done<E>),
    Transient(String),
    Permanent(String),
    /// The request itself was unreadable (another version?): never retried.
    Unreadable(String),
}

/// The subject the owner of `partition` hears `kind`'s inputs on.
pub fn subject(partition: Partition, kind: EntityKind) -> String {
    format!("{PREFIX}.{partition}.{}", kind.space())
}

/// Where forwarded inputs go: `orderflow.partitions.<p>.<space>`.
pub const PREFIX: &str = "orderflow.partitions";

/// Where inputs go: this node's ownership and the connection to the others.
#[derive(Debug, Clone)]
pub struct Router {
    /// The partitions this node owns.
    pub ownership: Arc<Ownership>,
    client: async_nats::Client,
    /// How long to wait for the owner's answer.
    timeout: Duration,
}

impl Router {
    /// Routes over `client`, waiting `timeout` for an owner's answer.
    pub fn new(ownership: Arc<Ownership>, client: async_nats::Client, timeout: Duration) -> Self {
        Self {
            ownership,
            client,
            timeout,
        }
    }
}

/// One kind's actors, reached through the partition owner.
pub struct Sharded<B: Behavior> {
    kind: EntityKind,
    local: Directory<B, NatsJournal>,
    router: Router,
}

impl<B> Sharded<B>
where
    B: Behavior,
    B::Intent: Serialize + DeserializeOwned,
{
    /// `local` executes what this node owns.
    pub fn new(kind: EntityKind, local: Directory<B, NatsJournal>, router: Router) -> Self {
        Self { kind, local, router }
    }

    /// This node's own actors of the kind.
    pub fn local(&self) -> &Directory<B, NatsJournal> {
        &self.local
    }

    /// Executes `intent` on `entity`'s actor, wherever it lives, and waits
    /// until its events are stored.
    pub async fn execute(
        &self,
        entity: &EntityRef,
        intent: B::Intent,
        cause: Cause,
    ) -> Result<Done<<B::Aggregate as Aggregate>::Event>, StepError> {
        self.execute_after(entity, intent, cause, None).await
    }

    /// Like [`Sharded::execute`], handing over the entity's `first` event
    /// (see [`actors::shell::Cached::seed_first`]).
    pub async fn execute_after(
        &self,
        entity: &EntityRef,
        intent: B::Intent,
        cause: Cause,
        first: Option<Journaled<<B::Aggregate as Aggregate>::Event>>,
    ) -> Result<Done<<B::Aggregate as Aggregate>::Event>, StepError> {
        let partition = self.router.ownership.partition_of(&entity.id);
        if self.router.ownership.owns(partition) {
            telemetry::partitions::routed("local");
            return self.execute_here(entity, intent, cause, first).await;
        }
        let request = Forward {
            entity: entity.id.clone(),
            intent,
            cause,
            first,
        };
        let payload = rmp_serde::to_vec_named(&request)
            .map_err(|e| StepError::Permanent(format!("{entity}: input not encodable: {e}")))?;
        let asked = self
            .router
            .client
            .request(subject(partition, self.kind), payload.into());
        let reply = match tokio::time::timeout(self.router.timeout, asked).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(e)) if e.kind() == RequestErrorKind::NoResponders => {
                telemetry::partitions::routed("unowned");
                let Forward {
                    intent, cause, first, ..
                } = request;
                return self.execute_here(entity, intent, cause, first).await;
            }
            Ok(Err(e)) => {
                return Err(StepError::Transient(format!(
                    "{entity}: owner of partition {partition} unreachable: {e}"
                )))
            }
            Err(_) => {
                return Err(StepError::Transient(format!(
                    "{entity}: owner of partition {partition} did not answer in {:?}",
                    self.router.timeout
                )))
            }
        };
        telemetry::partitions::routed("forwarded");
        match rmp_serde::from_slice::<Answer<_>>(&reply.payload) {
            Ok(Answer::Done(done)) => Ok(done),
            Ok(Answer::Transient(why)) => Err(StepError::Transient(why)),
            Ok(Answer::Permanent(why)) => Err(StepError::Permanent(why)),
            Ok(Answer::Unreadable(why)) => Err(StepError::Permanent(format!(
                "{entity}: the owner of partition {partition} could not read the input: {why}"
            ))),
            Err(e) => Err(StepError::Transient(format!(
                "{entity}: unreadable answer from the owner of partition {partition}: {e}"
            ))),
        }
    }

    /// Executes on this node's actor.
    async fn execute_here(
        &self,
        entity: &EntityRef,
        intent: B::Intent,
        cause: Cause,
        first: Option<Journaled<<B::Aggregate as Aggregate>::Event>>,
    ) -> Result<Done<<B::Aggregate as Aggregate>::Event>, StepError> {
        Ok(match self.local.execute(entity, intent, cause, first).await? {
            Executed::Appended(events) => Done::Appended(events),
            Executed::Rejected(why) => Done::Refused(why.to_string()),
        })
    }

    /// Answers one forwarded input (this node owns its partition, or did
    /// when it was sent: executing it anyway is harmless).
    pub async fn answer(&self, request: &[u8]) -> Bytes {
        let answer = match rmp_serde::from_slice::<Forward<B::Intent, <B::Aggregate as Aggregate>::Event>>(request) {
            Ok(Forward {
                entity,
                intent,
                cause,
                first,
            }) => {
                let entity = EntityRef {
                    kind: self.kind,
                    id: entity,
                };
                // The sender's input span is on another node: this one
                // names the entity and joins the input's trace.
                let span = tracing::info_span!("forwarded", %entity);
                if let Some(trace) = cause.traceparent.as_deref().and_then(TraceContext::parse) {
                    telemetry::otlp::adopt(&span, &trace);
                }
                match self.execute_here(&entity, intent, cause, first).instrument(span).await {
                    Ok(done) => Answer::Done(done),
                    Err(StepError::Transient(why)) => Answer::Transient(why),
                    Err(StepError::Permanent(why)) => Answer::Permanent(why),
                }
            }
            Err(e) => Answer::Unreadable(e.to_string()),
        };
        match rmp_serde::to_vec_named(&answer) {
            Ok(bytes) => bytes.into(),
            Err(e) => {
                let fallback: Answer<<B::Aggregate as Aggregate>::Event> =
                    Answer::Transient(format!("answer not encodable: {e}"));
                rmp_serde::to_vec_named(&fallback).unwrap_or_default().into()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actors::notification::{Ending, NotifyIntent, Plan};
    use actors::order::{OrderCommand, StockReply};
    use schemas::inventory::InventoryEvent;
    use schemas::notification::Channel;
    use schemas::order::{OrderEvent, Outcome};
    use schemas::{CustomerId, OrderId, Quantity, Sku};

    fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(value: &T) {
        let bytes = rmp_serde::to_vec_named(value).expect("encodes");
        let back: T = rmp_serde::from_slice(&bytes).expect("decodes");
        assert_eq!(&back, value);
    }

    #[test]
    fn forwarded_inputs_and_answers_survive_the_wire() {
        let order_id = OrderId::parse("9a6f3f4e-8a3b-4d2c-9e1f-0b7c2d4e6f80").expect("an order id");
        let sku = Sku::parse("SKU-1").expect("a sku");
        let quantity = Quantity::new(2).expect("a quantity");
        let cause = Cause {
            message_id: Some("orders.x.placed".into()),
            traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
        };
        let first = Journaled {
            seq: 7,
            event: OrderEvent::Completed {
                customer_id: CustomerId::parse("alice").expect("a customer"),
            },
        };
        let forward = |intent| Forward {
            entity: order_id.to_string(),
            intent,
            cause: cause.clone(),
            first: Some(first.clone()),
        };
        let stock = forward(OrderCommand::RecordStock {
            sku: sku.clone(),
            reply: StockReply::Reserved { quantity },
        });
        let bytes = rmp_serde::to_vec_named(&stock).expect("encodes");
        let back: Forward<OrderCommand, OrderEvent> = rmp_serde::from_slice(&bytes).expect("decodes");
        assert_eq!(
            (back.entity, back.intent, back.cause, back.first),
            (stock.entity, stock.intent, stock.cause, stock.first)
        );
        // A node that predates `first` sends none; it reads as "not held".
        #[derive(Serialize)]
        struct Older<I> {
            entity: String,
            intent: I,
            cause: Cause,
        }
        let older = Older {
            entity: order_id.to_string(),
            intent: OrderCommand::Advance,
            cause: cause.clone(),
        };
        let bytes = rmp_serde::to_vec_named(&older).expect("encodes");
        let back: Forward<OrderCommand, OrderEvent> = rmp_serde::from_slice(&bytes).expect("decodes");
        assert_eq!((back.intent, back.first), (OrderCommand::Advance, None));
        round_trip(&NotifyIntent::Advance {
            ending: Ending {
                order_id,
                customer_id: CustomerId::parse("alice").expect("a customer"),
                outcome: Outcome::Completed,
                reason: None,
            },
            plan: Plan {
                opted_out: false,
                chain: vec![(Channel::Email, Some("alice@example.com".into())), (Channel::Log, None)],
            },
        });
        round_trip(&Done::Appended(vec![InventoryEvent::Released {
            sku,
            order_id,
            quantity,
            available: 7,
        }]));
        round_trip(&Done::<InventoryEvent>::Refused("order already exists".into()));
    }
}
