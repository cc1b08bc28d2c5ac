//! The circuit breaker in front of a payment provider: failsafe's state
//! machine (closed → open → half-open), reporting its state to the metrics
//! and the logs.

use std::time::Duration;

use failsafe::failure_policy::{consecutive_failures, ConsecutiveFailures};
use failsafe::{Instrument, StateMachine};

use crate::config::BreakerConfig;
use crate::telemetry::payments::{self, BreakerState};

/// How long the breaker stays open: `open_for`, doubling after each failed
/// probe up to `open_max`. (failsafe's own exponential backoff refuses
/// periods under a second, which tests and fast providers want.)
#[derive(Debug, Clone)]
pub struct Doubling {
    next: Duration,
    max: Duration,
}

impl Iterator for Doubling {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let now = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        Some(now)
    }
}

/// Reports transitions of the breaker of one provider.
#[derive(Debug, Clone)]
pub struct Transitions {
    provider: &'static str,
}

impl Instrument for Transitions {
    fn on_call_rejected(&self) {
        payments::breaker_rejected(self.provider);
    }

    fn on_open(&self) {
        tracing::warn!(
            provider = self.provider,
            "payment provider circuit opened; charges wait"
        );
        payments::breaker_state(self.provider, BreakerState::Open);
    }

    fn on_half_open(&self) {
        tracing::info!(provider = self.provider, "payment provider circuit half-open; probing");
        payments::breaker_state(self.provider, BreakerState::HalfOpen);
    }

    fn on_closed(&self) {
        payments::breaker_state(self.provider, BreakerState::Closed);
    }
}

/// One provider's breaker, shared by every call to it in this process.
pub type Breaker = StateMachine<ConsecutiveFailures<Doubling>, Transitions>;

/// A closed breaker for `provider`, opening as `config` says.
pub fn breaker(provider: &'static str, config: &BreakerConfig) -> Breaker {
    let open = Doubling {
        next: config.open_for,
        max: config.open_max.max(config.open_for),
    };
    StateMachine::new(
        consecutive_failures(config.failures.max(1), open),
        Transitions { provider },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(failures: u32, open_for_ms: u64) -> BreakerConfig {
        BreakerConfig {
            failures,
            open_for: Duration::from_millis(open_for_ms),
            open_max: Duration::from_secs(1),
        }
    }

    #[test]
    fn opens_after_consecutive_failures_only() {
        let b = breaker("test", &config(3, 60_000));
        for _ in 0..2 {
            b.on_error();
        }
        b.on_success();
        for _ in 0..2 {
            b.on_error();
        }
        assert!(b.is_call_permitted(), "a success in between resets the count");
        b.on_error();
        assert!(!b.is_call_permitted(), "three in a row open it");
    }

    #[test]
    fn the_open_period_doubles_up_to_its_maximum() {
        let periods: Vec<u64> = Doubling {
            next: Duration::from_millis(300),
            max: Duration::from_secs(1),
        }
        .take(4)
        .map(|d| d.as_millis() as u64)
        .collect();
        assert_eq!(periods, [300, 600, 1000, 1000]);
    }
}
