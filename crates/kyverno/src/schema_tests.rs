use serde_json::{json, Value};

use super::*;

fn policy() -> Value {
    json!({
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {"name": "p", "annotations": {"policies.kyverno.io/title": "t"}},
        "spec": {
            "validationFailureAction": "Audit",
            "background": true,
            "rules": [
                {"name": "a", "match": {"any": [{"resources": {"kinds": ["Pod"],
                    "selector": {"matchExpressions": [{"key": "k", "operator": "In", "values": ["v"]}]}}}]},
                 "validate": {"message": "m", "pattern": {"spec": {"=(hostNetwork)": false}}}},
                {"name": "b", "match": {"resources": {"kinds": ["Pod"], "operations": ["CREATE"]}},
                 "context": [{"name": "n", "variable": {"jmesPath": "request.object.metadata.name"}}],
                 "preconditions": {"all": [{"key": "{{ n }}", "operator": "NotEquals", "value": ""}]},
                 "validate": {"deny": {"conditions": [{"key": 1, "operator": "GreaterThan", "value": 0}]}}},
                {"name": "c", "match": {"all": [{"resources": {"kinds": ["Deployment"]}}]},
                 "exclude": {"any": [{"subjects": [{"kind": "User", "name": "admin"}]}]},
                 "validate": {"foreach": [{"list": "request.object.spec.containers",
                                            "foreach": [{"list": "element.ports", "pattern": {"name": "?*"}}]}]}}
            ]
        }
    })
}

/// Paths of the violations after `mutate` changed the valid policy.
fn paths_after(mutate: impl FnOnce(&mut Value)) -> Vec<String> {
    let mut doc = policy();
    mutate(&mut doc);
    check(&doc).into_iter().map(|v| v.path).collect()
}

#[test]
fn a_valid_policy_has_no_violations() {
    assert_eq!(check(&policy()), []);
}

#[test]
fn a_namespaced_v2beta1_policy_is_valid() {
    let mut doc = policy();
    doc["apiVersion"] = json!("kyverno.io/v2beta1");
    doc["kind"] = json!("Policy");
    doc["metadata"]["namespace"] = json!("team");
    assert_eq!(check(&doc), []);
}

#[test]
fn every_violation_is_reported_with_its_path() {
    let paths = paths_after(|d| {
        d["spec"]["rules"][2]["validate"]["pattern"] = json!({"a": 1});
        d["spec"]["background"] = json!("yes");
        d["spec"]["rules"][0]["match"]["any"][0]["resources"]["kinds"] = json!("Pod");
    });
    assert_eq!(
        paths,
        [
            "spec.background",
            "spec.rules[0].match.any[0].resources.kinds",
            "spec.rules[2].validate.pattern",
            "spec.rules[2].validate.foreach",
        ]
    );
}

/// A change to the valid policy.
type Mutation = Box<dyn FnOnce(&mut Value)>;

#[test]
fn mutated_policies_give_exact_paths() {
    let cases: Vec<(&str, Mutation, &[&str])> = vec![
        (
            "second validation method",
            Box::new(|d| d["spec"]["rules"][0]["validate"]["deny"] = json!({})),
            &[
                "spec.rules[0].validate.pattern",
                "spec.rules[0].validate.deny",
            ],
        ),
        (
            "no validation method",
            Box::new(|d| d["spec"]["rules"][1]["validate"] = json!({"message": "m"})),
            &["spec.rules[1].validate"],
        ),
        (
            "enum",
            Box::new(|d| d["spec"]["validationFailureAction"] = json!("Block")),
            &["spec.validationFailureAction"],
        ),
        (
            "missing rule name",
            Box::new(|d| {
                d["spec"]["rules"][1]
                    .as_object_mut()
                    .unwrap()
                    .remove("name");
            }),
            &["spec.rules[1].name"],
        ),
        (
            "duplicate rule name",
            Box::new(|d| d["spec"]["rules"][2]["name"] = json!("a")),
            &["spec.rules[2].name"],
        ),
        (
            "rule name too long",
            Box::new(|d| d["spec"]["rules"][0]["name"] = json!("x".repeat(64))),
            &["spec.rules[0].name"],
        ),
        (
            "missing match",
            Box::new(|d| {
                d["spec"]["rules"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("match");
            }),
            &["spec.rules[0].match"],
        ),
        (
            "empty match",
            Box::new(|d| d["spec"]["rules"][0]["match"] = json!({})),
            &["spec.rules[0].match"],
        ),
        (
            "resources with any",
            Box::new(|d| d["spec"]["rules"][0]["match"]["resources"] = json!({"kinds": ["Pod"]})),
            &["spec.rules[0].match.resources"],
        ),
        (
            "unknown field (typo)",
            Box::new(|d| {
                let rule = d["spec"]["rules"][0].as_object_mut().unwrap();
                let v = rule.remove("validate").unwrap();
                rule.insert("validat".into(), v);
            }),
            &["spec.rules[0].validat", "spec.rules[0]"],
        ),
        (
            "selector operator",
            Box::new(|d| {
                d["spec"]["rules"][0]["match"]["any"][0]["resources"]["selector"]
                    ["matchExpressions"][0]["operator"] = json!("Has")
            }),
            &["spec.rules[0].match.any[0].resources.selector.matchExpressions[0].operator"],
        ),
        (
            "operation",
            Box::new(|d| {
                d["spec"]["rules"][1]["match"]["resources"]["operations"] =
                    json!(["CREATE", "PATCH"])
            }),
            &["spec.rules[1].match.resources.operations[1]"],
        ),
        (
            "condition operator",
            Box::new(|d| {
                d["spec"]["rules"][1]["preconditions"]["all"][0]["operator"] = json!("Bogus")
            }),
            &["spec.rules[1].preconditions.all[0].operator"],
        ),
        (
            "condition without operator",
            Box::new(|d| {
                d["spec"]["rules"][1]["validate"]["deny"]["conditions"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("operator");
            }),
            &["spec.rules[1].validate.deny.conditions[0].operator"],
        ),
        (
            "context entry without source",
            Box::new(|d| d["spec"]["rules"][1]["context"][0] = json!({"name": "n"})),
            &["spec.rules[1].context[0]"],
        ),
        (
            "nested foreach without list",
            Box::new(|d| {
                d["spec"]["rules"][2]["validate"]["foreach"][0]["foreach"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("list");
            }),
            &["spec.rules[2].validate.foreach[0].foreach[0].list"],
        ),
        (
            "foreach with two methods",
            Box::new(|d| {
                d["spec"]["rules"][2]["validate"]["foreach"][0]["deny"] = json!({"conditions": []})
            }),
            &[
                "spec.rules[2].validate.foreach[0].deny",
                "spec.rules[2].validate.foreach[0].foreach",
            ],
        ),
        (
            "pattern not an object",
            Box::new(|d| d["spec"]["rules"][0]["validate"]["pattern"] = json!("x")),
            &["spec.rules[0].validate.pattern"],
        ),
        (
            "rule with no type",
            Box::new(|d| {
                d["spec"]["rules"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("validate");
            }),
            &["spec.rules[0]"],
        ),
        (
            "kind and missing metadata name",
            Box::new(|d| {
                d["kind"] = json!("Pod");
                d["metadata"] = json!({});
            }),
            &["kind", "metadata.name"],
        ),
        (
            "missing spec",
            Box::new(|d| {
                d.as_object_mut().unwrap().remove("spec");
            }),
            &["spec"],
        ),
        (
            "subject without name",
            Box::new(|d| {
                d["spec"]["rules"][2]["exclude"]["any"][0]["subjects"][0] = json!({"kind": "User"})
            }),
            &["spec.rules[2].exclude.any[0].subjects[0].name"],
        ),
    ];
    for (what, mutate, want) in cases {
        assert_eq!(paths_after(mutate), want, "{what}");
    }
}

#[test]
fn messages_say_what_is_wrong() {
    let mut doc = policy();
    doc["spec"]["rules"][2]["name"] = json!("a");
    doc["spec"]["validationFailureAction"] = json!("Block");
    doc["spec"]["rules"][0]["validate"]["deny"] = json!({});
    let text: Vec<String> = check(&doc).iter().map(ToString::to_string).collect();
    assert_eq!(
        text,
        [
            "spec.validationFailureAction: unsupported value \"Block\": expected one of Audit, Enforce, audit, enforce",
            "spec.rules[0].validate.pattern: validate allows only one of pattern, anyPattern, deny, foreach, cel, podSecurity, manifests, assert; also set: deny",
            "spec.rules[0].validate.deny: validate allows only one of pattern, anyPattern, deny, foreach, cel, podSecurity, manifests, assert; also set: pattern",
            "spec.rules[2].name: duplicate rule name \"a\" (also spec.rules[0].name)",
        ]
    );
}

#[test]
fn not_an_object() {
    assert_eq!(
        check(&json!([1])),
        [SchemaViolation {
            path: String::new(),
            message: "expected object, found array".into()
        }]
    );
}
