//! UNUSED_RULE on a hand-made cluster: the rule no flow used is removed, the used one kept,
//! and the change is checked like every suggestion.

use netpol::Engine;
use recommend::Kind;

mod common;

use common::{cluster, graph, pod};

const POLICY: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: t, namespace: ns, resourceVersion: "42", uid: abc}
spec:
  podSelector: {matchLabels: {app: t}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: a}}}]
    ports: [{port: 8080}]
  - from: [{podSelector: {matchLabels: {app: b}}}]
    ports: [{port: 9090}]
"#;

/// Pods a, b and t in ns; t takes 8080 from a and 9090 from b.
fn yaml(policy: &str) -> String {
    [
        pod("ns", "a", "10.0.0.1"),
        pod("ns", "b", "10.0.0.2"),
        pod("ns", "t", "10.0.0.3"),
        policy.to_string(),
    ]
    .join("---\n")
}

/// `n` flows from a to t on 8080.
fn flows(n: u32) -> Vec<u8> {
    common::flows(("ns", "a", "10.0.0.1"), ("ns", "t", "10.0.0.3"), 8080, n)
}

#[test]
fn the_rule_no_flow_used_is_removed_and_nothing_observed_changes() {
    let (engine, sources) = cluster(&yaml(POLICY));
    let lines = flows(48);
    let graph = graph(&engine, &lines);
    let options = recommend::Options {
        min_confidence: 0.0,
        kinds: vec![Kind::UnusedRule],
        ..Default::default()
    };
    let report = recommend::recommend(&engine, &sources, &graph, &options);
    assert_eq!(report.recommendations.len(), 1, "{report:#?}");
    let r = &report.recommendations[0];
    assert_eq!(r.target_policy, "ns/t");
    assert!(r.title.contains("1 unused rule"), "{}", r.title);
    assert!(r.description.contains("ingress[1]"), "{}", r.description);
    // The server's fields are gone; the used rule stays, the unused one goes.
    assert!(!r.suggested_yaml.contains("resourceVersion") && !r.suggested_yaml.contains("uid"));
    assert!(r.suggested_yaml.contains("app: a") && !r.suggested_yaml.contains("app: b"));
    let diff = r.diff.as_deref().unwrap();
    assert!(
        diff.contains("-      - port: 9090") || diff.contains("port: 9090"),
        "{diff}"
    );
    // b -> t on 9090 is what closes.
    assert_eq!(r.impact.pairs_newly_blocked, 1, "{:?}", r.impact);
    assert_eq!(r.impact.observed_edges_newly_blocked, 0);

    // Replacing the policy with the suggestion: the same flows, the same verdicts.
    let (after, _) = cluster(&yaml(&r.suggested_yaml));
    let totals = |e: &Engine| {
        flow::validate(e, flow::Config::default(), &lines[..])
            .unwrap()
            .totals()
    };
    assert_eq!(totals(&engine), totals(&after));
}

#[test]
fn without_traffic_absence_means_nothing() {
    let (engine, sources) = cluster(&yaml(POLICY));
    let graph = flow::graph::Graph::default();
    let options = recommend::Options {
        min_confidence: 0.0,
        kinds: vec![Kind::UnusedRule],
        ..Default::default()
    };
    assert!(recommend::recommend(&engine, &sources, &graph, &options)
        .recommendations
        .is_empty());
}

#[test]
fn dismissed_suggestions_stay_dismissed_until_the_evidence_changes() {
    let (engine, sources) = cluster(&yaml(POLICY));
    let graph_of = |n: u32| graph(&engine, &flows(n));
    let run = |graph: &flow::graph::Graph, dismissed: Vec<recommend::Dismissal>| {
        let options = recommend::Options {
            min_confidence: 0.0,
            kinds: vec![Kind::UnusedRule],
            dismissed,
        };
        recommend::recommend(&engine, &sources, graph, &options).recommendations
    };
    let graph = graph_of(48);
    let first = run(&graph, vec![]);
    let dismissal = recommend::Dismissal {
        fingerprint: first[0].fingerprint.clone(),
        evidence_digest: first[0].evidence_digest.clone(),
        reason: recommend::DismissReason::FalsePositive,
    };
    assert!(run(&graph, vec![dismissal.clone()]).is_empty());
    // More flows: new evidence, suggested again with half the confidence.
    let again = run(&graph_of(72), vec![dismissal]);
    let fresh = run(&graph_of(72), vec![]);
    assert_eq!(again.len(), 1);
    assert!(
        (again[0].confidence - (fresh[0].confidence * 0.5 * 100.0).round() / 100.0).abs() < 1e-9
    );
}
