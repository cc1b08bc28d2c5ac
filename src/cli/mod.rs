//! The `orderflow` command line.

mod client;
mod cluster;
mod dlq;
mod tail;
mod token;
pub mod trace;

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

pub use client::ApiArgs;

use crate::config::Config;
use crate::node::Node;

/// orderflow: an order saga engine on NATS JetStream.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// A TOML configuration file (see orderflow.example.toml); ORDERFLOW_* variables override it.
    #[arg(long, short, global = true, env = "ORDERFLOW_CONFIG")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a node: streams, actors, consumers and the HTTP API.
    Serve,
    /// Create or update the streams and consumers, then exit.
    Setup,
    /// Read events from the streams.
    Events {
        #[command(subcommand)]
        command: tail::EventsCommand,
    },
    /// Place and read orders through a node's HTTP API.
    Order {
        #[command(subcommand)]
        command: client::OrderCommand,
    },
    /// Restock and read SKUs through a node's HTTP API.
    Sku {
        #[command(subcommand)]
        command: client::SkuCommand,
    },
    /// Load the HTTP facade with a mixed scenario and report throughput and latency.
    Bench(crate::bench::BenchArgs),
    /// One order's saga across every stream, in time order, with step durations.
    Trace(trace::TraceArgs),
    /// Inspect, replay and discard dead letters (reads NATS directly; no node needed).
    Dlq {
        #[command(subcommand)]
        command: dlq::DlqCommand,
    },
    /// Check the business invariants from the four streams; fails on any violation.
    Audit(crate::audit::AuditArgs),
    /// The cluster as NATS sees it (reads NATS directly; no node needed).
    Cluster {
        #[command(subcommand)]
        command: cluster::ClusterCommand,
    },
    /// Sign a bearer token with ORDERFLOW_AUTH__HS256_SECRET (jwt mode with HS256).
    Token(token::TokenArgs),
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::load(cli.config.as_deref()).context("loading configuration")?;
    // A node reports what it does; a one-shot command only what went wrong.
    let level = if matches!(cli.command, Command::Serve) {
        "info"
    } else {
        "warn"
    };
    let exporter = crate::telemetry::logs::init(&config.telemetry, level).context("starting trace export")?;
    match cli.command {
        Command::Serve => {
            let served = serve(config).await;
            if let Some(exporter) = exporter {
                // Flushing blocks until the batch is sent (bounded by its timeout).
                let _ = tokio::task::spawn_blocking(move || exporter.shutdown()).await;
            }
            served
        }
        Command::Setup => {
            let client = crate::bus::connect(&config.nats)
                .await
                .with_context(|| format!("connecting to NATS at {}", config.nats.url))?;
            crate::bus::topology::ensure(&async_nats::jetstream::new(client), &config).await?;
            println!("streams and consumers are in place on {}", config.nats.url);
            Ok(())
        }
        Command::Events { command } => tail::run(command, &config).await,
        Command::Order { command } => client::order(command).await,
        Command::Sku { command } => client::sku(command).await,
        Command::Bench(args) => crate::bench::run(args, &config).await,
        Command::Trace(args) => trace::run(args, &config).await,
        Command::Dlq { command } => dlq::run(command, &config).await,
        Command::Audit(args) => crate::audit::command(args, &config).await,
        Command::Cluster { command } => cluster::run(command, &config).await,
        Command::Token(args) => token::run(&args, &config),
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let timeout = config.node.shutdown_timeout;
    let node = Node::start(config).await?;
    println!("orderflow listening on http://{}", node.http_addr);
    shutdown_signal().await;
    tracing::info!(
        ?timeout,
        "shutting down: no new requests or messages, finishing those in flight"
    );
    tokio::time::timeout(timeout, node.shutdown())
        .await
        .with_context(|| format!("shutdown took longer than {timeout:?}; unacked messages will be redelivered"))?;
    tracing::info!("stopped cleanly");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
