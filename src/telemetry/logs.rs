//! Log lines on stderr: readable text at a terminal, JSON for collectors;
//! and, when configured, spans exported over OTLP. Work on an order runs
//! inside a span carrying `order_id` and `trace_id`, so every line it logs
//! names both (in JSON, under `span`).

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use super::otlp::{self, Exporter, OtlpError};
use crate::config::{LogFormat, TelemetryConfig};

/// Installs the process's subscriber, filtered by `ORDERFLOW_LOG` (else
/// `default_level`), with the OTLP exporter when `config.otlp_endpoint` is
/// set. Later calls do nothing (tests start several nodes in one process).
pub fn init(config: &TelemetryConfig, default_level: &str) -> Result<Option<Exporter>, OtlpError> {
    let filter = EnvFilter::try_from_env("ORDERFLOW_LOG").unwrap_or_else(|_| EnvFilter::new(default_level));
    let lines = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let lines: Box<dyn Layer<Registry> + Send + Sync> = match config.log_format {
        LogFormat::Text => lines.boxed(),
        LogFormat::Json => lines
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .flatten_event(true)
            .boxed(),
    };
    let (spans, exporter) = match config.otlp_endpoint.as_str() {
        "" => (None, None),
        endpoint => {
            let (layer, exporter) = otlp::layer(endpoint, &config.service_name)?;
            (Some(layer), Some(exporter))
        }
    };
    let installed = tracing_subscriber::registry()
        .with(lines)
        .with(spans)
        .with(filter)
        .try_init();
    Ok(installed.is_ok().then_some(exporter).flatten())
}
