use serde_json::json;

use super::*;

fn policy(rule: Value) -> CompiledPolicy {
    CompiledPolicy::new(
        Policy::from_value(
            &json!({"apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
                    "metadata": {"name": "p"}, "spec": {"rules": [rule]}}),
            "test",
        )
        .unwrap(),
    )
}

fn pod(containers: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x", "namespace": "ns"},
           "spec": {"containers": containers}})
}

fn statuses(p: &CompiledPolicy, r: &Value) -> Vec<(String, RuleStatus)> {
    p.evaluate(r, &Request::default())
        .into_iter()
        .map(|r| (r.rule, r.status))
        .collect()
}

#[test]
fn deny_with_message_variables() {
    let p = policy(json!({
        "name": "no-latest",
        "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
        "validate": {
            "message": "image {{ request.object.spec.containers[0].image }} not allowed",
            "deny": {"conditions": {"any": [
                {"key": "{{ request.object.spec.containers[].image }}", "operator": "AnyIn", "value": ["*:latest"]}
            ]}}
        }
    }));
    let bad = p.evaluate(
        &pod(json!([{"name": "a", "image": "nginx:latest"}])),
        &Request::default(),
    );
    assert_eq!(bad[0].status, RuleStatus::Fail);
    assert!(
        bad[0].message.contains("image nginx:latest not allowed"),
        "{}",
        bad[0].message
    );
    let good = statuses(&p, &pod(json!([{"name": "a", "image": "nginx:1"}])));
    assert_eq!(good, [("no-latest".to_string(), RuleStatus::Pass)]);
}

#[test]
fn autogen_applies_to_deployments() {
    let p = policy(json!({
        "name": "no-host",
        "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
        "validate": {"pattern": {"spec": {"=(hostNetwork)": false}}}
    }));
    let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
                        "spec": {"template": {"spec": {"hostNetwork": true}}}});
    assert_eq!(
        statuses(&p, &deploy),
        [("autogen-no-host".to_string(), RuleStatus::Fail)]
    );
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}});
    assert!(statuses(&p, &svc).is_empty());
}

#[test]
fn foreach_with_preconditions_and_nesting() {
    let p = policy(json!({
        "name": "ports",
        "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
        "validate": {"message": "bad", "foreach": [{
            "list": "request.object.spec.containers",
            "preconditions": {"all": [{"key": "{{ element.name }}", "operator": "NotEquals", "value": "skipme"}]},
            "foreach": [{"list": "element.ports", "deny": {"conditions": {"all": [
                {"key": "{{ element.containerPort }}", "operator": "LessThan", "value": 1024}]}}}]
        }]}
    }));
    let low =
        pod(json!([{"name": "a", "ports": [{"containerPort": 8080}, {"containerPort": 80}]}]));
    assert_eq!(statuses(&p, &low)[0].1, RuleStatus::Fail);
    let skipped = pod(json!([{"name": "skipme", "ports": [{"containerPort": 80}]}]));
    assert_eq!(statuses(&p, &skipped)[0].1, RuleStatus::Skip);
    let high = pod(json!([{"name": "a", "ports": [{"containerPort": 8080}]}]));
    assert_eq!(statuses(&p, &high)[0].1, RuleStatus::Pass);
}

#[test]
fn preconditions_skip_and_context_variables() {
    let p = policy(json!({
        "name": "r",
        "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
        "context": [{"name": "count", "variable": {"jmesPath": "length(request.object.spec.containers)"}}],
        "preconditions": {"all": [{"key": "{{ request.operation }}", "operator": "Equals", "value": "UPDATE"}]},
        "validate": {"deny": {"conditions": {"all": [{"key": "{{ count }}", "operator": "GreaterThan", "value": 1}]}}}
    }));
    let two = pod(json!([{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]));
    assert_eq!(statuses(&p, &two)[0].1, RuleStatus::Skip);
    let mut req = Request::default();
    req.values
        .insert("request.operation".into(), json!("UPDATE"));
    assert_eq!(p.evaluate(&two, &req)[0].status, RuleStatus::Fail);
}

#[test]
fn unresolved_pattern_variable_is_an_error() {
    let p = policy(json!({
        "name": "r",
        "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
        "validate": {"pattern": {"metadata": {"name": "{{ request.object.nothing }}"}}}
    }));
    assert_eq!(statuses(&p, &pod(json!([])))[0].1, RuleStatus::Error);
}

#[test]
fn image_references() {
    let i = image_info("nginx");
    assert_eq!(i["registry"], "docker.io");
    assert_eq!(i["tag"], "latest");
    let i = image_info("ghcr.io/org/app:1.2@sha256:abc");
    assert_eq!(i["registry"], "ghcr.io");
    assert_eq!(i["path"], "org/app");
    assert_eq!(i["name"], "app");
    assert_eq!(i["tag"], "1.2");
    assert_eq!(i["digest"], "sha256:abc");
    let i = image_info("localhost:5000/app");
    assert_eq!(i["registry"], "localhost:5000");
    assert_eq!(i["tag"], "latest");
}

#[test]
fn notes_name_what_cannot_be_decided() {
    let p = policy(json!({
        "name": "r",
        "match": {"any": [{"resources": {"kinds": ["Pod"]}, "clusterRoles": ["admin"]}]},
        "context": [{"name": "cm", "configMap": {"name": "x", "namespace": "y"}}],
        "validate": {"deny": {}}
    }));
    let notes = p.notes();
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(notes[0].contains("user-info"));
    assert!(notes[1].contains("context"));
    // the user-info filter never matches, so the rule does not apply
    assert!(p.evaluate(&pod(json!([])), &Request::default()).is_empty());
}

/// The Kyverno CLI's values stand in for a context entry by its name or by a path under it
/// (`roles-dictionary.data.allowed-roles`), with quoted segments for keys holding dots, and
/// for entries declared inside a foreach too.
#[test]
fn values_stand_in_for_context_entries() {
    let p = policy(json!({
        "name": "allowed-roles",
        "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
        "context": [{"name": "roles-dictionary", "configMap": {"name": "roles", "namespace": "ns"}}],
        "validate": {"deny": {"conditions": {"all": [
            {"key": "{{ request.object.metadata.labels.role || '' }}", "operator": "AnyNotIn",
             "value": "{{ \"roles-dictionary\".data.\"allowed-roles\" }}"}
        ]}}}
    }));
    let mut resource = pod(json!([{"name": "a", "image": "nginx:1"}]));
    resource["metadata"]["labels"] = json!({"role": "admin"});
    let mut request = Request::default();
    let run = |request: &Request| p.evaluate(&resource, request)[0].status;
    // Unmocked: a configMap cannot be read offline.
    assert_eq!(run(&request), RuleStatus::Error);
    request.values.insert(
        "roles-dictionary.data.allowed-roles".into(),
        json!(["admin", "viewer"]),
    );
    assert_eq!(run(&request), RuleStatus::Pass);
    request.values.insert(
        "roles-dictionary.data.allowed-roles".into(),
        json!(["viewer"]),
    );
    assert_eq!(run(&request), RuleStatus::Fail);

    let mut ctx = EvalContext::new();
    ctx.set(
        "request.object.metadata.annotations.\"example.com/platform\"",
        json!("x"),
    );
    assert_eq!(
        ctx.root()["request"]["object"]["metadata"]["annotations"]["example.com/platform"],
        json!("x")
    );
    assert!(ctx.has("request.object.metadata.annotations.\"example.com/platform\""));

    let in_foreach = policy(json!({
        "name": "registries",
        "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
        "validate": {"foreach": [{
            "list": "request.object.spec.containers",
            "context": [{"name": "allowed", "configMap": {"name": "registries", "namespace": "ns"}}],
            "deny": {"conditions": {"all": [
                {"key": "{{ element.image }}", "operator": "AnyNotIn", "value": "{{ allowed.data.images }}"}
            ]}}
        }]}
    }));
    let mut request = Request::default();
    request
        .values
        .insert("allowed.data.images".into(), json!(["nginx:1"]));
    let r = in_foreach.evaluate(&resource, &request);
    assert_eq!(r[0].status, RuleStatus::Pass, "{}", r[0].message);
}

/// A variable's `default` has its variables substituted like its value.
#[test]
fn variable_defaults_are_substituted() {
    let p = policy(json!({
        "name": "team",
        "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
        "context": [{"name": "team", "variable": {
            "jmesPath": "request.object.metadata.labels.team",
            "default": "{{ request.object.metadata.namespace }}-team"
        }}],
        "validate": {"deny": {"conditions": {"all": [
            {"key": "{{ team }}", "operator": "NotEquals", "value": "ns-team"}
        ]}}}
    }));
    let r = p.evaluate(&pod(json!([])), &Request::default());
    assert_eq!(r[0].status, RuleStatus::Pass, "{}", r[0].message);
}

/// `foreach.elementScope: false` validates the resource, not the element, with each pattern.
#[test]
fn element_scope_false_validates_the_resource() {
    let rule = |scope: bool| {
        policy(json!({
            "name": "host",
            "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
            "validate": {"foreach": [{
                "list": "request.object.spec.containers",
                "elementScope": scope,
                "pattern": {"name": "a"}
            }]}
        }))
    };
    let resource = pod(json!([{"name": "a", "image": "nginx:1"}]));
    // The container is named `a`; the Pod itself has no top-level `name`.
    assert_eq!(statuses(&rule(true), &resource)[0].1, RuleStatus::Pass);
    assert_eq!(statuses(&rule(false), &resource)[0].1, RuleStatus::Fail);
}
