//! The saga's actors and the inboxes that feed them.

mod dead_letters;
mod handlers;
pub mod timers;

use std::sync::Arc;

use actors::inventory::Inventory;
use actors::notification::NotifyBehavior;
use actors::order::OrderSaga;
use actors::shell::directory::DirectoryConfig;
use actors::shell::{Directory, DirectoryError, PaymentBehavior, Pure};
use actors::snapshot::SnapshotStore;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::bus::journal::NatsJournal;
use crate::bus::{inbox, topology};
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
    pub orders: Directory<Pure<OrderSaga>, NatsJournal>,
    /// Payments, by order id.
    pub payments: Directory<PaymentBehavior<PaymentProvider>, NatsJournal>,
    /// Stock, by SKU.
    pub inventory: Directory<Pure<Inventory>, NatsJournal>,
    /// Notifications, by order id.
    pub notifications: Directory<NotifyBehavior<Notifier>, NatsJournal>,
    /// Preferences and plans for the notifications.
    pub notify: NotifySetup,
}

impl Actors {
    /// Starts the four supervisors.
    pub async fn start(
        journal: Arc<NatsJournal>,
        snapshots: Arc<dyn SnapshotStore>,
        config: &Config,
        notify: &NotifySetup,
    ) -> Result<Self, StartError> {
        let a = &config.actors;
        let directory = DirectoryConfig {
            call_timeout: a.call_timeout,
            max_live: a.max_live,
            idle_timeout: a.idle_timeout,
            snapshot_every: a.snapshot_every,
        };
        let gateway = Arc::new(PaymentProvider::from_config(&config.gateway)?);
        let (j, s, d) = (&journal, &snapshots, &directory);
        Ok(Self {
            gateway: gateway.clone(),
            orders: Directory::start("order", Arc::default(), j.clone(), s.clone(), d.clone()).await?,
            payments: Directory::start(
                "payment",
                Arc::new(PaymentBehavior::new(gateway)),
                j.clone(),
                s.clone(),
                d.clone(),
            )
            .await?,
            inventory: Directory::start("inventory", Arc::default(), j.clone(), s.clone(), d.clone()).await?,
            notifications: Directory::start(
                "notification",
                Arc::new(NotifyBehavior::new(notify.notifier.clone())),
                j.clone(),
                s.clone(),
                d.clone(),
            )
            .await?,
            notify: notify.clone(),
        })
    }
}

impl Actors {
    /// Stops every actor, letting each finish its queue and snapshot.
    pub async fn passivate_all(&self) {
        let deadline = std::time::Duration::from_secs(5);
        tokio::join!(
            self.orders.passivate_all(deadline),
            self.payments.passivate_all(deadline),
            self.inventory.passivate_all(deadline),
            self.notifications.passivate_all(deadline),
        );
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
    let wait = handlers::WaitPolicy {
        deadline: config.gateway.wait_deadline,
        recheck: config.gateway.breaker.open_for,
    };
    let timers = Arc::new(timers::ReservationTimers::new(
        js.clone(),
        config.inventory.reservation_ttl,
    ));
    let route = |input| {
        Arc::new(handlers::Route::new(
            input,
            actors.clone(),
            journal.clone(),
            timers.clone(),
            wait,
        ))
    };
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
