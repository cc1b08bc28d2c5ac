//! One orderflow node: topology, actors, inboxes and the HTTP facade, wired.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::bus::journal::{NatsJournal, Reads};
use crate::bus::{self, topology};
use crate::cluster::leases::{self, Ownership};
use crate::cluster::membership::{self, NodeCard};
use crate::config::Config;
use crate::dead_letters::DeadLetters;
use crate::http::{self, AppState, Services};
use crate::notify::NotifySetup;
use crate::saga::sharded::Router;
use crate::saga::{self, Actors};
use crate::store::SledSnapshots;
use crate::telemetry;

/// A running node.
pub struct Node {
    /// Where the HTTP facade listens.
    pub http_addr: SocketAddr,
    /// The live actors, for inspection.
    pub actors: Arc<Actors>,
    snapshots: SledSnapshots,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Node {
    /// Connects, ensures the topology, and starts the actors, the inboxes and HTTP.
    pub async fn start(config: Config) -> anyhow::Result<Node> {
        // Installed first, so that nothing recorded at start-up is lost.
        let metrics = telemetry::prometheus();
        let client = bus::connect(&config.nats)
            .await
            .with_context(|| format!("connecting to NATS at {}", config.nats.url))?;
        let js = async_nats::jetstream::new(client.clone());
        topology::ensure_patiently(&js, &config)
            .await
            .context("creating streams and consumers")?;
        let reads = Reads::for_replicas(config.nats.replicas);
        let journal = Arc::new(
            NatsJournal::open_with(js.clone(), reads)
                .await
                .context("opening the journals")?,
        );
        let snapshots =
            SledSnapshots::open(&config.store.path, config.store.cache_bytes).context("opening the snapshot store")?;
        let notify = NotifySetup::open(&js, &config.notifications)
            .await
            .context("setting up notifications")?;
        let node_id = membership::node_id();
        let ownership = Arc::new(Ownership::new(node_id.clone(), config.cluster.partitions));
        let router = Router::new(
            ownership.clone(),
            client.clone(),
            config.cluster.forward_timeout,
            config.cluster.forward_reask,
        );
        let actors = Arc::new(
            Actors::start(journal.clone(), Arc::new(snapshots.clone()), &config, &notify, router)
                .await
                .context("starting actors")?,
        );
        let (stop, stopped) = watch::channel(false);
        let mut tasks = saga::spawn_inboxes(&js, &actors, &journal, &config, &stopped);
        let (serving, forwarded) = (actors.clone(), client.clone());
        tasks.spawn(leases::hold(
            js.clone(),
            ownership,
            config.cluster.lease_ttl,
            move |partition, handed_over| {
                serving
                    .clone()
                    .serve_partition(forwarded.clone(), partition, handed_over)
            },
            stopped.clone(),
        ));
        tasks.spawn(notify.customers.clone().follow(js.clone(), stopped.clone()));
        let orders = crate::read_model::follow::OrderReadModel::default();
        tasks.spawn(orders.clone().follow(js.clone(), stopped.clone()));

        let listener = TcpListener::bind(config.http.addr)
            .await
            .with_context(|| format!("binding HTTP on {}", config.http.addr))?;
        let http_addr = listener.local_addr().context("reading the HTTP address")?;
        tasks.spawn(telemetry::gauges::run(
            js.clone(),
            actors.clone(),
            &config,
            stopped.clone(),
        ));
        let heartbeat_js = js.clone();
        let auth = Arc::new(crate::auth::start(&config.auth).context("setting up authentication")?);
        let app = http::router(AppState::new(Services {
            config: Arc::new(config),
            journal,
            client,
            dead_letters: DeadLetters::new(js.clone()),
            notify,
            orders,
            snapshots: snapshots.clone(),
            js,
            metrics,
            auth,
        }));
        let mut http_stopped = stopped.clone();
        tasks.spawn(async move {
            let shutdown = async move {
                let _ = http_stopped.wait_for(|s| *s).await;
            };
            if let Err(e) = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!(error = %e, "HTTP server failed");
            }
        });
        let card = NodeCard {
            id: node_id,
            http: http_addr.to_string(),
            started: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        tracing::info!(%http_addr, node = %card.id, "orderflow node ready");
        tasks.spawn(membership::announce(heartbeat_js, card, stopped.clone()));
        Ok(Node {
            http_addr,
            actors,
            snapshots,
            stop,
            tasks,
        })
    }

    /// Stops taking requests and messages, and waits for those in flight.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
        self.actors.passivate_all().await;
        self.snapshots.flush();
    }
}
