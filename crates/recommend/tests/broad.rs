//! OVERLY_BROAD on a hand-made cluster: a rule open to every namespace on every port, used by
//! one client on one port, is replaced by a rule for exactly that client and port.

mod common;

use common::{cluster, flows, graph, pod};
use recommend::Kind;

#[test]
fn a_rule_open_to_everything_is_tightened_to_what_was_used() {
    let yaml = [
        pod("ns", "a", "10.0.0.1"),
        pod("ns", "b", "10.0.0.2"),
        pod("other", "c", "10.0.1.1"),
        pod("ns", "t", "10.0.0.3"),
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: t, namespace: ns}\nspec:\n  podSelector: {matchLabels: {app: t}}\n  ingress:\n  - from: [{namespaceSelector: {}}]\n".into(),
    ]
    .join("---\n");
    let (engine, sources) = cluster(&yaml);
    let lines = flows(("ns", "a", "10.0.0.1"), ("ns", "t", "10.0.0.3"), 8080, 24);
    let options = recommend::Options {
        min_confidence: 0.0,
        kinds: vec![Kind::OverlyBroad],
        ..Default::default()
    };
    let report = recommend::recommend(&engine, &sources, &graph(&engine, &lines), &options);
    assert_eq!(report.recommendations.len(), 1, "{report:#?}");
    let r = &report.recommendations[0];
    assert!(
        r.description.contains("ingress[0] allows"),
        "{}",
        r.description
    );
    assert!(
        r.suggested_yaml.contains("app: a") && r.suggested_yaml.contains("port: 8080"),
        "{}",
        r.suggested_yaml
    );
    assert!(!r.suggested_yaml.contains("namespaceSelector: {}"));
    // b and c lose everything to t; a keeps 8080 only; nothing observed changes.
    assert_eq!(r.impact.pairs_newly_blocked, 3, "{:?}", r.impact);
    assert_eq!(r.impact.observed_edges_newly_blocked, 0);
    assert!(
        r.diff.as_deref().unwrap().contains("+    ports:"),
        "{:?}",
        r.diff
    );
}
