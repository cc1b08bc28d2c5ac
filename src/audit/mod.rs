//! `orderflow audit`: checks the business invariants from the four streams
//! alone — never a node's local state — so it can judge any deployment.
//!
//! One pass per stream with an ordered pull consumer, bounded by the last
//! sequence captured before reading (a live system's new writes cannot make
//! it run forever), all four passes concurrently. Each pass folds messages
//! into compact per-order / per-SKU records ([`scan`], [`check`]); the
//! cross-checks then run over those records in memory.

mod check;
mod report;
mod scan;

use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use schemas::inventory::InventoryEvent;
use schemas::notification::NotificationEvent;
use schemas::order::OrderEvent;
use schemas::payment::PaymentEvent;
use schemas::subjects::EntityKind;

pub use report::{
    AuditReport, Category, CategoryReport, NotificationTotals, OrderTotals, PaymentTotals, SkuReport, StreamReport,
    Violation,
};

use crate::config::Config;

/// How an audit judges the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditOptions {
    /// An order without an ending whose `placed` is older than this is stuck,
    /// not in flight; the same grace applies to a missing notification.
    pub grace: Duration,
    /// At most this many examples are kept per violation category.
    pub examples: usize,
}

impl Default for AuditOptions {
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(5 * 60),
            examples: 20,
        }
    }
}

/// Why an audit could not read the journal (violations are not errors: they are in the report).
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// A stream is missing or its info could not be read.
    #[error("stream {stream}: {source} (has `orderflow setup` run against this server?)")]
    Stream {
        stream: &'static str,
        source: async_nats::jetstream::context::GetStreamError,
    },
    /// The stream's state (last sequence) could not be read.
    #[error("stream {stream} info: {source}")]
    Info {
        stream: &'static str,
        source: async_nats::jetstream::stream::InfoError,
    },
    /// The ordered consumer could not be created.
    #[error("reading {stream}: creating a consumer: {source}")]
    Consumer {
        stream: &'static str,
        source: async_nats::jetstream::stream::ConsumerError,
    },
    /// The consumer's message feed could not be opened.
    #[error("reading {stream}: {source}")]
    Open {
        stream: &'static str,
        source: async_nats::jetstream::consumer::StreamError,
    },
    /// The message feed failed part-way.
    #[error("reading {stream}: {source}")]
    Read {
        stream: &'static str,
        source: async_nats::jetstream::consumer::pull::OrderedError,
    },
    /// A delivered message carried no JetStream metadata (sequence, time).
    #[error("reading {stream}: a message without JetStream metadata: {reason}")]
    Metadata { stream: &'static str, reason: String },
    /// Nothing arrived for too long although messages were still due.
    #[error("reading {stream}: no message for {idle:?} at sequence {at} of {last}")]
    Stalled {
        stream: &'static str,
        idle: Duration,
        at: u64,
        last: u64,
    },
}

/// Reads the four streams once and checks every invariant; see the module docs.
pub async fn run(js: &async_nats::jetstream::Context, options: &AuditOptions) -> Result<AuditReport, AuditError> {
    let started = Instant::now();
    // "Now" is fixed before reading so every age is judged against one instant.
    let now = SystemTime::now();
    let examples = options.examples;
    let mut orders = check::OrderTally::default();
    let mut payments = check::PaymentTally::default();
    let mut inventory = check::InventoryTally::default();
    let mut notifications = check::NotificationTally::default();
    let (o, p, i, n) = futures::try_join!(
        scan::scan::<OrderEvent, _>(js, EntityKind::Order, examples, |m, e| orders.add(m, e)),
        scan::scan::<PaymentEvent, _>(js, EntityKind::Payment, examples, |m, e| payments.add(m, e)),
        scan::scan::<InventoryEvent, _>(js, EntityKind::Inventory, examples, |m, e| inventory.add(m, e)),
        scan::scan::<NotificationEvent, _>(js, EntityKind::Notification, examples, |m, e| {
            notifications.add(m, e)
        }),
    )?;
    let tallies = check::Tallies {
        orders,
        payments,
        inventory,
        notifications,
    };
    let mut report = check::judge(tallies, [o, p, i, n], now, options);
    report.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    Ok(report)
}

/// `orderflow audit`: the command-line flags.
#[derive(Debug, Clone, clap::Args)]
pub struct AuditArgs {
    /// An order still open after this long is reported stuck rather than in flight.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub grace: Duration,
    /// Print the report as JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs `orderflow audit`: prints the report, and fails when it found violations.
pub async fn command(args: AuditArgs, config: &Config) -> anyhow::Result<()> {
    let client = crate::bus::connect(&config.nats)
        .await
        .with_context(|| format!("connecting to NATS at {}", config.nats.url))?;
    let js = async_nats::jetstream::new(client);
    let options = AuditOptions {
        grace: args.grace,
        ..AuditOptions::default()
    };
    let report = run(&js, &options).await?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).context("encoding the report")?
        );
    } else {
        print!("{report}");
    }
    let found = report.violation_count();
    if found > 0 {
        anyhow::bail!("audit found {found} violation{}", if found == 1 { "" } else { "s" });
    }
    Ok(())
}
