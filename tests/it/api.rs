//! The API of issue #8 (a): listing from the read model, bulk placement,
//! Server-Sent Events, the OpenAPI document and its docs page.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{eventually, order_body, send, test_config, NatsServer, TestApp, SAGA_DEADLINE};

/// How long the order index may take to catch up in these tests.
const PROJECTION_DEADLINE: Duration = Duration::from_secs(10);

async fn list(app: &TestApp, query: &str) -> (StatusCode, Value) {
    send(app.http.get(app.url(&format!("/orders{query}")))).await
}

fn ids(page: &Value) -> Vec<String> {
    page["orders"]
        .as_array()
        .map(|o| {
            o.iter()
                .filter_map(|e| e["order_id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn listing_filters_pages_and_shows_the_projection_lag() {
    let app = TestApp::spawn().await;
    app.restock("SKU-1", 10).await;
    let a1 = app.place_ok(&order_body("alice", &[("SKU-1", 1)], "tok_visa")).await;
    let a2 = app.place_ok(&order_body("alice", &[("SKU-1", 1)], "tok_decline")).await;
    let b1 = app.place_ok(&order_body("bob", &[("SKU-1", 1)], "tok_visa")).await;
    for id in [&a1, &a2, &b1] {
        app.ended(id).await;
    }

    // Eventually consistent: poll until the index has folded every ending.
    let failed = eventually(
        "the index to show alice's failed order",
        PROJECTION_DEADLINE,
        || async {
            let (status, page) = list(&app, "?customer_id=alice&status=FAILED").await;
            assert_eq!(status, StatusCode::OK, "{page}");
            (ids(&page) == [a2.clone()]).then_some(page)
        },
    )
    .await;
    let entry = &failed["orders"][0];
    assert_eq!(entry["customer_id"], "alice");
    assert_eq!(entry["amount"], json!({ "minor": 1250, "currency": "EUR" }));
    assert!(entry.get("history").is_none(), "a listing carries no history: {entry}");
    let projection = &failed["projection"];
    assert!(projection["applied_seq"].as_u64() > Some(0), "{projection}");
    assert_eq!(
        projection["lag"].as_u64().unwrap_or(u64::MAX),
        projection["stream_last_seq"].as_u64().unwrap_or(0) - projection["applied_seq"].as_u64().unwrap_or(0)
    );
    let (_, completed) = list(&app, "?status=COMPLETED").await;
    assert_eq!(
        ids(&completed).into_iter().collect::<BTreeSet<_>>(),
        BTreeSet::from([a1.clone(), b1.clone()])
    );

    // A page at a time: every order once, newest first, then no cursor.
    let mut seen = Vec::new();
    let mut query = "?limit=1".to_owned();
    for _ in 0..5 {
        let (status, page) = list(&app, &query).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(page["orders"].as_array().map_or(0, Vec::len) <= 1, "{page}");
        seen.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(cursor) => query = format!("?limit=1&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, [b1.clone(), a2.clone(), a1.clone()], "newest first, each once");

    // Created-from/to: nothing before 1971, everything before 2100.
    let (_, none) = list(&app, "?created_to=1971-01-01T00:00:00Z").await;
    assert_eq!(ids(&none), Vec::<String>::new());
    let (_, all) = list(
        &app,
        "?created_from=1971-01-01T00:00:00Z&created_to=2100-01-01T00:00:00Z",
    )
    .await;
    assert_eq!(ids(&all).len(), 3);

    // The lag is a metric too.
    assert!(app.metric("orderflow_read_model_applied_seq").await > Some(0.0));
    assert!(app.metric("orderflow_read_model_pending").await.is_some());
}

#[tokio::test]
async fn listing_refuses_bad_filters_with_a_problem_naming_the_field() {
    let app = TestApp::spawn().await;
    for (query, field) in [
        ("?status=SHIPPED", "status"),
        ("?customer_id=a.b", "customer_id"),
        ("?created_from=yesterday", "created_from"),
        ("?cursor=not-a-cursor", "cursor"),
        ("?limit=0", "limit"),
        ("?limit=100000", "limit"),
        ("?limit=ten", "query"),
    ] {
        let response = app
            .http
            .get(app.url(&format!("/orders{query}")))
            .send()
            .await
            .expect("the node answers");
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY, "{query}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{query}"
        );
        let problem: Value = response.json().await.expect("a JSON problem");
        assert_eq!(problem["code"], "invalid-request", "{query}: {problem}");
        assert_eq!(problem["errors"][0]["field"], field, "{query}: {problem}");
    }
}

#[tokio::test]
async fn bulk_places_each_order_with_a_result_per_item_and_once_per_key() {
    let nats = NatsServer::start().await;
    let mut config = test_config(&nats.url());
    config.http.bulk_max = 3;
    let app = TestApp::spawn_on(nats, config).await;
    app.restock("SKU-1", 10).await;
    let body = json!({ "orders": [
        order_body("alice", &[("SKU-1", 1)], "tok_visa"),
        order_body("alice", &[("not a sku", 1)], "tok_visa"),
        { "customer_id": "bob", "items": [], "payment_method": "tok_visa", "colour": "red" },
    ]});
    let place = || {
        app.http
            .post(app.url("/orders/bulk"))
            .header("Idempotency-Key", "batch-7")
            .json(&body)
    };
    let (status, first) = send(place()).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let results = first["results"].as_array().expect("results");
    assert_eq!(results.len(), 3, "{first}");
    assert_eq!(results[0]["status"], 201, "{first}");
    let placed = results[0]["order_id"].as_str().expect("an order id").to_owned();
    assert_eq!(results[0]["location"], format!("/api/v1/orders/{placed}"));
    assert_eq!(results[1]["status"], 422);
    assert_eq!(results[1]["problem"]["code"], "invalid-request");
    assert_eq!(results[1]["problem"]["errors"][0]["field"], "items[0].sku");
    assert_eq!(results[2]["status"], 400);
    assert_eq!(results[2]["problem"]["code"], "malformed-body");
    assert!(
        results[2]["problem"]["errors"][0]["field"]
            .as_str()
            .is_some_and(|f| f.starts_with("orders[2]")),
        "{first}"
    );
    assert_eq!(app.ended(&placed).await["status"], "COMPLETED");

    // The same request again: the same order, not a second one.
    let (status, again) = send(place()).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["results"][0]["status"], 200, "{again}");
    assert_eq!(again["results"][0]["order_id"], placed.as_str());
    assert_eq!(app.stored("ORDERS", "orders.*.placed").await.len(), 1);

    // Over `http.bulk_max`: refused whole, with its own code.
    let four = json!({ "orders": vec![order_body("carol", &[("SKU-1", 1)], "tok_visa"); 4] });
    let (status, problem) = send(app.http.post(app.url("/orders/bulk")).json(&four)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{problem}");
    assert_eq!(problem["code"], "too-many-orders");
    let (status, problem) = send(app.http.post(app.url("/orders/bulk")).json(&json!({ "orders": [] }))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "orders");

    // A method the route does not answer is a problem too.
    let response = app
        .http
        .get(app.url("/orders/bulk"))
        .send()
        .await
        .expect("the node answers");
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    let problem: Value = response.json().await.expect("a JSON problem");
    assert_eq!(problem["code"], "method-not-allowed");
}

/// Reads Server-Sent Events until the server ends the stream; returns each event's (name, data).
async fn read_events(mut response: reqwest::Response) -> Vec<(String, Value)> {
    let mut buffer = String::new();
    let mut events = Vec::new();
    let read = async {
        while let Some(chunk) = response.chunk().await.expect("the stream reads") {
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let block: String = buffer.drain(..end + 2).collect();
                let (mut name, mut data) = (String::new(), String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim());
                    }
                }
                if !name.is_empty() {
                    events.push((name, serde_json::from_str(&data).expect("JSON data")));
                }
            }
        }
    };
    tokio::time::timeout(SAGA_DEADLINE, read)
        .await
        .expect("the stream ends after a terminal status");
    events
}

#[tokio::test]
async fn sse_streams_each_status_change_until_the_order_completes() {
    let app = TestApp::spawn().await;
    app.restock("SKU-1", 10).await;
    let id = app.place_ok(&order_body("alice", &[("SKU-1", 1)], "tok_visa")).await;
    let response = app
        .http
        .get(app.url(&format!("/orders/{id}/events")))
        .send()
        .await
        .expect("the node answers");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let events = read_events(response).await;
    assert!(events.iter().all(|(name, _)| name == "status"), "{events:?}");
    let statuses: Vec<&str> = events.iter().filter_map(|(_, d)| d["status"].as_str()).collect();
    assert_eq!(statuses.last(), Some(&"COMPLETED"), "{statuses:?}");
    // No status twice in a row, in journal order, only the last terminal.
    assert!(statuses.windows(2).all(|w| w[0] != w[1]), "{statuses:?}");
    let seqs: Vec<u64> = events.iter().filter_map(|(_, d)| d["seq"].as_u64()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert_eq!(events.iter().filter(|(_, d)| d["terminal"] == true).count(), 1);

    // Watching an order that already ended: its ending, then the end of the stream.
    let again = app
        .http
        .get(app.url(&format!("/orders/{id}/events")))
        .send()
        .await
        .expect("the node answers");
    let events = read_events(again).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].1["status"], "COMPLETED");

    let (status, problem) = send(
        app.http
            .get(app.url(&format!("/orders/{}/events", uuid::Uuid::new_v4()))),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(problem["code"], "not-found");
}

/// Every `(METHOD, path)` the router in `src/http/mod.rs` declares, read
/// from its source: the list the document must match.
fn router_routes() -> BTreeSet<(String, String)> {
    let source = include_str!("../../src/http/mod.rs");
    let mut routes = BTreeSet::new();
    for call in source.split(".route(").skip(1) {
        let Some(path) = call.split('"').nth(1) else { continue };
        // The call's own arguments end where the parentheses balance.
        let mut depth = 1;
        let end = call
            .char_indices()
            .find(|(_, c)| {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                depth == 0
            })
            .map_or(call.len(), |(i, _)| i);
        let args = &call[..end];
        for method in ["get", "post", "put", "delete", "patch"] {
            if args.contains(&format!("{method}(")) {
                routes.insert((method.to_owned(), path.to_owned()));
            }
        }
    }
    routes
}

#[tokio::test]
async fn the_openapi_document_lists_every_route_and_the_docs_page_is_self_contained() {
    let app = TestApp::spawn().await;
    let (status, spec) = send(app.http.get(app.url("/openapi.json"))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        spec["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")),
        "{}",
        spec["openapi"]
    );
    let documented: BTreeSet<(String, String)> = spec["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .into_iter()
                .flat_map(|ops| ops.keys().map(|m| (m.clone(), path.clone())))
        })
        .collect();
    let routes = router_routes();
    assert!(routes.len() >= 20, "the router's routes were read: {routes:?}");
    assert_eq!(documented, routes, "the document and the router differ");
    // Every documented operation is routed: none reaches the fallback.
    for (method, path) in &documented {
        let concrete = path
            .replace("{id}", &uuid::Uuid::new_v4().to_string())
            .replace("{notification_id}", "n1")
            .replace("{customer_id}", "alice")
            .replace("{sku}", "SKU-1");
        if concrete.ends_with("/events") {
            continue; // a stream; proven above
        }
        let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("a method");
        let (_, body) = send(app.http.request(method.clone(), format!("{}{concrete}", app.base))).await;
        assert_ne!(body["detail"], "no such resource", "{method} {concrete} is not routed");
        assert_ne!(body["code"], "method-not-allowed", "{method} {concrete} is not routed");
    }
    // Every error response is a problem.
    let problem_ref = json!({ "$ref": "#/components/schemas/Problem" });
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("operations") {
            for (code, response) in op["responses"].as_object().expect("responses") {
                if code.starts_with('4') || code.starts_with('5') {
                    if code == "413" && response.get("content").is_none() {
                        continue; // the body limit answers before any handler
                    }
                    assert_eq!(
                        response["content"]["application/problem+json"]["schema"], problem_ref,
                        "{method} {path} {code}"
                    );
                }
            }
        }
    }

    let page = app.http.get(app.url("/docs")).send().await.expect("the node answers");
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers()["content-type"]
        .to_str()
        .is_ok_and(|t| t.starts_with("text/html")));
    let html = page.text().await.expect("a page");
    assert!(html.contains("/api/v1/openapi.json"), "the page renders the document");
    for external in ["http://", "https://", "//cdn", "src=\"//", "href=\"//", "@import"] {
        assert!(!html.contains(external), "the page references {external}");
    }
}

#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_response_against_the_document() {
    let app = TestApp::spawn().await;
    app.restock("SKU-1", 100).await;
    let python = std::env::var("ORDERFLOW_PYTHON").unwrap_or_else(|_| "python3".into());
    // Its caches and reports go to a directory of its own, not the repository.
    let scratch = tempfile::tempdir().expect("a scratch directory");
    let output = tokio::process::Command::new(python)
        .current_dir(scratch.path())
        .args(["-m", "schemathesis.cli", "run"])
        .arg(app.url("/openapi.json"))
        .args([
            "--checks",
            "not_a_server_error,response_schema_conformance",
            "--max-examples",
            "10",
            "--max-time",
            "30",
            "--phases",
            "examples,coverage,fuzzing",
            "--seed",
            "8",
            // One worker: with a fixed seed the run is repeatable.
            "--workers",
            "1",
            "--request-timeout",
            "10",
            "--generation-database",
            "none",
            "--exclude-path",
            "/api/v1/orders/{id}/events",
            // As an admin, who may call every operation.
            "--header",
        ])
        .arg(format!(
            "Authorization: Bearer {}",
            crate::support::token(orderflow::auth::Role::Admin, "schemathesis")
        ))
        .env("SCHEMATHESIS_TELEMETRY", "false")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), output)
        .await
        .expect("schemathesis ends within its time budget")
        .expect("schemathesis runs (scripts/install-nats-server.sh --python-deps installs it)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    // It really tested: every operation but the excluded stream.
    let tested = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("Tested: "))
        .and_then(|n| n.trim().parse::<usize>().ok());
    assert!(
        tested >= Some(20),
        "schemathesis tested {tested:?} operations:\n{stdout}"
    );
    assert!(
        output.status.success(),
        "schemathesis failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
