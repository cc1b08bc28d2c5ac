//! Numbers read on an interval rather than counted as they happen: each
//! durable consumer's lag and the dead-letter backlog, from the broker (every
//! node reports the same cluster-wide values; dashboards take the max), and
//! this node's actor directories' live, passivated and replaced counts.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::pull;
use async_nats::jetstream::Context;
use tokio::sync::watch;

use crate::bus::topology::{self, INBOXES};
use crate::dead_letters::{DeadLetters, DEAD_LETTER_ACTIONS};
use crate::saga::Actors;

/// Refreshes the gauges every `interval` until `stop` turns true.
pub async fn run(js: Context, actors: Arc<Actors>, interval: Duration, mut stop: watch::Receiver<bool>) {
    let dead_letters = DeadLetters::new(js.clone());
    let mut consumers: Vec<(&str, &str)> = INBOXES.iter().map(|i| (i.source.stream(), i.name)).collect();
    consumers.push((topology::DEAD_LETTERS, topology::ORDER_ATTENTION));
    consumers.push((DEAD_LETTER_ACTIONS, topology::ACTION_COUNTER));
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        for (kind, gauge) in [
            ("order", actors.orders.gauge()),
            ("payment", actors.payments.gauge()),
            ("inventory", actors.inventory.gauge()),
            ("notification", actors.notifications.gauge()),
        ] {
            super::actors(kind, gauge.now(), gauge.passivated(), gauge.replaced());
        }
        // The order saga reads three streams under one name; its lag is their sum.
        let mut lag: Vec<(&str, u64, usize)> = Vec::new();
        for (stream, name) in &consumers {
            let Ok(mut consumer) = js.get_consumer_from_stream::<pull::Config, _, _>(*name, *stream).await else {
                continue;
            };
            let Ok(info) = consumer.info().await else { continue };
            match lag.iter_mut().find(|(n, _, _)| n == name) {
                Some(entry) => {
                    entry.1 += info.num_pending;
                    entry.2 += info.num_ack_pending;
                }
                None => lag.push((name, info.num_pending, info.num_ack_pending)),
            }
        }
        for (name, pending, ack_pending) in lag {
            super::consumer_lag(name, pending, ack_pending);
        }
        match dead_letters.backlog().await {
            Ok(n) => super::dead_letter_backlog(n),
            Err(e) => tracing::debug!(error = %e, "dead-letter backlog unavailable"),
        }
    }
}
