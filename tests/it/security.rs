//! Authentication, roles, rate limits, CORS and security headers, against a
//! real node: who can do what, and the 401/403/404/429 everyone else gets.

use std::time::Duration;

use orderflow::auth::token::{mint_hs256, Claims};
use orderflow::auth::Role;
use orderflow::config::Config;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{
    client_with, customer_client, order_body, send, test_config, test_secret, token, NatsServer, TestApp,
};

/// Asserts a problem+json answer with `status` and `code`; returns its body.
async fn problem(response: reqwest::Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(response.status(), status, "{:?}", response.headers());
    let content_type = response.headers()["content-type"].to_str().unwrap_or("").to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = response.json().await.expect("a JSON problem");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status.as_u16(), "{body}");
    body
}

/// One line of the role matrix: who, with which client, asks what, and the status expected.
type Row<'a> = (&'a str, &'a reqwest::Client, Method, String, Option<Value>, StatusCode);

async fn call(client: &reqwest::Client, method: Method, url: String, body: Option<Value>) -> reqwest::Response {
    let mut request = client.request(method, url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.expect("the node answers")
}

#[tokio::test]
async fn the_role_matrix_holds_customers_see_only_their_own_and_admins_everything() {
    let app = TestApp::spawn().await;
    app.restock("SEC-1", 10).await;
    let alice = customer_client("alice");
    let bob = customer_client("bob");
    let admin = &app.http;

    // Alice places her own order and may not place one for bob.
    let placed = call(
        &alice,
        Method::POST,
        app.url("/orders"),
        Some(order_body("alice", &[("SEC-1", 1)], "tok_visa")),
    )
    .await;
    assert_eq!(placed.status(), StatusCode::CREATED);
    let order: Value = placed.json().await.expect("an order");
    let id = order["order_id"].as_str().expect("an id").to_owned();
    let forged = call(
        &alice,
        Method::POST,
        app.url("/orders"),
        Some(order_body("bob", &[("SEC-1", 1)], "tok_visa")),
    )
    .await;
    let body = problem(forged, StatusCode::FORBIDDEN, "forbidden").await;
    assert_eq!(body["errors"][0]["field"], "customer_id");
    app.ended(&id).await;

    // (who, method, path, body, expected status)
    let o = |p: &str| format!("/orders/{id}{p}");
    let prefs = json!({ "channels": ["log"] });
    let matrix: Vec<Row> = vec![
        ("alice", &alice, Method::GET, o(""), None, StatusCode::OK),
        (
            "alice",
            &alice,
            Method::GET,
            format!("{}?wait=1s", o("")),
            None,
            StatusCode::OK,
        ),
        ("alice", &alice, Method::GET, o("/notifications"), None, StatusCode::OK),
        (
            "alice",
            &alice,
            Method::GET,
            "/customers/alice/notifications".into(),
            None,
            StatusCode::OK,
        ),
        (
            "alice",
            &alice,
            Method::PUT,
            "/customers/alice/notification-preferences".into(),
            Some(prefs.clone()),
            StatusCode::OK,
        ),
        (
            "alice",
            &alice,
            Method::GET,
            "/customers/alice/notification-preferences".into(),
            None,
            StatusCode::OK,
        ),
        ("alice", &alice, Method::GET, "/skus/SEC-1".into(), None, StatusCode::OK),
        (
            "alice",
            &alice,
            Method::POST,
            "/skus/SEC-1/restock".into(),
            Some(json!({"quantity": 1})),
            StatusCode::FORBIDDEN,
        ),
        (
            "alice",
            &alice,
            Method::GET,
            "/admin/dead-letters".into(),
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            "alice",
            &alice,
            Method::POST,
            "/admin/dead-letters/1/discard".into(),
            Some(json!({"reason": "x"})),
            StatusCode::FORBIDDEN,
        ),
        // Someone else's order is answered like a missing one: ids cannot be probed.
        ("bob", &bob, Method::GET, o(""), None, StatusCode::NOT_FOUND),
        (
            "bob",
            &bob,
            Method::GET,
            format!("{}?wait=1s", o("")),
            None,
            StatusCode::NOT_FOUND,
        ),
        ("bob", &bob, Method::POST, o("/cancel"), None, StatusCode::NOT_FOUND),
        (
            "bob",
            &bob,
            Method::GET,
            o("/notifications"),
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            "bob",
            &bob,
            Method::POST,
            o("/notifications/completed.log/read"),
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            "bob",
            &bob,
            Method::GET,
            "/customers/alice/notifications".into(),
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            "bob",
            &bob,
            Method::GET,
            "/customers/alice/notification-preferences".into(),
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            "bob",
            &bob,
            Method::PUT,
            "/customers/alice/notification-preferences".into(),
            Some(prefs.clone()),
            StatusCode::FORBIDDEN,
        ),
        ("admin", admin, Method::GET, o(""), None, StatusCode::OK),
        ("admin", admin, Method::GET, o("/notifications"), None, StatusCode::OK),
        (
            "admin",
            admin,
            Method::GET,
            "/customers/alice/notification-preferences".into(),
            None,
            StatusCode::OK,
        ),
        (
            "admin",
            admin,
            Method::POST,
            "/skus/SEC-1/restock".into(),
            Some(json!({"quantity": 1})),
            StatusCode::OK,
        ),
        (
            "admin",
            admin,
            Method::GET,
            "/admin/dead-letters".into(),
            None,
            StatusCode::OK,
        ),
    ];
    for (who, client, method, path, body, expected) in matrix {
        let response = call(client, method.clone(), app.url(&path), body).await;
        let status = response.status();
        assert_eq!(status, expected, "{who} {method} {path}");
        if !status.is_success() {
            let content_type = response.headers()["content-type"].to_str().unwrap_or("").to_owned();
            assert_eq!(content_type, "application/problem+json", "{who} {method} {path}");
        }
    }

    // Alice cancels her own open order; bob cannot, an admin can cancel anyone's.
    let open = call(
        &alice,
        Method::POST,
        app.url("/orders"),
        Some(order_body("alice", &[("NOSTOCK-1", 1)], "tok_visa")),
    )
    .await;
    let open: Value = open.json().await.expect("an order");
    let open_id = open["order_id"].as_str().expect("an id");
    let cancelled = call(
        &alice,
        Method::POST,
        app.url(&format!("/orders/{open_id}/cancel")),
        None,
    )
    .await;
    assert!(
        [StatusCode::ACCEPTED, StatusCode::OK, StatusCode::CONFLICT].contains(&cancelled.status()),
        "{}",
        cancelled.status()
    );
    let second = call(
        &bob,
        Method::POST,
        app.url("/orders"),
        Some(order_body("bob", &[("NOSTOCK-2", 1)], "tok_visa")),
    )
    .await;
    let second: Value = second.json().await.expect("an order");
    let second_id = second["order_id"].as_str().expect("an id");
    let by_admin = call(
        admin,
        Method::POST,
        app.url(&format!("/orders/{second_id}/cancel")),
        None,
    )
    .await;
    assert!(
        [StatusCode::ACCEPTED, StatusCode::OK, StatusCode::CONFLICT].contains(&by_admin.status()),
        "{}",
        by_admin.status()
    );
}

#[tokio::test]
async fn missing_invalid_and_expired_tokens_get_401_with_a_bearer_challenge_and_health_stays_open() {
    let app = TestApp::spawn().await;
    let anonymous = client_with(None);

    let missing = call(&anonymous, Method::GET, app.url("/skus/SEC-1"), None).await;
    assert_eq!(missing.headers()["www-authenticate"], "Bearer realm=\"orderflow\"");
    problem(missing, StatusCode::UNAUTHORIZED, "unauthorized").await;

    let mut expired = Claims::new("alice", Role::Customer, Duration::ZERO, &Config::default().auth);
    expired.exp -= 3600;
    let expired = mint_hs256(test_secret().as_bytes(), &expired).expect("a token");
    let forged = mint_hs256(
        b"a different secret, at least 32 bytes long",
        &Claims::new("alice", Role::Admin, Duration::from_secs(60), &Config::default().auth),
    )
    .expect("a token");
    for (what, header) in [
        ("expired", format!("Bearer {expired}")),
        ("forged", format!("Bearer {forged}")),
        ("garbage", "Bearer not-a-jwt".to_owned()),
        ("not bearer", format!("Basic {}", token(Role::Admin, "x"))),
    ] {
        for path in ["/orders", "/admin/dead-letters", "/skus/SEC-1/restock"] {
            let response = anonymous
                .post(app.url(path))
                .header("authorization", &header)
                .json(&json!({}))
                .send()
                .await
                .expect("the node answers");
            let challenge = response.headers()["www-authenticate"].to_str().unwrap_or("").to_owned();
            assert!(
                challenge.starts_with("Bearer realm=\"orderflow\", error=\"invalid_token\""),
                "{what}: {challenge}"
            );
            let body = problem(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
            if what == "expired" {
                assert!(body["detail"].as_str().is_some_and(|d| d.contains("expired")), "{body}");
            }
        }
    }

    for open in ["/healthz", "/readyz", "/metrics"] {
        let response = call(&anonymous, Method::GET, format!("{}{open}", app.base), None).await;
        assert_eq!(response.status(), StatusCode::OK, "{open} needs no token");
    }
}

#[tokio::test]
async fn each_principal_has_its_own_rate_limit_answered_with_429_and_retry_after() {
    let nats = NatsServer::start().await;
    let mut config = test_config(&nats.url());
    config.http.rate_limit.per_second = 1;
    config.http.rate_limit.burst = 3;
    let app = TestApp::spawn_on(nats, config).await;
    let alice = customer_client("alice");

    // A fresh budget holds the whole burst.
    for i in 0..3 {
        let r = call(&alice, Method::GET, app.url("/skus/RL-1"), None).await;
        assert_ne!(
            r.status(),
            StatusCode::TOO_MANY_REQUESTS,
            "request {i} is within the burst"
        );
    }
    // One a second refills it, so a burst of 20 must hit the limit.
    let mut limited = None;
    for _ in 0..20 {
        let r = call(&alice, Method::GET, app.url("/skus/RL-1"), None).await;
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(r);
            break;
        }
    }
    let limited = limited.expect("alice is limited after her burst");
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .ok()
        .and_then(|s| s.parse().ok())
        .expect("Retry-After in seconds");
    assert!(
        (1..=1).contains(&retry_after),
        "one token a second: retry in 1s, not {retry_after}"
    );
    problem(limited, StatusCode::TOO_MANY_REQUESTS, "rate-limited").await;

    // Bob's budget is his own; anonymous callers are limited by address.
    let bob = customer_client("bob");
    let r = call(&bob, Method::GET, app.url("/skus/RL-1"), None).await;
    assert_ne!(r.status(), StatusCode::TOO_MANY_REQUESTS, "bob is not limited by alice");
    let anonymous = client_with(None);
    let statuses: Vec<StatusCode> = futures::future::join_all((0..20).map(|_| async {
        call(&anonymous, Method::GET, app.url("/skus/RL-1"), None)
            .await
            .status()
    }))
    .await;
    assert!(statuses.contains(&StatusCode::UNAUTHORIZED));
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "guessing tokens is throttled too: {statuses:?}"
    );
    // Health checks are never limited.
    for _ in 0..10 {
        let r = call(&anonymous, Method::GET, format!("{}/healthz", app.base), None).await;
        assert_eq!(r.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn cors_answers_only_allowed_origins_and_every_response_carries_security_headers() {
    let nats = NatsServer::start().await;
    let mut config = test_config(&nats.url());
    config.http.cors_allowed_origins = vec!["https://shop.example".into()];
    let app = TestApp::spawn_on(nats, config).await;
    let anonymous = client_with(None);

    let preflight = |origin: &'static str| {
        anonymous
            .request(Method::OPTIONS, app.url("/orders"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type,idempotency-key",
            )
            .send()
    };
    let allowed = preflight("https://shop.example").await.expect("an answer");
    assert!(allowed.status().is_success(), "{}", allowed.status());
    assert_eq!(allowed.headers()["access-control-allow-origin"], "https://shop.example");
    let allowed_headers = allowed.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap_or("")
        .to_owned();
    assert!(allowed_headers.contains("authorization"), "{allowed_headers}");
    let refused = preflight("https://evil.example").await.expect("an answer");
    assert!(refused.headers().get("access-control-allow-origin").is_none());

    let simple = app
        .http
        .get(app.url("/skus/NOPE"))
        .header("origin", "https://shop.example")
        .send()
        .await
        .expect("an answer");
    assert_eq!(simple.headers()["access-control-allow-origin"], "https://shop.example");

    // Without an allow-list there are no CORS headers at all.
    let plain = TestApp::spawn().await;
    let response = plain
        .http
        .get(plain.url("/skus/NOPE"))
        .header("origin", "https://shop.example")
        .send()
        .await
        .expect("an answer");
    assert!(response.headers().get("access-control-allow-origin").is_none());

    // Success, 401, 404 of an unknown route, health: all hardened.
    let responses = [
        app.http.get(app.url("/skus/NOPE")).send().await,
        anonymous.get(app.url("/orders/x")).send().await,
        app.http.get(format!("{}/nowhere", app.base)).send().await,
        anonymous.get(format!("{}/healthz", app.base)).send().await,
        app.http
            .post(app.url("/skus/SEC-9/restock"))
            .json(&json!({"quantity": 1}))
            .send()
            .await,
    ];
    for response in responses {
        let response = response.expect("an answer");
        let h = response.headers();
        let what = format!("{} {}", response.url(), response.status());
        assert_eq!(h["x-content-type-options"], "nosniff", "{what}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{what}");
        assert_eq!(h["x-frame-options"], "DENY", "{what}");
        assert_eq!(h["cache-control"], "no-store", "{what}");
        let csp = h["content-security-policy"].to_str().unwrap_or("");
        assert!(csp.starts_with("default-src 'none'"), "{what}: {csp}");
    }
}

#[tokio::test]
async fn an_oversized_body_and_a_wrong_method_are_problems_too() {
    let app = TestApp::spawn().await;
    let huge = "x".repeat(app.config.http.body_limit + 1);
    let body = json!({ "customer_id": "alice", "items": [], "payment_method": huge });
    let response = app
        .http
        .post(app.url("/orders"))
        .json(&body)
        .send()
        .await
        .expect("an answer");
    let problem_body = problem(response, StatusCode::PAYLOAD_TOO_LARGE, "body-too-large").await;
    assert_eq!(problem_body["errors"][0]["field"], "body");

    let response = app.http.delete(app.url("/orders")).send().await.expect("an answer");
    assert!(response.headers().contains_key("allow"));
    problem(response, StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed").await;
}

#[tokio::test]
async fn development_mode_prints_marked_tokens_signed_with_a_secret_of_its_own() {
    let nats = NatsServer::start().await;
    let dir = tempfile::tempdir().expect("a directory");
    let node =
        crate::support::process::NodeProcess::start(&nats.url(), dir.path(), &[("ORDERFLOW_AUTH__MODE", "dev")]).await;
    let log = std::fs::read_to_string(dir.path().join("node.log")).expect("the node's log");
    assert!(log.contains("DEVELOPMENT MODE — NOT FOR PRODUCTION"), "{log}");
    let token_after = |marker: &str| {
        log.lines()
            .find_map(|l| l.split_once(marker).map(|(_, t)| t.trim().to_owned()))
            .unwrap_or_else(|| panic!("{marker} in the log:\n{log}"))
    };
    let admin = token_after("export ORDERFLOW_TOKEN=");
    let customer = token_after("export CUSTOMER_TOKEN=");

    let restock = format!("{}/api/v1/skus/DEV-1/restock", node.base());
    let (status, body) = send(client_with(Some(&admin)).post(&restock).json(&json!({"quantity": 2}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = send(
        client_with(Some(&customer))
            .post(&restock)
            .json(&json!({"quantity": 2})),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "the printed customer token is a customer's"
    );
    let place = format!("{}/api/v1/orders", node.base());
    let (status, body) = send(client_with(Some(&customer)).post(&place).json(&order_body(
        "alice",
        &[("DEV-1", 1)],
        "tok_visa",
    )))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // A token signed with any other secret, such as the test kit's, is refused.
    let (status, _) = send(
        crate::support::admin_client()
            .post(&restock)
            .json(&json!({"quantity": 2})),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn rs256_tokens_of_an_independent_issuer_are_verified_with_its_public_key() {
    let dir = tempfile::tempdir().expect("a directory");
    let python = std::env::var_os("ORDERFLOW_PYTHON")
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "python3".into());
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/rs256_issuer.py");
    let run = tokio::process::Command::new(&python)
        .arg(&script)
        .arg(dir.path())
        .args(["https://id.example", "orderflow"])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the issuer finishes within a minute")
        .expect("the issuer runs");
    assert!(
        out.status.success(),
        "rs256_issuer.py failed (it needs pyca/cryptography: scripts/install-nats-server.sh --python-deps): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tokens: Value = serde_json::from_slice(&out.stdout).expect("the tokens as JSON");
    let token = |name: &str| tokens[name].as_str().expect("a token").to_owned();

    let nats = NatsServer::start().await;
    let mut config = test_config(&nats.url());
    config.auth.hs256_secret = String::new();
    config.auth.rs256_public_key_file = dir.path().join("public.pem");
    config.auth.issuer = "https://id.example".into();
    config.auth.audience = "orderflow".into();
    let app = TestApp::spawn_on(nats, config).await;

    let admin = client_with(Some(&token("admin")));
    let (status, body) = send(admin.post(app.url("/skus/RS-1/restock")).json(&json!({"quantity": 3}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let alice = client_with(Some(&token("customer")));
    let (status, body) = send(
        alice
            .post(app.url("/orders"))
            .json(&order_body("alice", &[("RS-1", 1)], "tok_visa")),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, _) = send(alice.post(app.url("/skus/RS-1/restock")).json(&json!({"quantity": 3}))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    for refused in ["wrong_issuer", "expired", "other_key"] {
        let response = client_with(Some(&token(refused)))
            .get(app.url("/skus/RS-1"))
            .send()
            .await
            .expect("an answer");
        problem(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
    }
    // The test kit's HS256 admin token is not accepted by an RS256 node.
    let (status, _) = send(app.http.get(app.url("/skus/RS-1"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
