//! What each inbox's messages ask of the saga driver.

use std::sync::Arc;
use std::time::SystemTime;

use actors::journal::Journaled;
use actors::order::OrderCommand;
use actors::shell::Seed;
use async_nats::jetstream::message::Message;
use schemas::headers as h;
use schemas::order::OrderEvent;
use schemas::subjects::EntityRef;
use schemas::timer::{self, ReservationExpiry};
use schemas::wire::{self, Event};
use schemas::OrderId;

use super::driver::{self, Driver};
use crate::bus::envelope;
use crate::bus::inbox::{Failure, Handler};
use crate::bus::topology::{self, Inbox};

/// Which input an inbox carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// `placed` and `cancel_requested`: the saga advances.
    OrderStarts,
    /// Fired reservation timers, to the saga.
    ReservationExpiries,
}

/// Every order inbox with the input it carries.
pub const ROUTES: [(Inbox, Input); 1] = [(topology::ORDER_STARTS, Input::OrderStarts)];

/// Hands one inbox's messages to the saga driver.
pub struct Route {
    input: Input,
    driver: Arc<Driver>,
}

impl Route {
    /// A route for `input`'s messages, driven by `driver`.
    pub fn new(input: Input, driver: Arc<Driver>) -> Self {
        Self { input, driver }
    }
}

/// Reads the entity and event of a delivered message; unreadable is poison.
fn read<E: Event>(message: &Message) -> Result<(EntityRef, E), Failure> {
    let (entity, _) = EntityRef::parse_subject(&message.subject)
        .ok_or_else(|| Failure::Poison(format!("subject {} names no entity", message.subject)))?;
    let event = envelope::decode(message.headers.as_ref(), &message.payload)
        .map_err(|e| Failure::Poison(format!("{}: {e}", message.subject)))?;
    Ok((entity, event))
}

/// Reads a fired reservation timer; unreadable, or naming another order
/// than its subject, is poison.
fn read_timer(message: &Message) -> Result<ReservationExpiry, Failure> {
    let poison = |why: String| Failure::Poison(format!("{}: {why}", message.subject));
    let subject_order = timer::order_of(&message.subject).ok_or_else(|| poison("names no order".into()))?;
    wire::parse_schema_version(envelope::header(message.headers.as_ref(), h::SCHEMA_VERSION))
        .map_err(|e| poison(e.to_string()))?;
    let expiry = ReservationExpiry::decode(&message.payload).map_err(|e| poison(e.to_string()))?;
    if expiry.order_id != subject_order {
        return Err(poison(format!("body names order {}", expiry.order_id)));
    }
    Ok(expiry)
}

fn order_id(entity: &EntityRef) -> Result<OrderId, Failure> {
    OrderId::parse(&entity.id).map_err(|_| Failure::Poison(format!("{entity}: not an order id")))
}

impl Handler for Route {
    async fn handle(&self, message: &Message) -> Result<(), Failure> {
        let cause = envelope::cause_of(message.headers.as_ref());
        let info = message.info().ok();
        let stored_at = info
            .as_ref()
            .map(|i| SystemTime::from(i.published))
            .unwrap_or_else(SystemTime::now);
        let input = match self.input {
            Input::OrderStarts => {
                let (entity, event) = read::<OrderEvent>(message)?;
                let order_id = order_id(&entity)?;
                if let (OrderEvent::Placed { .. }, Some(_)) = (&event, &info) {
                    self.driver.placed_at(order_id, stored_at);
                }
                // The order's first event (a `placed`, but not a replayed
                // copy): with its sequence, all a new order actor needs.
                let seed = match info.filter(|_| envelope::stored_as_first(message.headers.as_ref(), &entity)) {
                    Some(info) => Seed::First(Journaled {
                        seq: info.stream_sequence,
                        event,
                    }),
                    None => Seed::None,
                };
                driver::Input {
                    order_id,
                    command: OrderCommand::Advance,
                    seed,
                    cause,
                    stored_at,
                }
            }
            Input::ReservationExpiries => {
                let expiry = read_timer(message)?;
                tracing::info!(order_id = %expiry.order_id, sku = %expiry.sku, "reservation timer fired");
                driver::Input {
                    order_id: expiry.order_id,
                    command: OrderCommand::ExpireReservation {
                        ttl: expiry.ttl(),
                        sku: expiry.sku,
                    },
                    seed: Seed::None,
                    cause,
                    stored_at,
                }
            }
        };
        self.driver.drive(input).await
    }
}
