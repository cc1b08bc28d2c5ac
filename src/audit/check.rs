//! The per-stream tallies (compact records folded from each pass) and the
//! checks that judge them together.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

use schemas::inventory::InventoryEvent;
use schemas::notification::NotificationEvent;
use schemas::order::{OrderEvent, Outcome};
use schemas::payment::PaymentEvent;
use schemas::{OrderId, Sku};

use super::report::{
    AuditReport, Category, CategoryReport, NotificationTotals, OrderTotals, PaymentTotals, SkuReport, StreamReport,
    Violation,
};
use super::scan::Meta;
use super::AuditOptions;

/// The order a subject's entity token names.
fn order_of(meta: &Meta<'_>) -> Result<OrderId, String> {
    OrderId::parse(meta.entity).map_err(|e| format!("subject names no order id ({e})"))
}

/// Refuses a body naming another order than its subject.
fn same_order(subject: OrderId, body: OrderId) -> Result<(), String> {
    if subject == body {
        Ok(())
    } else {
        Err(format!("body names order {body}, subject order {subject}"))
    }
}

/// Index of an outcome in per-outcome counters.
fn slot(outcome: Outcome) -> usize {
    match outcome {
        Outcome::Completed => 0,
        Outcome::Failed => 1,
        Outcome::Cancelled => 2,
    }
}

/// One order as ORDERS tells it.
#[derive(Debug, Default)]
struct OrderRecord {
    first_seq: u64,
    placed: u32,
    placed_at: Option<SystemTime>,
    /// Units bought per SKU (lines of one SKU summed).
    lines: Vec<(Sku, u64)>,
    /// Events other than `placed` and endings.
    others: u32,
    /// Endings seen: completed, failed, cancelled.
    ends: [u32; 3],
    /// The first ending in journal order.
    outcome: Option<Outcome>,
    ended_at: Option<SystemTime>,
}

/// The ORDERS pass.
#[derive(Debug, Default)]
pub(super) struct OrderTally {
    records: HashMap<OrderId, OrderRecord>,
}

impl OrderTally {
    /// Folds one logical ORDERS event.
    pub fn add(&mut self, meta: Meta<'_>, event: OrderEvent) -> Result<(), String> {
        let id = order_of(&meta)?;
        if let OrderEvent::Placed { order_id, .. } = &event {
            same_order(id, *order_id)?;
        }
        let record = self.records.entry(id).or_insert_with(|| OrderRecord {
            first_seq: meta.seq,
            ..OrderRecord::default()
        });
        match event {
            OrderEvent::Placed { lines, .. } => {
                record.placed = record.placed.saturating_add(1);
                if record.placed_at.is_none() {
                    record.placed_at = Some(meta.published);
                    for line in lines {
                        let quantity = u64::from(line.quantity.get());
                        match record.lines.iter_mut().find(|(sku, _)| *sku == line.sku) {
                            Some((_, total)) => *total = total.saturating_add(quantity),
                            None => record.lines.push((line.sku, quantity)),
                        }
                    }
                }
            }
            event => match event.outcome() {
                Some(outcome) => {
                    let count = &mut record.ends[slot(outcome)];
                    *count = count.saturating_add(1);
                    if record.outcome.is_none() {
                        record.outcome = Some(outcome);
                        record.ended_at = Some(meta.published);
                    }
                }
                None => record.others = record.others.saturating_add(1),
            },
        }
        Ok(())
    }
}

/// One order's payment as PAYMENTS tells it.
#[derive(Debug, Default)]
struct PaymentRecord {
    first_seq: u64,
    authorized: u32,
    declined: u32,
    refunded: u32,
}

/// The PAYMENTS pass.
#[derive(Debug, Default)]
pub(super) struct PaymentTally {
    records: HashMap<OrderId, PaymentRecord>,
}

impl PaymentTally {
    /// Folds one logical PAYMENTS event.
    pub fn add(&mut self, meta: Meta<'_>, event: PaymentEvent) -> Result<(), String> {
        let id = order_of(&meta)?;
        let record = self.records.entry(id).or_insert_with(|| PaymentRecord {
            first_seq: meta.seq,
            ..PaymentRecord::default()
        });
        let count = match event {
            PaymentEvent::Authorized { order_id, .. } => {
                same_order(id, order_id)?;
                &mut record.authorized
            }
            // Given up unreached: like a decline, nothing was captured.
            PaymentEvent::Declined { order_id, .. } | PaymentEvent::Abandoned { order_id, .. } => {
                same_order(id, order_id)?;
                &mut record.declined
            }
            PaymentEvent::Waiting { order_id, .. } => return same_order(id, order_id),
            PaymentEvent::Refunded { order_id, .. } => {
                same_order(id, order_id)?;
                &mut record.refunded
            }
        };
        *count = count.saturating_add(1);
        Ok(())
    }
}

/// One order's notifications as NOTIFICATIONS tells them.
#[derive(Debug, Default)]
struct NotificationRecord {
    first_seq: u64,
    sent: u32,
    /// The ending the first notification announced.
    outcome: Option<Outcome>,
}

/// The NOTIFICATIONS pass.
#[derive(Debug, Default)]
pub(super) struct NotificationTally {
    records: HashMap<OrderId, NotificationRecord>,
}

impl NotificationTally {
    /// Folds one logical NOTIFICATIONS event.
    pub fn add(&mut self, meta: Meta<'_>, event: NotificationEvent) -> Result<(), String> {
        let id = order_of(&meta)?;
        if let Some(order_id) = schemas::wire::Event::order_id(&event) {
            same_order(id, order_id)?;
        }
        let settles = event.settles();
        if matches!(event, NotificationEvent::Read { .. }) {
            return Ok(());
        }
        let record = self.records.entry(id).or_insert_with(|| NotificationRecord {
            first_seq: meta.seq,
            ..NotificationRecord::default()
        });
        if settles {
            record.sent = record.sent.saturating_add(1);
            record.outcome.get_or_insert(event.outcome());
        }
        Ok(())
    }
}

/// One SKU's stock as INVENTORY tells it.
#[derive(Debug, Default)]
struct SkuRecord {
    restocked: u64,
    /// restocked − reserved + released so far; `None` once it under/overflowed.
    computed: Option<u64>,
    /// `available` of the last event.
    available: u64,
    /// The first problem with the arithmetic, for the report.
    problem: Option<String>,
}

/// One order's answers and release at one SKU.
#[derive(Debug, Default)]
struct Hold {
    first_seq: u64,
    reserved: u32,
    rejected: u32,
    /// Withdrawals that fenced the order off before the SKU answered it.
    withdrawn: u32,
    released: u32,
    /// Units of the first reservation.
    quantity: u64,
    released_early: bool,
    release_mismatch: Option<u64>,
}

impl Hold {
    /// Units reserved and not released.
    fn held(&self) -> u64 {
        if self.reserved > 0 && self.released == 0 {
            self.quantity
        } else {
            0
        }
    }
}

/// The INVENTORY pass.
#[derive(Debug, Default)]
pub(super) struct InventoryTally {
    skus: HashMap<Sku, SkuRecord>,
    holds: HashMap<(Sku, OrderId), Hold>,
}

impl InventoryTally {
    /// Folds one logical INVENTORY event.
    pub fn add(&mut self, meta: Meta<'_>, event: InventoryEvent) -> Result<(), String> {
        let (sku, available) = match &event {
            InventoryEvent::Restocked { sku, available, .. }
            | InventoryEvent::Reserved { sku, available, .. }
            | InventoryEvent::Rejected { sku, available, .. }
            | InventoryEvent::Released { sku, available, .. }
            | InventoryEvent::Withdrawn { sku, available, .. } => (sku, *available),
        };
        if sku.as_str() != meta.entity {
            return Err(format!("body names SKU {sku}, subject SKU {}", meta.entity));
        }
        let record = self.skus.entry(sku.clone()).or_insert_with(|| SkuRecord {
            computed: Some(0),
            ..SkuRecord::default()
        });
        record.available = available;
        let before = record.computed;
        let (computed, what) = match &event {
            InventoryEvent::Restocked { quantity, .. } => {
                record.restocked = record.restocked.saturating_add(*quantity);
                (before.and_then(|c| c.checked_add(*quantity)), "restocked")
            }
            InventoryEvent::Reserved { quantity, .. } => (
                before.and_then(|c| c.checked_sub(u64::from(quantity.get()))),
                "reserved",
            ),
            InventoryEvent::Rejected { .. } => (before, "rejected"),
            InventoryEvent::Withdrawn { .. } => (before, "withdrawn"),
            InventoryEvent::Released { quantity, .. } => (
                before.and_then(|c| c.checked_add(u64::from(quantity.get()))),
                "released",
            ),
        };
        record.computed = computed;
        if record.problem.is_none() {
            match (before, computed) {
                (Some(b), None) => {
                    record.problem = Some(format!(
                        "at seq {} ({what}) restocked − reserved + released leaves the range of u64 (stock was {b})",
                        meta.seq
                    ))
                }
                (_, Some(c)) if c != available => {
                    record.problem = Some(format!(
                        "at seq {} ({what}) the event says {available} available, restocked − reserved + released \
                         gives {c}",
                        meta.seq
                    ))
                }
                _ => {}
            }
        }
        let order = match &event {
            InventoryEvent::Restocked { .. } => return Ok(()),
            InventoryEvent::Reserved { order_id, .. }
            | InventoryEvent::Rejected { order_id, .. }
            | InventoryEvent::Released { order_id, .. }
            | InventoryEvent::Withdrawn { order_id, .. } => *order_id,
        };
        let hold = self.holds.entry((sku.clone(), order)).or_insert_with(|| Hold {
            first_seq: meta.seq,
            ..Hold::default()
        });
        match event {
            InventoryEvent::Reserved { quantity, .. } => {
                hold.reserved = hold.reserved.saturating_add(1);
                if hold.reserved == 1 {
                    hold.quantity = u64::from(quantity.get());
                }
            }
            InventoryEvent::Rejected { .. } => hold.rejected = hold.rejected.saturating_add(1),
            InventoryEvent::Withdrawn { .. } => hold.withdrawn = hold.withdrawn.saturating_add(1),
            InventoryEvent::Released { quantity, .. } => {
                if hold.reserved == 0 {
                    hold.released_early = true;
                } else if u64::from(quantity.get()) != hold.quantity && hold.release_mismatch.is_none() {
                    hold.release_mismatch = Some(u64::from(quantity.get()));
                }
                hold.released = hold.released.saturating_add(1);
            }
            InventoryEvent::Restocked { .. } => {}
        }
        Ok(())
    }
}

/// The four passes' results.
#[derive(Debug, Default)]
pub(super) struct Tallies {
    pub orders: OrderTally,
    pub payments: PaymentTally,
    pub inventory: InventoryTally,
    pub notifications: NotificationTally,
}

/// Violations by category: every one counted, the first few kept.
struct Findings {
    by: BTreeMap<Category, CategoryReport>,
    examples: usize,
}

impl Findings {
    fn entry(&mut self, category: Category) -> &mut CategoryReport {
        self.by.entry(category).or_insert_with(|| CategoryReport {
            category,
            count: 0,
            examples: Vec::new(),
        })
    }

    fn add(&mut self, category: Category, entity: &str, message: String) {
        let examples = self.examples;
        let c = self.entry(category);
        c.count += 1;
        if c.examples.len() < examples {
            c.examples.push(Violation {
                category,
                entity: entity.to_owned(),
                message,
            });
        }
    }
}

/// A short age for sentences, e.g. `7m 12s`.
fn age(now: SystemTime, then: Option<SystemTime>) -> String {
    let age = then.and_then(|t| now.duration_since(t).ok()).unwrap_or_default();
    humantime::format_duration(Duration::from_secs(age.as_secs())).to_string()
}

/// Judges the tallies together and builds the report.
pub(super) fn judge(t: Tallies, streams: [StreamReport; 4], now: SystemTime, options: &AuditOptions) -> AuditReport {
    let overdue =
        |at: Option<SystemTime>| at.is_some_and(|at| now.duration_since(at).is_ok_and(|age| age > options.grace));
    let mut f = Findings {
        by: BTreeMap::new(),
        examples: options.examples,
    };
    let mut report = AuditReport::default();

    for s in &streams {
        report.republished_copies += s.republished_copies;
        if s.unreadable > 0 {
            let c = f.entry(Category::Unreadable);
            c.count += s.unreadable;
            for u in s
                .unreadable_examples
                .iter()
                .take(options.examples.saturating_sub(c.examples.len()))
            {
                c.examples.push(Violation {
                    category: Category::Unreadable,
                    entity: format!("{} #{}", s.stream, u.seq),
                    message: format!("{}: {}", u.subject, u.reason),
                });
            }
        }
    }

    let placed = |id: &OrderId| t.orders.records.get(id).filter(|o| o.placed > 0);
    let mut holds_by_order: HashMap<OrderId, Vec<(&Sku, &Hold)>> = HashMap::new();
    for ((sku, order), hold) in &t.inventory.holds {
        holds_by_order.entry(*order).or_default().push((sku, hold));
    }

    let mut orders: Vec<_> = t.orders.records.iter().collect();
    orders.sort_unstable_by_key(|(_, o)| o.first_seq);
    let mut totals = OrderTotals::default();
    for (id, o) in orders {
        let entity = format!("order {id}");
        if o.placed == 0 {
            let events = o.others + o.ends.iter().sum::<u32>();
            f.add(
                Category::UnknownOrder,
                &entity,
                format!(
                    "{events} ORDERS events (the first at seq {}) but no placed",
                    o.first_seq
                ),
            );
            continue;
        }
        totals.placed += 1;
        if o.placed > 1 {
            f.add(Category::Terminal, &entity, format!("placed {} times", o.placed));
        }
        match o.outcome {
            None if overdue(o.placed_at) => {
                totals.stuck += 1;
                f.add(
                    Category::Stuck,
                    &entity,
                    format!("placed {} ago and never ended", age(now, o.placed_at)),
                );
            }
            None => totals.in_flight += 1,
            Some(outcome) => {
                match outcome {
                    Outcome::Completed => totals.completed += 1,
                    Outcome::Failed => totals.failed += 1,
                    Outcome::Cancelled => totals.cancelled += 1,
                }
                let [c, fl, cn] = o.ends;
                if c + fl + cn > 1 {
                    f.add(
                        Category::Terminal,
                        &entity,
                        format!(
                            "ended {} times ({c} completed, {fl} failed, {cn} cancelled)",
                            c + fl + cn
                        ),
                    );
                }
            }
        }
        check_payment(&mut f, &entity, o.outcome, t.payments.records.get(id));
        check_notification(
            &mut f,
            &entity,
            o,
            t.notifications.records.get(id),
            overdue(o.ended_at),
            now,
            &mut report.notifications,
        );
        check_holds(
            &mut f,
            &entity,
            o,
            holds_by_order.get(id).map(Vec::as_slice).unwrap_or(&[]),
        );
    }
    report.orders = totals;

    let mut payments: Vec<_> = t.payments.records.iter().collect();
    payments.sort_unstable_by_key(|(_, p)| p.first_seq);
    let mut pay = PaymentTotals::default();
    for (id, p) in payments {
        pay.authorized += u64::from(p.authorized);
        pay.declined += u64::from(p.declined);
        pay.refunded += u64::from(p.refunded);
        if placed(id).is_none() {
            f.add(
                Category::UnknownOrder,
                &format!("order {id}"),
                format!(
                    "payment events (the first at PAYMENTS seq {}) but no placed",
                    p.first_seq
                ),
            );
        }
    }
    report.payments = pay;

    let mut notes: Vec<_> = t.notifications.records.iter().collect();
    notes.sort_unstable_by_key(|(_, n)| n.first_seq);
    for (id, n) in notes {
        report.notifications.sent += u64::from(n.sent);
        if placed(id).is_none() {
            f.add(
                Category::Notification,
                &format!("order {id}"),
                format!(
                    "{} notification(s) (the first at NOTIFICATIONS seq {}) for an order never placed",
                    n.sent, n.first_seq
                ),
            );
        }
    }

    let mut skus: BTreeMap<&Sku, SkuReport> = t
        .inventory
        .skus
        .iter()
        .map(|(sku, r)| {
            let row = SkuReport {
                sku: sku.to_string(),
                restocked: r.restocked,
                available: r.available,
                held: 0,
                sold: 0,
            };
            (sku, row)
        })
        .collect();
    let mut holds: Vec<_> = t.inventory.holds.iter().collect();
    holds.sort_unstable_by_key(|(_, h)| h.first_seq);
    for ((sku, id), h) in holds {
        let entity = format!("sku {sku} / order {id}");
        let held = h.held();
        let order = placed(id);
        if let Some(row) = skus.get_mut(sku) {
            row.held += held;
            if order.and_then(|o| o.outcome) == Some(Outcome::Completed) {
                row.sold += held;
            }
        }
        if order.is_none() {
            f.add(
                Category::UnknownOrder,
                &entity,
                format!(
                    "stock answers (the first at INVENTORY seq {}) but no placed",
                    h.first_seq
                ),
            );
        }
        // A withdrawal stands in for the answer: nothing may follow it.
        let answers = h.reserved + h.rejected + h.withdrawn;
        if answers > 1 {
            f.add(
                Category::Stock,
                &entity,
                format!(
                    "answered {answers} times ({} reserved, {} rejected, {} withdrawn); at most once",
                    h.reserved, h.rejected, h.withdrawn
                ),
            );
        }
        if h.released_early {
            f.add(Category::Stock, &entity, "released before it was reserved".to_owned());
        }
        if h.released > 1 {
            f.add(
                Category::Stock,
                &entity,
                format!("released {} times; at most once", h.released),
            );
        }
        if let Some(q) = h.release_mismatch {
            f.add(
                Category::Stock,
                &entity,
                format!("released {q} units of a reservation of {}", h.quantity),
            );
        }
    }
    for (sku, r) in &t.inventory.skus {
        let final_mismatch = r.computed.filter(|c| *c != r.available);
        if r.problem.is_some() || final_mismatch.is_some() {
            let mut sentence = r.problem.clone().unwrap_or_default();
            if let Some(c) = final_mismatch {
                if !sentence.is_empty() {
                    sentence.push_str("; ");
                }
                sentence.push_str(&format!(
                    "the last event says {} available, the journal gives {c}",
                    r.available
                ));
            }
            f.add(Category::Stock, &format!("sku {sku}"), sentence);
        }
    }
    report.skus = skus.into_values().collect();
    report.streams = streams.into();
    report.violations = f.by.into_values().collect();
    report
}

/// Invariant 2: authorizations, declines and refunds against the ending.
fn check_payment(f: &mut Findings, entity: &str, outcome: Option<Outcome>, p: Option<&PaymentRecord>) {
    let (auth, declined, refunded) = p.map_or((0, 0, 0), |p| (p.authorized, p.declined, p.refunded));
    let mut add = |m: String| f.add(Category::Payment, entity, m);
    if auth > 1 {
        add(format!("authorized {auth} times; at most once"));
    }
    if auth > 0 && declined > 0 {
        add("both authorized and declined".to_owned());
    }
    if refunded > 1 {
        add(format!("refunded {refunded} times; at most once"));
    }
    if refunded > 0 && auth == 0 {
        add("refunded without an authorization".to_owned());
    }
    match outcome {
        Some(Outcome::Completed) => {
            if auth == 0 {
                add("completed without an authorization".to_owned());
            }
            if refunded > 0 {
                add("completed but refunded".to_owned());
            }
        }
        Some(o @ (Outcome::Failed | Outcome::Cancelled)) if auth > 0 && refunded == 0 => {
            add(format!("authorized, ended {}, never refunded", o.event_type()));
        }
        _ => {}
    }
}

/// Invariant 4: one notification per ended order, matching its ending.
fn check_notification(
    f: &mut Findings,
    entity: &str,
    o: &OrderRecord,
    n: Option<&NotificationRecord>,
    overdue: bool,
    now: SystemTime,
    totals: &mut NotificationTotals,
) {
    let sent = n.map_or(0, |n| n.sent);
    let told = n.and_then(|n| n.outcome);
    let mut add = |m: String| f.add(Category::Notification, entity, m);
    match o.outcome {
        Some(outcome) => {
            if sent == 0 && overdue {
                add(format!(
                    "ended {} {} ago, never notified",
                    outcome.event_type(),
                    age(now, o.ended_at)
                ));
            } else if sent == 0 {
                totals.pending += 1;
            }
            if sent > 1 {
                add(format!("notified {sent} times; exactly once"));
            }
            if let Some(told) = told.filter(|t| *t != outcome) {
                add(format!(
                    "the customer was told {}, the order ended {}",
                    told.event_type(),
                    outcome.event_type()
                ));
            }
        }
        None if sent > 0 => add(format!("notified {sent} time(s) before it ended")),
        None => {}
    }
}

/// Invariant 3 against ORDERS: leaks on cancel/fail, exact holdings on completion.
fn check_holds(f: &mut Findings, entity: &str, o: &OrderRecord, holds: &[(&Sku, &Hold)]) {
    match o.outcome {
        Some(outcome @ (Outcome::Cancelled | Outcome::Failed)) => {
            for (sku, h) in holds.iter().filter(|(_, h)| h.held() > 0) {
                f.add(
                    Category::Leak,
                    entity,
                    format!("ended {} but still holds {} of {sku}", outcome.event_type(), h.held()),
                );
            }
        }
        Some(Outcome::Completed) => {
            for (sku, bought) in &o.lines {
                let held = holds.iter().find(|(s, _)| *s == sku).map_or(0, |(_, h)| h.held());
                if held != *bought {
                    f.add(
                        Category::Fulfilment,
                        entity,
                        format!("completed holding {held} of {sku}, bought {bought}"),
                    );
                }
            }
            for (sku, h) in holds {
                if h.held() > 0 && !o.lines.iter().any(|(s, _)| s == *sku) {
                    f.add(
                        Category::Fulfilment,
                        entity,
                        format!("completed holding {} of {sku}, which it did not order", h.held()),
                    );
                }
            }
        }
        None => {}
    }
}
