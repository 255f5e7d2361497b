//! Render + preview timing over a real-sized cluster and observed flows.
//!
//! ```text
//! python3 ../shared/bench/gen_cluster.py -W 1000 -P 500 --seed 1 --out /tmp/w1000
//! python3 ../shared/bench/gen_flows.py --inventory /tmp/w1000.inventory.json \
//!     --lines 100000 --seed 7 --out /tmp/w1000-flows.jsonl
//! cargo run --release -p policyhub-packs --example preview_bench -- \
//!     /tmp/w1000 /tmp/w1000-flows.jsonl microservices-baseline 'namespaces=[a, b]'
//! ```
//!
//! Prints the time to load the snapshot and read the flows into the observed graph (once),
//! then the best and median of 10 runs of render + preview.

use std::path::Path;
use std::time::{Duration, Instant};

use netpol::{Bundle, Engine, Options};
use packs::{Catalog, Param};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [snapshot, flows, slug, params @ ..] = args.as_slice() else {
        return Err("usage: preview_bench SNAPSHOT FLOWS SLUG [KEY=VALUE...]".into());
    };
    let params: Vec<Param> = params.iter().map(|p| p.parse()).collect::<Result<_, _>>()?;
    let catalog = Catalog::builtin()?;
    let pack = catalog.get(slug)?;

    let t = Instant::now();
    let mut bundle = Bundle::default();
    bundle.load_path(Path::new(snapshot))?;
    let engine = Engine::new(bundle.inventory, bundle.policies, Options::default());
    let load = t.elapsed();

    let t = Instant::now();
    let mut validator = flow::Validator::new(&engine, flow::Config::default());
    validator.record_graph();
    validator.run(flow::reader::open(flows)?, |_, _| {})?;
    let graph = validator.graph();
    let read = t.elapsed();

    let mut runs: Vec<(Duration, Duration)> = Vec::new();
    let mut last = None;
    for _ in 0..10 {
        let t = Instant::now();
        let rendered = packs::render(pack, &params)?;
        let render = t.elapsed();
        let preview = packs::preview(&engine, &graph, &rendered, 10);
        runs.push((render, t.elapsed()));
        last = Some(preview);
    }
    runs.sort_by_key(|r| r.1);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let p = last.ok_or("no run")?;
    println!(
        "{} pods, {} policies; snapshot load {:.0} ms; {} flows -> {} edges read in {:.0} ms",
        engine.inventory().pods.len(),
        engine.policies().len(),
        ms(load),
        graph.flows,
        graph.edges.len(),
        ms(read)
    );
    println!(
        "{slug}: {} policies; render {:.2} ms; render+preview best {:.1} ms, median {:.1} ms",
        p.policies,
        ms(runs[0].0),
        ms(runs[0].1),
        ms(runs[runs.len() / 2].1)
    );
    println!(
        "blocked {} edges / {} flows; flow coverage {:.1}% -> {:.1}%; workloads {}/{} -> {}/{}",
        p.blocked_edges,
        p.blocked_flows,
        p.before.flow_share * 100.0,
        p.after.flow_share * 100.0,
        p.before.workloads_governed,
        p.before.workloads,
        p.after.workloads_governed,
        p.after.workloads
    );
    Ok(())
}
