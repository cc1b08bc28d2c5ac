//! Payment providers: the simulated one (rules, for demos and tests) and a
//! payment service over HTTP, behind retries and a circuit breaker.

pub mod breaker;
pub mod http;
pub mod simulated;

use actors::payment::{ChargeResult, Gateway, GatewayError};
use schemas::{Money, OrderId};

pub use http::{HttpGateway, HttpGatewayError};
pub use simulated::{SimulatedGateway, DECLINING_TOKEN, FLAKY_FAILURES, FLAKY_TOKEN, UNAVAILABLE_TOKEN};

use crate::config::{GatewayConfig, Provider};

/// The provider this node was configured with.
#[derive(Debug)]
pub enum PaymentProvider {
    /// Rules in this process.
    Simulated(SimulatedGateway),
    /// A payment service over HTTP (boxed: it is much the larger).
    Http(Box<HttpGateway>),
}

impl PaymentProvider {
    /// The provider `config` names.
    pub fn from_config(config: &GatewayConfig) -> Result<Self, HttpGatewayError> {
        Ok(match config.provider {
            Provider::Simulated => Self::Simulated(SimulatedGateway::new(config)),
            Provider::Http => Self::Http(Box::new(HttpGateway::new(&config.http, &config.breaker)?)),
        })
    }

    /// True when a circuit breaker guards the provider: its failures are
    /// waited out (up to `gateway.wait_deadline`) rather than dead-lettered.
    pub fn has_breaker(&self) -> bool {
        matches!(self, Self::Http(_))
    }

    /// Why charges should wait rather than call now, if they should.
    pub fn circuit_open(&self) -> Option<String> {
        match self {
            Self::Simulated(_) => None,
            Self::Http(http) => http.circuit_open(),
        }
    }
}

impl Gateway for PaymentProvider {
    async fn charge(
        &self,
        order_id: OrderId,
        amount: &Money,
        payment_method: &str,
    ) -> Result<ChargeResult, GatewayError> {
        match self {
            Self::Simulated(g) => g.charge(order_id, amount, payment_method).await,
            Self::Http(g) => g.charge(order_id, amount, payment_method).await,
        }
    }

    async fn refund(&self, order_id: OrderId, payment_id: &str, amount: &Money) -> Result<String, GatewayError> {
        match self {
            Self::Simulated(g) => g.refund(order_id, payment_id, amount).await,
            Self::Http(g) => g.refund(order_id, payment_id, amount).await,
        }
    }
}
