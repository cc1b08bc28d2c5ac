//! libFuzzer target: one arbitrary bus message through every decode path.
#![no_main]

#[path = "../src/bus_message.rs"]
mod bus_message;

libfuzzer_sys::fuzz_target!(|data: &[u8]| bus_message::check(data));
