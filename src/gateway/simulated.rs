//! The simulated payment provider: deterministic rules, so tests and demos
//! can choose an outcome, and idempotent by construction, like a real one.

use std::collections::HashMap;
use std::sync::Mutex;

use actors::payment::{ChargeResult, Gateway, GatewayError};
use schemas::{Money, OrderId};

use crate::config::GatewayConfig;

/// The documented test token that every charge declines.
pub const DECLINING_TOKEN: &str = "tok_decline";

/// The documented test token whose first [`FLAKY_FAILURES`] charges per
/// order fail as if the provider were down, and whose next one succeeds.
pub const FLAKY_TOKEN: &str = "tok_flaky";

/// How many charges of a [`FLAKY_TOKEN`] order fail before one succeeds.
pub const FLAKY_FAILURES: u32 = 2;

/// The documented test token whose charges never get an answer: the gateway
/// is "down" for it, so the step fails transiently until it is dead-lettered.
pub const UNAVAILABLE_TOKEN: &str = "tok_unavailable";

/// A provider that answers from rules instead of a bank.
///
/// - a charge with [`DECLINING_TOKEN`] is declined ("card declined");
/// - during an outage drill (`gateway.outage`), every charge fails as if the provider were down;
/// - a charge with [`UNAVAILABLE_TOKEN`] fails as if the provider were down;
/// - a charge with [`FLAKY_TOKEN`] fails twice per order (counted in this
///   process), then succeeds;
/// - a charge above `decline_above` minor units is declined ("amount over limit");
/// - anything else is approved.
///
/// Payment and refund ids derive from the order id (the idempotency key),
/// so repeating a call returns the same answer, across restarts too.
#[derive(Debug)]
pub struct SimulatedGateway {
    decline_above: u64,
    outage: bool,
    flaky_attempts: Mutex<HashMap<OrderId, u32>>,
}

impl SimulatedGateway {
    /// A provider applying `config`'s rules.
    pub fn new(config: &GatewayConfig) -> Self {
        Self {
            decline_above: config.decline_above,
            outage: config.outage,
            flaky_attempts: Mutex::default(),
        }
    }
}

impl Gateway for SimulatedGateway {
    async fn charge(
        &self,
        order_id: OrderId,
        amount: &Money,
        payment_method: &str,
    ) -> Result<ChargeResult, GatewayError> {
        if self.outage {
            return Err(GatewayError::Unavailable(
                "payment provider unavailable (outage drill)".into(),
            ));
        }
        if payment_method == FLAKY_TOKEN {
            let mut attempts = self
                .flaky_attempts
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let n = attempts.entry(order_id).or_insert(0);
            *n += 1;
            if *n <= FLAKY_FAILURES {
                return Err(GatewayError::Unavailable(format!(
                    "payment provider unavailable (test token, attempt {n})"
                )));
            }
        }
        if payment_method == UNAVAILABLE_TOKEN {
            return Err(GatewayError::Unavailable(
                "payment provider unavailable (test token)".into(),
            ));
        }
        Ok(if payment_method == DECLINING_TOKEN {
            ChargeResult::Declined {
                reason: "card declined".into(),
            }
        } else if amount.minor > self.decline_above {
            ChargeResult::Declined {
                reason: format!("amount {amount} over the limit"),
            }
        } else {
            ChargeResult::Approved {
                payment_id: format!("pay_{}", order_id.as_uuid().simple()),
            }
        })
    }

    async fn refund(&self, order_id: OrderId, _payment_id: &str, _amount: &Money) -> Result<String, GatewayError> {
        Ok(format!("re_{}", order_id.as_uuid().simple()))
    }
}
