//! Entry point for fuzzing the policy parser and the evaluator behind it.

use serde_json::json;

use crate::engine::{CompiledPolicy, Request};
use crate::model::Policy;
use crate::runner::parse_documents;

/// Parses `data` as YAML/JSON documents, reads every policy among them and evaluates it against
/// a sample Pod, a sample Deployment and the documents themselves. Errors are expected; a panic
/// is a bug. Used by the property tests and usable from a `cargo fuzz` target.
pub fn fuzz_entry(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(docs) = parse_documents(&text, "fuzz") else {
        return;
    };
    let samples = [
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default",
               "labels": {"app": "a"}},
               "spec": {"containers": [{"name": "c", "image": "nginx:latest",
                        "ports": [{"containerPort": 80, "hostPort": 80}],
                        "resources": {"limits": {"memory": "1Gi"}}}]}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
               "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}}}),
    ];
    for (i, doc) in docs.iter().enumerate() {
        let Ok(policy) = Policy::from_value(doc, &format!("fuzz document {i}")) else {
            continue;
        };
        let compiled = CompiledPolicy::new(policy);
        let request = Request::default();
        for resource in samples.iter().chain(docs.iter()) {
            let _ = compiled.evaluate(resource, &request);
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const SEED: &str = r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: seed}
spec:
  rules:
  - name: r
    match: {any: [{resources: {kinds: [Pod]}}]}
    context: [{name: n, variable: {jmesPath: "length(request.object.spec.containers)"}}]
    preconditions: {all: [{key: "{{ n }}", operator: GreaterThan, value: 0}]}
    validate:
      message: "m {{ request.object.metadata.name }}"
      foreach:
      - list: request.object.spec.containers
        pattern: {image: "!*:latest", "=(ports)": [{"X(hostPort)": null}]}
        deny: {conditions: {any: [{key: "{{ element.name }}", operator: AnyIn, value: [c]}]}}
"#;

    #[test]
    fn seed_runs() {
        fuzz_entry(SEED.as_bytes());
        fuzz_entry(b"");
        fuzz_entry(b"kind: ClusterPolicy\nspec: 3");
        fuzz_entry("{{{{ ((((((((((((".repeat(50).as_bytes());
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            fuzz_entry(&data);
        }

        #[test]
        fn mutated_policies_never_panic(pos in 0usize..SEED.len(), insert in "[ -~\n]{0,12}", cut in 0usize..8) {
            let mut text = SEED.to_string();
            let at = (0..=pos).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
            let end = (at + cut).min(text.len());
            let end = (end..=text.len()).find(|i| text.is_char_boundary(*i)).unwrap_or(text.len());
            text.replace_range(at..end, &insert);
            fuzz_entry(text.as_bytes());
        }

        #[test]
        fn random_expressions_never_panic(expr in "[a-z@.\\[\\]()|&!?*`'{}:, 0-9<>=-]{0,40}") {
            let mut ctx = crate::vars::EvalContext::new();
            ctx.set("request.object", json!({"a": [1, {"b": "c"}]}));
            let _ = ctx.query(&expr);
            let _ = ctx.substitute_str(&format!("{{{{{expr}}}}}"), crate::vars::Mode::Lenient);
            let _ = crate::pattern::match_pattern(&json!({"a": expr.clone()}), &json!({"a": expr}));
        }
    }
}
