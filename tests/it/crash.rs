//! Crash-proof: actors killed, the node SIGKILLed, inputs duplicated and
//! redelivered, actors capped — and `orderflow audit` still passes.

use std::time::Duration;

use async_nats::header::HeaderMap;
use orderflow::bus::topology;
use schemas::subjects::{EntityKind, EntityRef};

use crate::support::load::{all_ended, place_mixed, Mix};
use crate::support::nats::eventually_true;
use crate::support::process::ProcessRig;
use crate::support::{audit_passes, eventually, order_body, test_config, NatsServer, TestApp};

const ALL_ENDED: Duration = Duration::from_secs(120);

/// Kills the `pick`-th of all live actors, whatever their kind.
async fn kill_any(actors: &orderflow::saga::Actors, pick: usize) -> bool {
    let mut live: Vec<(EntityKind, String)> = Vec::new();
    for (kind, ids) in [
        (EntityKind::Order, actors.orders.local().live_ids().await),
        (EntityKind::Payment, actors.payments.local().live_ids().await),
        (EntityKind::Inventory, actors.inventory.local().live_ids().await),
        (EntityKind::Notification, actors.notifications.local().live_ids().await),
    ] {
        live.extend(ids.into_iter().map(|id| (kind, id)));
    }
    let Some((kind, id)) = live.get(pick % live.len().max(1)).cloned() else {
        return false;
    };
    let entity = EntityRef { kind, id };
    let cell = match kind {
        EntityKind::Order => actors.orders.local().actor_of(&entity).await,
        EntityKind::Payment => actors.payments.local().actor_of(&entity).await,
        EntityKind::Inventory => actors.inventory.local().actor_of(&entity).await,
        EntityKind::Notification => actors.notifications.local().actor_of(&entity).await,
    };
    cell.map(|c| c.kill()).is_some()
}

fn outcomes(orders: &[serde_json::Value], status: &str) -> usize {
    orders.iter().filter(|o| o["status"] == status).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_actors_under_a_mixed_load_loses_nothing() {
    let app = TestApp::spawn().await;
    let skus = ["K1", "K2", "K3", "K4"];
    for sku in skus {
        app.restock(sku, 400).await;
    }
    let actors = app.node.as_ref().expect("a node").actors.clone();
    let (done, mut finished) = tokio::sync::watch::channel(false);
    let killer = tokio::spawn(async move {
        let mut kills = 0usize;
        // One kill every 10 ms, of an actor picked at random among all live ones.
        let mut pace = tokio::time::interval(Duration::from_millis(10));
        for round in 0..20_000usize {
            tokio::select! {
                _ = pace.tick() => {}
                _ = finished.changed() => break,
            }
            kills += usize::from(kill_any(&actors, round.wrapping_mul(2_654_435_761) >> 7).await);
        }
        kills
    });

    let ids = place_mixed(&app.http, || app.base.clone(), &Mix::new(2_000, &skus)).await;
    let orders = all_ended(&app.http, &app.base, &ids, ALL_ENDED).await;
    let _ = done.send(true);
    let kills = killer.await.expect("the killer ran");
    assert!(kills > 50, "only {kills} actors were killed");

    assert_eq!(orders.len(), 2_000);
    assert!(
        outcomes(&orders, "COMPLETED") > 0 && outcomes(&orders, "FAILED") > 0,
        "a mixed load"
    );
    let stock_outs = orders
        .iter()
        .filter(|o| o["reason"].as_str().is_some_and(|r| r.starts_with("out of stock")))
        .count();
    let cancels = orders.iter().filter(|o| o["reason"] == "cancelled by customer").count();
    assert!(
        stock_outs > 0 && cancels > 0,
        "{stock_outs} stock-outs, {cancels} cancels"
    );
    app.audit_passes().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilling_the_node_three_times_loses_nothing() {
    let mut rig = ProcessRig::start(&[]).await;
    for sku in ["P1", "P2", "P3"] {
        rig.restock(sku, 150).await;
    }
    let (js, http, base) = (rig.js.clone(), rig.http.clone(), rig.node.base());
    let node = &mut rig.node;

    let mix = Mix::new(600, &["P1", "P2", "P3"]);
    let load = {
        let (http, base, mix) = (http.clone(), base.clone(), mix.clone());
        tokio::spawn(async move { place_mixed(&http, || base.clone(), &mix).await })
    };
    let orders_stream = js.get_stream("ORDERS").await.expect("ORDERS");
    for (round, events) in [300u64, 1_200, 2_100].into_iter().enumerate() {
        eventually_true(&format!("{events} order events before kill {round}"), ALL_ENDED, || {
            let mut s = orders_stream.clone();
            async move { s.info().await.map(|i| i.state.messages >= events).unwrap_or(false) }
        })
        .await;
        node.kill().await;
        if round == 1 {
            // Snapshots are a cache: losing them all costs only replay time.
            std::fs::remove_dir_all(node.store()).expect("the snapshot directory is deleted");
        }
        node.restart().await;
    }
    let ids = load.await.expect("the load ran");
    let orders = all_ended(&http, &base, &ids, ALL_ENDED).await;
    assert_eq!(orders.len(), 600);
    audit_passes(&js).await;
    node.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn republished_events_and_forced_redeliveries_change_nothing() {
    let nats = NatsServer::start().await;
    let mut config = test_config(&nats.url());
    // A short duplicate window, so republished copies get stored, as they
    // would hours later in production.
    config.nats.duplicate_window = Duration::from_millis(500);
    let app = TestApp::spawn_on(nats, config).await;
    for sku in ["D1", "D2"] {
        app.restock(sku, 60).await;
    }
    let ids = place_mixed(&app.http, || app.base.clone(), &Mix::new(150, &["D1", "D2"])).await;
    all_ended(&app.http, &app.base, &ids, ALL_ENDED).await;

    // Republish every third stored event with its original headers and
    // message id, minus the concurrency check: a copy in every journal.
    let mut copies = 0;
    for stream in ["ORDERS", "PAYMENTS", "INVENTORY"] {
        for message in app.stored(stream, ">").await.into_iter().step_by(3) {
            let mut headers = HeaderMap::new();
            for (name, values) in message.headers.iter() {
                if !name.to_string().starts_with("Nats-Expected") {
                    for v in values {
                        headers.append(name.to_string(), v.as_str());
                    }
                }
            }
            let subject = message.subject.to_string();
            eventually(
                &format!("a copy of {subject} stored past the duplicate window"),
                Duration::from_secs(10),
                || {
                    let (headers, payload, subject) = (headers.clone(), message.payload.clone(), subject.clone());
                    let js = app.js.clone();
                    async move {
                        let ack = js
                            .publish_with_headers(subject, headers, payload)
                            .await
                            .ok()?
                            .await
                            .ok()?;
                        (!ack.duplicate).then_some(())
                    }
                },
            )
            .await;
            copies += 1;
        }
    }
    assert!(copies > 100, "{copies} copies");

    // Forced redelivery of everything: recreate every consumer from the start.
    for (stream, consumer) in topology::INBOXES.iter().map(|i| (i.source.stream(), i.name)) {
        app.js
            .get_stream(stream)
            .await
            .expect("stream")
            .delete_consumer(consumer)
            .await
            .expect("deleted");
    }
    topology::ensure(&app.js, &app.config)
        .await
        .expect("consumers recreated");
    for inbox in topology::INBOXES {
        let (stream, name) = (inbox.source.stream(), inbox.name);
        eventually_true(&format!("{stream}/{name} to settle everything"), ALL_ENDED, || async {
            let mut c: async_nats::jetstream::consumer::PullConsumer =
                app.js.get_consumer_from_stream(name, stream).await.expect("consumer");
            c.info()
                .await
                .map(|i| i.num_pending == 0 && i.num_ack_pending == 0)
                .unwrap_or(false)
        })
        .await;
    }
    let report = app.audit_passes().await;
    assert!(
        format!("{report}").contains("cop"),
        "the audit reports the copies it folded:\n{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_cap_on_live_actors_holds_and_passivated_actors_recover() {
    let nats = NatsServer::start().await;
    let mut config = test_config(&nats.url());
    config.actors.max_live = 8;
    config.actors.idle_timeout = Duration::from_millis(300);
    config.actors.snapshot_every = 3;
    let app = TestApp::spawn_on(nats, config).await;
    app.restock("C1", 100).await;
    app.restock("C2", 100).await;
    let ids = place_mixed(&app.http, || app.base.clone(), &Mix::new(300, &["C1", "C2"])).await;
    all_ended(&app.http, &app.base, &ids, ALL_ENDED).await;
    app.audit_passes().await;

    let actors = app.node.as_ref().expect("a node").actors.clone();
    for (kind, gauge, parked) in actors.gauges() {
        assert!(
            gauge.peak() <= 8,
            "{kind}: {} live actors at once over a cap of 8",
            gauge.peak()
        );
        assert!(
            parked.now() <= 8,
            "{kind}: {} states parked over a cap of 8",
            parked.now()
        );
        // 300 orders through 8 places: parked states were let go, with a snapshot.
        assert!(parked.passivated() > 0, "{kind}: no parked state was passivated");
        eventually_true(
            &format!("idle {kind} actors to stop and their parked states to passivate"),
            Duration::from_secs(10),
            || async { gauge.now() == 0 && parked.now() == 0 },
        )
        .await;
    }
    // A passivated SKU comes back from its snapshot plus the journal's tail,
    // including a restock written while it slept.
    let before = app.sku("C1").await["available"].as_u64().expect("available");
    app.restock("C1", 5).await;
    let id = app.place_ok(&order_body("late", &[("C1", 1)], "tok_visa")).await;
    assert_eq!(app.ended(&id).await["status"], "COMPLETED");
    assert_eq!(app.sku("C1").await["available"].as_u64(), Some(before + 4));
    app.audit_passes().await;
}
