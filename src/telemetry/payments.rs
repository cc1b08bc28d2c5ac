//! The payment provider's metrics: calls by outcome, their latency, and the
//! circuit breaker's state.

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit};

/// A breaker's state, exported as a number so it can be graphed and alerted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls flow (0).
    Closed,
    /// Probing after an open period (1).
    HalfOpen,
    /// Calls refused; charges wait (2).
    Open,
}

pub(super) fn describe() {
    describe_gauge!(
        "orderflow_gateway_breaker_state",
        "Payment provider circuit breaker: 0 closed, 1 half-open, 2 open; by provider"
    );
    describe_counter!(
        "orderflow_gateway_breaker_transitions_total",
        "Payment provider circuit breaker state changes, by provider and new state"
    );
    describe_counter!(
        "orderflow_gateway_breaker_rejected_total",
        "Calls the open breaker refused (the charge waits), by provider"
    );
    describe_counter!(
        "orderflow_gateway_calls_total",
        "Payment provider attempts, by provider, operation and outcome"
    );
    describe_histogram!(
        "orderflow_gateway_call_duration_seconds",
        Unit::Seconds,
        "Payment provider attempt latency, by provider and operation"
    );
}

pub(super) fn register_zeroes() {
    counter!("orderflow_gateway_breaker_rejected_total", "provider" => "http").increment(0);
    for to in ["open", "half_open", "closed"] {
        counter!("orderflow_gateway_breaker_transitions_total", "provider" => "http", "to" => to).increment(0);
    }
}

/// `provider`'s breaker is now `state`.
pub fn breaker_state(provider: &'static str, state: BreakerState) {
    let (value, to) = match state {
        BreakerState::Closed => (0.0, "closed"),
        BreakerState::HalfOpen => (1.0, "half_open"),
        BreakerState::Open => (2.0, "open"),
    };
    gauge!("orderflow_gateway_breaker_state", "provider" => provider).set(value);
    counter!("orderflow_gateway_breaker_transitions_total", "provider" => provider, "to" => to).increment(1);
}

/// `provider`'s open breaker refused a call.
pub fn breaker_rejected(provider: &'static str) {
    counter!("orderflow_gateway_breaker_rejected_total", "provider" => provider).increment(1);
}

/// One attempt at `provider` (`operation` = charge | refund) ended with `outcome`.
pub fn call(provider: &'static str, operation: &'static str, outcome: &'static str, took: std::time::Duration) {
    counter!("orderflow_gateway_calls_total", "provider" => provider, "operation" => operation, "outcome" => outcome)
        .increment(1);
    histogram!("orderflow_gateway_call_duration_seconds", "provider" => provider, "operation" => operation)
        .record(took.as_secs_f64());
}
