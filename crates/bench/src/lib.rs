//! Benchmarks for Atlas: deterministic workloads and the harnesses that measure
//! them (throughput, closed- and open-loop latency, memory per resting order).
//!
//! Shared by the criterion benches and `atlas bench`, so both measure the same
//! streams. Numbers are printed, never asserted: timing assertions make CI flaky.

pub mod rng;
pub mod workload;

use std::hint::black_box;
use std::time::{Duration, Instant};

use atlas_engine::{Engine, EngineConfig};
use hdrhistogram::Histogram;
use quanta::Clock;

pub use workload::{Kind, Workload, WorkloadStats, bench_config, resting_book};

/// An engine with the workload's setup applied, ready for the measured commands.
pub fn prepared(w: &Workload, config: EngineConfig) -> Engine {
    let mut engine = Engine::new(config);
    let mut out = Vec::with_capacity(64);
    for cmd in &w.setup {
        out.clear();
        engine.apply(cmd, &mut out);
    }
    engine
}

/// The engine sizing for a workload: room for every order it could ever rest.
pub fn config_for(w: &Workload) -> EngineConfig {
    bench_config((w.stats.resting_end.max(w.stats.resting_start) + 1_024) as u32)
}

/// Applies every measured command to `engine` and returns the wall time.
pub fn run(engine: &mut Engine, w: &Workload) -> Duration {
    let mut out = Vec::with_capacity(256);
    let start = Instant::now();
    for cmd in &w.commands {
        out.clear();
        engine.apply(cmd, &mut out);
    }
    let elapsed = start.elapsed();
    black_box(&out);
    elapsed
}

/// Commands per second over one full pass on a fresh engine.
pub fn throughput(w: &Workload) -> f64 {
    let mut engine = prepared(w, config_for(w));
    let elapsed = run(&mut engine, w);
    w.commands.len() as f64 / elapsed.as_secs_f64()
}

fn histogram() -> Histogram<u64> {
    // 1 ns .. 100 s at 3 significant digits; the bounds are constants, so this
    // cannot fail.
    Histogram::new_with_bounds(1, 100_000_000_000, 3).unwrap_or_else(|_| unreachable!())
}

/// Per-command service time (closed loop: each command starts when the previous
/// one ends), timed with the CPU's time-stamp counter. Includes the cost of reading
/// it twice (see [`clock_cost_ns`]).
pub fn latency_closed(w: &Workload) -> Histogram<u64> {
    let mut engine = prepared(w, config_for(w));
    let mut out = Vec::with_capacity(256);
    let mut h = histogram();
    let clock = Clock::new();
    for cmd in &w.commands {
        out.clear();
        let t0 = clock.raw();
        engine.apply(cmd, &mut out);
        let ns = clock.delta_as_nanos(t0, clock.raw());
        h.saturating_record(ns.max(1));
    }
    h
}

/// What an open-loop run measured.
pub struct OpenLoop {
    /// Latency of each command from its *planned* send time to its completion, so
    /// a stall delays (and is charged to) every command planned during it.
    pub latency: Histogram<u64>,
    /// Commands per second actually achieved.
    pub achieved_per_sec: f64,
}

/// Runs `step(i)` for `n` steps at a fixed rate whatever each step costs (open
/// loop), and records each step's completion time against its planned start:
/// coordinated omission cannot hide a stall.
fn open_loop(n: usize, rate_per_sec: u64, mut step: impl FnMut(usize)) -> OpenLoop {
    let mut h = histogram();
    let clock = Clock::new();
    let interval_ns = 1_000_000_000f64 / rate_per_sec.max(1) as f64;
    let start = clock.raw();
    for i in 0..n {
        let planned_ns = (i as f64 * interval_ns) as u64;
        while clock.delta_as_nanos(start, clock.raw()) < planned_ns {
            std::hint::spin_loop();
        }
        step(i);
        let done_ns = clock.delta_as_nanos(start, clock.raw());
        h.saturating_record(done_ns.saturating_sub(planned_ns).max(1));
    }
    let elapsed_ns = clock.delta_as_nanos(start, clock.raw()).max(1);
    OpenLoop { latency: h, achieved_per_sec: n as f64 * 1e9 / elapsed_ns as f64 }
}

/// Sends commands at a fixed rate whatever the engine does (open loop) and
/// measures each from its planned send time.
pub fn latency_open(w: &Workload, rate_per_sec: u64) -> OpenLoop {
    let mut engine = prepared(w, config_for(w));
    let mut out = Vec::with_capacity(256);
    open_loop(w.commands.len(), rate_per_sec, |i| {
        out.clear();
        engine.apply(&w.commands[i], &mut out);
    })
}

/// The same open loop as [`latency_open`] around an empty command: what the
/// machine alone adds (timer interrupts, the hypervisor taking the core). Engine
/// figures cannot be better than this floor.
pub fn jitter_open(commands: usize, rate_per_sec: u64) -> OpenLoop {
    open_loop(commands, rate_per_sec, |i| {
        black_box(i);
    })
}

/// The median cost of reading the time-stamp counter twice, in ns: the floor
/// under every latency figure above.
pub fn clock_cost_ns() -> u64 {
    let mut h = histogram();
    let clock = Clock::new();
    for _ in 0..100_000 {
        let t0 = clock.raw();
        let ns = clock.delta_as_nanos(black_box(t0), clock.raw());
        h.saturating_record(ns.max(1));
    }
    h.value_at_quantile(0.5)
}

/// The percentiles the reports print: p50, p99, p99.9, p99.99 and max, in ns.
pub fn percentiles(h: &Histogram<u64>) -> [u64; 5] {
    [
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.value_at_quantile(0.9999),
        h.max(),
    ]
}

/// Memory the engine spends per resting order.
pub struct Memory {
    /// Resting orders measured.
    pub orders: usize,
    /// Heap bytes of the engine's structures (slabs, ladders, index), per order.
    pub engine_bytes_per_order: f64,
    /// Growth of the process's resident memory while the book was built, per
    /// order: an outside check on the figure above.
    pub rss_bytes_per_order: Option<f64>,
    /// Size of the engine snapshot of that book.
    pub snapshot_bytes: usize,
    /// Time to encode the snapshot, in ms.
    pub snapshot_ms: f64,
    /// Time to compute the state hash (encode + SHA-256), in ms.
    pub state_hash_ms: f64,
    /// Time to restore the snapshot (decode, rebuild, check, re-encode), in ms.
    pub restore_ms: f64,
}

fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4_096)
}

/// Builds a book of `n` resting orders (sized for exactly that many, as a
/// production engine would be configured) and reports the memory per order.
pub fn memory_per_order(seed: u64, n: usize) -> Memory {
    let cmds = resting_book(seed, n);
    let mut out = Vec::with_capacity(16);
    let before = rss_bytes();
    let mut engine = Engine::new(EngineConfig { orders_max: n as u32, orders_reserved: n as u32 });
    for cmd in &cmds {
        out.clear();
        engine.apply(cmd, &mut out);
    }
    let after = rss_bytes();
    let orders = engine.open_orders();
    let per = |b: f64| b / orders.max(1) as f64;
    let ms = |t: Instant| t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let snapshot = engine.snapshot();
    let snapshot_ms = ms(t);
    let t = Instant::now();
    black_box(engine.state_hash());
    let state_hash_ms = ms(t);
    let t = Instant::now();
    let restored = Engine::restore(&snapshot, engine.config());
    let restore_ms = ms(t);
    black_box(restored.is_ok());
    Memory {
        orders,
        engine_bytes_per_order: per(engine.heap_bytes() as f64),
        rss_bytes_per_order: before.zip(after).map(|(b, a)| per(a.saturating_sub(b) as f64)),
        snapshot_bytes: snapshot.len(),
        snapshot_ms,
        state_hash_ms,
        restore_ms,
    }
}
