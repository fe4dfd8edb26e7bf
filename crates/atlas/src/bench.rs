//! `atlas bench`: performance figures, printed (never asserted).

use anyhow::{Context, bail};
use atlas_bench::{
    Kind, clock_cost_ns, jitter_open, latency_closed, latency_open, memory_per_order, percentiles, throughput,
};
use clap::{Args, Subcommand};

/// What to benchmark.
#[derive(Subcommand, Debug)]
pub enum Bench {
    /// The matching engine alone, single thread: throughput, latency, memory.
    Engine(EngineArgs),
}

/// Options of `atlas bench engine`.
#[derive(Args, Debug)]
pub struct EngineArgs {
    /// Workloads to run: exchange-core, liquibook, new-cancel (repeatable; all by default).
    #[arg(long = "workload", value_name = "NAME")]
    workloads: Vec<String>,
    /// Measured commands per workload.
    #[arg(long, default_value_t = 3_000_000)]
    commands: usize,
    /// Seed for the workload generators.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Throughput passes per workload (the median is reported).
    #[arg(long, default_value_t = 5)]
    passes: usize,
    /// Commands per second for the open-loop latency run.
    #[arg(long, default_value_t = 1_000_000)]
    rate: u64,
    /// Only measure throughput (skip the latency runs).
    #[arg(long)]
    throughput_only: bool,
    /// Resting orders for the memory measurement (0 skips it).
    #[arg(long, default_value_t = 1_000_000)]
    memory_orders: usize,
}

/// Runs a benchmark.
pub fn run(b: Bench) -> anyhow::Result<()> {
    match b {
        Bench::Engine(args) => engine(args),
    }
}

fn fmt_ns(ns: u64) -> String {
    if ns < 10_000 {
        format!("{ns} ns")
    } else if ns < 10_000_000 {
        format!("{:.1} µs", ns as f64 / 1e3)
    } else {
        format!("{:.1} ms", ns as f64 / 1e6)
    }
}

fn row(label: &str, p: [u64; 5]) -> String {
    format!(
        "  {label:<24} p50 {:>8}  p99 {:>8}  p99.9 {:>8}  p99.99 {:>8}  max {:>8}",
        fmt_ns(p[0]),
        fmt_ns(p[1]),
        fmt_ns(p[2]),
        fmt_ns(p[3]),
        fmt_ns(p[4])
    )
}

fn engine(args: EngineArgs) -> anyhow::Result<()> {
    if cfg!(debug_assertions) {
        eprintln!("warning: this is a debug build; figures are meaningless (use --release)");
    }
    if args.commands == 0 || args.passes == 0 {
        bail!("--commands and --passes must be positive");
    }
    let kinds = if args.workloads.is_empty() {
        Kind::ALL.to_vec()
    } else {
        args.workloads
            .iter()
            .map(|n| Kind::from_name(n).with_context(|| format!("unknown workload {n:?}")))
            .collect::<anyhow::Result<Vec<_>>>()?
    };
    println!(
        "atlas bench engine: seed {}, {} measured commands per workload, single thread",
        args.seed, args.commands
    );
    println!("clock read cost (included in every latency below): {}", fmt_ns(clock_cost_ns()));
    if !args.throughput_only {
        let floor = jitter_open(args.commands, args.rate);
        println!("machine floor: the open loop around an empty command, same rate and count:");
        println!(
            "{}",
            row(&format!("empty {:.2} M/s", floor.achieved_per_sec / 1e6), percentiles(&floor.latency))
        );
    }
    for kind in kinds {
        let w = kind.generate(args.seed, args.commands);
        let s = &w.stats;
        let n = w.commands.len();
        let pct = |x: usize| 100.0 * x as f64 / n as f64;
        println!();
        println!("== {}", w.name);
        println!(
            "  book: {} orders / {} levels at start, {} / {} at end; {:.1}% of commands trade ({} trades)",
            s.resting_start,
            s.levels_start,
            s.resting_end,
            s.levels_end,
            pct(s.trading_commands),
            s.trades
        );
        println!(
            "  mix: new GTC {:.1}%, new IOC {:.1}%, cancel {:.1}%, move {:.1}%",
            pct(s.mix[0]),
            pct(s.mix[1]),
            pct(s.mix[2]),
            pct(s.mix[3])
        );
        let mut rates: Vec<f64> = (0..args.passes).map(|_| throughput(&w)).collect();
        rates.sort_by(f64::total_cmp);
        println!(
            "  throughput: median {:.2} M commands/s (min {:.2}, max {:.2}, {} passes)",
            rates[rates.len() / 2] / 1e6,
            rates[0] / 1e6,
            rates[rates.len() - 1] / 1e6,
            rates.len()
        );
        if args.throughput_only {
            continue;
        }
        println!("{}", row("closed loop", percentiles(&latency_closed(&w))));
        let open = latency_open(&w, args.rate);
        println!(
            "{}",
            row(&format!("open loop {:.2} M/s", open.achieved_per_sec / 1e6), percentiles(&open.latency))
        );
    }
    if args.memory_orders > 0 {
        let m = memory_per_order(args.seed, args.memory_orders);
        println!();
        println!("== memory, {} resting orders", m.orders);
        println!("  engine structures: {:.1} bytes per resting order", m.engine_bytes_per_order);
        if let Some(rss) = m.rss_bytes_per_order {
            println!("  resident set growth: {rss:.1} bytes per resting order");
        }
    }
    Ok(())
}
