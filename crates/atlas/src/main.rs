//! `atlas`: the one binary. Subcommands run the exchange, its tools and its
//! benchmarks.

mod bench;

use clap::{Parser, Subcommand};

/// The Atlas exchange.
#[derive(Parser, Debug)]
#[command(name = "atlas", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Measure performance and print the figures.
    #[command(subcommand)]
    Bench(bench::Bench),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Bench(b) => bench::run(b),
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
