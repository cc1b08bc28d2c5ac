//! `orderflow cluster status`.

use anyhow::Context as _;
use clap::Subcommand;

use crate::cluster::status;
use crate::config::Config;

/// What to ask of the cluster.
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Live nodes, stream placement and replicas, consumer lag, and lag per partition.
    ///
    /// Lag per partition counts the messages above each durable consumer's
    /// ack floor (at most 10,000 read per consumer), attributed to the
    /// partition whose owner executes them: the order's, or every SKU of a
    /// stock request. Messages acknowledged out of order above the floor are
    /// still counted, so it is an upper bound while acks are out of order,
    /// and exact at rest.
    Status {
        /// One JSON document instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `command` against the servers of `config.nats.url`.
pub async fn run(command: ClusterCommand, config: &Config) -> anyhow::Result<()> {
    let ClusterCommand::Status { json } = command;
    let client = crate::bus::connect(&config.nats)
        .await
        .with_context(|| format!("connecting to NATS at {}", config.nats.url))?;
    let js = async_nats::jetstream::new(client);
    let status = status::read(&js, config).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", status::render(&status));
    }
    Ok(())
}
