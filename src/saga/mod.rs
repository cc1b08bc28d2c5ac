//! The saga's actors and the inboxes that feed them.

mod handlers;

use std::sync::Arc;

use actors::inventory::Inventory;
use actors::notification::Notifications;
use actors::order::OrderSaga;
use actors::shell::{Directory, DirectoryError, PaymentBehavior, Pure};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::bus::inbox;
use crate::bus::journal::NatsJournal;
use crate::config::Config;
use crate::gateway::SimulatedGateway;

/// One directory of live actors per entity kind.
pub struct Actors {
    /// Order sagas, by order id.
    pub orders: Directory<Pure<OrderSaga>, NatsJournal>,
    /// Payments, by order id.
    pub payments: Directory<PaymentBehavior<SimulatedGateway>, NatsJournal>,
    /// Stock, by SKU.
    pub inventory: Directory<Pure<Inventory>, NatsJournal>,
    /// Notifications, by order id.
    pub notifications: Directory<Pure<Notifications>, NatsJournal>,
}

impl Actors {
    /// Starts the four supervisors.
    pub async fn start(journal: Arc<NatsJournal>, config: &Config) -> Result<Self, DirectoryError> {
        let timeout = config.actors.call_timeout;
        let gateway = Arc::new(SimulatedGateway::new(&config.gateway));
        Ok(Self {
            orders: Directory::start("order", Arc::new(Pure::default()), journal.clone(), timeout).await?,
            payments: Directory::start(
                "payment",
                Arc::new(PaymentBehavior::new(gateway)),
                journal.clone(),
                timeout,
            )
            .await?,
            inventory: Directory::start("inventory", Arc::new(Pure::default()), journal.clone(), timeout).await?,
            notifications: Directory::start("notification", Arc::new(Pure::default()), journal, timeout).await?,
        })
    }
}

/// Runs every inbox until `stop` turns true.
pub fn spawn_inboxes(
    js: &async_nats::jetstream::Context,
    actors: &Arc<Actors>,
    config: &Config,
    stop: &watch::Receiver<bool>,
) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    for (inbox, input) in handlers::ROUTES {
        let route = Arc::new(handlers::Route::new(input, actors.clone()));
        tasks.spawn(inbox::run(
            js.clone(),
            inbox,
            route,
            config.consumers.clone(),
            stop.clone(),
        ));
    }
    tasks
}
