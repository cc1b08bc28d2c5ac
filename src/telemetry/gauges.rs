//! Numbers read on an interval rather than counted as they happen: each
//! durable consumer's lag and the dead-letter backlog, from the broker (every
//! node reports the same cluster-wide values; dashboards take the max), and
//! this node's actor directories' live, parked, passivated and replaced counts.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use async_nats::jetstream::Context;
use tokio::sync::watch;

use crate::bus::topology;
use crate::config::Config;
use crate::dead_letters::DeadLetters;
use crate::saga::Actors;

/// Refreshes the gauges every `telemetry.poll_interval` until `stop` turns true.
pub fn run(
    js: Context,
    actors: Arc<Actors>,
    config: &Config,
    mut stop: watch::Receiver<bool>,
) -> impl Future<Output = ()> + Send + 'static {
    let interval = config.telemetry.poll_interval;
    let consumers = durable_consumers(config);
    async move {
        let dead_letters = DeadLetters::new(js.clone());
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            // Histogram samples wait in buckets until a scrape folds them
            // in; a node nobody scrapes would keep every one.
            super::prometheus().run_upkeep();
            for (kind, live, parked) in actors.gauges() {
                super::actors(kind, live, parked);
            }
            for (name, (pending, ack_pending)) in consumer_lag(&js, &consumers).await {
                super::consumer_lag(&name, pending, ack_pending);
            }
            match dead_letters.backlog().await {
                Ok(n) => super::dead_letter_backlog(n),
                Err(e) => tracing::debug!(error = %e, "dead-letter backlog unavailable"),
            }
        }
    }
}

/// Each durable consumer's (pending, ack-pending) counts, by durable name;
/// consumers the broker cannot describe right now are left out.
pub async fn consumer_lag(js: &Context, consumers: &[(&'static str, String)]) -> BTreeMap<String, (u64, usize)> {
    // The order saga reads three streams under one name; its lag is their sum.
    let mut lag: BTreeMap<String, (u64, usize)> = BTreeMap::new();
    for (stream, name) in consumers {
        let Ok(stream) = js.get_stream_no_info(*stream).await else {
            continue;
        };
        let Ok(info) = stream.consumer_info(name).await else {
            continue;
        };
        let entry = lag.entry(name.clone()).or_default();
        entry.0 += info.num_pending;
        entry.1 += info.num_ack_pending;
    }
    lag
}

/// The durable consumers `config` declares, as (stream, durable name).
pub fn durable_consumers(config: &Config) -> Vec<(&'static str, String)> {
    topology::consumers(config)
        .into_iter()
        .filter_map(|(stream, c)| Some((stream, c.durable_name?)))
        .collect()
}
