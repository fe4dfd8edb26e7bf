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
    /// The engine and the durable journal together, in process, on SQLite:
    /// committed commands per second, commit-to-ack latency, replay speed.
    Journal(JournalArgs),
    /// REST order entry end to end over keep-alive HTTPS against an in-process
    /// `atlas up`: orders/s, latency histograms, the ratio to a no-op endpoint.
    Api(crate::bench_api::ApiArgs),
    /// WebSocket fan-out: subscribers of level2 and matches while orders flow;
    /// publish lag percentiles, dropped subscribers, memory.
    Feed(crate::bench_feed::FeedArgs),
    /// FIX 4.4 order entry on one session against an in-process `atlas up`:
    /// pipelined throughput, and order-to-acknowledgement latency open loop.
    Fix(crate::bench_fix::FixArgs),
    /// The web application firewall alone: what inspecting one order request
    /// (peer lists, head, JSON body) costs.
    Waf {
        /// Inspections to average over.
        #[arg(long, default_value_t = 1_000_000)]
        n: u32,
    },
}

/// Options of `atlas bench journal`.
#[derive(Args, Debug)]
pub struct JournalArgs {
    /// Commands to submit (the exchange-core mix).
    #[arg(long, default_value_t = 2_000_000)]
    commands: usize,
    /// Seed for the workload generator.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Requests in flight from the producer, at most.
    #[arg(long, default_value_t = 16_384)]
    window: usize,
    /// Directory for the databases (a fresh temporary one by default).
    #[arg(long)]
    data_dir: Option<std::path::PathBuf>,
    /// Only time the replay of an earlier run's journal in --data-dir.
    #[arg(long, requires = "data_dir")]
    replay_only: bool,
    /// PostgreSQL URL of an empty database to use instead of SQLite files
    /// (each run empties the journal tables first).
    #[arg(long)]
    database_url: Option<String>,
    /// Snapshot every this many commands in the flat-out run (0: never).
    #[arg(long, default_value_t = 1_000_000)]
    snapshot_every: u64,
    /// Offered rate of the open-loop run, commands/s (default: half the flat-out rate).
    #[arg(long)]
    rate: Option<u64>,
}

/// Options of `atlas bench engine`.
#[derive(Args, Debug)]
pub struct EngineArgs {
    /// Workloads to run: exchange-core, liquibook, new-cancel, market-maker (repeatable; all by default).
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
        Bench::Journal(args) => journal(args),
        Bench::Api(args) => crate::bench_api::run(args),
        Bench::Feed(args) => crate::bench_feed::run(args),
        Bench::Fix(args) => crate::bench_fix::run(args),
        Bench::Waf { n } => {
            if cfg!(debug_assertions) {
                eprintln!("warning: this is a debug build; figures are meaningless (use --release)");
            }
            let per = atlas_services::waf::inspection_cost(n);
            println!("atlas bench waf: one order request inspected in {per:?} (average of {n})");
            Ok(())
        }
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
        println!(
            "  snapshot: {:.1} MB; encode {:.0} ms, state hash {:.0} ms, restore {:.0} ms",
            m.snapshot_bytes as f64 / 1e6,
            m.snapshot_ms,
            m.state_hash_ms,
            m.restore_ms
        );
    }
    Ok(())
}

/// What one run of the durable pipeline measured.
struct PipelineRun {
    committed: u64,
    failed: u64,
    per_sec: f64,
    latency: hdrhistogram::Histogram<u64>,
}

/// Pushes the workload through a sequencer on a fresh SQLite file in `dir`. With
/// `rate` > 0, submissions follow a fixed schedule and latency counts from each
/// planned send time (open loop); otherwise the producer sends as fast as the
/// window allows.
fn pipeline(
    w: &atlas_bench::Workload,
    dir: &std::path::Path,
    window: usize,
    rate: u64,
    snapshot_every: u64,
    database_url: Option<&str>,
) -> anyhow::Result<PipelineRun> {
    use atlas_journal::{Actor, Sequencer, SequencerConfig, SubmitError};
    let store = bench_store(dir, rate, database_url, true)?;
    let config = SequencerConfig {
        engine: atlas_bench::config_for(w),
        snapshot_every_commands: snapshot_every,
        ..SequencerConfig::default()
    };
    let s = Sequencer::start(store, config)?;
    let h = s.handle();
    for cmd in &w.setup {
        h.submit_wait(Actor::SYSTEM, None, cmd.kind.clone()).map_err(|e| anyhow::anyhow!("setup: {e}"))?;
    }
    let clock = quanta::Clock::new();
    let (tx, rx) = std::sync::mpsc::sync_channel::<(atlas_journal::Ticket, u64)>(window.max(1));
    let start = clock.raw();
    let collector = {
        let clock = clock.clone();
        std::thread::spawn(move || {
            let mut latency = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 100_000_000_000, 3)
                .unwrap_or_else(|_| unreachable!());
            let (mut ok, mut failed) = (0u64, 0u64);
            for (ticket, sent) in rx {
                match ticket.blocking_recv() {
                    Ok(Ok(_)) => ok += 1,
                    _ => failed += 1,
                }
                let now_ns = clock.delta_as_nanos(start, clock.raw());
                latency.saturating_record(now_ns.saturating_sub(sent).max(1));
            }
            (ok, failed, latency)
        })
    };
    let interval_ns = if rate > 0 { 1e9 / rate as f64 } else { 0.0 };
    for (i, cmd) in w.commands.iter().enumerate() {
        let planned_ns = (i as f64 * interval_ns) as u64;
        // Sleep (not spin) until the command is due: the producer shares two cores
        // with the engine, the writer and the database. Sleeping oversleeps by some
        // tens of microseconds, so commands then leave in small bursts, which the
        // latency (counted from the planned time) includes.
        if rate > 0 {
            let now = clock.delta_as_nanos(start, clock.raw());
            if now < planned_ns {
                std::thread::sleep(std::time::Duration::from_nanos(planned_ns - now));
            }
        }
        // Latency counts from the planned send time (in ns since the start), so a
        // stall is charged to every command that should have gone out during it.
        let sent = if rate > 0 { planned_ns } else { clock.delta_as_nanos(start, clock.raw()) };
        loop {
            match h.submit(Actor::SYSTEM, None, cmd.kind.clone()) {
                Ok(ticket) => {
                    tx.send((ticket, sent)).map_err(|_| anyhow::anyhow!("collector stopped"))?;
                    break;
                }
                Err(SubmitError::Overloaded) => std::thread::sleep(std::time::Duration::from_micros(100)),
                Err(e) => anyhow::bail!("submit: {e}"),
            }
        }
    }
    drop(tx);
    let (committed, failed, latency) = collector.join().map_err(|_| anyhow::anyhow!("collector panicked"))?;
    let elapsed_ns = clock.delta_as_nanos(start, clock.raw()).max(1);
    s.shutdown();
    Ok(PipelineRun { committed, failed, per_sec: committed as f64 * 1e9 / elapsed_ns as f64, latency })
}

fn journal(args: JournalArgs) -> anyhow::Result<()> {
    if cfg!(debug_assertions) {
        eprintln!("warning: this is a debug build; figures are meaningless (use --release)");
    }
    let tmp;
    let dir = match &args.data_dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let w = Kind::ExchangeCore.generate(args.seed, args.commands);
    let backend = match &args.database_url {
        // Only the scheme: the URL may carry a password.
        Some(_) => "PostgreSQL (--database-url)".to_owned(),
        None => format!("SQLite (WAL, synchronous=FULL) in {}", dir.display()),
    };
    println!("atlas bench journal: exchange-core mix, {} commands, {backend}", w.commands.len());
    if args.replay_only {
        return replay(&dir, &w, args.database_url.as_deref());
    }
    let url = args.database_url.as_deref();
    let max = pipeline(&w, &dir, args.window, 0, args.snapshot_every, url)?;
    println!(
        "  durable throughput: {:.0} commands/s committed ({} committed, {} failed, window {})",
        max.per_sec, max.committed, max.failed, args.window
    );
    println!("{}", row("submit-to-ack, flat out", percentiles(&max.latency)));
    let half = args.rate.unwrap_or((max.per_sec / 2.0).max(1.0) as u64);
    let open = pipeline(&w, &dir, args.window, half, 0, url)?;
    println!("{}", row(&format!("open loop {:.0}k/s", open.per_sec / 1e3), percentiles(&open.latency)));
    // The open-loop run reused the database (PostgreSQL); replay a flat-out one.
    if url.is_some() {
        let again = pipeline(&w, &dir, args.window, 0, args.snapshot_every, url)?;
        println!("  (flat-out run repeated for the replay: {:.0} commands/s)", again.per_sec);
    }
    replay(&dir, &w, url)
}

/// Times a restart on the flat-out run's journal (open, latest snapshot, replay
/// of the tail) and a full verification from genesis.
fn replay(dir: &std::path::Path, w: &atlas_bench::Workload, url: Option<&str>) -> anyhow::Result<()> {
    let config = atlas_bench::config_for(w);
    let t0 = std::time::Instant::now();
    let mut store = bench_store(dir, 0, url, false)?;
    let rec = atlas_journal::recover(&mut store, config)?;
    let restart = t0.elapsed().as_secs_f64();
    println!(
        "  restart: ready at seq {} in {:.2} s (open, snapshot at {}, {} entries of tail replayed)",
        rec.engine.last_seq(),
        restart,
        rec.snapshot_seq.map_or_else(|| "none".to_owned(), |s| s.0.to_string()),
        rec.replayed
    );
    let t0 = std::time::Instant::now();
    let report = atlas_journal::verify(&mut store, config)?;
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "  replay from genesis (verify): {} entries in {:.2} s = {:.2} M entries/s, {} snapshot hashes checked",
        report.entries,
        secs,
        report.entries as f64 / secs / 1e6,
        report.snapshots_checked
    );
    Ok(())
}

/// The storage for one benchmark run: a SQLite file per run in `dir`, or the
/// PostgreSQL database at `url` (emptied first when `fresh`).
fn bench_store(
    dir: &std::path::Path,
    rate: u64,
    url: Option<&str>,
    fresh: bool,
) -> anyhow::Result<Box<dyn atlas_journal::Storage>> {
    match url {
        Some(url) => {
            if fresh {
                // Empty the journal tables through a throwaway connection.
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                rt.block_on(async {
                    let pool = sqlx::PgPool::connect(url).await?;
                    sqlx::query("DROP SCHEMA public CASCADE").execute(&pool).await?;
                    sqlx::query("CREATE SCHEMA public").execute(&pool).await?;
                    pool.close().await;
                    Ok::<_, sqlx::Error>(())
                })
                .map_err(|e| anyhow::anyhow!("emptying the benchmark database: {e}"))?;
            }
            Ok(Box::new(atlas_store::PgStore::connect(url)?))
        }
        None => {
            let path = dir.join(format!("bench-{rate}.db"));
            if fresh {
                let _ = std::fs::remove_file(&path);
            }
            Ok(Box::new(atlas_store::SqliteStore::open(&path)?))
        }
    }
}
