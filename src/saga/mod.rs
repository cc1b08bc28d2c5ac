//! The saga's actors and the inboxes that feed them.

mod dead_letters;
pub mod driver;
mod handlers;
mod placed_times;
pub mod sharded;
pub mod timers;

use std::sync::Arc;

use actors::inventory::Inventory;
use actors::notification::NotifyBehavior;
use actors::order::OrderSaga;
use actors::shell::directory::{DirectoryConfig, LiveGauge};
use actors::shell::parked::ParkedGauge;
use actors::shell::{Directory, DirectoryError, PaymentBehavior, Pure};
use actors::snapshot::SnapshotStore;
use futures::StreamExt;
use schemas::subjects::EntityKind;
use sharded::{Router, Sharded};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::bus::journal::NatsJournal;
use crate::bus::{inbox, topology};
use crate::cluster::partitions::Partition;
use crate::config::Config;
use crate::dead_letters::DEAD_LETTER_ACTIONS;
use crate::gateway::{HttpGatewayError, PaymentProvider};
use crate::notify::{Notifier, NotifySetup};

/// Why the saga's actors could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    #[error("payment provider: {0}")]
    Gateway(#[from] HttpGatewayError),
}

/// One directory of live actors per entity kind.
pub struct Actors {
    /// The payment provider the payment actors call (shared, with its breaker).
    pub gateway: Arc<PaymentProvider>,
    /// Order sagas, by order id.
    pub orders: Sharded<Pure<OrderSaga>>,
    /// Payments, by order id.
    pub payments: Sharded<PaymentBehavior<PaymentProvider>>,
    /// Stock, by SKU.
    pub inventory: Sharded<Pure<Inventory>>,
    /// Notifications, by order id.
    pub notifications: Sharded<NotifyBehavior<Notifier>>,
    /// Preferences and plans for the notifications.
    pub notify: NotifySetup,
}

impl Actors {
    /// Starts the four supervisors; `router` sends each input to the node
    /// owning its entity's partition.
    pub async fn start(
        journal: Arc<NatsJournal>,
        snapshots: Arc<dyn SnapshotStore>,
        config: &Config,
        notify: &NotifySetup,
        router: Router,
    ) -> Result<Self, StartError> {
        let a = &config.actors;
        let directory = DirectoryConfig {
            call_timeout: a.call_timeout,
            max_live: a.max_live,
            park_after: a.park_after,
            idle_timeout: a.idle_timeout,
            snapshot_every: a.snapshot_every,
        };
        let gateway = Arc::new(PaymentProvider::from_config(&config.gateway)?);
        let (j, s, d) = (&journal, &snapshots, &directory);
        let r = &router;
        Ok(Self {
            gateway: gateway.clone(),
            orders: Sharded::new(
                EntityKind::Order,
                Directory::start("order", Arc::default(), j.clone(), s.clone(), d.clone()).await?,
                r.clone(),
            ),
            payments: Sharded::new(
                EntityKind::Payment,
                Directory::start(
                    "payment",
                    Arc::new(PaymentBehavior::new(gateway)),
                    j.clone(),
                    s.clone(),
                    d.clone(),
                )
                .await?,
                r.clone(),
            ),
            inventory: Sharded::new(
                EntityKind::Inventory,
                Directory::start("inventory", Arc::default(), j.clone(), s.clone(), d.clone()).await?,
                r.clone(),
            ),
            notifications: Sharded::new(
                EntityKind::Notification,
                Directory::start(
                    "notification",
                    Arc::new(NotifyBehavior::new(notify.notifier.clone())),
                    j.clone(),
                    s.clone(),
                    d.clone(),
                )
                .await?,
                r.clone(),
            ),
            notify: notify.clone(),
        })
    }
}

impl Actors {
    /// Each kind's label with the gauges of this node's directory for it:
    /// actors running, and states parked without one.
    pub fn gauges(&self) -> [(&'static str, &LiveGauge, &ParkedGauge); 4] {
        [
            ("order", self.orders.local().gauge(), self.orders.local().parked()),
            ("payment", self.payments.local().gauge(), self.payments.local().parked()),
            (
                "inventory",
                self.inventory.local().gauge(),
                self.inventory.local().parked(),
            ),
            (
                "notification",
                self.notifications.local().gauge(),
                self.notifications.local().parked(),
            ),
        ]
    }

    /// Stops every actor, letting each finish its queue, and lets go of
    /// every parked state (snapshotting those with long journals).
    pub async fn passivate_all(&self) {
        let deadline = std::time::Duration::from_secs(5);
        tokio::join!(
            self.orders.local().passivate_all(deadline),
            self.payments.local().passivate_all(deadline),
            self.inventory.local().passivate_all(deadline),
            self.notifications.local().passivate_all(deadline),
        );
    }

    /// Answers the inputs other nodes forward for `partition` until
    /// `stopped` turns true (this node handed the partition over); inputs
    /// already taken finish.
    pub async fn serve_partition(
        self: Arc<Self>,
        client: async_nats::Client,
        partition: Partition,
        mut stopped: watch::Receiver<bool>,
    ) {
        let subject = format!("{}.{partition}.*", sharded::PREFIX);
        // A queue group: during a hand-over two nodes may listen; one answers.
        let mut requests = match client.queue_subscribe(subject.clone(), "owner".into()).await {
            Ok(requests) => requests,
            Err(e) => {
                tracing::error!(partition, error = %e, "cannot serve partition; its inputs run wherever they arrive");
                return;
            }
        };
        loop {
            let request = tokio::select! {
                request = requests.next() => request,
                _ = stopped.wait_for(|s| *s) => break,
            };
            let Some(request) = request else { break };
            let Some(reply) = request.reply.clone() else { continue };
            let (actors, client) = (self.clone(), client.clone());
            tokio::spawn(async move {
                let answer = match request.subject.rsplit('.').next() {
                    Some(space) if space == EntityKind::Order.space() => actors.orders.answer(&request.payload).await,
                    Some(space) if space == EntityKind::Payment.space() => {
                        actors.payments.answer(&request.payload).await
                    }
                    Some(space) if space == EntityKind::Inventory.space() => {
                        actors.inventory.answer(&request.payload).await
                    }
                    Some(space) if space == EntityKind::Notification.space() => {
                        actors.notifications.answer(&request.payload).await
                    }
                    // Nobody answers: the sender executes it itself.
                    _ => return,
                };
                if let Err(e) = client.publish(reply, answer).await {
                    tracing::warn!(error = %e, "answer to a forwarded input not sent; it will be redelivered");
                }
            });
        }
        let _ = requests.unsubscribe().await;
    }
}

/// Runs every inbox until `stop` turns true.
pub fn spawn_inboxes(
    js: &async_nats::jetstream::Context,
    actors: &Arc<Actors>,
    journal: &Arc<NatsJournal>,
    config: &Config,
    stop: &watch::Receiver<bool>,
) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    let wait = driver::WaitPolicy {
        deadline: config.gateway.wait_deadline,
        recheck: config.gateway.breaker.open_for,
    };
    let timers = Arc::new(timers::ReservationTimers::new(
        js.clone(),
        config.inventory.reservation_ttl,
    ));
    let placed = Arc::new(placed_times::PlacedTimes::default());
    let driver = Arc::new(driver::Driver::new(
        actors.clone(),
        journal.clone(),
        timers,
        placed,
        wait,
    ));
    let route = |input| Arc::new(handlers::Route::new(input, driver.clone()));
    for (inbox, input) in handlers::ROUTES {
        let route = route(input);
        tasks.spawn(inbox::run(
            js.clone(),
            inbox.source.stream(),
            inbox.name,
            route,
            config.consumers.clone(),
            stop.clone(),
        ));
    }
    tasks.spawn(inbox::run(
        js.clone(),
        schemas::timer::STREAM,
        topology::ORDER_TIMERS,
        route(handlers::Input::ReservationExpiries),
        config.consumers.clone(),
        stop.clone(),
    ));
    let attention = Arc::new(dead_letters::AttentionRoute::new(js.clone(), actors.clone()));
    let (stream, consumer) = (topology::DEAD_LETTERS, topology::ORDER_ATTENTION);
    tasks.spawn(inbox::run(
        js.clone(),
        stream,
        consumer,
        attention,
        config.consumers.clone(),
        stop.clone(),
    ));
    tasks.spawn(inbox::run(
        js.clone(),
        DEAD_LETTER_ACTIONS,
        topology::ACTION_COUNTER,
        Arc::new(dead_letters::ActionCounter),
        config.consumers.clone(),
        stop.clone(),
    ));
    tasks
}
