//! The wire format is usable without the Rust code: an independent reader
//! (`tests/interop/read_saga.py`: nats-py and msgpack, nothing from this
//! repository) finds one order's messages in all four streams, decodes every
//! body from its headers alone to exactly what the node itself reads, skips
//! what belongs to other orders, and refuses by name — with a clean error,
//! never a traceback — any message of the order whose headers it cannot honour.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, SystemTime};

use actors::journal::{Cause, Journal};
use async_nats::header::HeaderMap;
use async_nats::jetstream::Context;
use orderflow::bus::journal::NatsJournal;
use orderflow::bus::topology;
use schemas::inventory::InventoryEvent;
use schemas::order::{Line, OrderEvent};
use schemas::subjects::EntityRef;
use schemas::{Currency, CustomerId, OrderId, Quantity, Sku, CURRENT_SCHEMA_VERSION};
use serde_json::{json, Value};

use crate::support::{eventually, order_body, test_config, NatsServer, TestApp, SAGA_DEADLINE};

/// Longer than the script's own deadline (20 s) plus interpreter start-up.
const SCRIPT_DEADLINE: Duration = Duration::from_secs(60);

/// The script's exit code for a message it cannot honour.
const EXIT_WIRE_FORMAT: i32 = 2;

#[tokio::test]
async fn an_outside_reader_decodes_a_whole_saga_from_the_headers_alone() {
    let app = TestApp::spawn().await;
    app.restock("SKU-1", 5).await;
    let id = app.place_ok(&order_body("alice", &[("SKU-1", 2)], "tok_visa")).await;
    // Another order of the same SKU: its reservation shares `inventory.SKU-1.*`
    // with ours, and only the `Order-Id` header tells them apart.
    let other = app.place_ok(&order_body("bob", &[("SKU-1", 1)], "tok_visa")).await;
    for order in [&id, &other] {
        assert_eq!(app.ended(order).await["status"], "COMPLETED");
        // The notification is appended after the ending; wait for it so the
        // reader sees the whole saga.
        eventually("the customer to be notified", SAGA_DEADLINE, || async {
            let sent = app.stored("NOTIFICATIONS", &format!("notifications.{order}.*")).await;
            (!sent.is_empty()).then_some(())
        })
        .await;
    }

    let saga = succeeded(read_saga(&app.nats.url(), &id).await);
    assert_eq!(saga["order_id"], id.as_str());
    let body_id = wire_uuid(&id);
    let messages = saga["messages"].as_array().expect("a list of messages");

    // Every message describes itself in its headers, and the body agrees.
    let version = CURRENT_SCHEMA_VERSION.to_string();
    let mut msg_ids = Vec::new();
    for m in messages {
        let h = &m["headers"];
        let subject = m["subject"].as_str().expect("a subject");
        assert_eq!(subject.rsplit('.').next(), m["event_type"].as_str(), "{m}");
        assert_eq!(h["Event-Type"], m["event_type"], "{m}");
        assert_eq!(h["Schema-Version"], version.as_str(), "{m}");
        assert_eq!(h["Content-Type"], "application/msgpack", "{m}");
        assert_eq!(h["Order-Id"], id.as_str(), "{m}");
        let msg_id = h["Nats-Msg-Id"].as_str().filter(|s| !s.is_empty());
        msg_ids.push(msg_id.unwrap_or_else(|| panic!("the server keeps Nats-Msg-Id: {m}")));
        assert_eq!(
            m["body"]["type"], m["event_type"],
            "the body's tag is the event type: {m}"
        );
        assert!(m["time"].as_str().is_some(), "a stream timestamp: {m}");
    }
    msg_ids.sort_unstable();
    msg_ids.dedup();
    assert_eq!(msg_ids.len(), messages.len(), "one Nats-Msg-Id per message");

    // The reader saw each stream's messages of this order, all of them, and
    // nothing else — the same set the Rust client reads.
    for (stream, filter) in [
        ("ORDERS", format!("orders.{id}.*")),
        ("PAYMENTS", format!("payments.{id}.*")),
        ("INVENTORY", "inventory.*.*".to_owned()),
        ("NOTIFICATIONS", format!("notifications.{id}.*")),
    ] {
        let stored = app.stored(stream, &filter).await;
        let ours: Vec<u64> = stored
            .iter()
            .filter(|m| m.headers.get("Order-Id").map(|v| v.as_str()) == Some(id.as_str()))
            .map(|m| m.sequence)
            .collect();
        assert!(!ours.is_empty(), "{stream} holds messages of order {id}");
        let read: Vec<u64> = of_stream(messages, stream)
            .iter()
            .filter_map(|m| m["seq"].as_u64())
            .collect();
        assert_eq!(read, ours, "{stream}: the reader's messages of order {id}");
        if stream == "INVENTORY" {
            assert!(
                stored.len() > ours.len(),
                "the restock and the other order's reservation share the stream, and were skipped"
            );
        }
    }

    // ORDERS: decoded from MessagePack by the outside reader, each event is
    // exactly what the node decodes and serves as the order's history.
    let orders = of_stream(messages, "ORDERS");
    let order = app.order(&id).await;
    let api: Vec<(u64, &Value)> = order["history"]
        .as_array()
        .expect("a history")
        .iter()
        .map(|e| (e["seq"].as_u64().expect("a sequence"), &e["event"]))
        .collect();
    let read: Vec<(u64, &Value)> = orders
        .iter()
        .map(|m| (m["seq"].as_u64().expect("a sequence"), &m["body"]))
        .collect();
    let api: Vec<(u64, Value)> = api.into_iter().map(|(seq, e)| (seq, as_on_the_wire(e))).collect();
    let read: Vec<(u64, Value)> = read.into_iter().map(|(seq, b)| (seq, b.clone())).collect();
    assert_eq!(read, api, "the outside reader decodes the journal as the node does");
    let types: Vec<String> = orders.iter().map(|m| key(m, false)).collect();
    assert_in_order(&types, &["placed", "payment_requested", "stock_requested", "completed"]);
    assert_eq!(types.first().map(String::as_str), Some("placed"));
    assert_eq!(types.last().map(String::as_str), Some("completed"));
    let placed = &orders[0]["body"];
    assert_eq!(placed["order_id"], body_id);
    assert_eq!(placed["customer_id"], "alice");
    assert_eq!(placed["payment_method"], "tok_visa");
    assert_eq!(
        placed["lines"],
        json!([{ "sku": "SKU-1", "quantity": 2, "unit_price": 1250 }])
    );

    // PAYMENTS: one charge of the whole amount, in minor units.
    let payments = of_stream(messages, "PAYMENTS");
    assert_eq!(payments.len(), 1, "{payments:?}");
    assert_eq!(payments[0]["event_type"], "authorized");
    let body = &payments[0]["body"];
    assert_eq!(body["order_id"], body_id);
    assert_eq!(body["amount"]["minor"], 2 * 1250, "{body}");
    assert_eq!(body["amount"]["currency"], "EUR", "{body}");
    assert!(body["payment_id"].as_str().is_some_and(|p| !p.is_empty()), "{body}");

    // INVENTORY: our reservation only, found by header among the SKU's events.
    let inventory = of_stream(messages, "INVENTORY");
    assert_eq!(inventory.len(), 1, "{inventory:?}");
    assert_eq!(inventory[0]["subject"], "inventory.SKU-1.reserved");
    let body = &inventory[0]["body"];
    assert_eq!(body["sku"], "SKU-1", "{body}");
    assert_eq!(body["order_id"], body_id, "{body}");
    assert_eq!(body["quantity"], 2, "{body}");

    // NOTIFICATIONS: the customer was told how it ended.
    let notifications = of_stream(messages, "NOTIFICATIONS");
    assert!(!notifications.is_empty());
    for n in &notifications {
        assert_eq!(n["event_type"], "sent", "{n}");
        assert_eq!(n["body"]["order_id"], body_id, "{n}");
        assert_eq!(n["body"]["customer_id"], "alice", "{n}");
        assert_eq!(n["body"]["outcome"], "COMPLETED", "{n}");
    }

    // Sorted by stream timestamp, the four streams tell the saga in causal order.
    let times: Vec<SystemTime> = messages
        .iter()
        .map(|m| {
            let t = m["time"].as_str().expect("a timestamp");
            humantime::parse_rfc3339(t).unwrap_or_else(|e| panic!("{t:?} is RFC 3339: {e}"))
        })
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "sorted by time: {times:?}");
    let keys: Vec<String> = messages.iter().map(|m| key(m, true)).collect();
    assert_in_order(
        &keys,
        &[
            "ORDERS placed",
            "ORDERS payment_requested",
            "PAYMENTS authorized",
            "ORDERS stock_requested",
            "INVENTORY reserved",
            "ORDERS completed",
            "NOTIFICATIONS sent",
        ],
    );
}

#[tokio::test]
async fn an_outside_reader_skips_other_orders_and_refuses_what_it_cannot_honour() {
    let nats = NatsServer::start().await;
    let js = nats.jetstream().await;
    topology::ensure(&js, &test_config(&nats.url()))
        .await
        .expect("the streams are created");
    let journal = NatsJournal::open(js.clone()).await.expect("the journal opens");

    // One order's events, written by the node's own journal writer ...
    let ours = OrderId::random();
    let sku = Sku::parse("SKU-9").expect("a sku");
    let cause = Cause {
        message_id: Some("test:cause".into()),
        traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
    };
    let placed = OrderEvent::Placed {
        order_id: ours,
        customer_id: CustomerId::parse("carol").expect("a customer"),
        lines: vec![Line {
            sku: sku.clone(),
            quantity: Quantity::new(3).expect("a quantity"),
            unit_price: 700,
        }],
        currency: Currency::parse("SEK").expect("a currency"),
        payment_method: "tok_visa".into(),
    };
    journal
        .append(&EntityRef::order(ours), 0, &placed, &cause)
        .await
        .expect("placed is stored");
    let reserved = InventoryEvent::Reserved {
        sku: sku.clone(),
        order_id: ours,
        quantity: Quantity::new(3).expect("a quantity"),
        available: 0,
    };
    journal
        .append(&EntityRef::inventory(&sku), 0, &reserved, &cause)
        .await
        .expect("reserved is stored");
    // ... then poison on the same SKU's subjects that belongs to no order,
    // or to another one: not the reader's business, so not its failure.
    publish(&js, "inventory.SKU-9.reserved", HeaderMap::new(), vec![0xc1, 0xff]).await;
    let mut theirs = HeaderMap::new();
    theirs.insert("Order-Id", OrderId::random().to_string().as_str());
    theirs.insert("Schema-Version", "99");
    publish(&js, "inventory.SKU-9.released", theirs, vec![0xc1]).await;

    let saga = succeeded(read_saga(&nats.url(), &ours.to_string()).await);
    let messages = saga["messages"].as_array().expect("a list of messages");
    let subjects: Vec<&str> = messages.iter().filter_map(|m| m["subject"].as_str()).collect();
    assert_eq!(
        subjects,
        [format!("orders.{ours}.placed").as_str(), "inventory.SKU-9.reserved"],
        "{saga}"
    );
    let placed = &messages[0];
    assert_eq!(
        placed["headers"]["traceparent"],
        cause.traceparent.as_deref().unwrap_or_default()
    );
    assert_eq!(placed["headers"]["Causation-Id"], "test:cause");
    assert_eq!(
        placed["body"],
        json!({
            "type": "placed",
            "order_id": wire_uuid(&ours.to_string()),
            "customer_id": "carol",
            "lines": [{ "sku": "SKU-9", "quantity": 3, "unit_price": 700 }],
            "currency": "SEK",
            "payment_method": "tok_visa",
        })
    );
    assert_eq!(
        messages[1]["body"],
        json!({ "type": "reserved", "sku": "SKU-9", "order_id": wire_uuid(&ours.to_string()), "quantity": 3, "available": 0 })
    );

    // A message of the order itself that the reader cannot honour: it says
    // which message and which header, and exits 2.
    let body = rmp_serde::to_vec_named(&json!({ "type": "placed" })).expect("encodes");
    let header_map = |pairs: &[(&str, &str)]| {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.insert(*name, *value);
        }
        h
    };
    let good = [
        ("Event-Type", "placed"),
        ("Schema-Version", "2"),
        ("Content-Type", "application/msgpack"),
    ];
    let with = |name: &str, value: &'static str| {
        let mut pairs: Vec<(&str, &str)> = good.iter().copied().filter(|(n, _)| *n != name).collect();
        if !value.is_empty() {
            pairs.push((name, value));
        }
        header_map(&pairs)
    };
    let cases: Vec<(&str, HeaderMap, Vec<u8>, &str)> = vec![
        (
            "a schema version from the future",
            with("Schema-Version", "99"),
            body.clone(),
            "Schema-Version",
        ),
        (
            "no schema version",
            with("Schema-Version", ""),
            body.clone(),
            "Schema-Version",
        ),
        ("no headers at all", HeaderMap::new(), body.clone(), "Event-Type"),
        (
            "an event type that is not the subject's",
            with("Event-Type", "completed"),
            body.clone(),
            "Event-Type",
        ),
        (
            "a body in another format",
            with("Content-Type", "application/json"),
            br#"{"type":"placed"}"#.to_vec(),
            "Content-Type",
        ),
        (
            "bytes that are not MessagePack",
            header_map(&good),
            vec![0xc1, 0xff],
            "MessagePack",
        ),
    ];
    for (what, headers, body, named) in cases {
        let order = OrderId::random();
        publish(&js, &format!("orders.{order}.placed"), headers, body).await;
        refused(
            read_saga(&nats.url(), &order.to_string()).await,
            what,
            &["ORDERS", named],
        );
    }
    // On INVENTORY the Order-Id header makes a message the order's, and then
    // it has to be readable too.
    let order = OrderId::random();
    let mut h = header_map(&[("Event-Type", "reserved"), ("Schema-Version", "2")]);
    h.insert("Order-Id", order.to_string().as_str());
    publish(&js, "inventory.SKU-9.reserved", h, vec![0x80]).await;
    refused(
        read_saga(&nats.url(), &order.to_string()).await,
        "an inventory message without Content-Type",
        &["INVENTORY", "Content-Type"],
    );
}

/// Runs `tests/interop/read_saga.py NATS_URL ORDER_ID` with `$ORDERFLOW_PYTHON`
/// (else `python3`) and the inherited `PYTHONPATH`. Asynchronously: a blocking
/// wait would stall the runtime the in-process node shares.
async fn read_saga(nats_url: &str, order_id: &str) -> Output {
    let python = std::env::var_os("ORDERFLOW_PYTHON")
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| OsString::from("python3"));
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop/read_saga.py");
    let run = tokio::process::Command::new(&python)
        .arg(&script)
        // The outside reader connects as the read-only inspector: reading a saga needs nothing more.
        .args(["--timeout", "20", &with_inspector_credentials(nats_url), order_id])
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(SCRIPT_DEADLINE, run)
        .await
        .unwrap_or_else(|_| panic!("{} did not finish within {SCRIPT_DEADLINE:?}", script.display()))
        .unwrap_or_else(|e| panic!("running {python:?} {}: {e}", script.display()))
}

/// `nats_url` (`nats://host:port`) with the inspector's credentials in it.
fn with_inspector_credentials(nats_url: &str) -> String {
    let user = crate::support::INSPECTOR_USER;
    nats_url.replacen("nats://", &format!("nats://{}:{}@", user.name, user.password), 1)
}

/// The script's JSON document, after checking it exited 0.
fn succeeded(out: Output) -> Value {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "read_saga.py failed ({}): {stderr}\n(it needs nats-py and msgpack: \
         scripts/install-nats-server.sh --python-deps, with .tools/py on PYTHONPATH; \
         scripts/test.sh does both)",
        out.status
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is one JSON document ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Checks the script refused a message cleanly: exit 2, nothing on stdout,
/// one message naming each of `named`, no traceback.
fn refused(out: Output, what: &str, named: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(EXIT_WIRE_FORMAT),
        "{what}: refused with exit code {EXIT_WIRE_FORMAT}, got {}: {stderr}",
        out.status
    );
    assert!(out.stdout.is_empty(), "{what}: no document on stdout");
    assert!(
        !stderr.contains("Traceback"),
        "{what}: a clean error, not a crash: {stderr}"
    );
    for name in named {
        assert!(stderr.contains(name), "{what}: the error names {name:?}: {stderr}");
    }
}

/// An order id as the reader finds it in a body: rmp-serde writes `OrderId`
/// (a transparent `uuid::Uuid`) as MessagePack bin 16 — uuid's serde picks
/// bytes for formats that are not human-readable — so an outside decoder gets
/// the 16 raw bytes (the script prints bytes as hex), not the hyphenated text
/// of subjects and `Order-Id` headers.
fn wire_uuid(id: &str) -> String {
    uuid::Uuid::parse_str(id)
        .unwrap_or_else(|e| panic!("{id:?} is a UUID: {e}"))
        .simple()
        .to_string()
}

/// An event as the API serves it (JSON), with every `order_id` as the reader
/// finds it in the MessagePack body (see [`wire_uuid`]).
fn as_on_the_wire(event: &Value) -> Value {
    match event {
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| match (k.as_str(), v.as_str()) {
                    ("order_id", Some(id)) => (k.clone(), Value::String(wire_uuid(id))),
                    _ => (k.clone(), as_on_the_wire(v)),
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(as_on_the_wire).collect()),
        other => other.clone(),
    }
}

/// The messages of one stream, in the document's order.
fn of_stream<'a>(messages: &'a [Value], stream: &str) -> Vec<&'a Value> {
    messages.iter().filter(|m| m["stream"] == stream).collect()
}

/// `"<event_type>"`, or `"<STREAM> <event_type>"` with `with_stream`.
fn key(m: &Value, with_stream: bool) -> String {
    let event_type = m["event_type"].as_str().unwrap_or("?");
    if with_stream {
        format!("{} {event_type}", m["stream"].as_str().unwrap_or("?"))
    } else {
        event_type.to_owned()
    }
}

/// Checks `expected` occurs in `seen` in this order (other items may come between).
fn assert_in_order(seen: &[String], expected: &[&str]) {
    let mut from = 0;
    for want in expected {
        match seen[from..].iter().position(|s| s == want) {
            Some(i) => from += i + 1,
            None => panic!("{want:?} missing after position {from} of {seen:?}; expected {expected:?} in this order"),
        }
    }
}

/// Publishes one raw message and waits until it is stored.
async fn publish(js: &Context, subject: &str, headers: HeaderMap, body: Vec<u8>) {
    js.publish_with_headers(subject.to_owned(), headers, body.into())
        .await
        .expect("published")
        .await
        .expect("stored");
}
