//! The fuzz target's checks (`fuzz/src/bus_message.rs`) in the normal test
//! suite: every input kept in `fuzz/regressions/` (crashes the fuzzer found,
//! fixed since, and hand-made seeds for each decode path), and arbitrary
//! bytes under proptest on the stable toolchain.

#[path = "../../fuzz/src/bus_message.rs"]
mod bus_message;

use std::path::Path;

use proptest::prelude::*;

#[test]
fn every_kept_fuzz_input_decodes_without_a_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions");
    let mut replayed = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
        let path = entry.expect("a directory entry").path();
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        bus_message::check(&data);
        replayed += 1;
    }
    assert!(replayed > 0, "no inputs in {}", dir.display());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_messages_decode_without_a_panic(
        subject in "[a-z_]{0,12}(\\.[a-z0-9-]{0,40}){0,3}",
        version in "[0-9 ]{0,3}",
        body in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let mut data = subject.into_bytes();
        data.push(0);
        data.extend_from_slice(version.as_bytes());
        data.push(0);
        data.extend_from_slice(&body);
        bus_message::check(&data);
    }
}

/// The seeds reach past the envelope: without a decodable body the fuzzer
/// would start from nothing but errors.
#[test]
fn the_seeds_decode_as_their_events() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions");
    let body = |name: &str| {
        let data = std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("read {name}: {e}"));
        data.splitn(3, |b| *b == 0).nth(2).unwrap_or_default().to_vec()
    };
    let placed: schemas::order::OrderEvent =
        schemas::wire::decode(2, &body("seed-order-placed")).expect("seed-order-placed is an order event");
    assert_eq!(schemas::wire::Event::event_type(&placed), "placed");
    schemas::timer::ReservationExpiry::decode(&body("seed-timer-fired")).expect("seed-timer-fired is a timer");
}
