//! The orderflow node: configuration, wiring, the JetStream bus, the HTTP
//! facade and the command line. The saga itself lives in the `actors` crate.

pub mod audit;
pub mod auth;
pub mod bench;
pub mod bus;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod dead_letters;
pub mod gateway;
pub mod http;
pub mod node;
pub mod notify;
pub mod read_model;
pub mod saga;
pub mod store;
pub mod telemetry;
