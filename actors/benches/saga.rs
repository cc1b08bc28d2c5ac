//! The hot pure paths: an order saga decided and folded from placement to
//! completion, and an event's MessagePack round trip. Run with
//! `cargo bench -p actors`; criterion prints medians and confidence intervals.

use actors::order::{OrderCommand, OrderSaga, PaymentReply, StockReply};
use actors::Aggregate;
use criterion::{criterion_group, criterion_main, Criterion};
use schemas::order::{Line, OrderEvent};
use schemas::{wire, Currency, CustomerId, OrderId, Quantity, Sku};
use std::hint::black_box;

fn lines(skus: usize) -> Vec<Line> {
    (0..skus)
        .map(|i| Line {
            sku: Sku::parse(&format!("SKU-{i}")).expect("a valid SKU"),
            quantity: Quantity::new(2).expect("a valid quantity"),
            unit_price: 1250,
        })
        .collect()
}

fn alice() -> CustomerId {
    CustomerId::parse("alice").expect("a valid customer")
}

fn place(skus: usize) -> OrderCommand {
    OrderCommand::Place {
        order_id: OrderId::random(),
        customer_id: alice(),
        lines: lines(skus),
        currency: Currency::default(),
        payment_method: "tok_visa".into(),
    }
}

/// Decides and folds every step of a successful saga of `skus` lines.
fn whole_saga(skus: usize) -> usize {
    let mut state = None;
    let mut events = 0;
    let mut step = |state: &mut <OrderSaga as Aggregate>::State, command: &OrderCommand| {
        for event in OrderSaga::decide(state, command).expect("a legal step") {
            *state = OrderSaga::evolve(state.take(), &event);
            events += 1;
        }
    };
    step(&mut state, &place(skus));
    step(&mut state, &OrderCommand::Advance);
    step(
        &mut state,
        &OrderCommand::RecordPayment(PaymentReply::Authorized {
            payment_id: "pay_1".into(),
        }),
    );
    for i in 0..skus {
        let reply = StockReply::Reserved {
            quantity: Quantity::new(2).expect("a valid quantity"),
        };
        let sku = Sku::parse(&format!("SKU-{i}")).expect("a valid SKU");
        step(&mut state, &OrderCommand::RecordStock { sku, reply });
    }
    events
}

fn saga(c: &mut Criterion) {
    let mut group = c.benchmark_group("order saga, decide + evolve");
    for skus in [1, 5] {
        group.bench_function(format!("{skus} SKU(s), placed to completed"), |b| {
            b.iter(|| whole_saga(black_box(skus)))
        });
    }
    group.finish();
}

fn wire_format(c: &mut Criterion) {
    let placed = OrderEvent::Placed {
        order_id: OrderId::random(),
        customer_id: alice(),
        lines: lines(3),
        currency: Currency::default(),
        payment_method: "tok_visa".into(),
    };
    let body = wire::encode(&placed).expect("encodes");
    let mut group = c.benchmark_group("wire, order placed with 3 lines");
    group.bench_function("encode", |b| b.iter(|| wire::encode(black_box(&placed))));
    group.bench_function("decode", |b| {
        b.iter(|| wire::decode::<OrderEvent>(wire::CURRENT_SCHEMA_VERSION, black_box(&body)))
    });
    group.finish();
}

criterion_group!(benches, saga, wire_format);
criterion_main!(benches);
