//! The web console in a real browser: Debian's Chromium driven by
//! playwright-core (`tests/browser/console.test.mjs`, node's test runner)
//! against a real node on a real nats-server. This test prepares the node
//! (stock, and one order parked on a dead letter whose cause is then fixed),
//! runs the browser scenarios and checks they passed and that the replayed
//! order really completed.

use std::path::Path;
use std::time::Duration;

use orderflow::auth::Role;
use reqwest::StatusCode;

use crate::support::{eventually, order_body, send, test_config, token, NatsServer, TestApp, SAGA_DEADLINE};

/// Where the scenarios' screenshots go (kept as CI artifacts).
const SCREENSHOTS: &str = "target/console-screenshots";
/// The whole browser run, bounded.
const BROWSER_DEADLINE: Duration = Duration::from_secs(150);

#[tokio::test]
async fn the_console_places_watches_and_replays_in_a_real_browser() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let browser_tests = root.join("tests/browser");
    assert!(
        browser_tests.join("node_modules/playwright-core").is_dir() && Path::new("/usr/bin/chromium").exists(),
        "run scripts/install-browser.sh first (scripts/test.sh does): it installs chromium and playwright-core"
    );

    // The payment provider is down: the first order's payment step is dead-lettered.
    let nats = NatsServer::start().await;
    let mut config = test_config(&nats.url());
    config.consumers.max_deliver = 3;
    config.consumers.nak_delay = Duration::from_millis(50);
    config.gateway.outage = true;
    config.telemetry.poll_interval = Duration::from_millis(200);
    let mut app = TestApp::spawn_on(nats, config).await;
    app.restock("SKU-STOCKED", 100).await;
    app.restock("SKU-SCARCE", 1).await;
    let parked = app
        .place_ok(&order_body("alice", &[("SKU-STOCKED", 1)], "tok_visa"))
        .await;
    eventually("the order to ask for attention", SAGA_DEADLINE, || async {
        (app.order(&parked).await["status"] == "ATTENTION_REQUIRED").then_some(())
    })
    .await;

    // The fix is deployed; the order waits for an operator.
    let mut fixed = app.config.clone();
    fixed.gateway.outage = false;
    app.restart_with(fixed).await;
    // A second dead letter, one an operator will discard: its payment token always fails.
    let doomed = app
        .place_ok(&order_body("alice", &[("SKU-STOCKED", 1)], "tok_unavailable"))
        .await;
    eventually("the doomed order to ask for attention", SAGA_DEADLINE, || async {
        (app.order(&doomed).await["status"] == "ATTENTION_REQUIRED").then_some(())
    })
    .await;

    // The page and its files need no token and carry the console's policy.
    let (status, _) = send(reqwest::Client::new().get(format!("{}/", app.base))).await;
    assert_eq!(status, StatusCode::OK);

    let screenshots = root.join(SCREENSHOTS);
    let run = tokio::process::Command::new("node")
        .arg("--test")
        .arg("--test-reporter=spec")
        .arg(browser_tests.join("console.test.mjs"))
        .current_dir(&browser_tests)
        .env("CONSOLE_URL", &app.base)
        .env("ADMIN_TOKEN", token(Role::Admin, "ops-console"))
        .env("CUSTOMER_TOKEN", token(Role::Customer, "alice"))
        .env("CUSTOMER_ID", "alice")
        .env("STOCKED_SKU", "SKU-STOCKED")
        .env("SCARCE_SKU", "SKU-SCARCE")
        .env("PARKED_ORDER", &parked)
        .env("DOOMED_ORDER", &doomed)
        .env("SCREENSHOT_DIR", &screenshots)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(BROWSER_DEADLINE, run)
        .await
        .expect("the browser tests finish in time")
        .expect("node runs");
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "browser tests failed:\n{report}");
    assert!(report.contains("fail 0") && !report.contains("pass 0"), "{report}");

    // What the console showed is what the journal holds.
    assert_eq!(app.ended(&parked).await["status"], "COMPLETED");
    let (_, discarded) = send(app.http.get(app.url("/admin/dead-letters?state=discarded"))).await;
    assert_eq!(
        discarded["items"][0]["subject"],
        format!("orders.{doomed}.placed"),
        "{discarded}"
    );
    assert!(screenshots.join("11-checkout-375px.png").is_file());

    // The saga view's trace: the owner's or an admin's, no one else's.
    let trace_url = app.url(&format!("/orders/{parked}/trace"));
    let (status, trace) = send(app.http.get(&trace_url)).await;
    assert_eq!(status, StatusCode::OK, "{trace}");
    assert!(
        trace["hops"]
            .as_array()
            .is_some_and(|h| h.iter().any(|h| h["stream"] == "PAYMENTS")),
        "{trace}"
    );
    let (status, _) = send(crate::support::customer_client("bob").get(&trace_url)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_console_is_served_open_under_a_strict_policy() {
    let app = TestApp::spawn().await;
    let client = reqwest::Client::new();
    for (path, kind) in [
        ("/", "text/html"),
        ("/console/app.js", "text/javascript"),
        ("/console/app.css", "text/css"),
    ] {
        let res = client
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .expect("an answer");
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        let header = |name: &str| {
            res.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert!(
            header("content-type").starts_with(kind),
            "{path}: {}",
            header("content-type")
        );
        let csp = header("content-security-policy");
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{path}: {csp}"
        );
        assert_eq!(header("x-content-type-options"), "nosniff");
    }
    // The API beside it still wants a token.
    let (status, _) = send(client.get(app.url("/skus"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_catalog_lists_every_restocked_sku_and_the_status_reads_lag_and_backlog() {
    let app = TestApp::spawn().await;
    app.restock("SKU-B", 3).await;
    app.restock("SKU-A", 5).await;
    app.restock("SKU-A", 2).await;
    let customer = crate::support::customer_client("alice");
    let (status, list) = send(customer.get(app.url("/skus"))).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(
        list,
        serde_json::json!({
            "skus": [
                {"sku": "SKU-A", "available": 7, "reserved": 0, "restocked": 7},
                {"sku": "SKU-B", "available": 3, "reserved": 0, "restocked": 3},
            ],
            "truncated": false,
        })
    );
    let (status, _) = send(customer.get(app.url("/admin/status"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, node) = send(app.http.get(app.url("/admin/status"))).await;
    assert_eq!(status, StatusCode::OK, "{node}");
    assert_eq!(node["dead_letter_backlog"], 0);
    let names: Vec<&str> = node["consumers"]
        .as_array()
        .map(|c| c.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    assert!(names.contains(&"order-saga"), "{node}");
}
