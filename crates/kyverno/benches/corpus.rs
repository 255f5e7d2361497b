//! Evaluations per second over the Kyverno corpus (`../shared/corpus/kyverno/cases`): every
//! policy of a case against every resource of the same case, with the admission request the
//! CLI fakes for offline runs (`CREATE`, no values file). Also the cost of the gates before
//! evaluation: schema check, typed model and autogen for every corpus policy.
//!
//! `cargo bench -p policyhub-kyverno --bench corpus`; criterion reports `thrpt` in
//! evaluations (policy × resource) per second.

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kyverno::runner::conformance::{find_case_files, load_case};
use kyverno::runner::{load_policy, Case};
use kyverno::{CompiledPolicy, Request};
use serde_json::Value;

const CASES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/corpus/kyverno/cases"
);

fn corpus() -> Vec<Case> {
    let files = find_case_files(&[Path::new(CASES).to_path_buf()])
        .unwrap_or_else(|e| panic!("Kyverno corpus not readable at {CASES}: {e}"));
    files
        .iter()
        .map(|f| load_case(f).unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

fn benches(c: &mut Criterion) {
    let cases = corpus();
    let pairs: Vec<(CompiledPolicy, &[Value])> = cases
        .iter()
        .flat_map(|case| {
            case.policies.iter().map(move |p| {
                let policy = load_policy(p, &case.source).unwrap_or_else(|e| panic!("{e}"));
                (policy, case.resources.as_slice())
            })
        })
        .collect();
    let evaluations: usize = pairs.iter().map(|(_, r)| r.len()).sum();
    let request = Request::default();

    let mut group = c.benchmark_group("corpus");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(8));
    group.throughput(Throughput::Elements(evaluations as u64));
    group.bench_function(format!("evaluate/{evaluations} policy x resource"), |b| {
        b.iter(|| {
            for (policy, resources) in &pairs {
                for r in *resources {
                    black_box(policy.evaluate(r, &request));
                }
            }
        })
    });

    let docs: Vec<(&Value, &str)> = cases
        .iter()
        .flat_map(|case| case.policies.iter().map(|p| (p, case.source.as_str())))
        .collect();
    group.throughput(Throughput::Elements(docs.len() as u64));
    group.bench_function(format!("load/{} policies", docs.len()), |b| {
        b.iter(|| {
            for (doc, origin) in &docs {
                let _ = black_box(load_policy(doc, origin));
            }
        })
    });
    group.finish();
}

criterion_group!(corpus_benches, benches);
criterion_main!(corpus_benches);
