//! The `orderflow` binary.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match orderflow::cli::run(orderflow::cli::Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("orderflow: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
