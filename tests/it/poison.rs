//! Garbage on an input subject is terminated; the consumer goes on.

use async_nats::header::HeaderMap;

use crate::support::{order_body, TestApp};

#[tokio::test]
async fn garbage_does_not_stop_the_saga() {
    let app = TestApp::spawn().await;
    app.restock("SKU-1", 5).await;
    let poison_id = uuid::Uuid::new_v4();
    // Random bytes, and a body claiming a schema version from the future.
    app.js
        .publish(
            format!("orders.{poison_id}.placed"),
            vec![0xc1, 0xff, 0x00, 0x13].into(),
        )
        .await
        .expect("sent")
        .await
        .expect("stored");
    let mut future = HeaderMap::new();
    future.insert("Schema-Version", "99");
    app.js
        .publish_with_headers(format!("payments.{poison_id}.authorized"), future, vec![0x80].into())
        .await
        .expect("sent")
        .await
        .expect("stored");

    let id = app.place_ok(&order_body("alice", &[("SKU-1", 1)], "tok_visa")).await;
    assert_eq!(app.ended(&id).await["status"], "COMPLETED");
    // The poison is not retried forever: each consumer settled it.
    for (stream, consumer) in [("ORDERS", "order-saga"), ("PAYMENTS", "order-saga")] {
        let what = format!("{stream}/{consumer} to settle every message");
        crate::support::eventually_true(&what, crate::support::SAGA_DEADLINE, || async {
            let mut c: async_nats::jetstream::consumer::PullConsumer = app
                .js
                .get_consumer_from_stream(consumer, stream)
                .await
                .expect("consumer");
            c.info()
                .await
                .map(|i| i.num_ack_pending == 0 && i.num_pending == 0)
                .unwrap_or(false)
        })
        .await;
    }
}
