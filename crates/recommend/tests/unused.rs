//! UNUSED_RULE on a hand-made cluster: the rule no flow used is removed, the used one kept,
//! and the change is checked like every suggestion.

use netpol::{Bundle, Engine, Options};
use recommend::Kind;

const CLUSTER: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: ns, labels: {app: a}}
status: {podIP: 10.0.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: ns, labels: {app: b}}
status: {podIP: 10.0.0.2}
---
apiVersion: v1
kind: Pod
metadata: {name: t, namespace: ns, labels: {app: t}}
status: {podIP: 10.0.0.3}
---
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

/// `n` forwarded TCP 8080 flows from ns/a to ns/t, one per hour.
fn flows(n: u32) -> Vec<u8> {
    (0..n)
        .map(|h| {
            format!(
                r#"{{"flow":{{"time":"2026-11-30T{:02}:00:00Z","verdict":"FORWARDED","IP":{{"source":"10.0.0.1","destination":"10.0.0.3"}},"l4":{{"TCP":{{"source_port":4{h:04},"destination_port":8080}}}},"source":{{"namespace":"ns","pod_name":"a"}},"destination":{{"namespace":"ns","pod_name":"t"}},"Type":"L3_L4","traffic_direction":"INGRESS","trace_observation_point":"TO_ENDPOINT"}}}}"#,
                h % 24
            ) + "\n"
        })
        .collect::<String>()
        .into_bytes()
}

fn bundle(yaml: &str) -> Bundle {
    let mut b = Bundle::default();
    b.load_str(yaml, "cluster.yaml").unwrap();
    b
}

#[test]
fn the_rule_no_flow_used_is_removed_and_nothing_observed_changes() {
    let b = bundle(CLUSTER);
    let sources = b.sources.clone();
    let engine = Engine::new(b.inventory, b.policies, Options::default());
    let lines = flows(48);
    let mut v = flow::Validator::new(&engine, flow::Config::default());
    v.record_graph();
    v.run(&lines[..], |_, _| {}).unwrap();
    let graph = v.graph();
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
    let replaced = CLUSTER
        .split("---")
        .filter(|d| !d.contains("NetworkPolicy"))
        .collect::<Vec<_>>()
        .join("---");
    let after = bundle(&format!("{replaced}---\n{}", r.suggested_yaml));
    let after = Engine::new(after.inventory, after.policies, Options::default());
    let totals = |e: &Engine| {
        flow::validate(e, flow::Config::default(), &lines[..])
            .unwrap()
            .totals()
    };
    assert_eq!(totals(&engine), totals(&after));
}

#[test]
fn without_traffic_absence_means_nothing() {
    let b = bundle(CLUSTER);
    let sources = b.sources.clone();
    let engine = Engine::new(b.inventory, b.policies, Options::default());
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
    let b = bundle(CLUSTER);
    let sources = b.sources.clone();
    let engine = Engine::new(b.inventory, b.policies, Options::default());
    let graph_of = |n: u32| {
        let lines = flows(n);
        let mut v = flow::Validator::new(&engine, flow::Config::default());
        v.record_graph();
        v.run(&lines[..], |_, _| {}).unwrap();
        v.graph()
    };
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
