//! `orderflow bench`: a load generator over the HTTP facade, closed loop
//! (N orders in flight) or open loop (a fixed rate, latency measured from
//! each order's scheduled start so a slow system cannot hide its queue),
//! bounded by count and time.

pub mod broker;
pub mod process_stats;
pub mod report;
pub mod scenario;

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use futures::stream::{self, StreamExt};
use hdrhistogram::Histogram;
use schemas::subjects::EntityKind;
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::config::Config;
use report::{BrokerShare, Latency, MachineUsage, NatsTraffic, Report, Second, Usage};
use scenario::{Kind, Mix};

/// `orderflow bench …`
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// The node's URL and the bearer token (an admin's: the bench restocks).
    #[command(flatten)]
    pub api: crate::cli::ApiArgs,
    /// Orders to place at most.
    #[arg(long, default_value_t = 1000)]
    pub orders: u64,
    /// Stop starting orders after this long (e.g. 60s).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Closed loop: orders in flight at once.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Open loop: start this many orders per second instead of a fixed number in flight.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Percent of orders paid with the declining token.
    #[arg(long, default_value_t = 10)]
    pub decline_pct: u8,
    /// Percent of orders for a SKU with no stock (cancelled after a refund).
    #[arg(long, default_value_t = 5)]
    pub stock_out_pct: u8,
    /// Percent of orders cancelled right after they are placed.
    #[arg(long, default_value_t = 5)]
    pub cancel_pct: u8,
    /// SKUs the successful orders spread over.
    #[arg(long, default_value_t = 16)]
    pub skus: usize,
    /// The node's pid, to report its CPU and RSS.
    #[arg(long)]
    pub node_pid: Option<u32>,
    /// nats-server's pid, to report its CPU and RSS.
    #[arg(long)]
    pub nats_pid: Option<u32>,
    /// nats-server's monitoring URL (e.g. http://127.0.0.1:8222), to report
    /// the messages it carried per order.
    #[arg(long)]
    pub nats_monitor: Option<String>,
    /// Measure the broker's ceiling for one saga hop instead (publish →
    /// consume → publish → consume, with message ids): `--orders` hops,
    /// `--concurrency` of them in flight.
    #[arg(long)]
    pub broker: bool,
    /// Payload bytes per message of `--broker`.
    #[arg(long, default_value_t = 128)]
    pub payload_bytes: usize,
    /// The messages stored per second a `--broker` run reached: the report
    /// states the saga's stored messages per second as a share of it.
    #[arg(long)]
    pub broker_ceiling: Option<f64>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// How long one order may take to reach a terminal status.
const ORDER_DEADLINE: &str = "30s";

/// How much of a failing answer's body the report keeps.
const PROBLEM_SAMPLE: usize = 300;

/// Runs `orderflow bench …`.
pub async fn run(args: BenchArgs, config: &Config) -> anyhow::Result<()> {
    let mix = Mix::new(args.decline_pct, args.stock_out_pct, args.cancel_pct)
        .context("--decline-pct, --stock-out-pct and --cancel-pct add up to more than 100")?;
    if args.orders == 0 || args.concurrency == 0 || args.skus == 0 {
        bail!("--orders, --concurrency and --skus must be positive");
    }
    if args.broker {
        let client = crate::bus::connect(&config.nats)
            .await
            .context("connecting to NATS for --broker")?;
        let js = async_nats::jetstream::new(client);
        let probe = broker::Probe {
            hops: args.orders,
            duration: args.duration,
            in_flight: args.concurrency,
            payload_bytes: args.payload_bytes,
            replicas: config.nats.replicas,
        };
        let report = broker::run(&js, probe).await?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print!("{}", report.human());
        }
        return Ok(());
    }
    if args.broker_ceiling.is_some_and(|c| !(c > 0.0 && c.is_finite())) {
        bail!("--broker-ceiling must be a positive number of messages per second");
    }
    if args.api.url.split(',').all(|u| u.trim().is_empty()) {
        bail!("--url names no node");
    }
    if args.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
        bail!("--rate must be a positive number of orders per second");
    }
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency.max(64))
        .default_headers(args.api.headers()?)
        .build()
        .context("building the HTTP client")?;
    let bench = Arc::new(Bench {
        http,
        bases: args
            .api
            .url
            .split(',')
            .map(|u| u.trim().trim_end_matches('/').to_owned())
            .filter(|u| !u.is_empty())
            .collect(),
        run: uuid::Uuid::new_v4().simple().to_string()[..8].to_owned(),
        mix,
        skus: args.skus,
        first_problems: std::sync::Mutex::default(),
    });
    bench.restock(args.orders).await?;
    let js = match crate::bus::connect(&config.nats).await {
        Ok(client) => Some(async_nats::jetstream::new(client)),
        Err(e) => {
            tracing::warn!(error = %e, "NATS unreachable: no JetStream figures in the report");
            None
        }
    };
    let stored_before = match &js {
        Some(js) => stored_messages(js).await,
        None => None,
    };
    let pids = [args.node_pid, args.nats_pid];
    let before: Vec<_> = pids.iter().map(|p| p.and_then(process_stats::read)).collect();
    let machine_before = process_stats::read_machine();
    let ops_before = bench.jetstream_operations().await;
    let traffic_before = nats_traffic(&bench.http, args.nats_monitor.as_deref()).await;

    let done = Arc::new(AtomicU64::new(0));
    let progress = spawn_progress(done.clone(), args.orders);
    let started = Instant::now();
    let results = match args.rate {
        None => closed_loop(&bench, &args, &done).await,
        Some(rate) => open_loop(&bench, &args, rate, &done).await,
    };
    let seconds = started.elapsed().as_secs_f64();
    progress.abort();

    let after: Vec<_> = pids.iter().map(|p| p.and_then(process_stats::read)).collect();
    let machine_after = process_stats::read_machine();
    let ops_after = bench.jetstream_operations().await;
    let traffic_after = nats_traffic(&bench.http, args.nats_monitor.as_deref()).await;
    let stored_after = match &js {
        Some(js) => stored_messages(js).await,
        None => None,
    };
    let mut latency = latency_histogram()?;
    let mut outcomes = BTreeMap::new();
    let mut errors = BTreeMap::new();
    for Outcome { took, result, .. } in &results {
        match result {
            Ok(status) => {
                latency.saturating_record(micros(*took));
                *outcomes.entry(status.clone()).or_insert(0) += 1;
            }
            Err(kind) => *errors.entry(kind.clone()).or_insert(0) += 1,
        }
    }
    let ended: u64 = outcomes.values().sum();
    let usage = |i: usize| match (pids[i], before[i], after[i]) {
        (Some(pid), Some(b), Some(a)) => Some(Usage::between(pid, b, a, seconds)),
        _ => None,
    };
    let orders = results.len() as u64;
    let per_order = |n: f64| if orders > 0 { n / orders as f64 } else { 0.0 };
    let jetstream_operations_per_order = match (ops_before, ops_after) {
        (Some(b), Some(a)) => Some(
            a.iter()
                .map(|(op, n)| (op.clone(), per_order(n - b.get(op).copied().unwrap_or(0.0))))
                .collect::<BTreeMap<_, _>>(),
        ),
        _ => None,
    };
    let nats_messages_per_order = match (traffic_before, traffic_after) {
        (Some(b), Some(a)) => Some(NatsTraffic {
            in_msgs: per_order(a.in_msgs - b.in_msgs),
            out_msgs: per_order(a.out_msgs - b.out_msgs),
        }),
        _ => None,
    };
    let stored_messages_per_order = match (stored_before, stored_after) {
        (Some(b), Some(a)) if orders > 0 => Some(a.saturating_sub(b) as f64 / orders as f64),
        _ => None,
    };
    let orders_per_second = if seconds > 0.0 { ended as f64 / seconds } else { 0.0 };
    let broker_share = match (args.broker_ceiling, stored_messages_per_order) {
        (Some(ceiling), Some(stored)) => Some(BrokerShare {
            ceiling_stored_per_second: ceiling,
            saga_stored_per_second: orders_per_second * stored,
            share: orders_per_second * stored / ceiling,
        }),
        _ => None,
    };
    // A 409 to a cancel of an ended order is an outcome, not an error.
    let error_samples = bench
        .first_problems
        .lock()
        .map(|first| {
            let mut samples = first.clone();
            samples.retain(|kind, _| errors.contains_key(kind));
            samples
        })
        .unwrap_or_default();
    let report = Report {
        mode: if args.rate.is_some() { "open" } else { "closed" }.to_owned(),
        load: args.rate.unwrap_or(args.concurrency as f64),
        mix,
        orders,
        seconds,
        orders_per_second,
        latency: Latency::of(&latency),
        latency_by_kind: latency_by_kind(&results)?,
        timeline: timeline(&results)?,
        outcomes,
        errors,
        error_samples,
        stored_messages_per_order,
        jetstream_operations_per_order,
        nats_messages_per_order,
        broker_share,
        node: usage(0),
        nats_server: usage(1),
        machine: match (machine_before, machine_after) {
            (Some(b), Some(a)) => Some(MachineUsage::between(
                std::thread::available_parallelism().map_or(1, |n| n.get()),
                b,
                a,
                seconds,
            )),
            _ => None,
        },
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.human());
    }
    Ok(())
}

/// One order of a run.
struct Outcome {
    /// When it started, from the run's start.
    started_at: Duration,
    /// How long it took to its terminal status.
    took: Duration,
    /// What the mix made it.
    kind: Kind,
    /// Its terminal status, or the error's kind.
    result: Result<String, String>,
}

async fn closed_loop(bench: &Arc<Bench>, args: &BenchArgs, done: &Arc<AtomicU64>) -> Vec<Outcome> {
    let run_start = Instant::now();
    let until = run_start + args.duration;
    stream::iter(0..args.orders)
        .take_while(|_| std::future::ready(Instant::now() < until))
        .map(|i| {
            let (bench, done) = (bench.clone(), done.clone());
            async move {
                let start = Instant::now();
                let result = bench.order(i).await;
                done.fetch_add(1, Ordering::Relaxed);
                Outcome {
                    started_at: start - run_start,
                    took: start.elapsed(),
                    kind: bench.mix.kind(i),
                    result,
                }
            }
        })
        .buffer_unordered(args.concurrency)
        .collect()
        .await
}

async fn open_loop(bench: &Arc<Bench>, args: &BenchArgs, rate: f64, done: &Arc<AtomicU64>) -> Vec<Outcome> {
    let start = Instant::now();
    let until = start + args.duration;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..args.orders {
        let scheduled = start + Duration::from_secs_f64(i as f64 / rate);
        if scheduled >= until {
            break;
        }
        tokio::time::sleep_until(scheduled).await;
        let (bench, done) = (bench.clone(), done.clone());
        tasks.spawn(async move {
            let result = bench.order(i).await;
            done.fetch_add(1, Ordering::Relaxed);
            Outcome {
                started_at: scheduled - start,
                // From the scheduled start: time spent queued behind a slow system counts.
                took: scheduled.elapsed(),
                kind: bench.mix.kind(i),
                result,
            }
        });
    }
    tasks.join_all().await
}

/// The latency of the ended orders of each kind: which path of the saga
/// makes a tail.
fn latency_by_kind(results: &[Outcome]) -> anyhow::Result<BTreeMap<Kind, Latency>> {
    Ok(latency_by(results, |o| o.kind)?
        .into_iter()
        .map(|(kind, h)| (kind, Latency::of(&h)))
        .collect())
}

/// The ended orders' latencies, grouped by `key`.
fn latency_by<K: Ord>(results: &[Outcome], key: impl Fn(&Outcome) -> K) -> anyhow::Result<BTreeMap<K, Histogram<u64>>> {
    let mut groups: BTreeMap<K, Histogram<u64>> = BTreeMap::new();
    for order in results.iter().filter(|o| o.result.is_ok()) {
        let group = match groups.entry(key(order)) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(latency_histogram()?),
        };
        group.saturating_record(micros(order.took));
    }
    Ok(groups)
}

/// A latency as the histograms record it.
fn micros(took: Duration) -> u64 {
    took.as_micros().try_into().unwrap_or(u64::MAX)
}

/// An empty latency histogram in microseconds, from 1 µs to an hour, 3
/// significant digits: the shape every latency of a bench is recorded in.
pub(crate) fn latency_histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).context("a latency histogram")
}

/// The latency of the orders started in each second of the run: whether
/// a tail is spread over the run (queueing) or stands in a few seconds (a
/// stall), and when.
fn timeline(results: &[Outcome]) -> anyhow::Result<Vec<Second>> {
    Ok(latency_by(results, |o| o.started_at.as_secs())?
        .into_iter()
        .map(|(at, h)| Second {
            second: at,
            orders: h.len(),
            latency: Latency::of(&h),
        })
        .collect())
}

/// A progress line on stderr, redrawn every second, when stderr is a terminal.
fn spawn_progress(done: Arc<AtomicU64>, total: u64) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if !std::io::stderr().is_terminal() {
            return;
        }
        let started = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let n = done.load(Ordering::Relaxed);
            let rate = n as f64 / started.elapsed().as_secs_f64();
            eprint!("\r{n:>8}/{total} orders ended  {rate:>7.0}/s ");
        }
    })
}

/// Messages stored in the four entity streams.
async fn stored_messages(js: &async_nats::jetstream::Context) -> Option<u64> {
    let mut total = 0;
    for kind in EntityKind::ALL {
        let mut stream = js.get_stream(kind.stream()).await.ok()?;
        total += stream.info().await.ok()?.state.messages;
    }
    Some(total)
}

/// Messages nats-server received and sent since it started, from its `/varz`.
async fn nats_traffic(http: &reqwest::Client, monitor: Option<&str>) -> Option<NatsTraffic> {
    let url = format!("{}/varz", monitor?.trim_end_matches('/'));
    let varz: Value = http.get(url).send().await.ok()?.json().await.ok()?;
    Some(NatsTraffic {
        in_msgs: varz.get("in_msgs")?.as_f64()?,
        out_msgs: varz.get("out_msgs")?.as_f64()?,
    })
}

/// The value of every `orderflow_jetstream_operations_total` series in a
/// Prometheus text exposition, by its `op` label.
fn operations_in(exposition: &str) -> BTreeMap<String, f64> {
    let mut ops = BTreeMap::new();
    for line in exposition.lines() {
        let Some(rest) = line.strip_prefix("orderflow_jetstream_operations_total{op=\"") else {
            continue;
        };
        let Some((op, value)) = rest.split_once("\"} ") else {
            continue;
        };
        if let Ok(value) = value.trim().parse::<f64>() {
            *ops.entry(op.to_owned()).or_insert(0.0) += value;
        }
    }
    ops
}

/// What every order of a run shares.
struct Bench {
    http: reqwest::Client,
    /// At least one: `run` refuses an empty `--url`.
    bases: Vec<String>,
    run: String,
    mix: Mix,
    skus: usize,
    /// The first body answered with each failing HTTP status (its problem detail).
    first_problems: std::sync::Mutex<BTreeMap<String, String>>,
}

impl Bench {
    /// The node order `i` is placed on (`0`) or read from (`1`).
    fn base(&self, i: u64, hop: u64) -> &str {
        let n = self.bases.len().max(1) as u64;
        self.bases.get(((i + hop) % n) as usize).map_or("", String::as_str)
    }

    /// Every node's JetStream operations so far, summed by operation;
    /// `None` if a node's `/metrics` could not be read.
    async fn jetstream_operations(&self) -> Option<BTreeMap<String, f64>> {
        let mut total = BTreeMap::new();
        for base in &self.bases {
            let response = self.http.get(format!("{base}/metrics")).send().await.ok()?;
            let text = response.error_for_status().ok()?.text().await.ok()?;
            for (op, n) in operations_in(&text) {
                *total.entry(op).or_insert(0.0) += n;
            }
        }
        Some(total)
    }

    fn sku(&self, i: u64) -> String {
        format!("BENCH-{}-{}", self.run, i % self.skus as u64)
    }

    /// Stocks the run's SKUs for every order; the stock-out SKU gets nothing.
    async fn restock(&self, orders: u64) -> anyhow::Result<()> {
        let per_sku = orders / self.skus as u64 + 1;
        for i in 0..self.skus as u64 {
            let url = format!("{}/api/v1/skus/{}/restock", self.base(0, 0), self.sku(i));
            let response = self
                .http
                .post(&url)
                .json(&json!({ "quantity": per_sku }))
                .send()
                .await
                .with_context(|| format!("restocking at {url}"))?;
            if !response.status().is_success() {
                bail!("restocking at {url}: {}", response.status());
            }
        }
        Ok(())
    }

    /// Places order `i` and follows it to its terminal status.
    async fn order(&self, i: u64) -> Result<String, String> {
        let kind = self.mix.kind(i);
        let sku = match kind {
            Kind::StockOut => format!("BENCH-{}-EMPTY", self.run),
            _ => self.sku(i),
        };
        let customer = format!("bench{}", i % 100);
        let body = PlaceBody {
            customer_id: &customer,
            items: [PlaceLine {
                sku: &sku,
                quantity: 1,
                unit_price: 999,
            }],
            payment_method: if kind == Kind::Decline {
                "tok_decline"
            } else {
                "tok_visa"
            },
        };
        let wait = if kind == Kind::Cancel { "" } else { "?wait=30s" };
        let placed = self
            .send(
                self.http
                    .post(format!("{}/api/v1/orders{wait}", self.base(i, 0)))
                    .header("Idempotency-Key", format!("bench-{}-{i}", self.run))
                    .json(&body),
            )
            .await?;
        let id = placed.order_id.as_deref().ok_or("no_order_id")?;
        if kind == Kind::Cancel {
            self.send(self.http.post(format!("{}/api/v1/orders/{id}/cancel", self.base(i, 1))))
                .await
                .or_else(|e| {
                    if e == "http_409" {
                        Ok(OrderReply::default())
                    } else {
                        Err(e)
                    }
                })?;
        } else if let Some(status) = placed.terminal() {
            return Ok(status.to_owned());
        }
        let read = format!("{}/api/v1/orders/{id}?wait={ORDER_DEADLINE}", self.base(i, 1));
        let order = self.send(self.http.get(read)).await?;
        order
            .terminal()
            .map(str::to_owned)
            .ok_or_else(|| "not_ended".to_owned())
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<OrderReply, String> {
        let response = request.send().await.map_err(|_| "transport".to_owned())?;
        let status = response.status();
        if !status.is_success() {
            let kind = format!("http_{}", status.as_u16());
            let body = response.text().await.unwrap_or_default();
            if let Ok(mut first) = self.first_problems.lock() {
                first
                    .entry(kind.clone())
                    .or_insert_with(|| body.chars().take(PROBLEM_SAMPLE).collect());
            }
            return Err(kind);
        }
        response.json().await.map_err(|_| "bad_body".to_owned())
    }
}

/// A bench order's body, serialized without building a JSON tree first.
#[derive(serde::Serialize)]
struct PlaceBody<'a> {
    customer_id: &'a str,
    items: [PlaceLine<'a>; 1],
    payment_method: &'a str,
}

/// The one line of a bench order.
#[derive(serde::Serialize)]
struct PlaceLine<'a> {
    sku: &'a str,
    quantity: u32,
    unit_price: u64,
}

/// The two fields of an order reply the bench reads; the rest of the view
/// (items, history) is skipped by the parser instead of built as a tree,
/// so the load generator leaves more of the machine to what it measures.
#[derive(Debug, Default, serde::Deserialize)]
struct OrderReply {
    order_id: Option<String>,
    status: Option<String>,
}

impl OrderReply {
    /// The status if the order has ended.
    fn terminal(&self) -> Option<&str> {
        self.status
            .as_deref()
            .filter(|s| matches!(*s, "COMPLETED" | "FAILED" | "CANCELLED"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_read_by_label_and_other_series_ignored() {
        let exposition = "# TYPE orderflow_jetstream_operations_total counter\n\
            orderflow_jetstream_operations_total{op=\"publish\"} 16\n\
            orderflow_jetstream_operations_total{op=\"read\"} 3.5\n\
            orderflow_occ_conflicts_total{kind=\"order\"} 9\n\
            orderflow_jetstream_operations_total{op=\"ack\"} not-a-number\n";
        let ops = operations_in(exposition);
        assert_eq!(
            ops,
            BTreeMap::from([("publish".to_owned(), 16.0), ("read".to_owned(), 3.5)])
        );
    }

    #[test]
    fn a_reply_gives_its_id_and_ending_and_ignores_the_rest_of_the_view() {
        let view = r#"{"order_id":"0b5c","status":"COMPLETED","items":[{"sku":"A","quantity":1}],
            "history":[{"type":"placed","seq":1},{"type":"completed","seq":7}],"total":999}"#;
        let reply: OrderReply = serde_json::from_str(view).unwrap_or_default();
        assert_eq!(reply.order_id.as_deref(), Some("0b5c"));
        assert_eq!(reply.terminal(), Some("COMPLETED"));
        let running: OrderReply =
            serde_json::from_str(r#"{"order_id":"0b5c","status":"PAYMENT_PENDING"}"#).unwrap_or_default();
        assert_eq!((running.order_id.as_deref(), running.terminal()), (Some("0b5c"), None));
    }

    #[test]
    fn a_placed_body_is_the_json_the_api_takes() {
        let body = PlaceBody {
            customer_id: "bench7",
            items: [PlaceLine {
                sku: "BENCH-r-3",
                quantity: 1,
                unit_price: 999,
            }],
            payment_method: "tok_visa",
        };
        assert_eq!(
            serde_json::to_value(&body).ok(),
            Some(json!({
                "customer_id": "bench7",
                "items": [{ "sku": "BENCH-r-3", "quantity": 1, "unit_price": 999 }],
                "payment_method": "tok_visa",
            }))
        );
    }
}
