//! `atlas`: the one binary. Subcommands run the exchange, its tools and its
//! benchmarks.

mod bench;
mod bench_api;
mod bench_feed;
mod bench_fix;
mod cli;
mod journal_load;
mod pki;
mod up;
mod verify;

use clap::{Parser, Subcommand};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The Atlas exchange.
#[derive(Parser, Debug)]
#[command(name = "atlas", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    connection: cli::Connection,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run every service in one process (SQLite in the data directory by default).
    Up(Box<up::UpArgs>),
    /// Measure performance and print the figures.
    #[command(subcommand)]
    Bench(bench::Bench),
    /// Replay the whole journal from genesis; check its hash chain and every
    /// snapshot's state hash. Exits non-zero on any mismatch.
    Verify(verify::VerifyArgs),
    /// Print the OpenAPI description of the external listener's API (or, with
    /// --internal, of the internal one), as served at …/openapi.json.
    Openapi {
        /// The internal (operator) listener's.
        #[arg(long)]
        internal: bool,
    },
    /// The certificate authority: create, issue, import, inspect, list, renew;
    /// token signing keys.
    #[command(subcommand)]
    Pki(pki::Pki),
    /// Test tool: concurrent producers against the journal, printing each ack.
    #[command(hide = true)]
    JournalLoad(journal_load::JournalLoadArgs),
    #[command(flatten)]
    Client(cli::Client),
}

/// Turns transparent huge pages off for this process, before it has threads.
///
/// With huge pages, the first write to each fresh 2 MiB of the heap faults in
/// and zeroes the whole 2 MiB at once, on whichever thread made it. On the
/// 2-core VM the benchmarks run on that took 1.4 ms a time, and the engine
/// thread's state grows under load (client order ids, working orders), so it
/// stalled for milliseconds now and then, with every order behind it: FIX
/// order-to-ack p99 at 20k orders/s was 2.9–3.8 ms with them and 1.7–2.4 ms
/// without, in three alternating pairs, and the exchange's own p99.9 10–15 ms
/// against 2.7–3.9 ms. Throughput (pipelined) and the feed's publish lag did
/// not get worse, and the feed benchmark's process ended with a quarter less
/// memory.
/// Small pages fault in 4 KiB at a time: the same work, spread out. (The
/// allocator is also built not to ask for huge pages, for kernels where this
/// call is refused.)
fn no_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    if let Err(e) = nix::sys::prctl::set_thp_disable(true) {
        eprintln!("atlas: warning: transparent huge pages stay on ({e}); expect latency outliers");
    }
}

fn main() -> anyhow::Result<std::process::ExitCode> {
    no_transparent_huge_pages();
    let cli = Cli::parse();
    match cli.command {
        Command::Up(a) => up::run(*a).map(|()| std::process::ExitCode::SUCCESS),
        Command::Bench(b) => bench::run(b).map(|()| std::process::ExitCode::SUCCESS),
        Command::Verify(v) => verify::run(v),
        Command::Openapi { internal } => {
            println!("{}", atlas_services::openapi_json(internal));
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Pki(p) => pki::run(p).map(|()| std::process::ExitCode::SUCCESS),
        Command::JournalLoad(a) => journal_load::run(a).map(|()| std::process::ExitCode::SUCCESS),
        Command::Client(c) => cli::run(cli.connection, c).map(|()| std::process::ExitCode::SUCCESS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
