//! What every request goes through: a trace context (the caller's
//! `traceparent`, or a new one, echoed in the response), a span naming the
//! trace, and the request metrics by route template.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use crate::telemetry::{self, trace_context::TraceContext};

/// The request's trace context header.
pub const TRACEPARENT: &str = "traceparent";

/// The middleware.
pub async fn observe(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let trace = request
        .headers()
        .get(TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .and_then(TraceContext::parse)
        .unwrap_or_else(TraceContext::start);
    // Handlers read the context from the request headers, so a generated
    // one is written there: the saga carries it from the first event on.
    let header = HeaderValue::from_str(&trace.to_string()).ok();
    if let Some(header) = &header {
        request.headers_mut().insert(TRACEPARENT, header.clone());
    }
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().to_string();
    let span = tracing::info_span!(
        "request",
        %method,
        route = %route,
        trace_id = %trace.trace_id(),
        order_id = tracing::field::Empty,
        principal = tracing::field::Empty,
    );
    telemetry::otlp::adopt(&span, &trace);
    let mut response = next.run(request).instrument(span).await;
    if let Some(header) = header {
        response.headers_mut().insert(TRACEPARENT, header);
    }
    telemetry::http_request(&method, route, response.status().as_u16(), started.elapsed());
    response
}
