//! Hand-made clusters and flows for the recommendation tests.

#![allow(dead_code)]

use netpol::{Bundle, Engine, Options};

/// A Pod manifest labelled `app: <name>`.
pub fn pod(ns: &str, name: &str, ip: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: {ns}, labels: {{app: {name}}}}}\nstatus: {{podIP: {ip}}}\n"
    )
}

/// One end of a flow: namespace, pod and address.
pub type End<'a> = (&'a str, &'a str, &'a str);

/// `n` forwarded TCP flows from `src` to `dst` on `port`, one per hour of 2026-11-30
/// (wrapping after 24).
pub fn flows(src: End, dst: End, port: u16, n: u32) -> Vec<u8> {
    (0..n)
        .map(|h| {
            format!(
                r#"{{"flow":{{"time":"2026-11-30T{:02}:00:00Z","verdict":"FORWARDED","IP":{{"source":"{}","destination":"{}"}},"l4":{{"TCP":{{"source_port":40000,"destination_port":{port}}}}},"source":{{"namespace":"{}","pod_name":"{}"}},"destination":{{"namespace":"{}","pod_name":"{}"}},"Type":"L3_L4","traffic_direction":"INGRESS","trace_observation_point":"TO_ENDPOINT"}}}}"#,
                h % 24,
                src.2,
                dst.2,
                src.0,
                src.1,
                dst.0,
                dst.1
            ) + "\n"
        })
        .collect::<String>()
        .into_bytes()
}

/// The cluster of `yaml`, compiled, with its policy manifests.
pub fn cluster(yaml: &str) -> (Engine, Vec<serde_json::Value>) {
    let mut b = Bundle::keeping_sources();
    b.load_str(yaml, "cluster.yaml").unwrap();
    let sources = b.sources.clone();
    (
        Engine::new(b.inventory, b.policies, Options::default()),
        sources,
    )
}

/// The observed graph of `lines` judged on `engine`.
pub fn graph(engine: &Engine, lines: &[u8]) -> flow::graph::Graph {
    let mut v = flow::Validator::new(engine, flow::Config::default());
    v.record_graph();
    v.run(lines, |_, _| {}).unwrap();
    v.graph()
}
