//! The command line against a real server: setup is idempotent, tail
//! decodes, bench drives a bounded mixed load and accounts for every order.

use serde_json::Value;

use crate::support::{order_body, orderflow_cli, orderflow_cli_as, NatsServer, TestApp, HARNESS_USER};

#[tokio::test]
async fn setup_runs_twice_and_tail_prints_decoded_json_lines() {
    let app = TestApp::spawn().await;
    for _ in 0..2 {
        let out = orderflow_cli(&app.nats.url(), &["setup"]).await;
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    app.restock("SKU-1", 2).await;
    let id = app.place_ok(&order_body("alice", &[("SKU-1", 1)], "tok_visa")).await;
    app.ended(&id).await;

    let out = orderflow_cli(
        &app.nats.url(),
        &["events", "tail", "--stream", "ORDERS", "--from-start", "--limit", "4"],
    )
    .await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    let types: Vec<&str> = lines.iter().filter_map(|l| l["event"]["type"].as_str()).collect();
    assert_eq!(types, ["placed", "payment_requested", "stock_requested", "completed"]);
    for line in &lines {
        assert_eq!(line["headers"]["Order-Id"], id.as_str());
        assert_eq!(line["headers"]["Content-Type"], "application/msgpack");
        assert_eq!(line["headers"]["Schema-Version"], "2");
        assert!(line["headers"]["Nats-Msg-Id"].as_str().is_some_and(|m| m.contains(&id)));
    }

    let out = orderflow_cli(&app.nats.url(), &["order", "get", "--url", &app.base, &id]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let order: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(order["status"], "COMPLETED");
}

#[tokio::test]
async fn bench_runs_a_bounded_mixed_load_and_reports_every_order() {
    let app = TestApp::spawn().await;
    let node_pid = std::process::id().to_string();
    for mode in [vec!["--concurrency", "8"], vec!["--rate", "200"]] {
        let mut args = vec![
            "bench",
            "--url",
            &app.base,
            "--orders",
            "100",
            "--duration",
            "60s",
            "--decline-pct",
            "10",
            "--stock-out-pct",
            "10",
            "--cancel-pct",
            "10",
            "--node-pid",
            &node_pid,
            "--json",
        ];
        args.extend(mode.iter().copied());
        let out = orderflow_cli(&app.nats.url(), &args).await;
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let report: Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
        assert_eq!(report["orders"], 100, "{report}");
        assert_eq!(report["errors"], serde_json::json!({}), "{report}");
        let outcome = |s: &str| report["outcomes"][s].as_u64().unwrap_or(0);
        assert_eq!(
            outcome("COMPLETED") + outcome("FAILED") + outcome("CANCELLED"),
            100,
            "{report}"
        );
        // Exactly the mix: 10 declined, 10 out of stock, 10 cancelled (a
        // cancel may lose the race against a quick saga and complete).
        assert_eq!(outcome("FAILED"), 10, "{report}");
        assert!((10..=20).contains(&outcome("CANCELLED")), "{report}");
        let latency = &report["latency"];
        let p50 = latency["p50_ms"].as_f64().expect("p50");
        assert!(p50 > 0.0 && p50 <= latency["p99_ms"].as_f64().expect("p99"), "{report}");
        // The timeline holds every ended order once, by the second it started in.
        let timeline = report["timeline"].as_array().expect("a timeline");
        let per_second: Vec<u64> = timeline.iter().map(|s| s["orders"].as_u64().unwrap_or(0)).collect();
        assert_eq!(per_second.iter().sum::<u64>(), 100, "{report}");
        assert!(
            timeline
                .iter()
                .all(|s| s["latency"]["max_ms"].as_f64() <= latency["max_ms"].as_f64()),
            "{report}"
        );
        let seconds: Vec<u64> = timeline.iter().filter_map(|s| s["second"].as_u64()).collect();
        assert!(seconds.windows(2).all(|w| w[0] < w[1]), "{report}");
        // Each kind of the mix has its own latency, within the run's.
        let by_kind = report["latency_by_kind"].as_object().expect("latency by kind");
        let kinds: Vec<&str> = by_kind.keys().map(String::as_str).collect();
        assert_eq!(kinds, ["cancel", "decline", "stock_out", "success"], "{report}");
        assert!(
            by_kind
                .values()
                .all(|l| l["max_ms"].as_f64() <= latency["max_ms"].as_f64() && l["p50_ms"].as_f64() > Some(0.0)),
            "{report}"
        );
        assert!(
            report["stored_messages_per_order"].as_f64().is_some_and(|m| m > 3.0),
            "{report}"
        );
        assert!(report["node"]["rss_mib"].as_f64().is_some_and(|m| m > 0.0), "{report}");
        // The machine ran at least the node, and no hypervisor takes more than it has.
        let machine = &report["machine"];
        let cores = machine["cores"].as_f64().expect("the machine's cores");
        assert!(machine["busy_cores"].as_f64().is_some_and(|b| b > 0.0), "{report}");
        assert!(
            machine["steal_cores"]
                .as_f64()
                .is_some_and(|s| (0.0..=cores).contains(&s)),
            "{report}"
        );
        // Every stored message was a publish the node counted (a duplicate
        // dropped by the server is a publish too, never the other way round).
        let ops = &report["jetstream_operations_per_order"];
        let stored = report["stored_messages_per_order"].as_f64().unwrap_or(f64::MAX);
        assert!(ops["publish"].as_f64().is_some_and(|p| p >= stored), "{report}");
        assert!(ops["deliver"].as_f64().is_some_and(|d| d > 0.0), "{report}");
    }
    app.audit_passes().await;
}

#[tokio::test]
async fn bench_broker_measures_whole_hops_and_leaves_no_stream_behind() {
    let nats = NatsServer::start().await;
    // The probe makes and deletes a stream of its own: an operator's user,
    // not the app's least-privilege one.
    let out = orderflow_cli_as(
        &nats.url(),
        HARNESS_USER,
        &["bench", "--broker", "--orders", "300", "--concurrency", "16", "--json"],
    )
    .await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
    assert_eq!(report["hops"], 300, "{report}");
    assert_eq!(report["in_flight"], 16, "{report}");
    let per_second = report["hops_per_second"].as_f64().expect("hops/s");
    let stored = report["stored_per_second"].as_f64().expect("stored/s");
    assert!(
        (stored - 2.0 * per_second).abs() <= 1e-9 * stored,
        "two stored per hop: {report}"
    );
    let latency = &report["latency"];
    assert!(latency["p50_ms"].as_f64().is_some_and(|p| p > 0.0), "{report}");
    let js = nats.jetstream().await;
    assert!(
        js.get_stream("ORDERFLOW_BENCH_BROKER").await.is_err(),
        "the probe's stream is deleted"
    );
}

#[tokio::test]
async fn bench_broker_as_the_apps_user_fails_and_names_the_permission_it_lacks() {
    let nats = NatsServer::start().await;
    let out = orderflow_cli(&nats.url(), &["bench", "--broker", "--orders", "10", "--json"]).await;
    assert!(
        !out.status.success(),
        "the app's user may not publish the probe's subjects"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("orderflow.bench.>"), "{stderr}");
    assert!(out.stdout.is_empty(), "no report on failure");
}

/// An upgrade from a version with a consumer per saga step: `setup` (as the
/// app's NATS user) deletes those consumers, so none keeps collecting
/// messages nobody reads, and leaves the ones this version runs.
#[tokio::test]
async fn setup_retires_the_per_step_consumers_of_earlier_versions() {
    use async_nats::jetstream::consumer::pull;
    use orderflow::bus::topology::RETIRED_CONSUMERS;

    let app = TestApp::spawn().await;
    for (stream, name) in RETIRED_CONSUMERS {
        let config = pull::Config {
            durable_name: Some(name.to_owned()),
            ..Default::default()
        };
        app.js
            .create_consumer_on_stream(config, stream)
            .await
            .unwrap_or_else(|e| panic!("{stream}/{name} made as an old version would: {e}"));
    }
    let out = orderflow_cli(&app.nats.url(), &["setup"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for (stream, name) in RETIRED_CONSUMERS {
        let stream = app.js.get_stream(stream).await.expect("the stream");
        assert!(stream.consumer_info(name).await.is_err(), "{name} was retired");
    }
    let orders = app.js.get_stream("ORDERS").await.expect("ORDERS");
    orders.consumer_info("order-saga").await.expect("order-saga stays");
    app.restock("SKU-1", 1).await;
    let id = app.place_ok(&order_body("alice", &[("SKU-1", 1)], "tok_visa")).await;
    assert_eq!(app.ended(&id).await["status"], "COMPLETED");
}
