//! `orderflow audit` against real journals: a clean one written by a node,
//! and hand-made ones that break each invariant.

use std::collections::HashMap;
use std::time::Duration;

use actors::journal::Cause;
use async_nats::header::HeaderMap;
use async_nats::jetstream::publish::PublishAck;
use orderflow::audit::{self, AuditOptions, AuditReport, Category};
use orderflow::bus::envelope;
use schemas::headers as h;
use schemas::inventory::InventoryEvent;
use schemas::notification::{Channel, NotificationEvent};
use schemas::order::{Line, OrderEvent, Outcome};
use schemas::payment::PaymentEvent;
use schemas::subjects::EntityRef;
use schemas::wire::{self, Event};
use schemas::{Currency, CustomerId, Money, OrderId, Quantity, Sku};

use crate::support::{
    eventually, eventually_true, order_body, orderflow_cli, send, test_config, NatsServer, TestApp, SAGA_DEADLINE,
};

fn categories(report: &AuditReport) -> Vec<Category> {
    report.violations().iter().map(|c| c.category).collect()
}

#[tokio::test]
async fn a_clean_journal_passes_with_the_right_counts() {
    let app = TestApp::spawn().await;
    app.restock("SKU-1", 10).await;
    app.restock("SKU-2", 1).await;
    let completed = app.place_ok(&order_body("alice", &[("SKU-1", 2)], "tok_visa")).await;
    let declined = app.place_ok(&order_body("bob", &[("SKU-1", 1)], "tok_decline")).await;
    let out_of_stock = app.place_ok(&order_body("carol", &[("SKU-2", 2)], "tok_visa")).await;
    let partly = app
        .place_ok(&order_body("dave", &[("SKU-1", 1), ("SKU-3", 1)], "tok_visa"))
        .await;
    let ids = [&completed, &declined, &out_of_stock, &partly];
    let mut statuses = Vec::new();
    for id in ids {
        statuses.push(app.ended(id).await["status"].as_str().unwrap_or_default().to_owned());
    }
    assert_eq!(statuses, ["COMPLETED", "FAILED", "CANCELLED", "CANCELLED"]);
    // Notifications follow the endings asynchronously.
    eventually_true("every order notified", SAGA_DEADLINE, || async {
        app.stored("NOTIFICATIONS", "notifications.>").await.len() == ids.len()
    })
    .await;

    let report = audit::run(&app.js, &AuditOptions::default())
        .await
        .expect("the audit runs");
    assert_eq!(report.violation_count(), 0, "{report}");
    assert!(report.violations().is_empty());
    let o = &report.orders;
    assert_eq!(
        (o.placed, o.completed, o.failed, o.cancelled, o.in_flight, o.stuck),
        (4, 1, 1, 2, 0, 0),
        "{report}"
    );
    let p = &report.payments;
    assert_eq!((p.authorized, p.declined, p.refunded), (3, 1, 2), "{report}");
    assert_eq!((report.notifications.sent, report.notifications.pending), (4, 0));
    let sku1 = report
        .skus
        .iter()
        .find(|s| s.sku == "SKU-1")
        .expect("SKU-1 in the table");
    assert_eq!(
        (sku1.restocked, sku1.available, sku1.held, sku1.sold),
        (10, 8, 2, 2),
        "{report}"
    );
    let sku2 = report
        .skus
        .iter()
        .find(|s| s.sku == "SKU-2")
        .expect("SKU-2 in the table");
    assert_eq!(
        (sku2.restocked, sku2.available, sku2.held, sku2.sold),
        (1, 1, 0, 0),
        "{report}"
    );
    let text = report.to_string();
    assert!(text.contains("violations: none"), "{text}");

    let out = orderflow_cli(&app.nats.url(), &["audit"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("4 placed: 1 completed"));
    let out = orderflow_cli(&app.nats.url(), &["audit", "--json", "--grace", "1m"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("--json prints JSON");
    assert_eq!(json["orders"]["placed"], 4);
    assert_eq!(json["violations"], serde_json::json!([]));

    // A cancel accepted while the order runs ends it cancelled, still clean.
    let cancel_me = app.place_ok(&order_body("erin", &[("SKU-1", 1)], "tok_visa")).await;
    let (status, _) = send(app.http.post(app.url(&format!("/orders/{cancel_me}/cancel")))).await;
    let ended = app.ended(&cancel_me).await;
    eventually_true("the last order notified", SAGA_DEADLINE, || async {
        app.stored("NOTIFICATIONS", "notifications.>").await.len() == 5
    })
    .await;
    let report = audit::run(&app.js, &AuditOptions::default())
        .await
        .expect("the audit runs");
    assert_eq!(report.violation_count(), 0, "{report}");
    let expected_cancelled = if ended["status"] == "CANCELLED" { 3 } else { 2 };
    assert_eq!(
        report.orders.cancelled, expected_cancelled,
        "cancel answered {status}: {report}"
    );
}

/// Appends hand-made events the way the node does: same headers, same
/// optimistic-concurrency check against each entity's last sequence.
struct Writer {
    js: async_nats::jetstream::Context,
    last: HashMap<String, u64>,
}

impl Writer {
    async fn append<E: Event>(&mut self, entity: &EntityRef, event: &E) -> PublishAck {
        let filter = entity.journal_filter();
        let expected = self.last.get(&filter).copied().unwrap_or(0);
        let headers = envelope::append_headers(entity, event, expected, &Cause::default());
        let body = wire::encode(event).expect("the event encodes");
        let ack = self
            .js
            .publish_with_headers(entity.subject(event.event_type()), headers, body.into())
            .await
            .expect("the publish is sent")
            .await
            .expect("the publish is acknowledged");
        assert!(!ack.duplicate, "{filter}: a fresh event was taken for a duplicate");
        self.last.insert(filter, ack.sequence);
        ack
    }

    /// Re-publishes a stored message as chaos does: same subject, body and
    /// `Nats-Msg-Id`, without the concurrency headers.
    async fn republish(&self, stream: &str, seq: u64) -> PublishAck {
        let stored = self
            .js
            .get_stream_no_info(stream)
            .await
            .expect("the stream exists")
            .direct_get(seq)
            .await
            .expect("the message is stored");
        let mut headers = HeaderMap::new();
        for (name, values) in stored.headers.iter() {
            let name = name.to_string();
            if name.starts_with("Nats-Expected") {
                continue;
            }
            for v in values {
                headers.append(name.as_str(), v.as_str());
            }
        }
        self.js
            .publish_with_headers(stored.subject.to_string(), headers, stored.payload)
            .await
            .expect("the publish is sent")
            .await
            .expect("the publish is acknowledged")
    }
}

fn sku(s: &str) -> Sku {
    Sku::parse(s).expect("a valid SKU")
}

fn alice() -> CustomerId {
    CustomerId::parse("alice").expect("a valid customer")
}

fn placed(order_id: OrderId, sku_name: &str, quantity: u32) -> OrderEvent {
    OrderEvent::Placed {
        order_id,
        customer_id: alice(),
        lines: vec![Line {
            sku: sku(sku_name),
            quantity: Quantity::new(quantity).expect("a valid quantity"),
            unit_price: 1250,
        }],
        currency: Currency::default(),
        payment_method: "tok_visa".to_owned(),
    }
}

fn money(minor: u64) -> Money {
    Money {
        minor,
        currency: Currency::default(),
    }
}

fn authorized(order_id: OrderId) -> PaymentEvent {
    PaymentEvent::Authorized {
        order_id,
        payment_id: format!("pay_{order_id}"),
        amount: money(2500),
    }
}

fn refunded(order_id: OrderId) -> PaymentEvent {
    PaymentEvent::Refunded {
        order_id,
        payment_id: format!("pay_{order_id}"),
        refund_id: format!("ref_{order_id}"),
        amount: money(2500),
    }
}

fn sent(order_id: OrderId, outcome: Outcome, channel: Channel) -> NotificationEvent {
    NotificationEvent::Sent {
        order_id,
        customer_id: alice(),
        outcome,
        channel,
        message: format!("your order {}", outcome.event_type()),
        attempts: 1,
        recipient: None,
        fallback_of: None,
    }
}

fn completed() -> OrderEvent {
    OrderEvent::Completed {
        customer_id: alice(),
        reserved: None,
    }
}

fn cancelled() -> OrderEvent {
    OrderEvent::Cancelled {
        customer_id: alice(),
        reason: "asked to".to_owned(),
    }
}

fn restocked(name: &str, quantity: u64, available: u64) -> InventoryEvent {
    InventoryEvent::Restocked {
        sku: sku(name),
        quantity,
        restock_id: format!("r-{name}-{quantity}-{available}"),
        available,
    }
}

fn reserved(name: &str, order_id: OrderId, quantity: u32, available: u64) -> InventoryEvent {
    InventoryEvent::Reserved {
        sku: sku(name),
        order_id,
        quantity: Quantity::new(quantity).expect("a valid quantity"),
        available,
    }
}

/// The violation examples of `category` that mention `needle`.
fn mentions(report: &AuditReport, category: Category, needle: &str) -> usize {
    report.category(category).map_or(0, |c| {
        c.examples
            .iter()
            .filter(|v| v.entity.contains(needle) || v.message.contains(needle))
            .count()
    })
}

#[tokio::test]
async fn every_broken_invariant_is_reported() {
    let nats = NatsServer::start().await;
    let js = nats.jetstream().await;
    let mut config = test_config(&nats.url());
    // A tiny window lets a same-id republish be stored, as it would be after 2 minutes.
    config.nats.duplicate_window = Duration::from_millis(100);
    orderflow::bus::topology::ensure(&js, &config)
        .await
        .expect("the topology is created");
    let mut w = Writer {
        js: js.clone(),
        last: HashMap::new(),
    };

    // A sound order: paid, reserved, completed, notified.
    let good = OrderId::random();
    let good_placed = w.append(&EntityRef::order(good), &placed(good, "SKU-G", 2)).await;
    w.append(&EntityRef::payment(good), &authorized(good)).await;
    w.append(&EntityRef::inventory(&sku("SKU-G")), &restocked("SKU-G", 5, 5))
        .await;
    w.append(&EntityRef::inventory(&sku("SKU-G")), &reserved("SKU-G", good, 2, 3))
        .await;
    w.append(&EntityRef::order(good), &completed()).await;
    w.append(
        &EntityRef::notification(good),
        &sent(good, Outcome::Completed, Channel::Email),
    )
    .await;

    // Two endings.
    let twice = OrderId::random();
    w.append(&EntityRef::order(twice), &placed(twice, "SKU-X", 1)).await;
    w.append(&EntityRef::order(twice), &completed()).await;
    w.append(&EntityRef::order(twice), &cancelled()).await;

    // A refund without an authorization.
    let refund_only = OrderId::random();
    w.append(&EntityRef::order(refund_only), &placed(refund_only, "SKU-X", 1))
        .await;
    w.append(&EntityRef::payment(refund_only), &refunded(refund_only)).await;
    let failed = OrderEvent::Failed {
        customer_id: alice(),
        reason: "gave up".to_owned(),
    };
    w.append(&EntityRef::order(refund_only), &failed).await;

    // Completed, yet refunded.
    let paid_back = OrderId::random();
    w.append(&EntityRef::order(paid_back), &placed(paid_back, "SKU-G", 1))
        .await;
    w.append(&EntityRef::payment(paid_back), &authorized(paid_back)).await;
    w.append(
        &EntityRef::inventory(&sku("SKU-G")),
        &reserved("SKU-G", paid_back, 1, 2),
    )
    .await;
    w.append(&EntityRef::payment(paid_back), &refunded(paid_back)).await;
    w.append(&EntityRef::order(paid_back), &completed()).await;

    // Cancelled, refunded, but the reservation never released.
    let leaky = OrderId::random();
    w.append(&EntityRef::order(leaky), &placed(leaky, "SKU-L", 1)).await;
    w.append(&EntityRef::payment(leaky), &authorized(leaky)).await;
    w.append(&EntityRef::inventory(&sku("SKU-L")), &restocked("SKU-L", 3, 3))
        .await;
    w.append(&EntityRef::inventory(&sku("SKU-L")), &reserved("SKU-L", leaky, 1, 2))
        .await;
    w.append(&EntityRef::payment(leaky), &refunded(leaky)).await;
    w.append(&EntityRef::order(leaky), &cancelled()).await;

    // Stock that does not add up: 5 restocked, 7 said available.
    w.append(&EntityRef::inventory(&sku("SKU-M")), &restocked("SKU-M", 5, 7))
        .await;

    // Notified twice (two channels, so two distinct message ids).
    let chatty = OrderId::random();
    w.append(&EntityRef::order(chatty), &placed(chatty, "SKU-X", 1)).await;
    w.append(
        &EntityRef::order(chatty),
        &OrderEvent::Failed {
            customer_id: alice(),
            reason: "declined".to_owned(),
        },
    )
    .await;
    w.append(
        &EntityRef::payment(chatty),
        &PaymentEvent::Declined {
            order_id: chatty,
            reason: "declined".to_owned(),
        },
    )
    .await;
    w.append(
        &EntityRef::notification(chatty),
        &sent(chatty, Outcome::Failed, Channel::Email),
    )
    .await;
    w.append(
        &EntityRef::notification(chatty),
        &sent(chatty, Outcome::Failed, Channel::Webhook),
    )
    .await;

    // A payment for an order nobody placed.
    let ghost = OrderId::random();
    w.append(&EntityRef::payment(ghost), &authorized(ghost)).await;

    // An order still running (no ending yet).
    let running = OrderId::random();
    w.append(&EntityRef::order(running), &placed(running, "SKU-X", 1)).await;

    // A body that is not MessagePack.
    let garbled = OrderId::random();
    let mut headers = HeaderMap::new();
    headers.insert(h::SCHEMA_VERSION, "2");
    headers.insert(h::EVENT_TYPE, "placed");
    js.publish_with_headers(format!("orders.{garbled}.placed"), headers, "not msgpack".into())
        .await
        .expect("the publish is sent")
        .await
        .expect("the publish is acknowledged");

    // A republished copy of the good order's `placed`, stored once the window passed.
    eventually("a republished copy to be stored", Duration::from_secs(10), || async {
        let ack = w.republish("ORDERS", good_placed.sequence).await;
        (!ack.duplicate).then_some(ack)
    })
    .await;

    let report = audit::run(&js, &AuditOptions::default()).await.expect("the audit runs");
    let found = categories(&report);
    for category in [
        Category::Unreadable,
        Category::UnknownOrder,
        Category::Terminal,
        Category::Payment,
        Category::Stock,
        Category::Leak,
        Category::Notification,
    ] {
        assert!(found.contains(&category), "{category} missing from:\n{report}");
    }
    assert!(report.violation_count() > 0);
    assert_eq!(mentions(&report, Category::Terminal, &twice.to_string()), 1, "{report}");
    assert_eq!(
        mentions(&report, Category::Payment, "refunded without an authorization"),
        1,
        "{report}"
    );
    assert_eq!(
        mentions(&report, Category::Payment, "completed but refunded"),
        1,
        "{report}"
    );
    assert_eq!(mentions(&report, Category::Leak, &leaky.to_string()), 1, "{report}");
    assert_eq!(mentions(&report, Category::Stock, "SKU-M"), 1, "{report}");
    assert_eq!(
        mentions(&report, Category::Notification, "notified 2 times"),
        1,
        "{report}"
    );
    assert_eq!(
        mentions(&report, Category::UnknownOrder, &ghost.to_string()),
        1,
        "{report}"
    );
    assert_eq!(
        report.category(Category::Unreadable).map(|c| c.count),
        Some(1),
        "{report}"
    );
    // The copy is information: counted once, no "placed twice", the sound order untouched.
    assert_eq!(report.republished_copies, 1, "{report}");
    for c in report.violations() {
        assert!(
            c.examples.iter().all(|v| !v.entity.contains(&good.to_string())),
            "the sound order was flagged:\n{report}"
        );
    }
    assert_eq!((report.orders.in_flight, report.orders.stuck), (1, 0), "{report}");
    let g = report
        .skus
        .iter()
        .find(|s| s.sku == "SKU-G")
        .expect("SKU-G in the table");
    assert_eq!((g.restocked, g.available, g.held, g.sold), (5, 2, 3, 3), "{report}");
    assert!(report.to_string().contains("leak (1)"), "{report}");

    // With no grace, the running order is stuck.
    let strict = AuditOptions {
        grace: Duration::ZERO,
        ..AuditOptions::default()
    };
    let report = audit::run(&js, &strict).await.expect("the audit runs");
    assert_eq!((report.orders.in_flight, report.orders.stuck), (0, 1), "{report}");
    assert_eq!(mentions(&report, Category::Stuck, &running.to_string()), 1, "{report}");

    let out = orderflow_cli(&nats.url(), &["audit"]).await;
    assert!(!out.status.success(), "violations must fail the command");
    assert!(String::from_utf8_lossy(&out.stderr).contains("violations"));
    assert!(String::from_utf8_lossy(&out.stdout).contains("leak (1)"));
}
