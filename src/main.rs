//! The `orderflow` binary.

use clap::Parser;

// glibc's malloc was a quarter of the node's CPU under load (perf: arena
// lock waits, consolidation); the saga allocates many small, short-lived
// buffers across threads, which mimalloc's per-thread pools serve cheaply.
// Without the feature the system allocator serves, so heap profilers that
// hook malloc (heaptrack) see every allocation.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
