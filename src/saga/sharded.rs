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

use actors::journal::Cause;
use actors::shell::{Behavior, Directory, Executed, Seed, StepError};
use actors::Aggregate;
use async_nats::client::RequestErrorKind;
use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};
use schemas::subjects::{EntityKind, EntityRef};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::bus::journal::NatsJournal;
use crate::cluster::leases::Ownership;
use crate::cluster::partitions::Partition;
use crate::telemetry::{self, trace_context::TraceContext};
use tracing::Instrument;

/// The events of an executed input with where the entity then stands, or
/// why the entity refused it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Done<E, A> {
    /// Stored (none: it had been handled before), and the entity's answer.
    Appended(Vec<E>, A),
    /// The state machine refused, for this reason.
    Refused(String),
}

/// The events and answer an input to `B`'s entities brings.
pub type DoneBy<B> = Done<<<B as Behavior>::Aggregate as Aggregate>::Event, <B as Behavior>::Answer>;

/// An input sent to the partition's owner.
#[derive(Debug, Serialize, Deserialize)]
struct Forward<I, E> {
    entity: String,
    intent: I,
    cause: Cause,
    /// What the sender knows of a fresh entity.
    // `Seed::default`, not plain `default`, which would ask `E: Default`.
    #[serde(default = "Seed::default")]
    seed: Seed<E>,
}

/// The owner's answer.
#[derive(Debug, Serialize, Deserialize)]
enum Answer<E, A> {
    Done(Done<E, A>),
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
    /// How long an unanswered input waits before it is sent again (doubled each time).
    reask: Duration,
}

impl Router {
    /// Routes over `client`, waiting `timeout` for an owner's answer and
    /// sending an unanswered input again after `reask`, then twice as long.
    pub fn new(ownership: Arc<Ownership>, client: async_nats::Client, timeout: Duration, reask: Duration) -> Self {
        Self {
            ownership,
            client,
            timeout,
            reask,
        }
    }

    /// Asks `subject`'s listener (a partition's owner), asking again while
    /// no answer comes, and takes the first answer to any of the asks.
    ///
    /// Core NATS delivers at most once, and an owner that hands its
    /// partition over unsubscribes a moment before the other servers of a
    /// cluster learn of it: a request routed in that moment is dropped
    /// without a "no responders". Asking again is harmless, since the owner
    /// stores nothing twice (message IDs and optimistic concurrency).
    pub async fn ask(&self, subject: String, payload: Bytes) -> Result<async_nats::Message, RequestErrorKind> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let send = |payload: Bytes| {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let request = async_nats::Request::new().payload(payload).timeout(Some(left));
            self.client.send_request(subject.clone(), request)
        };
        let mut asks = FuturesUnordered::new();
        asks.push(send(payload.clone()));
        let mut wait = self.reask.max(Duration::from_millis(10));
        let mut next_ask = tokio::time::Instant::now() + wait;
        loop {
            tokio::select! {
                Some(answer) = asks.next() => match answer {
                    Ok(reply) => return Ok(reply),
                    Err(e) if e.kind() == RequestErrorKind::TimedOut && !asks.is_empty() => {}
                    Err(e) => return Err(e.kind()),
                },
                () = tokio::time::sleep_until(next_ask), if next_ask < deadline => {
                    telemetry::partitions::reasked();
                    asks.push(send(payload.clone()));
                    wait *= 2;
                    next_ask += wait;
                }
                () = tokio::time::sleep_until(deadline) => return Err(RequestErrorKind::TimedOut),
            }
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
    pub async fn execute(&self, entity: &EntityRef, intent: B::Intent, cause: Cause) -> Result<DoneBy<B>, StepError> {
        self.execute_seeded(entity, intent, cause, Seed::None).await
    }

    /// Like [`Sharded::execute`], telling a fresh actor what the caller
    /// knows of the entity (see [`Seed`]).
    pub async fn execute_seeded(
        &self,
        entity: &EntityRef,
        intent: B::Intent,
        cause: Cause,
        seed: Seed<<B::Aggregate as Aggregate>::Event>,
    ) -> Result<DoneBy<B>, StepError> {
        let partition = self.router.ownership.partition_of(&entity.id);
        if self.router.ownership.owns(partition) {
            telemetry::partitions::routed("local");
            return self.execute_here(entity, intent, cause, seed).await;
        }
        let request = Forward {
            entity: entity.id.clone(),
            intent,
            cause,
            seed,
        };
        let payload = rmp_serde::to_vec_named(&request)
            .map_err(|e| StepError::Permanent(format!("{entity}: input not encodable: {e}")))?;
        let reply = match self.router.ask(subject(partition, self.kind), payload.into()).await {
            Ok(reply) => reply,
            Err(RequestErrorKind::NoResponders) => {
                telemetry::partitions::routed("unowned");
                let Forward {
                    intent, cause, seed, ..
                } = request;
                return self.execute_here(entity, intent, cause, seed).await;
            }
            Err(RequestErrorKind::TimedOut) => {
                return Err(StepError::Transient(format!(
                    "{entity}: owner of partition {partition} did not answer in {:?}",
                    self.router.timeout
                )))
            }
            Err(kind) => {
                return Err(StepError::Transient(format!(
                    "{entity}: owner of partition {partition} unreachable: {kind:?}"
                )))
            }
        };
        telemetry::partitions::routed("forwarded");
        match rmp_serde::from_slice::<Answer<_, _>>(&reply.payload) {
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
        seed: Seed<<B::Aggregate as Aggregate>::Event>,
    ) -> Result<DoneBy<B>, StepError> {
        Ok(match self.local.execute(entity, intent, cause, seed).await? {
            (Executed::Appended(events), answer) => Done::Appended(events, answer),
            (Executed::Rejected(why), _) => Done::Refused(why.to_string()),
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
                seed,
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
                match self.execute_here(&entity, intent, cause, seed).instrument(span).await {
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
                let fallback: Answer<<B::Aggregate as Aggregate>::Event, B::Answer> =
                    Answer::Transient(format!("answer not encodable: {e}"));
                rmp_serde::to_vec_named(&fallback).unwrap_or_default().into()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actors::inventory::{Settlement, StockAnswer};
    use actors::journal::Journaled;
    use actors::notification::{Ending, NotifyIntent, Plan};
    use actors::order::{OrderCommand, StockReply};
    use actors::payment::Payment;
    use schemas::inventory::InventoryEvent;
    use schemas::notification::Channel;
    use schemas::order::{OrderEvent, Outcome};
    use schemas::payment::PaymentEvent;
    use schemas::{CustomerId, Money, OrderId, Quantity, Sku};

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
        let first = Seed::First(Journaled {
            seq: 7,
            event: OrderEvent::Completed {
                customer_id: CustomerId::parse("alice").expect("a customer"),
                reserved: None,
            },
        });
        let forward = |intent, seed| Forward {
            entity: order_id.to_string(),
            intent,
            cause: cause.clone(),
            seed,
        };
        for seed in [first, Seed::Empty, Seed::None] {
            let stock = forward(
                OrderCommand::RecordStock {
                    sku: sku.clone(),
                    reply: StockReply::Reserved { quantity },
                },
                seed,
            );
            let bytes = rmp_serde::to_vec_named(&stock).expect("encodes");
            let back: Forward<OrderCommand, OrderEvent> = rmp_serde::from_slice(&bytes).expect("decodes");
            assert_eq!(
                (back.entity, back.intent, back.cause, back.seed),
                (stock.entity, stock.intent, stock.cause, stock.seed)
            );
        }
        // A sender that says nothing of the entity sends no seed; it reads as none.
        #[derive(Serialize)]
        struct Unseeded<I> {
            entity: String,
            intent: I,
            cause: Cause,
        }
        let unseeded = Unseeded {
            entity: order_id.to_string(),
            intent: OrderCommand::Advance,
            cause: cause.clone(),
        };
        let bytes = rmp_serde::to_vec_named(&unseeded).expect("encodes");
        let back: Forward<OrderCommand, OrderEvent> = rmp_serde::from_slice(&bytes).expect("decodes");
        assert_eq!((back.intent, back.seed), (OrderCommand::Advance, Seed::None));
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
        let held = StockAnswer {
            settlement: Some(Settlement::Released(quantity)),
            available: 7,
        };
        round_trip(&Done::Appended(
            vec![InventoryEvent::Released {
                sku,
                order_id,
                quantity,
                available: 7,
            }],
            held,
        ));
        round_trip(&Done::<InventoryEvent, StockAnswer>::Refused(
            "order already exists".into(),
        ));
        let paid = Payment::Authorized {
            payment_id: "pay_1".into(),
            amount: Money {
                minor: 5,
                currency: Default::default(),
            },
        };
        round_trip(&Done::<PaymentEvent, Payment>::Appended(Vec::new(), paid));
    }
}
