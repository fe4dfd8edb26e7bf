//! Criterion benchmarks of the matching engine on the three standard workloads.
//! Run: `cargo bench -p atlas-bench --bench engine`.

use std::time::Duration;

use atlas_bench::{Kind, config_for, prepared, run};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const SEED: u64 = 1;
const COMMANDS: usize = 200_000;

fn engine(c: &mut Criterion) {
    let mut group = c.benchmark_group("engine");
    group.measurement_time(Duration::from_secs(10));
    for kind in Kind::ALL {
        let w = kind.generate(SEED, COMMANDS);
        let config = config_for(&w);
        let start = prepared(&w, config);
        group.throughput(Throughput::Elements(w.commands.len() as u64));
        group.bench_function(kind.name(), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    // Every pass starts from the same book; cloning it is not timed.
                    let mut e = start.clone();
                    total += run(&mut e, &w);
                }
                total
            })
        });
    }
    group.finish();
}

criterion_group!(benches, engine);
criterion_main!(benches);
