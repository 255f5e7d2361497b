//! End-to-end validation throughput: parse + resolve + decide + aggregate over synthesised
//! Hubble flows held in memory (reading from disk is left out; `policyhub validate` with
//! `/usr/bin/time -v` measures that, see ARCHITECTURE.md).
//!
//! `cargo bench -p policyhub-flow --bench validate`
//! `FLOW_BENCH_SNAPSHOT=<dir> FLOW_BENCH_COUNT=200000 cargo bench -p policyhub-flow` uses
//! another snapshot (e.g. ../shared/bench/gen_cluster.py output) and count.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use netpol::{Bundle, Engine, Options};

fn engine() -> Engine {
    let dir = std::env::var_os("FLOW_BENCH_SNAPSHOT").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/shop"),
        PathBuf::from,
    );
    let mut b = Bundle::default();
    b.load_path(&dir).expect("snapshot");
    Engine::new(b.inventory, b.policies, Options::default())
}

fn bench(c: &mut Criterion) {
    let engine = engine();
    let count: u64 = std::env::var("FLOW_BENCH_COUNT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let cfg = flow::synth::Config {
        count,
        seed: 7,
        gap_share: 0.02,
        drop_share: 0.01,
        ..flow::synth::Config::default()
    };
    let mut input = Vec::new();
    flow::synth::synth(&engine, &cfg, &mut input).expect("synth");
    let mut group = c.benchmark_group("validate");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .throughput(Throughput::Elements(count));
    group.bench_function(format!("{count} flows end to end"), |b| {
        b.iter(|| {
            let p = flow::validate(
                &engine,
                flow::Config::default(),
                black_box(input.as_slice()),
            )
            .expect("validate");
            black_box(p.input.judged)
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
