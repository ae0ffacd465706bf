//! Replay throughput (bars and plans per second) on both bundled data sets.
//! Run: `cargo bench -p quantum-governor --bench replay`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use governor_core::Config;
use quantum_governor::replay::{self, ReplayOptions};
use std::path::PathBuf;
use std::time::Duration;

fn bench(c: &mut Criterion) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = std::env::temp_dir().join("qg-replay-bench");
    let cfg = Config::default();
    for (name, dir, samples) in [
        ("two_months_7_symbols", "data/klines", 20),
        ("fourteen_months_7_symbols", "data/klines_long", 10),
    ] {
        let opts = ReplayOptions {
            data_dir: root.join(dir),
            out_dir: out.join(name),
            ..ReplayOptions::default()
        };
        let probe = replay::run(&cfg, &opts).expect("the bundled data replays");
        let bars = probe.bars.len() as u64;
        println!("{name}: {bars} bars, {} plans per run", probe.plans);
        let mut group = c.benchmark_group(name);
        group
            .sample_size(samples)
            .measurement_time(Duration::from_secs(30))
            .warm_up_time(Duration::from_secs(1));
        group.throughput(Throughput::Elements(bars));
        group.bench_function("replay_bars", |b| {
            b.iter(|| replay::run(&cfg, &opts).unwrap())
        });
        group.throughput(Throughput::Elements(probe.plans as u64));
        group.bench_function("replay_plans", |b| {
            b.iter(|| replay::run(&cfg, &opts).unwrap())
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
