//! `orderflow dlq …`: dead letters, straight from the streams, so it works
//! when no node is running (which may be exactly when it is needed).

use anyhow::Context as _;
use clap::Subcommand;

use crate::config::Config;
use crate::dead_letters::{DeadLetter, DeadLetters, StateFilter};

/// `orderflow dlq …`
#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List dead letters, oldest first.
    List {
        /// Which ones.
        #[arg(long, value_enum, default_value_t = StateFilter::Open)]
        state: StateFilter,
        /// Only ids above this one.
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one dead letter with its original message, decoded.
    Show {
        /// The dead letter's id (its sequence in DEAD_LETTERS).
        id: u64,
    },
    /// Publish the original again for processing, once its cause is fixed.
    Replay {
        /// The dead letter's id.
        id: u64,
        /// Who asks, for the trace.
        #[arg(long, env = "USER", default_value = "cli")]
        by: String,
    },
    /// Mark a dead letter handled without processing it.
    Discard {
        /// The dead letter's id.
        id: u64,
        /// Why (kept with the dead letter).
        #[arg(long)]
        reason: String,
        /// Who decides, for the trace.
        #[arg(long, env = "USER", default_value = "cli")]
        by: String,
    },
}

/// Runs `orderflow dlq …`.
pub async fn run(command: DlqCommand, config: &Config) -> anyhow::Result<()> {
    let client = crate::bus::connect(&config.nats)
        .await
        .with_context(|| format!("connecting to NATS at {}", config.nats.url))?;
    let dead_letters = DeadLetters::new(async_nats::jetstream::new(client));
    match command {
        DlqCommand::List {
            state,
            after,
            limit,
            json,
        } => {
            let page = dead_letters.list(state, after, limit).await?;
            if json {
                for item in &page.items {
                    println!("{}", serde_json::to_string(item)?);
                }
            } else {
                print_table(&page.items);
                if let Some(next) = page.next_after {
                    println!("… more: --after {next}");
                }
            }
        }
        DlqCommand::Show { id } => {
            println!("{}", serde_json::to_string_pretty(&dead_letters.show(id).await?)?);
        }
        DlqCommand::Replay { id, by } => {
            let handling = dead_letters.replay(id, &by).await?;
            println!("{}", serde_json::to_string_pretty(&handling)?);
        }
        DlqCommand::Discard { id, reason, by } => {
            let handling = dead_letters.discard(id, &reason, &by).await?;
            println!("{}", serde_json::to_string_pretty(&handling)?);
        }
    }
    Ok(())
}

fn print_table(items: &[DeadLetter]) {
    println!(
        "{:>6}  {:<24}  {:<14}  {:<14}  {:<9}  {:<60}  REASON",
        "ID", "TIME", "CAUSE", "CONSUMER", "STATE", "SUBJECT"
    );
    for d in items {
        let cause = serde_json::to_value(d.cause)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        println!(
            "{:>6}  {:<24}  {:<14}  {:<14}  {:<9}  {:<60}  {}",
            d.id,
            d.time.as_deref().unwrap_or("-"),
            cause,
            d.consumer,
            d.handling.state(),
            d.subject.as_deref().unwrap_or("(no longer stored)"),
            d.reason
        );
    }
}
