use super::*;
use crate::Bundle;

fn report(text: &str) -> Report {
    let mut b = Bundle::default();
    b.load_str(text, "test.yaml").unwrap();
    analyze(b.inventory, b.policies, Options::default())
}

const PODS: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: hw, labels: {app: a}}\n---\n\
                    apiVersion: v1\nkind: Pod\nmetadata: {name: b, namespace: hw, labels: {app: b}}\n";

/// `PODS` and a NetworkPolicy selecting `hw/a` with the rest of its spec.
fn with_policy_on_a(spec_rest: &str) -> Report {
    let policy = format!(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: a, namespace: hw}}\n\
         spec:\n  podSelector: {{matchLabels: {{app: a}}}}\n{spec_rest}"
    );
    report(&format!("{PODS}---\n{policy}"))
}

fn lines(r: &Report) -> Vec<String> {
    r.lines
        .iter()
        .map(|l| {
            let arrow = if l.direction == Direction::Egress {
                "=>"
            } else {
                "<="
            };
            format!("{} {arrow} {} : {}", l.workload, l.peer, l.ports)
        })
        .collect()
}

#[test]
fn unprotected_workloads_are_open_to_the_entire_cluster() {
    let r = report(PODS);
    assert_eq!(r.unprotected.len(), 4);
    assert!(lines(&r).contains(&"hw/a[Pod] <= entire-cluster : All Connections".to_string()));
    assert!(
        lines(&r).contains(&"hw/a[Pod] => 0.0.0.0-255.255.255.255 : All Connections".to_string())
    );
}

#[test]
fn representatives_name_selectors_and_differ_from_the_entire_cluster() {
    let r = with_policy_on_a(
        r#"  ingress:
  - from: [{podSelector: {matchExpressions: [{key: app, operator: NotIn, values: [x, c]}]}}]
    ports: [{port: 9090}]
  - from: [{namespaceSelector: {matchLabels: {env: prod}}, podSelector: {matchLabels: {role: db}}}]
    ports: [{port: 5432}]
  - from: [{namespaceSelector: {}}]
    ports: [{port: 53, protocol: UDP}]
"#,
    );
    let ingress: Vec<String> = lines(&r)
        .into_iter()
        .filter(|l| l.starts_with("hw/a[Pod] <="))
        .collect();
    assert_eq!(
        ingress,
        [
            "hw/a[Pod] <= [namespace with {env=prod}]/[pod with {role=db}] : TCP 5432,UDP 53",
            "hw/a[Pod] <= hw/[pod with {{Key:app,Operator:NotIn,Values:[x c],}}] : TCP 9090,UDP 53",
            "hw/a[Pod] <= entire-cluster : UDP 53",
        ]
    );
    // a is protected on ingress only; its egress is still open.
    assert!(!r
        .unprotected
        .iter()
        .any(|u| u.workload.name == "a" && u.direction == Direction::Ingress));
    assert_eq!(r.unprotected.len(), 3);
}

#[test]
fn named_ports_towards_hypothetical_peers_keep_their_names() {
    let r = with_policy_on_a(
        r#"  policyTypes: [Egress]
  egress:
  - to: [{namespaceSelector: {}}]
    ports: [{port: http}, {port: 8080}]
"#,
    );
    assert!(
        lines(&r).contains(&"hw/a[Pod] => entire-cluster : TCP 8080,http".to_string()),
        "{:#?}",
        lines(&r)
    );
}
