//! Recommendations on generated clusters, checked against fresh evaluations: applying a
//! suggestion blocks no flow that is allowed today, and its impact is what a new engine
//! built from the suggested YAML says.

use netpol::connectivity::{self, Peer};
use netpol::{Bundle, Engine, Options, PortSet};
use proptest::prelude::*;
use recommend::{Kind, Recommendation};

/// A cluster: namespaces of workloads, some already covered by an ingress policy.
#[derive(Debug, Clone)]
struct Spec {
    /// Per namespace, per workload: whether a policy already covers its ingress.
    namespaces: Vec<Vec<bool>>,
}

fn spec() -> impl Strategy<Value = (Spec, u64)> {
    (
        prop::collection::vec(prop::collection::vec(any::<bool>(), 1..4), 1..4),
        any::<u64>(),
    )
        .prop_map(|(namespaces, seed)| (Spec { namespaces }, seed))
}

fn cluster_yaml(spec: &Spec) -> String {
    let mut docs = vec![
        "apiVersion: v1\nkind: Pod\nmetadata: {name: coredns, namespace: kube-system, labels: {k8s-app: kube-dns}}\nspec: {containers: [{name: c, image: x, ports: [{containerPort: 53, protocol: UDP}]}]}\nstatus: {podIP: 10.9.0.10}\n".to_string(),
    ];
    for (n, workloads) in spec.namespaces.iter().enumerate() {
        for (i, covered) in workloads.iter().enumerate() {
            docs.push(format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: w{i}, namespace: ns{n}, labels: {{app: w{i}, pod-template-hash: h{i}}}}}\nspec: {{containers: [{{name: c, image: x, ports: [{{containerPort: 8080}}]}}]}}\nstatus: {{podIP: 10.{n}.0.{}}}\n",
                i + 1
            ));
            if *covered {
                docs.push(format!(
                    "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: w{i}, namespace: ns{n}}}\nspec:\n  podSelector: {{matchLabels: {{app: w{i}}}}}\n  ingress: [{{from: [{{podSelector: {{}}}}], ports: [{{port: 8080}}]}}]\n"
                ));
            }
        }
    }
    docs.join("---\n")
}

fn engine(yaml: &str) -> Engine {
    let mut b = Bundle::default();
    b.load_str(yaml, "cluster.yaml").unwrap();
    Engine::new(b.inventory, b.policies, Options::default())
}

fn flows(engine: &Engine, seed: u64) -> Vec<u8> {
    let cfg = flow::synth::Config {
        count: 3000,
        seed,
        no_policy_share: 0.5,
        blocked_share: 0.1,
        hours: 24,
        start: 1_767_225_600,
        ..Default::default()
    };
    let mut out = Vec::new();
    flow::synth::synth(engine, &cfg, &mut out).unwrap();
    out
}

fn recommendations(engine: &Engine, lines: &[u8]) -> recommend::Report {
    let mut v = flow::Validator::new(engine, flow::Config::default());
    v.record_graph();
    v.run(lines, |_, _| {}).unwrap();
    let graph = v.graph();
    let options = recommend::Options {
        min_confidence: 0.0,
        kinds: vec![Kind::CoverageGap],
        ..Default::default()
    };
    recommend::recommend(engine, &[], &graph, &options)
}

fn blocked(engine: &Engine, lines: &[u8]) -> u64 {
    flow::validate(engine, flow::Config::default(), lines)
        .unwrap()
        .totals()
        .blocked_count
}

/// Workload pairs with `target` on either side whose ports shrink from `before` to `after`,
/// by connectivity analysis of each engine (not the code under test).
fn pairs_closed(before: &Engine, after: &Engine, target: &str) -> u64 {
    let ports = |e: &Engine| {
        let mut out: Vec<(String, PortSet)> = Vec::new();
        connectivity::analyze(
            e,
            |_, _| {},
            |src, dst, p| {
                if let (Peer::Workload(s), Peer::Workload(d)) = (src, dst) {
                    let name =
                        |w: &netpol::model::WorkloadRef| format!("{}/{}", w.namespace, w.name);
                    if (name(d) == target || name(s) == target) && s != d {
                        out.push((format!("{s}>{d}"), p.clone()));
                    }
                }
            },
        );
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    };
    ports(before)
        .iter()
        .zip(ports(after))
        .filter(|((_, b), (_, a))| !b.difference(a).is_empty())
        .count() as u64
}

fn is_workload_policy(r: &Recommendation) -> bool {
    !r.target_policy.contains("/default-deny-")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn suggestions_block_no_allowed_flow_and_report_their_impact((spec, seed) in spec()) {
        let yaml = cluster_yaml(&spec);
        let base = engine(&yaml);
        let lines = flows(&base, seed);
        let report = recommendations(&base, &lines);
        let blocked_before = blocked(&base, &lines);
        for r in report.recommendations.iter().filter(|r| is_workload_policy(r)) {
            prop_assert_eq!(r.kind, Kind::CoverageGap);
            prop_assert_eq!(r.impact.observed_edges_newly_blocked, 0);
            let after = engine(&format!("{yaml}---\n{}", r.suggested_yaml));
            // Additions in a direction nothing isolated neither block an allowed flow nor
            // unblock a blocked one: the blocked count stays exactly the same.
            prop_assert_eq!(blocked(&after, &lines), blocked_before, "{}", r.suggested_yaml);
            let target = if r.target_policy.ends_with("-egress") {
                &r.evidence[0].source
            } else {
                &r.evidence[0].destination
            };
            prop_assert_eq!(r.impact.pairs_newly_blocked, pairs_closed(&base, &after, target));
            prop_assert_eq!(r.impact.pairs_newly_allowed, 0);
        }
        // Everything together, namespace default denies included.
        let all: Vec<&str> = report.recommendations.iter().map(|r| r.suggested_yaml.as_str()).collect();
        if !all.is_empty() {
            let after = engine(&format!("{yaml}---\n{}", all.join("---\n")));
            prop_assert_eq!(blocked(&after, &lines), blocked_before);
        }
    }
}

#[test]
fn an_uncovered_workload_gets_a_policy_for_exactly_its_peers() {
    let spec = Spec {
        namespaces: vec![vec![false, true, true]],
    };
    let yaml = cluster_yaml(&spec);
    let base = engine(&yaml);
    let lines = flows(&base, 7);
    let report = recommendations(&base, &lines);
    let r = report
        .recommendations
        .iter()
        .find(|r| r.target_policy == "ns0/w0-allow-observed-ingress")
        .expect("a suggestion for ns0/w0");
    assert!(r.suggested_yaml.contains("app: w0"), "{}", r.suggested_yaml);
    assert!(!r.suggested_yaml.contains("pod-template-hash"));
    assert!(r.confidence > 0.0 && r.confidence <= 1.0);
    // The same evidence gives the same fingerprint.
    let again = recommendations(&base, &lines);
    assert_eq!(
        again
            .recommendations
            .iter()
            .map(|r| &r.fingerprint)
            .collect::<Vec<_>>(),
        report
            .recommendations
            .iter()
            .map(|r| &r.fingerprint)
            .collect::<Vec<_>>()
    );
    // ns0's other workloads are covered: the namespace gets a default deny too.
    assert!(report
        .recommendations
        .iter()
        .any(|r| r.target_policy == "ns0/default-deny-ingress"));
}

#[test]
fn min_confidence_and_types_filter() {
    let base = engine(&cluster_yaml(&Spec {
        namespaces: vec![vec![false, false]],
    }));
    let lines = flows(&base, 3);
    let mut v = flow::Validator::new(&base, flow::Config::default());
    v.record_graph();
    v.run(&lines[..], |_, _| {}).unwrap();
    let graph = v.graph();
    let strict = recommend::Options {
        min_confidence: 1.01,
        ..Default::default()
    };
    assert!(recommend::recommend(&base, &[], &graph, &strict)
        .recommendations
        .is_empty());
    let none = recommend::Options {
        min_confidence: 0.0,
        kinds: vec![],
        ..Default::default()
    };
    assert!(recommend::recommend(&base, &[], &graph, &none)
        .recommendations
        .is_empty());
}
