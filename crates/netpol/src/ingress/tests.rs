use super::*;
use crate::connectivity::ingress_ports;
use crate::{Bundle, Engine, Options};

const APP: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - ports: [{name: http, containerPort: 8080}, {containerPort: 9090}, {name: dns, containerPort: 53, protocol: UDP}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports:
  - {name: web, port: 80, targetPort: http}
  - {name: metrics, port: 9090}
  - {name: gone, port: 7000, targetPort: 7001}
  - {name: dns, port: 53, targetPort: 53, protocol: UDP}
"#;

fn bundle(extra: &str) -> Bundle {
    let mut b = Bundle::default();
    b.load_str(&format!("{APP}\n---\n{extra}"), "test.yaml")
        .unwrap();
    b
}

fn candidates(extra: &str) -> String {
    let b = bundle(extra);
    candidate_ports(&b.inventory, 0).to_string()
}

#[test]
fn backends_pick_service_ports_and_resolve_target_names() {
    let ingress = |port: &str| {
        format!(
            "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: i, namespace: shop}}\n\
             spec:\n  rules:\n  - http:\n      paths:\n      - backend: {{service: {{name: web{port}}}}}\n"
        )
    };
    assert_eq!(candidates(&ingress(", port: {number: 80}")), "TCP 8080");
    assert_eq!(candidates(&ingress(", port: {name: metrics}")), "TCP 9090");
    // Without a port: every Service port; 7001 is no container port, and UDP 53 counts as
    // TCP 53, a declared port number (as upstream counts it).
    assert_eq!(candidates(&ingress("")), "TCP 53,8080,9090");
    assert_eq!(
        candidates(&ingress(", port: {number: 1234}")),
        "No Connections"
    );
}

#[test]
fn routes_name_a_target_port_and_alternate_backends() {
    let route = "apiVersion: route.openshift.io/v1\nkind: Route\nmetadata: {name: r, namespace: shop}\n\
                 spec: {to: {kind: Service, name: nope}, alternateBackends: [{kind: Service, name: web}], \
                 port: {targetPort: http}}\n";
    assert_eq!(candidates(route), "TCP 8080");
    // A Service in another namespace is not the backend's.
    let other = route.replace("namespace: shop", "namespace: other");
    assert_eq!(candidates(&other), "No Connections");
}

#[test]
fn the_controller_is_a_pod_without_labels_that_policies_judge() {
    let extra = "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: i, namespace: shop}\n\
                 spec: {defaultBackend: {service: {name: web, port: {number: 80}}}}\n---\n\
                 apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web, namespace: shop}\n\
                 spec:\n  podSelector: {}\n  ingress:\n  - from: [{namespaceSelector: {matchLabels: \
                 {kubernetes.io/metadata.name: ingress-controller-ns}}}]\n    ports: [{port: 9090}]\n";
    let mut b = bundle(extra);
    assert!(add_controller(&mut b.inventory));
    assert!(!add_controller(&mut b.inventory));
    let engine = Engine::new(b.inventory, b.policies, Options::default());
    let c = controller(engine.inventory()).unwrap();
    // 8080 is the candidate, but the policy lets the controller reach only 9090.
    assert_eq!(ingress_ports(&engine, c, 0).to_string(), "No Connections");
    let workloads = crate::connectivity::workloads(&engine);
    assert_eq!(workloads.len(), 1, "the controller is no workload");
}

#[test]
fn bad_service_ports_name_the_field() {
    let mut b = Bundle::default();
    let err = b
        .load_str(
            "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 80, targetPort: 0}]}\n",
            "svc.yaml",
        )
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "svc.yaml: document 1 (Service s): spec.ports[0].targetPort: targetPort must be between 1 and 65535"
    );
    let err = b
        .load_str(
            "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 70000}]}\n",
            "svc.yaml",
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("spec.ports[0].port"), "{err}");
}
