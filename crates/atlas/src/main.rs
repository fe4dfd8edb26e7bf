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

fn main() -> anyhow::Result<std::process::ExitCode> {
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
