use std::collections::BTreeSet;
use std::time::Duration;

use proptest::prelude::*;
use schemas::wire::Event;

use super::*;

fn skus() -> Vec<Sku> {
    ["A", "B", "C"].iter().map(|s| Sku::parse(s).unwrap()).collect()
}

fn place(order_id: OrderId, n_lines: usize) -> OrderCommand {
    OrderCommand::Place {
        order_id,
        customer_id: CustomerId::parse("alice").unwrap(),
        lines: skus()
            .into_iter()
            .take(n_lines)
            .map(|sku| Line {
                sku,
                quantity: Quantity::new(2).unwrap(),
                unit_price: 150,
            })
            .collect(),
        currency: Currency::default(),
        payment_method: "tok_visa".into(),
    }
}

fn any_command(order_id: OrderId) -> impl Strategy<Value = OrderCommand> {
    let sku = proptest::sample::select(skus());
    let q = Quantity::new(2).unwrap();
    prop_oneof![
        (1usize..=3).prop_map(move |n| place(order_id, n)),
        Just(OrderCommand::Advance),
        Just(OrderCommand::Cancel {
            reason: "changed my mind".into()
        }),
        Just(OrderCommand::RecordPayment(PaymentReply::Authorized {
            payment_id: "pay_1".into()
        })),
        Just(OrderCommand::RecordPayment(PaymentReply::Declined {
            reason: "card declined".into()
        })),
        Just(OrderCommand::RecordPayment(PaymentReply::Unavailable {
            reason: "provider down".into()
        })),
        Just(OrderCommand::RecordPaymentWaiting {
            reason: "circuit open".into()
        }),
        (sku.clone(), any::<bool>()).prop_map(move |(sku, ok)| OrderCommand::RecordStock {
            sku,
            reply: if ok {
                StockReply::Reserved { quantity: q }
            } else {
                StockReply::Rejected {
                    quantity: q,
                    available: 1,
                }
            },
        }),
        Just(OrderCommand::RecordRefund {
            refund_id: "ref_1".into()
        }),
        sku.clone().prop_map(|sku| OrderCommand::RecordRelease { sku }),
        sku.prop_map(|sku| OrderCommand::ExpireReservation { sku, ttl: TTL }),
        (1u64..4).prop_map(|stream_seq| OrderCommand::RecordDeadLetter {
            reason: "gave up".into(),
            stream: "ORDERS".into(),
            stream_seq,
            consumer: "payments".into(),
        }),
    ]
}

/// The reservation time-to-live the property tests' timers carry.
const TTL: Duration = Duration::from_secs(15 * 60);

fn status(state: &OrderState) -> Option<OrderStatus> {
    state.as_ref().map(Order::status)
}

fn allowed(from: Option<OrderStatus>, to: Option<OrderStatus>) -> bool {
    use OrderStatus::*;
    match (from, to) {
        // A dead letter pauses any unfinished saga; the next step resumes it.
        (Some(a), Some(AttentionRequired)) if !a.is_terminal() => true,
        (Some(AttentionRequired), Some(_)) => true,
        (None, None | Some(Pending)) => true,
        (Some(a), Some(b)) if a == b => true,
        (Some(Pending), Some(PaymentAuthorized | Compensating | Failed | Cancelled)) => true,
        // The last reservation completes the order in the same event.
        (Some(PaymentAuthorized), Some(StockReserved | Completed | Compensating)) => true,
        (Some(StockReserved), Some(Completed | Compensating)) => true,
        (Some(Compensating), Some(Failed | Cancelled)) => true,
        _ => false,
    }
}

/// Applies commands the way the actor shell does, checking every event.
fn run(commands: &[OrderCommand]) -> Result<(OrderState, Vec<OrderEvent>), TestCaseError> {
    let mut state: OrderState = None;
    let mut journal: Vec<OrderEvent> = Vec::new();
    for c in commands {
        let Ok(events) = OrderSaga::decide(&state, c) else {
            continue;
        };
        if let (Some(order), OrderCommand::ExpireReservation { sku, .. }) = (&state, c) {
            // A timer only moves an order that holds the timed reservation
            // while it still waits for other SKUs; any other order ignores it.
            let waiting = order.ended.is_none()
                && order.compensation.is_none()
                && order.stock.get(sku) == Some(&StockStep::Reserved)
                && order.stock.values().any(|s| *s == StockStep::Requested);
            if waiting {
                prop_assert!(matches!(&events[..], [OrderEvent::Compensating { .. }]), "{:?}", events);
            } else {
                // Nothing recorded: at most the step the saga owed anyway.
                prop_assert_eq!(&events, &next_steps(order), "{:?} on {:?}", c, order);
            }
        }
        for e in events {
            prop_assert!(
                journal.iter().all(|j| j.outcome().is_none()),
                "event {:?} after the end",
                e
            );
            let next = OrderSaga::evolve(state.clone(), &e);
            prop_assert!(
                allowed(status(&state), status(&next)),
                "{:?} -> {:?} by {:?}",
                status(&state),
                status(&next),
                e
            );
            if let (
                Some(order),
                OrderEvent::Compensating {
                    refund,
                    release,
                    withdraw,
                    ..
                },
            ) = (&state, &e)
            {
                for sku in withdraw {
                    prop_assert_eq!(order.stock.get(sku), Some(&StockStep::Requested));
                }
                // Refund exactly what was captured: the payment is authorized,
                // or this very command brings the authorization.
                let captured = order.payment == PaymentStep::Authorized
                    || matches!(c, OrderCommand::RecordPayment(PaymentReply::Authorized { .. }));
                prop_assert_eq!(refund.is_some(), captured);
                for sku in release {
                    prop_assert_eq!(order.stock.get(sku), Some(&StockStep::Reserved));
                }
            }
            if let OrderEvent::PaymentWaiting { .. } = &e {
                // Only a charge still in flight waits, and it is told once.
                prop_assert_eq!(state.as_ref().map(|o| &o.payment), Some(&PaymentStep::Requested));
                let told_before = journal.iter().any(|j| matches!(j, OrderEvent::PaymentWaiting { .. }));
                prop_assert!(!told_before, "waiting told twice");
            }
            if next.as_ref().is_some_and(|o| o.waiting.is_some()) {
                prop_assert_eq!(next.as_ref().map(|o| &o.payment), Some(&PaymentStep::Requested));
            }
            if let (Some(order), OrderEvent::Completed { reserved, customer_id }) = (&state, &e) {
                prop_assert_eq!(&order.payment, &PaymentStep::Authorized);
                // Every line reserved, the last one perhaps by this very event.
                let by_this = |sku: &Sku| reserved.as_ref().is_some_and(|r| &r.sku == sku);
                for l in &order.lines {
                    let step = order.stock.get(&l.sku);
                    if by_this(&l.sku) {
                        prop_assert_eq!(step, Some(&StockStep::Requested));
                    } else {
                        prop_assert_eq!(step, Some(&StockStep::Reserved));
                    }
                }
                prop_assert!(order.cancel_requested.is_none());
                if let Some(Reservation { sku, quantity }) = reserved {
                    // The same order as the two events it stands for.
                    let apart = [
                        OrderEvent::StockReserved {
                            sku: sku.clone(),
                            quantity: *quantity,
                        },
                        OrderEvent::Completed {
                            customer_id: customer_id.clone(),
                            reserved: None,
                        },
                    ];
                    prop_assert_eq!(&apart.iter().fold(state.clone(), OrderSaga::evolve), &next);
                }
            }
            if let (Some(order), OrderEvent::Cancelled { .. } | OrderEvent::Failed { .. }) = (&state, &e) {
                // Nothing charged stays charged, nothing reserved stays reserved.
                if let Some(c) = &order.compensation {
                    prop_assert!(!c.refund_pending && c.release_pending.is_empty());
                } else {
                    prop_assert!(order.payment != PaymentStep::Authorized);
                }
            }
            state = next;
            journal.push(e);
        }
    }
    Ok((state, journal))
}

proptest! {
    #[test]
    fn random_commands_keep_every_invariant(commands in proptest::collection::vec(any_command(OrderId::random()), 0..40)) {
        let (state, journal) = run(&commands)?;
        // Message ids are the dedup keys: two events sharing one would make
        // the server drop the second as a duplicate.
        let keys: BTreeSet<String> = journal.iter().map(Event::dedup_key).collect();
        prop_assert_eq!(keys.len(), journal.len(), "{:?}", journal);
        prop_assert!(journal.iter().filter(|e| e.outcome().is_some()).count() <= 1);
        prop_assert_eq!(OrderSaga::replay(&journal), state);
    }

    /// Chaos republishes stored events: a copy of any event, landing
    /// anywhere after its original, changes nothing.
    #[test]
    fn republished_copies_change_nothing(
        commands in proptest::collection::vec(any_command(OrderId::random()), 0..40),
        copies in proptest::collection::vec((any::<proptest::sample::Index>(), any::<proptest::sample::Index>()), 0..6),
    ) {
        let (state, journal) = run(&commands)?;
        prop_assume!(!journal.is_empty());
        let mut with_copies = journal.clone();
        for (from, to) in copies {
            let from = from.index(journal.len());
            let original = with_copies.iter().position(|e| *e == journal[from]).unwrap_or(0);
            let to = original + 1 + to.index(with_copies.len() - original);
            with_copies.insert(to, journal[from].clone());
        }
        prop_assert_eq!(OrderSaga::replay(&with_copies), state);
    }

    /// A faithful world answers every request, sometimes twice, in any order,
    /// and maybe a customer cancels: the saga always ends, compensated.
    #[test]
    fn a_faithful_world_always_ends_the_saga(
        n_lines in 1usize..=3,
        approve in any::<bool>(),
        in_stock in proptest::collection::vec(any::<bool>(), 3),
        cancel_at in proptest::option::of(0usize..12),
        picks in proptest::collection::vec(any::<proptest::sample::Index>(), 64),
    ) {
        let id = OrderId::random();
        let mut commands = vec![place(id, n_lines), OrderCommand::Advance];
        let (_, mut journal) = run(&commands)?;
        let mut inbox: Vec<OrderCommand> = Vec::new();
        let mut answered = 0;
        for (step, pick) in picks.iter().enumerate() {
            // Replies to everything the journal asked for so far.
            for e in &journal[answered..] {
                match e {
                    OrderEvent::PaymentRequested { .. } => inbox.push(OrderCommand::RecordPayment(if approve {
                        PaymentReply::Authorized { payment_id: "pay".into() }
                    } else {
                        PaymentReply::Declined { reason: "no".into() }
                    })),
                    OrderEvent::StockRequested { lines, .. } => {
                        for (i, l) in lines.iter().enumerate() {
                            let reply = if in_stock[i] {
                                StockReply::Reserved { quantity: l.quantity }
                            } else {
                                StockReply::Rejected { quantity: l.quantity, available: 0 }
                            };
                            inbox.push(OrderCommand::RecordStock { sku: l.sku.clone(), reply });
                        }
                    }
                    OrderEvent::Compensating { refund, release, .. } => {
                        if refund.is_some() {
                            inbox.push(OrderCommand::RecordRefund { refund_id: "r".into() });
                        }
                        inbox.extend(release.iter().map(|sku| OrderCommand::RecordRelease { sku: sku.clone() }));
                    }
                    _ => {}
                }
            }
            answered = journal.len();
            if cancel_at == Some(step) {
                inbox.push(OrderCommand::Cancel { reason: "customer".into() });
            }
            if inbox.is_empty() {
                break;
            }
            let i = pick.index(inbox.len());
            // Deliver, and half the time keep a copy: a duplicate delivery.
            let c = if step % 2 == 0 { inbox[i].clone() } else { inbox.swap_remove(i) };
            commands.push(c);
            (_, journal) = run(&commands)?;
        }
        // Drain what is left, in order, each twice.
        let rest: Vec<OrderCommand> = inbox.drain(..).flat_map(|c| [c.clone(), c]).collect();
        commands.extend(rest);
        let (mut state2, _) = run(&commands)?;
        // Late replies to compensation requested by the drain.
        for _ in 0..3 {
            let Some(order) = &state2 else { break };
            let Some(c) = &order.compensation else { break };
            if c.refund_pending {
                commands.push(OrderCommand::RecordRefund { refund_id: "r".into() });
            }
            commands.extend(c.release_pending.iter().map(|sku| OrderCommand::RecordRelease { sku: sku.clone() }));
            (state2, _) = run(&commands)?;
        }
        let order = state2.expect("placed");
        prop_assert!(order.status().is_terminal(), "stuck in {:?}: {:?}", order.status(), order);
        let expected = match (approve, in_stock[..n_lines].iter().all(|s| *s)) {
            _ if order.cancel_requested.is_some() => order.status() == OrderStatus::Cancelled,
            (false, _) => order.status() == OrderStatus::Failed,
            (true, false) => order.status() == OrderStatus::Cancelled,
            (true, true) => order.status() == OrderStatus::Completed,
        };
        prop_assert!(expected, "{:?}", order);
    }
}

#[test]
fn placing_twice_is_refused() {
    let id = OrderId::random();
    let state = OrderSaga::replay(&OrderSaga::decide(&None, &place(id, 1)).unwrap());
    assert_eq!(
        OrderSaga::decide(&state, &place(id, 1)),
        Err(OrderRejection::AlreadyPlaced)
    );
}

#[test]
fn duplicate_skus_and_empty_orders_name_the_field() {
    let id = OrderId::random();
    let mut bad = place(id, 2);
    if let OrderCommand::Place { lines, .. } = &mut bad {
        lines[1].sku = lines[0].sku.clone();
    }
    assert!(
        matches!(OrderSaga::decide(&None, &bad), Err(OrderRejection::Invalid { field, .. }) if field == "items[1].sku")
    );
    let mut empty = place(id, 1);
    if let OrderCommand::Place { lines, .. } = &mut empty {
        lines.clear();
    }
    assert!(matches!(OrderSaga::decide(&None, &empty), Err(OrderRejection::Invalid { field, .. }) if field == "items"));
}

#[test]
fn cancelling_an_ended_order_is_refused() {
    let id = OrderId::random();
    let mut journal = OrderSaga::decide(&None, &place(id, 1)).unwrap();
    let state = OrderSaga::replay(&journal);
    journal.extend(OrderSaga::decide(&state, &OrderCommand::Advance).unwrap());
    let state = OrderSaga::replay(&journal);
    let declined = OrderCommand::RecordPayment(PaymentReply::Declined { reason: "no".into() });
    journal.extend(OrderSaga::decide(&state, &declined).unwrap());
    let state = OrderSaga::replay(&journal);
    assert_eq!(status(&state), Some(OrderStatus::Failed));
    assert_eq!(
        OrderSaga::decide(&state, &OrderCommand::Cancel { reason: "x".into() }),
        Err(OrderRejection::AlreadyEnded(Outcome::Failed))
    );
}

/// An order with `n_lines` lines, paid, whose SKUs answered as `answers`
/// says (`None`: not yet), and the journal so far.
fn paid_and_answered(answers: &[Option<bool>]) -> (OrderState, Vec<OrderEvent>) {
    let mut journal = Vec::new();
    let mut state: OrderState = None;
    let apply = |c: OrderCommand, state: &mut OrderState, journal: &mut Vec<OrderEvent>| {
        let events = OrderSaga::decide(state, &c).expect("accepted");
        *state = events.iter().fold(state.clone(), OrderSaga::evolve);
        journal.extend(events);
    };
    apply(place(OrderId::random(), answers.len()), &mut state, &mut journal);
    apply(OrderCommand::Advance, &mut state, &mut journal);
    let paid = OrderCommand::RecordPayment(PaymentReply::Authorized {
        payment_id: "pay_1".into(),
    });
    apply(paid, &mut state, &mut journal);
    let q = Quantity::new(2).unwrap();
    for (sku, answer) in skus().into_iter().zip(answers) {
        let reply = match answer {
            None => continue,
            Some(true) => StockReply::Reserved { quantity: q },
            Some(false) => StockReply::Rejected {
                quantity: q,
                available: 0,
            },
        };
        apply(OrderCommand::RecordStock { sku, reply }, &mut state, &mut journal);
    }
    (state, journal)
}

proptest! {
    /// A reservation held while another SKU never answers expires: the
    /// order refunds, releases what it holds, withdraws from the silent
    /// SKUs and ends FAILED saying why; a late reservation of a withdrawn
    /// SKU and repeated timers change nothing more.
    #[test]
    fn an_expired_reservation_fails_the_order_and_undoes_everything(
        answers in proptest::collection::vec(proptest::option::of(any::<bool>()), 2..=3),
        late_reservation in any::<bool>(),
        repeats in 1usize..3,
    ) {
        let (state, _) = paid_and_answered(&answers);
        let order = state.clone().expect("placed");
        let reserved: Vec<Sku> = skus().into_iter().zip(&answers).filter(|(_, a)| **a == Some(true)).map(|(s, _)| s).collect();
        let silent: Vec<Sku> = skus().into_iter().zip(&answers).filter(|(_, a)| a.is_none()).map(|(s, _)| s).collect();
        prop_assume!(!reserved.is_empty() && !silent.is_empty());
        let expire = OrderCommand::ExpireReservation { sku: reserved[0].clone(), ttl: TTL };
        let events = OrderSaga::decide(&state, &expire).expect("accepted");
        let reason = format!("reservation of SKU {} unconfirmed for 15m", reserved[0]);
        prop_assert_eq!(&events, &vec![OrderEvent::Compensating {
            outcome: Outcome::Failed,
            reason: reason.clone(),
            refund: Some(order.amount()),
            release: reserved.clone(),
            withdraw: silent.clone(),
        }]);
        let mut commands = vec![expire.clone()];
        if late_reservation {
            // The silent SKU answers after all, and its withdrawal gives it back.
            let q = Quantity::new(2).unwrap();
            commands.push(OrderCommand::RecordStock { sku: silent[0].clone(), reply: StockReply::Reserved { quantity: q } });
            commands.push(OrderCommand::RecordRelease { sku: silent[0].clone() });
        }
        commands.push(OrderCommand::RecordRefund { refund_id: "ref_1".into() });
        commands.extend(reserved.iter().map(|sku| OrderCommand::RecordRelease { sku: sku.clone() }));
        commands.extend(std::iter::repeat_n(expire, repeats));
        let mut state = state;
        for c in &commands {
            let events = OrderSaga::decide(&state, c);
            prop_assert!(events.is_ok(), "{:?} refused: {:?}", c, events);
            state = events.unwrap_or_default().iter().fold(state, OrderSaga::evolve);
        }
        let order = state.expect("placed");
        prop_assert_eq!(order.status(), OrderStatus::Failed);
        prop_assert_eq!(order.ended, Some((Outcome::Failed, reason)));
    }
}

/// `state` after `command` is decided and its events folded.
fn decided(state: OrderState, command: &OrderCommand) -> OrderState {
    OrderSaga::decide(&state, command)
        .expect("accepted")
        .iter()
        .fold(state, OrderSaga::evolve)
}

#[test]
fn the_last_reservation_is_journaled_by_the_completion_it_brings() {
    let (state, journal) = paid_and_answered(&[Some(true)]);
    let types: Vec<&str> = journal.iter().map(Event::event_type).collect();
    assert_eq!(types, ["placed", "payment_requested", "stock_requested", "completed"]);
    let order = state.unwrap();
    assert_eq!(order.stock.get(&skus()[0]), Some(&StockStep::Reserved));
    assert_eq!(order.status(), OrderStatus::Completed);
    // A reservation that meets a waiting cancel is journaled on its own,
    // before the compensation that releases it.
    let (state, _) = paid_and_answered(&[None]);
    let state = decided(state, &OrderCommand::Cancel { reason: "no".into() });
    let reserved = OrderCommand::RecordStock {
        sku: skus()[0].clone(),
        reply: StockReply::Reserved {
            quantity: Quantity::new(2).unwrap(),
        },
    };
    let events = OrderSaga::decide(&state, &reserved).unwrap();
    assert!(
        matches!(&events[..], [OrderEvent::StockReserved { .. }, OrderEvent::Compensating { release, .. }] if release == &skus()[..1]),
        "{events:?}"
    );
}

#[test]
fn a_completed_order_ignores_its_reservation_timer() {
    let (state, _) = paid_and_answered(&[Some(true), Some(true)]);
    assert_eq!(status(&state), Some(OrderStatus::Completed));
    let expire = OrderCommand::ExpireReservation {
        sku: skus()[0].clone(),
        ttl: TTL,
    };
    assert_eq!(OrderSaga::decide(&state, &expire), Ok(Vec::new()));
}

#[test]
fn a_cancel_waiting_for_stock_is_honoured_when_the_reservation_expires() {
    let (state, _) = paid_and_answered(&[Some(true), None]);
    let cancel = OrderCommand::Cancel {
        reason: "changed my mind".into(),
    };
    let state = decided(state, &cancel);
    let expire = OrderCommand::ExpireReservation {
        sku: skus()[0].clone(),
        ttl: TTL,
    };
    let events = OrderSaga::decide(&state, &expire).unwrap();
    assert!(matches!(
        &events[..],
        [OrderEvent::Compensating { outcome: Outcome::Cancelled, reason, .. }] if reason == "changed my mind"
    ));
}

#[test]
fn only_a_reservation_that_leaves_the_order_waiting_starts_a_timer() {
    let (_, journal) = paid_and_answered(&[Some(true), None]);
    assert_eq!(
        reservation_recorded(&journal[journal.len() - 1..]),
        Some(skus()[0].clone())
    );
    let (state, journal) = paid_and_answered(&[Some(true), Some(true)]);
    // The last reservation completed the order in the same event.
    assert!(matches!(
        journal.last(),
        Some(OrderEvent::Completed { reserved: Some(r), .. }) if r.sku == skus()[1]
    ));
    assert_eq!(reservation_recorded(&journal[journal.len() - 1..]), None);
    assert_eq!(reservation_to_time(state.as_ref().unwrap()), None);
    let (state, _) = paid_and_answered(&[Some(false), Some(true), None]);
    assert_eq!(reservation_to_time(state.as_ref().unwrap()), Some(skus()[1].clone()));
}
