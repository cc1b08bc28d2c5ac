//! Log lines on stderr: readable text at a terminal, JSON for collectors.
//! Work on an order runs inside a span carrying `order_id` and `trace_id`,
//! so every line it logs names both (in JSON, under `span`).

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the process's log subscriber, filtered by `ORDERFLOW_LOG`
/// (else `default_level`). Later calls do nothing.
pub fn init(format: LogFormat, default_level: &str) {
    let filter = EnvFilter::try_from_env("ORDERFLOW_LOG").unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .flatten_event(true)
            .try_init(),
    };
    // Already installed (tests start several nodes in one process): keep it.
    drop(installed);
}
