//! `orderflow events tail`: the streams as JSON lines, bodies decoded.

use std::time::SystemTime;

use anyhow::Context as _;
use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use async_nats::jetstream::Message;
use clap::Subcommand;
use futures::stream::{self, StreamExt};
use schemas::subjects::{EntityKind, EntityRef};
use serde_json::{json, Value};

use crate::bus::decoded;
use crate::config::Config;

/// `orderflow events …`
#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Print events as JSON lines, decoding MessagePack bodies.
    Tail {
        /// Only these streams (ORDERS, PAYMENTS, INVENTORY, NOTIFICATIONS); all if absent.
        #[arg(long = "stream")]
        streams: Vec<String>,
        /// Only subjects matching this filter within each stream (e.g. `orders.*.placed`).
        #[arg(long)]
        subject: Option<String>,
        /// Start from the first stored event instead of only new ones.
        #[arg(long)]
        from_start: bool,
        /// Exit after this many events.
        #[arg(long)]
        limit: Option<usize>,
    },
}

/// Runs `orderflow events …`.
pub async fn run(command: EventsCommand, config: &Config) -> anyhow::Result<()> {
    let EventsCommand::Tail {
        streams,
        subject,
        from_start,
        limit,
    } = command;
    let client = crate::bus::connect(&config.nats)
        .await
        .with_context(|| format!("connecting to NATS at {}", config.nats.url))?;
    let js = async_nats::jetstream::new(client);
    let kinds: Vec<EntityKind> = if streams.is_empty() {
        EntityKind::ALL.to_vec()
    } else {
        streams
            .iter()
            .map(|s| {
                EntityKind::ALL
                    .into_iter()
                    .find(|k| k.stream().eq_ignore_ascii_case(s))
                    .with_context(|| format!("no stream {s}; expected ORDERS, PAYMENTS, INVENTORY or NOTIFICATIONS"))
            })
            .collect::<anyhow::Result<_>>()?
    };
    let mut feeds = Vec::new();
    for kind in kinds {
        let filter = match &subject {
            Some(s) if s.split('.').next() == Some(kind.space()) || s == ">" => s.clone(),
            Some(_) => continue,
            None => kind.stream_subjects(),
        };
        let stream = js
            .get_stream(kind.stream())
            .await
            .with_context(|| format!("stream {}", kind.stream()))?;
        let consumer = stream
            .create_consumer(pull::OrderedConfig {
                filter_subject: filter,
                deliver_policy: if from_start {
                    DeliverPolicy::All
                } else {
                    DeliverPolicy::New
                },
                ..Default::default()
            })
            .await
            .with_context(|| format!("reading {}", kind.stream()))?;
        let messages = consumer
            .messages()
            .await
            .with_context(|| format!("reading {}", kind.stream()))?;
        feeds.push(messages.map(move |m| (kind, m)).boxed());
    }
    let mut all = stream::select_all(feeds);
    let mut printed = 0;
    while limit.is_none_or(|l| printed < l) {
        let Some((kind, message)) = all.next().await else { break };
        let message = message.with_context(|| format!("reading {}", kind.stream()))?;
        println!("{}", line(kind, &message));
        printed += 1;
    }
    Ok(())
}

/// One event as a JSON object: where it is, its headers, and its decoded body.
fn line(kind: EntityKind, message: &Message) -> Value {
    let (seq, time) = match message.info() {
        Ok(i) => (
            i.stream_sequence,
            Some(humantime::format_rfc3339_millis(SystemTime::from(i.published)).to_string()),
        ),
        Err(_) => (0, None),
    };
    let entity = EntityRef::parse_subject(&message.subject).map(|(e, _)| e.id);
    json!({
        "stream": kind.stream(),
        "seq": seq,
        "time": time,
        "subject": message.subject.as_str(),
        "entity": entity,
        "headers": decoded::headers_json(message.headers.as_ref()),
        "event": decoded::body_json(kind, message.headers.as_ref(), &message.payload),
    })
}
