//! `orderflow trace ORDER_ID`: one order's whole saga across the four
//! streams, in the order the server stored it, decoded, with how long each
//! step took. Reads NATS directly, like `nats stream view` would.

use std::time::{Duration, SystemTime};

use anyhow::{bail, Context as _};
use async_nats::jetstream::stream::DirectGetErrorKind;
use schemas::order::OrderEvent;
use schemas::subjects::{EntityKind, EntityRef};
use schemas::timer::{self, ReservationExpiry};
use schemas::{headers as h, OrderId};
use serde::Serialize;
use serde_json::Value;

use crate::bus::decoded;
use crate::bus::journal::{NatsJournal, Record};
use crate::config::Config;
use crate::telemetry::trace_context;

/// `orderflow trace …`
#[derive(Debug, clap::Args)]
pub struct TraceArgs {
    /// The order id.
    pub order_id: String,
    /// Print JSON instead of a timeline.
    #[arg(long)]
    pub json: bool,
}

/// One stored message of the saga.
#[derive(Debug, Clone, Serialize)]
pub struct Hop {
    /// Stream.
    pub stream: &'static str,
    /// Sequence in it.
    pub seq: u64,
    /// Subject.
    pub subject: String,
    /// Event type (the subject's last token).
    pub event_type: String,
    /// When the server stored it (RFC 3339).
    pub time: String,
    /// Seconds since the order was placed.
    pub offset_seconds: f64,
    /// The W3C trace id it carries.
    pub trace_id: Option<String>,
    /// The decoded body.
    pub event: Value,
    #[serde(skip)]
    at: SystemTime,
}

/// How long one step of the saga took: from its request to its answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    /// payment, stock, compensation, notification, or the whole saga.
    pub step: &'static str,
    /// From which event…
    pub from: String,
    /// …to which.
    pub to: String,
    /// Seconds between them.
    pub seconds: f64,
}

/// The whole answer.
#[derive(Debug, Serialize)]
pub struct Trace {
    /// The order.
    pub order_id: String,
    /// Its messages, oldest first.
    pub hops: Vec<Hop>,
    /// Step durations.
    pub steps: Vec<Step>,
}

/// Runs `orderflow trace …`.
pub async fn run(args: TraceArgs, config: &Config) -> anyhow::Result<()> {
    let order_id = OrderId::parse(&args.order_id).map_err(|e| anyhow::anyhow!("order id {:?}: {e}", args.order_id))?;
    let client = crate::bus::connect(&config.nats)
        .await
        .with_context(|| format!("connecting to NATS at {}", config.nats.url))?;
    let js = async_nats::jetstream::new(client);
    let journal = NatsJournal::open(js.clone()).await?;
    let mut trace = collect(&journal, order_id).await?;
    add_timers(&js, &mut trace, order_id).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&trace)?);
    } else {
        print_timeline(&trace);
    }
    Ok(())
}

/// Reads the order's journal, its payment's and notification's, and the
/// records of each of its SKUs that name it.
pub async fn collect(journal: &NatsJournal, order_id: OrderId) -> anyhow::Result<Trace> {
    let order = EntityRef::order(order_id);
    let order_records = journal.records(&order, 0).await?;
    let Some(first) = order_records.first() else {
        bail!("no order {order_id} in ORDERS");
    };
    let placed_at = first.time;
    let skus = match NatsJournal::decode::<OrderEvent>(first)? {
        OrderEvent::Placed { lines, .. } => lines.into_iter().map(|l| l.sku).collect(),
        _ => Vec::new(),
    };
    let mut records: Vec<(EntityKind, Record)> = order_records.into_iter().map(|r| (EntityKind::Order, r)).collect();
    for entity in [EntityRef::payment(order_id), EntityRef::notification(order_id)] {
        records.extend(journal.records(&entity, 0).await?.into_iter().map(|r| (entity.kind, r)));
    }
    let id = order_id.to_string();
    for sku in &skus {
        let sku_records = journal.records(&EntityRef::inventory(sku), 0).await?;
        records.extend(
            sku_records
                .into_iter()
                .filter(|r| r.message.headers.get(h::ORDER_ID).map(|v| v.as_str()) == Some(id.as_str()))
                .map(|r| (EntityKind::Inventory, r)),
        );
    }
    records.sort_by_key(|(_, r)| r.time);
    let hops: Vec<Hop> = records
        .into_iter()
        .map(|(kind, r)| {
            let headers = Some(&r.message.headers);
            Hop {
                stream: kind.stream(),
                seq: r.seq,
                event_type: r.subject.rsplit('.').next().unwrap_or_default().to_owned(),
                time: humantime::format_rfc3339_millis(r.time).to_string(),
                offset_seconds: r.time.duration_since(placed_at).unwrap_or(Duration::ZERO).as_secs_f64(),
                trace_id: trace_context::trace_id_of(r.message.headers.get(h::TRACEPARENT).map(|v| v.as_str())),
                event: decoded::body_json(kind, headers, &r.message.payload),
                subject: r.subject,
                at: r.time,
            }
        })
        .collect();
    let steps = steps(&hops);
    Ok(Trace {
        order_id: id,
        hops,
        steps,
    })
}

/// Adds the order's reservation timer, pending or fired, to the trace:
/// when a reservation expired, the hop that ended the wait.
pub async fn add_timers(
    js: &async_nats::jetstream::Context,
    trace: &mut Trace,
    order_id: OrderId,
) -> anyhow::Result<()> {
    // A deployment set up before timers existed has no TIMERS stream.
    let Ok(stream) = js.get_stream_no_info(timer::STREAM).await else {
        return Ok(());
    };
    let placed_at = trace.hops.first().map_or(SystemTime::UNIX_EPOCH, |h| h.at);
    let filter = format!("timers.{order_id}.*");
    let mut next = 1;
    loop {
        let message = match stream.direct_get_next_for_subject(filter.as_str(), Some(next)).await {
            Ok(m) => m,
            Err(e) if e.kind() == DirectGetErrorKind::NotFound => break,
            Err(e) => return Err(e).with_context(|| format!("reading {filter}")),
        };
        next = message.sequence + 1;
        let at = SystemTime::from(message.time);
        let event = match ReservationExpiry::decode(&message.payload) {
            Ok(expiry) => serde_json::to_value(expiry).unwrap_or(Value::Null),
            Err(e) => serde_json::json!({ "undecodable": e.to_string(), "raw_hex": decoded::hex(&message.payload) }),
        };
        trace.hops.push(Hop {
            stream: timer::STREAM,
            seq: message.sequence,
            event_type: message.subject.rsplit('.').next().unwrap_or_default().to_owned(),
            time: humantime::format_rfc3339_millis(at).to_string(),
            offset_seconds: at.duration_since(placed_at).unwrap_or(Duration::ZERO).as_secs_f64(),
            trace_id: trace_context::trace_id_of(message.headers.get(h::TRACEPARENT).map(|v| v.as_str())),
            event,
            subject: message.subject.to_string(),
            at,
        });
    }
    trace.hops.sort_by_key(|hop| hop.at);
    Ok(())
}

/// The steps found in `hops`: each from the first of its request events to
/// the first (or, for stock, the last) of its answers.
pub fn steps(hops: &[Hop]) -> Vec<Step> {
    let first = |stream: &str, types: &[&str]| {
        hops.iter()
            .find(|h| h.stream == stream && types.contains(&h.event_type.as_str()))
    };
    let last = |stream: &str, types: &[&str]| {
        hops.iter()
            .rev()
            .find(|h| h.stream == stream && types.contains(&h.event_type.as_str()))
    };
    let endings = ["completed", "failed", "cancelled"];
    let spans = [
        (
            "payment",
            first("ORDERS", &["payment_requested"]),
            first("PAYMENTS", &["authorized", "declined"]),
        ),
        (
            "stock",
            first("ORDERS", &["stock_requested"]),
            last("INVENTORY", &["reserved", "rejected"]),
        ),
        (
            "compensation",
            first("ORDERS", &["compensating"]),
            last("ORDERS", &["refund_confirmed", "release_confirmed"]),
        ),
        (
            "notification",
            first("ORDERS", &endings),
            first("NOTIFICATIONS", &["sent"]),
        ),
        ("saga", first("ORDERS", &["placed"]), first("ORDERS", &endings)),
    ];
    spans
        .into_iter()
        .filter_map(|(step, from, to)| {
            let (from, to) = (from?, to?);
            Some(Step {
                step,
                from: format!("{} #{}", from.subject, from.seq),
                to: format!("{} #{}", to.subject, to.seq),
                seconds: to.at.duration_since(from.at).unwrap_or(Duration::ZERO).as_secs_f64(),
            })
        })
        .collect()
}

fn print_timeline(trace: &Trace) {
    println!("order {}", trace.order_id);
    for hop in &trace.hops {
        println!(
            "  +{:>8.3}s  {:<13} #{:<7} {:<60} trace {}",
            hop.offset_seconds,
            hop.stream,
            hop.seq,
            hop.subject,
            hop.trace_id.as_deref().unwrap_or("-"),
        );
        println!("             {}", hop.event);
    }
    println!("steps");
    for step in &trace.steps {
        println!(
            "  {:<13} {:>8.3}s  ({} → {})",
            step.step, step.seconds, step.from, step.to
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop(stream: &'static str, seq: u64, event_type: &str, millis: u64) -> Hop {
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(millis);
        Hop {
            stream,
            seq,
            subject: format!("x.1.{event_type}"),
            event_type: event_type.into(),
            time: String::new(),
            offset_seconds: 0.0,
            trace_id: None,
            event: Value::Null,
            at,
        }
    }

    #[test]
    fn steps_run_from_request_to_answer_and_stock_waits_for_the_last_sku() {
        let hops = [
            hop("ORDERS", 1, "placed", 0),
            hop("ORDERS", 2, "payment_requested", 10),
            hop("PAYMENTS", 1, "authorized", 40),
            hop("ORDERS", 3, "stock_requested", 50),
            hop("INVENTORY", 7, "reserved", 60),
            hop("INVENTORY", 9, "reserved", 90),
            hop("ORDERS", 4, "completed", 100),
            hop("NOTIFICATIONS", 1, "sent", 130),
        ];
        let got: Vec<(&str, u64)> = steps(&hops)
            .iter()
            .map(|s| (s.step, (s.seconds * 1000.0).round() as u64))
            .collect();
        assert_eq!(
            got,
            [("payment", 30), ("stock", 40), ("notification", 30), ("saga", 100)]
        );
    }
}
