//! A cluster that uses CiliumNetworkPolicies gets its suggestions as CiliumNetworkPolicies,
//! which can name reserved entities a NetworkPolicy cannot.

mod common;

use common::{cluster, flows, graph, pod};
use recommend::Kind;

/// Forwarded TCP `port` flows from the remote-node entity to ns/t, one per hour.
fn from_remote_node(port: u16, n: u32) -> Vec<u8> {
    (0..n)
        .map(|h| {
            format!(
                r#"{{"flow":{{"time":"2026-11-30T{:02}:30:00Z","verdict":"FORWARDED","IP":{{"source":"192.168.7.7","destination":"10.0.0.3"}},"l4":{{"TCP":{{"source_port":50000,"destination_port":{port}}}}},"source":{{"identity":6,"labels":["reserved:remote-node"]}},"destination":{{"namespace":"ns","pod_name":"t"}},"Type":"L3_L4","traffic_direction":"INGRESS","trace_observation_point":"TO_ENDPOINT"}}}}"#,
                h % 24
            ) + "\n"
        })
        .collect::<String>()
        .into_bytes()
}

#[test]
fn suggestions_follow_the_cluster_dialect_and_name_entities() {
    let unrelated_cnp = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: x, namespace: other}\nspec:\n  endpointSelector: {matchLabels: {app: x}}\n  ingress: [{}]\n";
    let yaml = [
        pod("ns", "a", "10.0.0.1"),
        pod("ns", "t", "10.0.0.3"),
        unrelated_cnp.to_string(),
    ]
    .join("---\n");
    let (engine, sources) = cluster(&yaml);
    let mut lines = flows(("ns", "a", "10.0.0.1"), ("ns", "t", "10.0.0.3"), 8080, 24);
    lines.extend(from_remote_node(10250, 24));
    let options = recommend::Options {
        min_confidence: 0.0,
        kinds: vec![Kind::CoverageGap],
        ..Default::default()
    };
    let report = recommend::recommend(&engine, &sources, &graph(&engine, &lines), &options);
    let r = report
        .recommendations
        .iter()
        .find(|r| r.target_policy == "ns/t-allow-observed-ingress")
        .unwrap_or_else(|| panic!("{report:#?}"));
    let y = &r.suggested_yaml;
    assert!(y.contains("kind: CiliumNetworkPolicy"), "{y}");
    assert!(y.contains("fromEntities:\n    - remote-node"), "{y}");
    assert!(
        y.contains("k8s:io.kubernetes.pod.namespace: ns") && y.contains("app: a"),
        "{y}"
    );
    assert!(
        y.contains("port: '8080'") && y.contains("port: '10250'"),
        "{y}"
    );
    assert_eq!(r.impact.observed_edges_newly_blocked, 0);
    // Applied to the cluster, every observed flow goes from ungoverned to allowed.
    let (after, _) = cluster(&format!("{yaml}---\n{y}"));
    let totals = |e: &netpol::Engine| {
        flow::validate(e, flow::Config::default(), &lines[..])
            .unwrap()
            .totals()
    };
    assert_eq!(totals(&engine).no_policy_count, 48);
    assert_eq!(
        (totals(&after).allowed_count, totals(&after).blocked_count),
        (48, 0)
    );
}
