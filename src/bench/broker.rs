//! `orderflow bench --broker`: this machine's raw JetStream ceiling for one
//! saga hop, measured with the saga's own habits (message ids, file
//! storage, durable pull consumers, explicit acks) and none of its work.
//!
//! A hop is what every saga step costs the broker: publish (stored, with
//! a message id) → consume → publish the answer → consume it. A source
//! publishes with pipelined acks, a relay consumes each message, publishes
//! its answer, waits for that ack and only then acks the input (as an inbox
//! does), and a sink consumes and acks the answers. The ceiling (hops per
//! second, and so messages stored per second) is what the saga's throughput
//! is quoted against.

use std::future::IntoFuture;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use async_nats::jetstream::consumer::{pull, AckPolicy};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{Config as StreamConfig, StorageType};
use async_nats::jetstream::{AckKind, Context};
use bytes::Bytes;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::report::Latency;

/// The probe's own stream, deleted when it ends.
const STREAM: &str = "ORDERFLOW_BENCH_BROKER";
const ASKED: &str = "orderflow.bench.broker.asked";
const ANSWERED: &str = "orderflow.bench.broker.answered";

/// What the probe measured.
#[derive(Debug, Clone, Serialize)]
pub struct BrokerReport {
    /// Hops completed (each: two stored messages, two deliveries, two acks).
    pub hops: u64,
    /// Wall time, in seconds.
    pub seconds: f64,
    /// Completed hops per second.
    pub hops_per_second: f64,
    /// Messages stored per second (two per hop).
    pub stored_per_second: f64,
    /// From the first publish to the answer's delivery.
    pub latency: Latency,
    /// Bytes of payload per message.
    pub payload_bytes: usize,
    /// Stream replicas.
    pub replicas: usize,
    /// Hops in flight at once.
    pub in_flight: usize,
}

impl BrokerReport {
    /// The report for people.
    pub fn human(&self) -> String {
        let l = &self.latency;
        format!(
            "orderflow bench --broker: {} hops in {:.1} s, {} in flight ({} B payload, R{})\n  \
             ceiling      {:.0} hops/s = {:.0} stored messages/s (publish → consume → publish → consume, message ids)\n  \
             latency      p50 {:.2} ms  p95 {:.2} ms  p99 {:.2} ms  max {:.2} ms (first publish → answer delivered)\n",
            self.hops,
            self.seconds,
            self.in_flight,
            self.payload_bytes,
            self.replicas,
            self.hops_per_second,
            self.stored_per_second,
            l.p50_ms,
            l.p95_ms,
            l.p99_ms,
            l.max_ms
        )
    }
}

/// How a probe runs.
#[derive(Debug, Clone, Copy)]
pub struct Probe {
    /// Hops at most.
    pub hops: u64,
    /// Stop starting hops after this long.
    pub duration: Duration,
    /// Hops in flight at once (1: the latency of one hop alone).
    pub in_flight: usize,
    /// Bytes of payload per message.
    pub payload_bytes: usize,
    /// Stream replicas.
    pub replicas: usize,
}

/// Runs `probe` against `js` on a stream of its own, deleted at the end.
pub async fn run(js: &Context, probe: Probe) -> anyhow::Result<BrokerReport> {
    let replicas = probe.replicas.max(1);
    // A leftover of an interrupted probe would skew the count.
    if js.get_stream(STREAM).await.is_ok() {
        js.delete_stream(STREAM)
            .await
            .context("deleting a leftover probe stream")?;
    }
    js.create_stream(StreamConfig {
        name: STREAM.to_owned(),
        subjects: vec![ASKED.to_owned(), ANSWERED.to_owned()],
        storage: StorageType::File,
        num_replicas: replicas,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    })
    .await
    .context("creating the probe's stream")?;
    let outcome = measure(js, probe).await;
    if let Err(e) = js.delete_stream(STREAM).await {
        tracing::warn!(stream = STREAM, error = %e, "probe stream not deleted");
    }
    let (hops, seconds, latency) = outcome?;
    Ok(BrokerReport {
        hops,
        seconds,
        hops_per_second: hops as f64 / seconds,
        stored_per_second: 2.0 * hops as f64 / seconds,
        latency: Latency::of(&latency),
        payload_bytes: probe.payload_bytes,
        replicas,
        in_flight: probe.in_flight.max(1),
    })
}

async fn consumer(js: &Context, name: &str, subject: &str, window: usize) -> anyhow::Result<pull::Stream> {
    let stream = js.get_stream(STREAM).await.context("binding the probe's stream")?;
    let consumer = stream
        .create_consumer(pull::Config {
            durable_name: Some(name.to_owned()),
            filter_subject: subject.to_owned(),
            ack_policy: AckPolicy::Explicit,
            max_ack_pending: i64::try_from(window).unwrap_or(i64::MAX),
            ..Default::default()
        })
        .await
        .with_context(|| format!("creating consumer {name}"))?;
    consumer
        .stream()
        .max_messages_per_batch(window)
        .messages()
        .await
        .with_context(|| format!("pulling from {name}"))
}

async fn measure(js: &Context, probe: Probe) -> anyhow::Result<(u64, f64, Histogram<u64>)> {
    let Probe {
        hops,
        duration,
        payload_bytes,
        ..
    } = probe;
    let window = probe.in_flight.max(1);
    let mut asked = consumer(js, "relay", ASKED, window).await?;
    let mut answered = consumer(js, "sink", ANSWERED, window).await?;
    // Hops started and not yet answered: the source waits for the sink, so
    // `in_flight` bounds the whole hop, not only the first publish.
    let slots = Arc::new(Semaphore::new(window));
    let start = Instant::now();
    let until = start + duration;
    let published = Arc::new(AtomicU64::new(0));

    // Source: the first publish of each hop, acks pipelined.
    let source = {
        let (js, published, slots) = (js.clone(), published.clone(), slots.clone());
        tokio::spawn(async move {
            let mut pending = FuturesUnordered::new();
            for i in 0..hops {
                if Instant::now() >= until {
                    break;
                }
                // Given back by the sink when this hop's answer arrives.
                slots.acquire().await?.forget();
                // The send time rides in the payload, so the sink measures the hop.
                let mut body = vec![0u8; payload_bytes.max(8)];
                body[..8].copy_from_slice(&(start.elapsed().as_nanos() as u64).to_le_bytes());
                let publish = PublishMessage::build()
                    .payload(body.into())
                    .message_id(format!("asked-{i}"));
                let ack = js.send_publish(ASKED, publish).await?.into_future();
                pending.push(ack);
                published.fetch_add(1, Ordering::Relaxed);
                if pending.len() >= window {
                    if let Some(ack) = pending.next().await {
                        ack?;
                    }
                }
            }
            while let Some(ack) = pending.next().await {
                ack?;
            }
            Ok::<_, anyhow::Error>(())
        })
    };

    // Relay: consume, publish the answer, ack the input once the answer is stored.
    let relay = {
        let js = js.clone();
        tokio::spawn(async move {
            let relaying = Arc::new(Semaphore::new(window));
            while let Some(message) = asked.next().await {
                let message = message.map_err(|e| anyhow::anyhow!("relay pull: {e}"))?;
                let permit = relaying.clone().acquire_owned().await?;
                let js = js.clone();
                tokio::spawn(async move {
                    let id = message
                        .headers
                        .as_ref()
                        .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
                        .map(|v| format!("answered-{}", v.as_str()))
                        .unwrap_or_default();
                    let publish = PublishMessage::build().payload(message.payload.clone()).message_id(id);
                    let stored = match js.send_publish(ANSWERED, publish).await {
                        Ok(ack) => ack.await.is_ok(),
                        Err(_) => false,
                    };
                    let kind = if stored { AckKind::Ack } else { AckKind::Nak(None) };
                    let _ = message.ack_with(kind).await;
                    drop(permit);
                });
            }
            Ok::<_, anyhow::Error>(())
        })
    };

    // Sink: consume and ack the answers, timing each hop.
    let mut latency = super::latency_histogram()?;
    let mut done = 0u64;
    let idle = Duration::from_secs(5);
    loop {
        let target = if source.is_finished() {
            published.load(Ordering::Relaxed)
        } else {
            hops
        };
        if done >= target {
            break;
        }
        let Ok(next) = tokio::time::timeout(idle, answered.next()).await else {
            if done == 0 {
                // A server refuses a publish it does not permit without
                // answering it: silence from the start is the usual sign.
                bail!(
                    "no answer for {idle:?} after 0 hops: the NATS user must be allowed to \
                     publish orderflow.bench.> and to create and delete streams"
                );
            }
            bail!("no answer for {idle:?} after {done} hops");
        };
        let Some(message) = next else { break };
        let message = message.map_err(|e| anyhow::anyhow!("sink pull: {e}"))?;
        if let Some(sent) = sent_at(&message.payload) {
            let took = start.elapsed().saturating_sub(sent);
            latency.saturating_record(took.as_micros().try_into().unwrap_or(u64::MAX));
        }
        message.ack().await.map_err(|e| anyhow::anyhow!("sink ack: {e}"))?;
        slots.add_permits(1);
        done += 1;
    }
    let seconds = start.elapsed().as_secs_f64();
    relay.abort();
    source.await.context("the source task")??;
    Ok((done, seconds, latency))
}

fn sent_at(payload: &Bytes) -> Option<Duration> {
    let nanos: [u8; 8] = payload.get(..8)?.try_into().ok()?;
    Some(Duration::from_nanos(u64::from_le_bytes(nanos)))
}
