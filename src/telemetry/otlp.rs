//! Optional OTLP trace export (`telemetry.otlp_endpoint`): the node's spans
//! (HTTP requests and every saga input) go to an OpenTelemetry collector
//! over OTLP/HTTP (protobuf), each adopted into the trace its `traceparent`
//! names, so one order's saga is one trace there too.

use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider};
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{SpanExporter, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use tracing_opentelemetry::{OpenTelemetryLayer, OpenTelemetrySpanExt};
use tracing_subscriber::registry::LookupSpan;

use super::trace_context::TraceContext;

/// How long one export may take before it is dropped.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the exporter could not be built.
#[derive(Debug, thiserror::Error)]
#[error("OTLP exporter for {endpoint}: {reason}")]
pub struct OtlpError {
    endpoint: String,
    reason: String,
}

/// The running exporter; [`Exporter::shutdown`] flushes what is batched.
#[derive(Debug, Clone)]
pub struct Exporter {
    provider: SdkTracerProvider,
}

impl Exporter {
    /// Sends the spans still batched, then stops exporting.
    pub fn shutdown(&self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "OTLP exporter did not shut down cleanly");
        }
    }
}

/// A layer exporting spans to `endpoint` (a collector's base URL, e.g.
/// `http://127.0.0.1:4318`; spans go to `<endpoint>/v1/traces`) as `service`.
pub fn layer<S>(endpoint: &str, service: &str) -> Result<(OpenTelemetryLayer<S, SdkTracer>, Exporter), OtlpError>
where
    S: tracing::Subscriber + for<'span> LookupSpan<'span>,
{
    let traces = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    let exporter = SpanExporter::builder()
        .with_http()
        .with_http_client(BlockingHttp::default())
        .with_endpoint(traces)
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .map_err(|e| OtlpError {
            endpoint: endpoint.to_owned(),
            reason: e.to_string(),
        })?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name(service.to_owned()).build())
        .build();
    let tracer = provider.tracer("orderflow");
    Ok((
        tracing_opentelemetry::layer().with_tracer(tracer),
        Exporter { provider },
    ))
}

/// Makes `span` a child of `parent` in the exported trace; nothing when no
/// exporter is installed.
pub fn adopt(span: &tracing::Span, parent: &TraceContext) {
    let context = SpanContext::new(
        TraceId::from_bytes(parent.trace_id_bytes()),
        SpanId::from_bytes(parent.span_id_bytes()),
        TraceFlags::new(parent.flags()),
        true,
        TraceState::default(),
    );
    let parent = opentelemetry::Context::new().with_remote_span_context(context);
    // Without the layer (no exporter configured) there is nothing to adopt into.
    let _ = span.set_parent(parent);
}

/// The exporter's HTTP client. The SDK exports from its own thread, outside
/// any async runtime, so a blocking client fits; it is created there, on
/// first use, because a blocking client must not be created or dropped
/// inside the node's runtime.
#[derive(Debug, Default)]
struct BlockingHttp {
    client: OnceLock<reqwest::blocking::Client>,
}

#[async_trait::async_trait]
impl HttpClient for BlockingHttp {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = match self.client.get() {
            Some(client) => client,
            None => {
                let built = reqwest::blocking::Client::builder().timeout(EXPORT_TIMEOUT).build()?;
                self.client.get_or_init(|| built)
            }
        };
        let (parts, body) = request.into_parts();
        let answer = client
            .request(parts.method, parts.uri.to_string())
            .headers(parts.headers)
            .body(body.to_vec())
            .send()?;
        let mut response = Response::builder().status(answer.status());
        if let Some(headers) = response.headers_mut() {
            *headers = answer.headers().clone();
        }
        Ok(response.body(answer.bytes()?)?)
    }
}
