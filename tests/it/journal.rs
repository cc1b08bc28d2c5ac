//! Invariants 2 and 3 at the journal itself: dedup by message id, and
//! optimistic concurrency that makes a stale writer re-decide.

use std::time::Duration;

use actors::inventory::{Inventory, InventoryCommand};
use actors::journal::{Appended, Cause, Journal, JournalError};
use actors::order::{OrderCommand, OrderRejection, OrderSaga, PaymentReply, StockReply};
use actors::shell::{execute, Cached, Executed, Pure};
use async_nats::header::HeaderMap;
use orderflow::bus::journal::{NatsJournal, Reads};
use orderflow::bus::topology;
use schemas::inventory::InventoryEvent;
use schemas::order::{Line, OrderEvent};
use schemas::subjects::EntityRef;
use schemas::{Currency, CustomerId, OrderId, Quantity, Sku};

use crate::support::{stored, test_config, NatsOptions, NatsServer, HARNESS_USER};

async fn journal_on(nats: &NatsServer) -> (async_nats::jetstream::Context, NatsJournal) {
    let js = nats.jetstream().await;
    topology::ensure(&js, &test_config(&nats.url()))
        .await
        .expect("topology");
    let journal = NatsJournal::open(js.clone()).await.expect("journal");
    (js, journal)
}

#[tokio::test]
async fn the_same_message_id_is_stored_once() {
    let nats = NatsServer::start().await;
    let (js, journal) = journal_on(&nats).await;
    let sku = Sku::parse("SKU-1").expect("sku");
    let entity = EntityRef::inventory(&sku);
    let event = InventoryEvent::Restocked {
        sku: sku.clone(),
        quantity: 5,
        restock_id: "r1".into(),
        available: 5,
    };

    let first = journal
        .append(&entity, 0, &event, &Cause::default())
        .await
        .expect("stored");
    assert_eq!(
        first,
        Appended {
            seq: first.seq,
            duplicate: false
        }
    );
    // A writer that lost the ack and publishes the event again with the
    // same id: the server answers "duplicate" with the original sequence.
    let again = journal
        .append(&entity, first.seq, &event, &Cause::default())
        .await
        .expect("answered");
    assert_eq!(
        again,
        Appended {
            seq: first.seq,
            duplicate: true
        }
    );
    // A stale writer (still expecting an empty journal) is refused before
    // de-duplication is even considered; `execute` treats both alike: reload.
    assert_eq!(
        journal.append(&entity, 0, &event, &Cause::default()).await,
        Err(JournalError::Conflict)
    );

    // The same holds for any publisher that sets Nats-Msg-Id by hand.
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", "by-hand-1");
    for expected_duplicate in [false, true] {
        let ack = js
            .publish_with_headers("inventory.SKU-2.restocked", headers.clone(), "x".into())
            .await
            .expect("sent")
            .await
            .expect("acked");
        assert_eq!(ack.duplicate, expected_duplicate);
    }
    assert_eq!(stored(&js, "INVENTORY", "inventory.SKU-1.*").await.len(), 1);
    assert_eq!(stored(&js, "INVENTORY", "inventory.SKU-2.*").await.len(), 1);
}

#[tokio::test]
async fn a_stale_writer_on_an_order_gets_a_conflict_and_re_decides() {
    let nats = NatsServer::start().await;
    let (_js, journal) = journal_on(&nats).await;
    let id = OrderId::random();
    let entity = EntityRef::order(id);
    let sku = Sku::parse("SKU-1").expect("sku");
    let saga = Pure::<OrderSaga>::default();
    let cause = Cause::default();
    let mut setup = Cached::<OrderSaga>::default();
    let place = OrderCommand::Place {
        order_id: id,
        customer_id: CustomerId::parse("alice").expect("customer"),
        lines: vec![Line {
            sku: sku.clone(),
            quantity: Quantity::new(1).expect("q"),
            unit_price: 100,
        }],
        currency: Currency::default(),
        payment_method: "tok_visa".into(),
    };
    let authorized = OrderCommand::RecordPayment(PaymentReply::Authorized {
        payment_id: "pay_1".into(),
    });
    for command in [place, OrderCommand::Advance, authorized] {
        execute(&saga, &journal, &entity, &mut setup, &command, &cause)
            .await
            .expect("set up");
    }

    // Two writers read the order at the same point: waiting for stock.
    let mut a = Cached::<OrderSaga>::default();
    a.catch_up(&journal, &entity).await.expect("read");
    let mut b = a.clone();

    // Writer A records the reservation and completes the order.
    let reserved = OrderCommand::RecordStock {
        sku,
        reply: StockReply::Reserved {
            quantity: Quantity::new(1).expect("q"),
        },
    };
    match execute(&saga, &journal, &entity, &mut a, &reserved, &cause)
        .await
        .expect("a")
    {
        Executed::Appended(events) => assert!(
            matches!(&events[..], [OrderEvent::Completed { reserved: Some(_), .. }]),
            "one completed, naming the reservation: {events:?}"
        ),
        Executed::Rejected(r) => panic!("A refused: {r}"),
    }

    // Writer B still believes the order waits; its append is refused...
    let stale = OrderEvent::CancelRequested {
        reason: "too late".into(),
    };
    assert_eq!(
        journal.append(&entity, b.last_seq, &stale, &cause).await,
        Err(JournalError::Conflict)
    );
    // ...and deciding again from the reloaded journal, it sees the order ended.
    let cancel = OrderCommand::Cancel {
        reason: "too late".into(),
    };
    match execute(&saga, &journal, &entity, &mut b, &cancel, &cause)
        .await
        .expect("b")
    {
        Executed::Rejected(OrderRejection::AlreadyEnded(outcome)) => assert_eq!(outcome.event_type(), "completed"),
        other => panic!("B should re-decide against the completed order, got {other:?}"),
    }
    assert_eq!(b.last_seq, a.last_seq);
}

#[tokio::test]
async fn two_writers_never_oversell_the_last_unit() {
    let nats = NatsServer::start().await;
    let (js, journal) = journal_on(&nats).await;
    let sku = Sku::parse("LAST").expect("sku");
    let entity = EntityRef::inventory(&sku);
    let inventory = Pure::<Inventory>::default();
    let cause = Cause::default();
    let mut setup = Cached::<Inventory>::default();
    let restock = InventoryCommand::Restock {
        sku: sku.clone(),
        quantity: 1,
        restock_id: "r".into(),
    };
    execute(&inventory, &journal, &entity, &mut setup, &restock, &cause)
        .await
        .expect("restock");

    let mut a = setup.clone();
    let mut b = setup.clone();
    let one = Quantity::new(1).expect("q");
    let reserve = |order_id| InventoryCommand::Reserve {
        sku: sku.clone(),
        order_id,
        quantity: one,
    };
    let (x, y) = (OrderId::random(), OrderId::random());
    let first = execute(&inventory, &journal, &entity, &mut a, &reserve(x), &cause)
        .await
        .expect("a");
    let second = execute(&inventory, &journal, &entity, &mut b, &reserve(y), &cause)
        .await
        .expect("b");
    assert!(
        matches!(&first, Executed::Appended(e) if matches!(e[..], [InventoryEvent::Reserved { .. }])),
        "{first:?}"
    );
    // B decided "reserved" on a stale copy, lost the race, reloaded, and re-decided.
    assert!(
        matches!(&second, Executed::Appended(e) if matches!(e[..], [InventoryEvent::Rejected { .. }])),
        "{second:?}"
    );
    assert_eq!(stored(&js, "INVENTORY", "inventory.LAST.reserved").await.len(), 1);
}

#[tokio::test]
async fn a_journal_longer_than_one_batch_reads_back_whole_and_in_order_from_any_point() {
    let nats = NatsServer::start().await;
    let (js, journal) = journal_on(&nats).await;
    let leader_reads = NatsJournal::open_with(js.clone(), Reads::Leader)
        .await
        .expect("a journal reading from the leader");
    let (hot, cold) = (
        Sku::parse("SKU-HOT").expect("sku"),
        Sku::parse("SKU-COLD").expect("sku"),
    );
    let restock = |sku: &Sku, n: u64| InventoryEvent::Restocked {
        sku: sku.clone(),
        quantity: 1,
        restock_id: format!("r{n}"),
        available: n,
    };
    // 600 events of one SKU, interleaved with another's, so each batch
    // (256 messages) skips foreign messages and three are needed.
    let mut last = [0, 0];
    let mut hot_seqs = Vec::new();
    for n in 1..=600u64 {
        for (i, sku) in [&hot, &cold].into_iter().enumerate() {
            if i == 1 && n % 3 != 0 {
                continue;
            }
            let entity = EntityRef::inventory(sku);
            let stored = journal
                .append(&entity, last[i], &restock(sku, n), &Cause::default())
                .await;
            last[i] = stored.expect("stored").seq;
            if i == 0 {
                hot_seqs.push(last[i]);
            }
        }
    }
    let hot_last = last[0];
    let entity = EntityRef::inventory(&hot);
    for after in [0, hot_seqs[255], hot_seqs[299], hot_last] {
        let expected: Vec<u64> = hot_seqs.iter().copied().filter(|s| *s > after).collect();
        for (how, reader) in [("batched", &journal), ("leader", &leader_reads)] {
            let read = reader.records(&entity, after).await.expect("read");
            let seqs: Vec<u64> = read.iter().map(|r| r.seq).collect();
            assert_eq!(seqs, expected, "{how} reads after {after}");
        }
    }
    let none = EntityRef::inventory(&Sku::parse("SKU-NONE").expect("sku"));
    assert!(journal.records(&none, 0).await.expect("read").is_empty());
}

#[tokio::test]
async fn a_batched_read_of_a_stream_nobody_serves_fails_with_the_servers_status() {
    let nats = NatsServer::start().await;
    let js = nats.jetstream().await;
    let reads = orderflow::bus::batch_get::BatchGets::start(js.client())
        .await
        .expect("the answers' subscription");
    // No such stream: nobody answers its direct gets, and the server says so
    // (503, no responders) instead of leaving the read to time out.
    let refused = reads.next_for_subject("NO_SUCH_STREAM", "orders.*.*", 1, 16).await;
    assert!(
        matches!(
            refused,
            Err(orderflow::bus::batch_get::BatchGetError::Refused { status: 503, .. })
        ),
        "{refused:?}"
    );
}

/// A server whose harness user may not pull, a SKU journal of 40 events
/// (24 past the direct gets, so they are streamed), and a reader that
/// reads from the leader and hears of each refused pull.
struct SilentReplay {
    nats: NatsServer,
    reader: NatsJournal,
    refused: tokio::sync::mpsc::UnboundedReceiver<()>,
    entity: EntityRef,
    seqs: Vec<u64>,
}

impl SilentReplay {
    async fn start() -> Self {
        let refuse_pulls = NatsOptions {
            harness_permissions: r#"{ publish: { deny: ["$JS.API.CONSUMER.MSG.NEXT.>"] } }"#.to_owned(),
            ..Default::default()
        };
        let nats = NatsServer::start_with(refuse_pulls).await;
        let (_, journal) = journal_on(&nats).await;
        let sku = Sku::parse("SKU-HOT").expect("sku");
        let entity = EntityRef::inventory(&sku);
        let mut last = 0;
        let mut seqs = Vec::new();
        for n in 1..=40u64 {
            let restock = InventoryEvent::Restocked {
                sku: sku.clone(),
                quantity: 1,
                restock_id: format!("r{n}"),
                available: n,
            };
            last = journal
                .append(&entity, last, &restock, &Cause::default())
                .await
                .expect("stored")
                .seq;
            seqs.push(last);
        }
        let (refused_tx, refused) = tokio::sync::mpsc::unbounded_channel();
        let client = async_nats::ConnectOptions::new()
            .user_and_password(HARNESS_USER.name.to_owned(), HARNESS_USER.password.to_owned())
            .event_callback(move |event| {
                let refused_tx = refused_tx.clone();
                async move {
                    if let async_nats::Event::ServerError(e) = event {
                        if e.to_string().contains("CONSUMER.MSG.NEXT") {
                            let _ = refused_tx.send(());
                        }
                    }
                }
            })
            .connect(nats.url())
            .await
            .expect("connect the reader");
        let reader = NatsJournal::open_with(async_nats::jetstream::new(client), Reads::Leader)
            .await
            .expect("a journal reading from the leader");
        Self {
            nats,
            reader,
            refused,
            entity,
            seqs,
        }
    }
}

/// A journal read from the leader streams a long tail through an ordered
/// consumer. One whose pulls go unanswered (here the server refuses the
/// reader's pulls until its config is reloaded) is replaced from where it
/// stopped, and the read completes whole and in order.
#[tokio::test]
async fn a_replay_whose_consumer_falls_silent_is_finished_by_a_new_one() {
    let SilentReplay {
        mut nats,
        reader,
        mut refused,
        entity,
        seqs,
    } = SilentReplay::start().await;
    let read = tokio::spawn(async move { reader.records(&entity, 0).await });
    tokio::time::timeout(Duration::from_secs(10), refused.recv())
        .await
        .expect("the first consumer's pull refused within 10 s")
        .expect("the reader's events");
    // Pulls are allowed again, but the refused one is never sent again:
    // that consumer stays silent, with 24 messages pending.
    nats.reload_with(NatsOptions::default()).await;
    let records = tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .expect("the read ends")
        .expect("the read task")
        .expect("the read completes through a new consumer");
    assert_eq!(records.iter().map(|r| r.seq).collect::<Vec<_>>(), seqs);
}

/// When every replacement stays silent too, the read gives up and says
/// why, so the input is retried instead of hanging its actor.
#[tokio::test]
async fn a_replay_whose_every_consumer_stays_silent_fails_and_says_why() {
    let replay = SilentReplay::start().await;
    let read = tokio::time::timeout(Duration::from_secs(30), replay.reader.records(&replay.entity, 0))
        .await
        .expect("the read gives up within 30 s");
    match read {
        Err(JournalError::Unavailable(why)) => assert!(why.contains("mid-replay"), "{why}"),
        other => panic!("a silent replay must fail as unavailable, got {other:?}"),
    }
    assert!(
        replay.refused.len() >= 5,
        "each of the five consumers pulled and was refused"
    );
}
