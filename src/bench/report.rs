//! A bench run's report: throughput, latency percentiles from an HDR
//! histogram, outcomes, errors, JetStream cost and process usage.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::process_stats::{MachineReading, Reading};
use super::scenario::{Kind, Mix};

/// Latency percentiles, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    /// Median.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// The slowest.
    pub max_ms: f64,
}

impl Latency {
    /// Reads percentiles out of a histogram of microseconds.
    pub fn of(h: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            p50_ms: ms(h.value_at_quantile(0.50)),
            p95_ms: ms(h.value_at_quantile(0.95)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
        }
    }
}

/// The orders started in one second of the run.
#[derive(Debug, Clone, Serialize)]
pub struct Second {
    /// Whole seconds from the run's start.
    pub second: u64,
    /// Orders started in it that reached a terminal status.
    pub orders: u64,
    /// Their latency.
    pub latency: Latency,
}

/// A process's usage over the run.
#[derive(Debug, Clone, Serialize)]
pub struct Usage {
    /// Its pid.
    pub pid: u32,
    /// CPU seconds spent during the run.
    pub cpu_seconds: f64,
    /// CPU share of one core over the run.
    pub cpu_cores: f64,
    /// Resident memory at the end, in MiB.
    pub rss_mib: f64,
}

impl Usage {
    /// Usage between two readings `seconds` apart.
    pub fn between(pid: u32, before: Reading, after: Reading, seconds: f64) -> Self {
        let cpu = (after.cpu_seconds - before.cpu_seconds).max(0.0);
        Self {
            pid,
            cpu_seconds: cpu,
            cpu_cores: if seconds > 0.0 { cpu / seconds } else { 0.0 },
            rss_mib: after.rss_kib as f64 / 1024.0,
        }
    }
}

/// The whole machine over the run, in cores (of `cores`): what the node
/// and nats-server had around them.
#[derive(Debug, Clone, Serialize)]
pub struct MachineUsage {
    /// Cores the machine has.
    pub cores: usize,
    /// Cores busy on average, every process counted (the bench client too).
    pub busy_cores: f64,
    /// Cores a hypervisor took away on average; a run with much of it
    /// measured a smaller machine.
    pub steal_cores: f64,
}

impl MachineUsage {
    /// Usage between two readings `seconds` apart.
    pub fn between(cores: usize, before: MachineReading, after: MachineReading, seconds: f64) -> Self {
        let per_second = |a: f64, b: f64| if seconds > 0.0 { (a - b).max(0.0) / seconds } else { 0.0 };
        Self {
            cores,
            busy_cores: per_second(after.busy_seconds, before.busy_seconds),
            steal_cores: per_second(after.steal_seconds, before.steal_seconds),
        }
    }
}

/// Messages through nats-server over the run, per order (all clients:
/// JetStream requests and answers, deliveries, acks, the API's own reads).
#[derive(Debug, Clone, Serialize)]
pub struct NatsTraffic {
    /// Received from clients.
    pub in_msgs: f64,
    /// Sent to clients.
    pub out_msgs: f64,
}

/// The saga's stored messages per second against the broker's ceiling.
#[derive(Debug, Clone, Serialize)]
pub struct BrokerShare {
    /// Stored messages per second of a `--broker` run.
    pub ceiling_stored_per_second: f64,
    /// Stored messages per second of this run.
    pub saga_stored_per_second: f64,
    /// The second over the first.
    pub share: f64,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `closed` (N in flight) or `open` (a fixed rate).
    pub mode: String,
    /// In flight (closed loop) or orders per second asked (open loop).
    pub load: f64,
    /// The mix of kinds.
    pub mix: Mix,
    /// Orders started.
    pub orders: u64,
    /// Wall time of the run, in seconds.
    pub seconds: f64,
    /// Orders that reached a terminal status, per second.
    pub orders_per_second: f64,
    /// From sending the order to knowing its terminal status.
    pub latency: Latency,
    /// The latency of the ended orders of each kind of the mix.
    pub latency_by_kind: BTreeMap<Kind, Latency>,
    /// The latency of the orders started in each second of the run.
    pub timeline: Vec<Second>,
    /// Terminal statuses seen.
    pub outcomes: BTreeMap<String, u64>,
    /// Errors by kind (HTTP status, transport, not ended in time).
    pub errors: BTreeMap<String, u64>,
    /// The first answer to each failing HTTP status, cut short: what the node said.
    pub error_samples: BTreeMap<String, String>,
    /// Messages stored in the four entity streams during the run, per order.
    pub stored_messages_per_order: Option<f64>,
    /// JetStream requests the nodes made during the run, per order, by
    /// operation (from their `orderflow_jetstream_operations_total`).
    pub jetstream_operations_per_order: Option<BTreeMap<String, f64>>,
    /// Messages through nats-server during the run, per order.
    pub nats_messages_per_order: Option<NatsTraffic>,
    /// The saga's share of the broker's ceiling, when one was given.
    pub broker_share: Option<BrokerShare>,
    /// The node's usage, when its pid was given.
    pub node: Option<Usage>,
    /// nats-server's usage, when its pid was given.
    pub nats_server: Option<Usage>,
    /// The whole machine's, where `/proc/stat` says.
    pub machine: Option<MachineUsage>,
}

impl Report {
    /// The report for people.
    pub fn human(&self) -> String {
        let mut out = format!(
            "orderflow bench: {} loop, {} {}, {} orders in {:.1} s\n",
            self.mode,
            self.load,
            if self.mode == "closed" {
                "in flight"
            } else {
                "orders/s asked"
            },
            self.orders,
            self.seconds
        );
        out += &format!("  throughput   {:.0} orders/s\n", self.orders_per_second);
        let l = &self.latency;
        out += &format!(
            "  latency      p50 {:.2} ms  p95 {:.2} ms  p99 {:.2} ms  max {:.2} ms (request → terminal status)\n",
            l.p50_ms, l.p95_ms, l.p99_ms, l.max_ms
        );
        for (kind, l) in &self.latency_by_kind {
            out += &format!(
                "    {:<10} p50 {:.2} ms  p95 {:.2} ms  p99 {:.2} ms  max {:.2} ms\n",
                kind.name(),
                l.p50_ms,
                l.p95_ms,
                l.p99_ms,
                l.max_ms
            );
        }
        if self.timeline.len() > 1 {
            let mut worst: Vec<&Second> = self.timeline.iter().collect();
            worst.sort_by(|a, b| b.latency.p99_ms.total_cmp(&a.latency.p99_ms));
            let each: Vec<String> = worst
                .iter()
                .take(3)
                .map(|s| format!("{} s: p99 {:.1} ms", s.second, s.latency.p99_ms))
                .collect();
            out += &format!(
                "  slowest      seconds of the run {} (the timeline is in --json)\n",
                each.join(", ")
            );
        }
        out += &format!("  outcomes     {:?}\n", self.outcomes);
        out += &format!("  errors       {:?}\n", self.errors);
        for (kind, body) in &self.error_samples {
            out += &format!("    first {kind}: {body}\n");
        }
        if let Some(m) = self.stored_messages_per_order {
            out += &format!("  JetStream    {m:.1} stored messages per order\n");
        }
        if let Some(ops) = &self.jetstream_operations_per_order {
            let total: f64 = ops.values().sum();
            let each: Vec<String> = ops.iter().map(|(op, n)| format!("{op} {n:.1}")).collect();
            out += &format!(
                "  operations   {total:.1} JetStream requests per order ({})\n",
                each.join(", ")
            );
        }
        if let Some(t) = &self.nats_messages_per_order {
            out += &format!(
                "  nats-server  {:.1} messages in, {:.1} out per order\n",
                t.in_msgs, t.out_msgs
            );
        }
        if let Some(b) = &self.broker_share {
            out += &format!(
                "  broker       {:.0} stored messages/s = {:.0}% of the {:.0}/s ceiling (orderflow bench --broker)\n",
                b.saga_stored_per_second,
                100.0 * b.share,
                b.ceiling_stored_per_second
            );
        }
        for (name, usage) in [("node", &self.node), ("nats-server", &self.nats_server)] {
            if let Some(u) = usage {
                out += &format!(
                    "  {name:<12} {:.2} CPU cores, {:.0} MiB RSS (pid {})\n",
                    u.cpu_cores, u.rss_mib, u.pid
                );
            }
        }
        if let Some(m) = &self.machine {
            out += &format!(
                "  machine      {:.2} of {} cores busy, {:.2} stolen by the hypervisor\n",
                m.busy_cores, m.cores, m.steal_cores
            );
        }
        out
    }
}
