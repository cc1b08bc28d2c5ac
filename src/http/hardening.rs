//! What every response carries and every browser is told: security
//! headers, the CORS allow-list, and problem+json for the errors axum and
//! tower answer themselves (a body over the limit, a wrong method).

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::header::{self, HeaderName, HeaderValue};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;

use super::problem::{FieldError, Problem};

/// The headers every response gets unless a handler set its own: the API
/// serves JSON only, so nothing may be sniffed, framed, cached or loaded.
const SECURITY_HEADERS: [(HeaderName, &str); 5] = [
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "no-referrer"),
    (header::X_FRAME_OPTIONS, "DENY"),
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    ),
    (header::CACHE_CONTROL, "no-store"),
];

/// Adds the security headers to every response of `router`.
pub fn with_security_headers<S: Clone + Send + Sync + 'static>(mut router: Router<S>) -> Router<S> {
    for (name, value) in SECURITY_HEADERS {
        router = router.layer(SetResponseHeaderLayer::if_not_present(
            name,
            HeaderValue::from_static(value),
        ));
    }
    router
}

/// The CORS layer for `origins`; `None` (no CORS headers at all) when the
/// list is empty. Origins that are not valid header values are skipped, loudly.
pub fn cors(origins: &[String]) -> Option<CorsLayer> {
    let allowed: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| match HeaderValue::from_str(o.trim_end_matches('/')) {
            Ok(v) if o != "*" => Some(v),
            _ => {
                tracing::error!(origin = %o, "http.cors_allowed_origins: not an origin (scheme://host[:port]); ignored");
                None
            }
        })
        .collect();
    if allowed.is_empty() {
        return None;
    }
    // Bearer tokens, not cookies: no credentials mode is needed.
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(allowed))
            .allow_methods([Method::GET, Method::POST, Method::PUT])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("idempotency-key"),
                HeaderName::from_static("traceparent"),
            ])
            .expose_headers([
                header::LOCATION,
                header::RETRY_AFTER,
                HeaderName::from_static("traceparent"),
            ])
            .max_age(Duration::from_secs(600)),
    )
}

/// Turns an error response that is not problem+json (axum's own rejections)
/// into one; `body_limit` names the limit in a 413.
pub async fn problem_for_plain_errors(State(body_limit): State<usize>, request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let detail = String::from_utf8_lossy(&text).trim().to_owned();
    let problem = match status {
        StatusCode::PAYLOAD_TOO_LARGE => Problem {
            errors: vec![FieldError {
                field: "body".into(),
                message: format!("at most {body_limit} bytes"),
            }],
            ..Problem::new(
                status,
                "body-too-large",
                "Request body too large",
                format!("the body is larger than {body_limit} bytes"),
            )
        },
        StatusCode::METHOD_NOT_ALLOWED => Problem::new(status, "method-not-allowed", "Method not allowed", detail),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            Problem::new(status, "unsupported-media-type", "Unsupported media type", detail)
        }
        s if s.is_client_error() => Problem::new(status, "bad-request", "Bad request", detail),
        _ => Problem::new(status, "internal", "Internal error", detail),
    };
    let mut out = problem.into_response();
    // Keep what the original said beyond its body (`Allow` on a 405).
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().entry(name).or_insert(value.clone());
        }
    }
    *out.status_mut() = status;
    out
}
