//! Bad input gets a clear error naming the file, the document and the field; never a panic.

use netpol::{Bundle, Error};
use proptest::prelude::*;

fn load(text: &str) -> Result<Bundle, Error> {
    let mut bundle = Bundle::default();
    bundle.load_str(text, "input.yaml").map(|()| bundle)
}

fn invalid(text: &str) -> (usize, String, String) {
    match load(text) {
        Err(Error::Invalid(e)) => {
            assert_eq!(e.file, "input.yaml");
            (e.document, e.path, e.message)
        }
        other => panic!("expected Error::Invalid, got {other:?}"),
    }
}

const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n";

#[test]
fn malformed_yaml_names_document_and_line() {
    let text = format!("{POD}---\napiVersion: v1\nkind: Pod\nmetadata: {{name: [b\n");
    match load(&text) {
        Err(e @ Error::Syntax { .. }) => {
            let msg = e.to_string();
            assert!(msg.starts_with("input.yaml: document 2:"), "{msg}");
            assert!(msg.contains("line"), "{msg}");
        }
        other => panic!("expected a syntax error, got {other:?}"),
    }
}

#[test]
fn wrong_type_names_the_field() {
    let text = format!("{POD}---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: np}}\nspec:\n  podSelector: {{}}\n  ingress:\n  - ports: [{{port: 80}}]\n    from: {{podSelector: {{}}}}\n");
    let (doc, path, _) = invalid(&text);
    assert_eq!(doc, 2);
    assert_eq!(path, "spec.ingress[0].from");
}

#[test]
fn invalid_cidr_names_the_field() {
    let text = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: np}\nspec:\n  podSelector: {}\n  egress:\n  - to: [{ipBlock: {cidr: 10.0.0.0/8}}, {ipBlock: {cidr: 300.1.0.0/16}}]\n";
    let (doc, path, message) = invalid(text);
    assert_eq!(
        (doc, path.as_str()),
        (1, "spec.egress[0].to[1].ipBlock.cidr")
    );
    assert!(message.contains("300.1.0.0/16"), "{message}");
    let text = text.replace("300.1.0.0/16", "10.0.0.0/16, except: [192.168.0.0/24]");
    let (_, path, message) = invalid(&text);
    assert_eq!(path, "spec.egress[0].to[1].ipBlock.except[0]");
    assert!(message.contains("not inside"), "{message}");
}

#[test]
fn end_port_below_port_is_rejected() {
    let text = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: np, namespace: x}\nspec:\n  podSelector: {}\n  ingress:\n  - ports: [{port: 80}, {port: 9000, endPort: 8000}]\n";
    let (_, path, message) = invalid(text);
    assert_eq!(path, "spec.ingress[0].ports[1].endPort");
    assert!(message.contains("below"), "{message}");
    let err = load(text).unwrap_err().to_string();
    assert!(err.contains("NetworkPolicy np"), "{err}");
}

#[test]
fn named_port_with_end_port_is_rejected() {
    let text = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: np}\nspec:\n  podSelector: {}\n  ingress:\n  - ports: [{port: http, endPort: 90}]\n";
    let (_, path, _) = invalid(text);
    assert_eq!(path, "spec.ingress[0].ports[0].endPort");
    let cilium = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: c}\nspec:\n  endpointSelector: {}\n  ingress:\n  - toPorts: [{ports: [{port: http, endPort: 90}]}]\n";
    let (_, path, _) = invalid(cilium);
    assert_eq!(path, "spec.ingress[0].toPorts[0].ports[0].endPort");
}

#[test]
fn errors_inside_a_list_carry_the_item_path() {
    let text = "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Namespace, metadata: {name: a}}\n- apiVersion: policy.networking.k8s.io/v1alpha1\n  kind: AdminNetworkPolicy\n  metadata: {name: anp}\n  spec: {priority: 5000, subject: {namespaces: {}}}\n";
    let (_, path, message) = invalid(text);
    assert_eq!(path, "items[1].spec.priority");
    assert!(message.contains("0-1000"), "{message}");
}

#[test]
fn unknown_kinds_are_reported_and_skipped() {
    let bundle = load("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: s}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: n}\n").unwrap();
    assert_eq!(bundle.skipped.len(), 1);
    assert_eq!(bundle.skipped[0].kind, "ConfigMap");
    assert_eq!(bundle.skipped[0].document, 1);
    assert!(bundle.inventory.namespaces.contains_key("n"));
}

#[test]
fn selector_operator_without_values_is_rejected() {
    let text = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: np}\nspec:\n  podSelector: {matchExpressions: [{key: app, operator: In}]}\n";
    let (_, path, _) = invalid(text);
    assert_eq!(path, "spec.podSelector.matchExpressions[0].values");
}

fn fragments() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "apiVersion: networking.k8s.io/v1\n",
        "apiVersion: cilium.io/v2\n",
        "apiVersion: policy.networking.k8s.io/v1alpha1\n",
        "kind: NetworkPolicy\n",
        "kind: CiliumNetworkPolicy\n",
        "kind: AdminNetworkPolicy\n",
        "kind: List\n",
        "kind: Pod\n",
        "kind: Deployment\n",
        "metadata: {name: x}\n",
        "spec:\n",
        "  podSelector: {}\n",
        "  endpointSelector: {}\n",
        "  ingress:\n",
        "  egress:\n",
        "  - from: [{ipBlock: {cidr: 10.0.0.0/8}}]\n",
        "  - ports: [{port: 80, endPort: 70}]\n",
        "  - toPorts: [{ports: [{port: \"53\"}]}]\n",
        "  priority: 3\n",
        "  subject: {namespaces: {}}\n",
        "items: [1, {kind: Pod}]\n",
        "---\n",
        "{",
        "}",
        "[",
        ": ",
        "- ",
        "null\n",
        "\t",
        "'",
        "\"",
    ]);
    proptest::collection::vec(pieces, 0..24).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    /// Whatever the input, parsing returns a value or an error; it never panics.
    #[test]
    fn parsing_never_panics(text in fragments()) {
        let _ = load(&text);
    }

    #[test]
    fn parsing_random_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = load(&String::from_utf8_lossy(&bytes));
    }
}
