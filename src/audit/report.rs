//! What an audit found: totals, the per-SKU table and violations by category.

use std::fmt;

use serde::Serialize;

/// The kinds of broken invariant an audit reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    /// A message whose subject or body cannot be read.
    Unreadable,
    /// Events (orders, payments, stock) of an order that was never placed.
    UnknownOrder,
    /// An order placed more than once or with more than one ending.
    Terminal,
    /// An order without an ending, placed longer ago than the grace period.
    Stuck,
    /// Authorizations, declines and refunds that do not add up.
    Payment,
    /// A SKU's arithmetic or a reservation's sequence is wrong.
    Stock,
    /// A reservation still held by a cancelled or failed order.
    Leak,
    /// A completed order does not hold exactly the units it bought.
    Fulfilment,
    /// Notifications missing, repeated, early or for unknown orders.
    Notification,
}

impl Category {
    /// The category's name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unreadable => "unreadable",
            Self::UnknownOrder => "unknown-order",
            Self::Terminal => "terminal",
            Self::Stuck => "stuck",
            Self::Payment => "payment",
            Self::Stock => "stock",
            Self::Leak => "leak",
            Self::Fulfilment => "fulfilment",
            Self::Notification => "notification",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One broken invariant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// Which invariant.
    pub category: Category,
    /// What it concerns, e.g. `order <id>`, `sku SKU-1`, `ORDERS #42`.
    pub entity: String,
    /// A sentence for the operator.
    pub message: String,
}

/// Every violation of one category: the full count and the first examples.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CategoryReport {
    /// Which invariant.
    pub category: Category,
    /// How many violations were found.
    pub count: u64,
    /// The first few, in journal order.
    pub examples: Vec<Violation>,
}

/// One stream's pass.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StreamReport {
    /// The stream's name.
    pub stream: String,
    /// The last sequence when the audit started; later messages were not read.
    pub last_sequence: u64,
    /// Messages read.
    pub messages: u64,
    /// Stored copies of an event (same subject and `Nats-Msg-Id`), counted once.
    pub republished_copies: u64,
    /// Messages that could not be read.
    pub unreadable: u64,
    /// The first unreadable messages.
    #[serde(skip)]
    pub(super) unreadable_examples: Vec<Unreadable>,
}

/// An unreadable message, before it becomes a violation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Unreadable {
    pub seq: u64,
    pub subject: String,
    pub reason: String,
}

/// How the placed orders stand.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OrderTotals {
    /// Orders with a `placed` event.
    pub placed: u64,
    /// Ended completed (first ending, if there were several).
    pub completed: u64,
    /// Ended failed.
    pub failed: u64,
    /// Ended cancelled.
    pub cancelled: u64,
    /// Not ended, placed within the grace period.
    pub in_flight: u64,
    /// Not ended, placed before the grace period (each also a violation).
    pub stuck: u64,
}

/// Logical payment events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PaymentTotals {
    /// `authorized` events.
    pub authorized: u64,
    /// `declined` events.
    pub declined: u64,
    /// `refunded` events.
    pub refunded: u64,
}

/// Logical notification events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NotificationTotals {
    /// `sent` events.
    pub sent: u64,
    /// Ended orders, within the grace period, not yet notified.
    pub pending: u64,
}

/// One SKU's stock as the journal tells it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SkuReport {
    /// The SKU.
    pub sku: String,
    /// Units ever restocked.
    pub restocked: u64,
    /// `available` of the SKU's last event.
    pub available: u64,
    /// Units reserved and not released, by any order (sold units included).
    pub held: u64,
    /// Units held by completed orders.
    pub sold: u64,
}

/// Everything an audit found. `Display` renders it for people, serde as JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AuditReport {
    /// Each stream's pass.
    pub streams: Vec<StreamReport>,
    /// Orders by outcome.
    pub orders: OrderTotals,
    /// Payments by type.
    pub payments: PaymentTotals,
    /// Notifications.
    pub notifications: NotificationTotals,
    /// Stored copies of events across all streams, counted once (information, not a violation).
    pub republished_copies: u64,
    /// Stock per SKU, by SKU.
    pub skus: Vec<SkuReport>,
    /// Violations by category; empty when the journal is sound.
    pub violations: Vec<CategoryReport>,
    /// How long the audit took.
    pub elapsed_ms: u64,
}

impl AuditReport {
    /// Violations by category, each with its count and first examples.
    pub fn violations(&self) -> &[CategoryReport] {
        &self.violations
    }

    /// How many violations were found in all.
    pub fn violation_count(&self) -> u64 {
        self.violations.iter().map(|c| c.count).sum()
    }

    /// The violations of one category, if any.
    pub fn category(&self, category: Category) -> Option<&CategoryReport> {
        self.violations.iter().find(|c| c.category == category)
    }
}

impl fmt::Display for AuditReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "orderflow audit: {} streams read in {} ms",
            self.streams.len(),
            self.elapsed_ms
        )?;
        for s in &self.streams {
            writeln!(
                f,
                "  {:<14} up to seq {:<10} {:>9} messages  {:>6} republished copies  {:>6} unreadable",
                s.stream, s.last_sequence, s.messages, s.republished_copies, s.unreadable
            )?;
        }
        let o = &self.orders;
        writeln!(
            f,
            "orders:        {} placed: {} completed, {} failed, {} cancelled, {} in flight, {} stuck",
            o.placed, o.completed, o.failed, o.cancelled, o.in_flight, o.stuck
        )?;
        let p = &self.payments;
        writeln!(
            f,
            "payments:      {} authorized, {} declined, {} refunded",
            p.authorized, p.declined, p.refunded
        )?;
        writeln!(
            f,
            "notifications: {} sent, {} pending",
            self.notifications.sent, self.notifications.pending
        )?;
        writeln!(f, "republished copies (counted once): {}", self.republished_copies)?;
        if !self.skus.is_empty() {
            let width = self.skus.iter().map(|s| s.sku.len()).max().unwrap_or(0).max(3);
            writeln!(
                f,
                "{:<width$}  {:>10}  {:>10}  {:>10}  {:>10}",
                "sku", "restocked", "available", "held", "sold"
            )?;
            for s in &self.skus {
                writeln!(
                    f,
                    "{:<width$}  {:>10}  {:>10}  {:>10}  {:>10}",
                    s.sku, s.restocked, s.available, s.held, s.sold
                )?;
            }
        }
        let total = self.violation_count();
        if total == 0 {
            return writeln!(f, "violations: none");
        }
        writeln!(f, "violations: {total} in {} categories", self.violations.len())?;
        for c in &self.violations {
            writeln!(f, "  {} ({})", c.category, c.count)?;
            for v in &c.examples {
                writeln!(f, "    {}: {}", v.entity, v.message)?;
            }
            let shown = c.examples.len() as u64;
            if c.count > shown {
                writeln!(f, "    … and {} more", c.count - shown)?;
            }
        }
        Ok(())
    }
}
