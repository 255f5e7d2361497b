//! Entry points for fuzzing the policy parser and the evaluator behind it, and the expression
//! evaluator on its own (JMESPath, Kyverno's functions, `{{ }}` substitution).

use serde_json::json;

use crate::engine::{CompiledPolicy, Request};
use crate::model::Policy;
use crate::runner::parse_documents;
use crate::vars::{EvalContext, Mode};

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

/// Evaluates `data` as an expression in every way a policy can use one: a JMESPath query, a
/// whole `{{ }}` variable, a string with `{{ }}` inside (strict and lenient), a message, and a
/// pattern value. The context holds a Pod as `request.object`, `request.operation`, `element`,
/// `elementIndex`, `images` and a context variable. Errors are expected; a panic is a bug.
pub fn fuzz_expression(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut ctx = EvalContext::new();
    ctx.set(
        "request.object",
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "p", "namespace": "default", "labels": {"app": "a"},
                            "annotations": {"a/b": "{\"x\": [1, 2]}"}},
               "spec": {"containers": [{"name": "c", "image": "nginx:1.2.3",
                        "resources": {"limits": {"memory": "1Gi", "cpu": "500m"}}}]}}),
    );
    ctx.set("request.operation", json!("CREATE"));
    ctx.set(
        "element",
        json!({"name": "c", "ports": [80, "443", -1.5, null]}),
    );
    ctx.set("elementIndex", json!(0));
    ctx.set(
        "images",
        json!({"containers": {"c": {"registry": "docker.io", "name": "nginx", "tag": "1.2.3"}}}),
    );
    ctx.set("n", json!(3));
    let _ = ctx.query(&text);
    let _ = ctx.substitute_str(&format!("{{{{{text}}}}}"), Mode::Lenient);
    let _ = ctx.substitute_str(&text, Mode::Strict);
    let _ = ctx.substitute_str(&text, Mode::Lenient);
    let _ = ctx.substitute_message(&text);
    let _ = crate::pattern::match_pattern(&json!({"v": text}), &json!({"v": text}));
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

    /// Kyverno's functions and a few JMESPath built-ins that take numbers or strings.
    const FUNCTIONS: &[&str] = &[
        "compare",
        "equal_fold",
        "replace",
        "replace_all",
        "to_upper",
        "to_lower",
        "trim",
        "trim_prefix",
        "split",
        "regex_replace_all",
        "regex_replace_all_literal",
        "regex_match",
        "pattern_match",
        "label_match",
        "add",
        "subtract",
        "multiply",
        "divide",
        "modulo",
        "round",
        "base64_encode",
        "base64_decode",
        "truncate",
        "semver_compare",
        "parse_json",
        "parse_yaml",
        "lookup",
        "items",
        "object_from_lists",
        "sum",
        "path_canonicalize",
        "time_now",
        "time_now_utc",
        "time_utc",
        "time_parse",
        "time_since",
        "time_diff",
        "time_add",
        "time_before",
        "time_after",
        "time_between",
        "time_truncate",
        "time_to_cron",
        "length",
        "contains",
        "keys",
        "values",
        "to_number",
        "starts_with",
        "join",
        "max",
        "min",
        "sort_by",
        "abs",
        "floor",
        "ceil",
    ];

    /// Arguments of every type, with the edge values functions trip on.
    const ARGUMENTS: &[&str] = &[
        "'abc'",
        "''",
        "'*'",
        "'['",
        "'(a'",
        "'$1'",
        "'1Gi'",
        "'500m'",
        "'-1Ki'",
        "'1h30m'",
        "'-5s'",
        "'9999999h'",
        "'2021-01-01T00:00:00Z'",
        "'2006-01-02'",
        "'1.2.3'",
        "'>=1.0.0'",
        "'v1.2'",
        "'{\"a\": 1}'",
        "'a: [1'",
        "'YWJj'",
        "'%%%'",
        "`0`",
        "`-1`",
        "`1.5`",
        "`1e308`",
        "`-1e308`",
        "`18446744073709551616`",
        "`null`",
        "`true`",
        "`[]`",
        "`[1, \"a\"]`",
        "`{}`",
        "`{\"a\": \"b\"}`",
        "@",
        "request.object",
        "request.object.spec.containers",
        "element",
        "elementIndex",
        "n",
        "request.object.metadata.labels",
        "request.object.metadata.annotations.\"a/b\"",
    ];

    /// Pieces of expressions and of `{{ }}` syntax.
    const FRAGMENTS: &[&str] = &[
        "{{",
        "}}",
        "{{-",
        " ",
        "request.object",
        ".spec",
        ".containers",
        "[0]",
        "[-1]",
        "[*]",
        "[]",
        "[?",
        "]",
        "==",
        "!=",
        "<",
        "&&",
        "||",
        "!",
        "|",
        "@",
        "`1`",
        "'a'",
        "\"",
        "\\",
        "(",
        ")",
        ",",
        "element",
        "elementIndex",
        "images.containers.c.tag",
        "length",
        "to_upper",
        "split",
        "regex_match",
        "divide",
        "truncate",
        "time_add",
        "lookup",
        "{",
        "}",
        ":",
        "&",
        "$",
        "*",
        "?",
        ".",
        "x",
        "\n",
    ];

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
        fn random_expression_fragments_never_panic(parts in proptest::collection::vec(proptest::sample::select(FRAGMENTS), 0..16)) {
            fuzz_expression(parts.concat().as_bytes());
        }

        #[test]
        fn kyverno_functions_on_any_arguments_never_panic(
            f in proptest::sample::select(FUNCTIONS),
            args in proptest::collection::vec(proptest::sample::select(ARGUMENTS), 0..5),
            wrap in any::<bool>(),
        ) {
            let call = format!("{f}({})", args.join(", "));
            let expr = if wrap { format!("x-{{{{ {call} }}}}-y") } else { call };
            fuzz_expression(expr.as_bytes());
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
