//! Kyverno ClusterPolicies from detected rules: deny only, Enforce, linked to the pattern.

use serde_json::{json, Value};

use crate::analyze::{Analysis, Rule};
use crate::Pattern;

/// The ClusterPolicy for a pattern's rules (`None` when it has none): one validate rule each,
/// matching Pods (Kyverno derives the rules for their controllers) or, for replica minimums,
/// Deployments and StatefulSets.
pub fn generate(pattern: &Pattern, analysis: &Analysis) -> Option<Value> {
    if analysis.rules.is_empty() {
        return None;
    }
    let rules: Vec<Value> = analysis
        .rules
        .iter()
        .enumerate()
        .map(|(i, (statement, rule))| rule_json(i, statement, rule))
        .collect();
    Some(json!({
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {
            "name": pattern.id,
            "annotations": {
                "policies.kyverno.io/title": pattern.id,
                "policies.kyverno.io/description": pattern.description,
                "policyhub.io/pattern": pattern.id,
                "policyhub.io/pattern-version": pattern.version.to_string(),
            },
            "labels": {"app.kubernetes.io/managed-by": "policyhub"},
        },
        "spec": {
            "validationFailureAction": "Enforce",
            "background": true,
            "rules": rules,
        },
    }))
}

/// The rule name Kyverno reports: the rule's kind and its position.
pub(crate) fn rule_name(i: usize, rule: &Rule) -> String {
    let kind = match rule {
        Rule::RequireLabel { .. } => "require-label",
        Rule::RequireAnnotation { .. } => "require-annotation",
        Rule::DenyLatestTag => "deny-latest-tag",
        Rule::RequireRegistry { .. } => "require-registry",
        Rule::RequireLimit { .. } => "require-limit",
        Rule::RequireRequest { .. } => "require-request",
        Rule::DenyPrivileged => "deny-privileged",
        Rule::DenyHostNamespace { .. } => "deny-host-namespace",
        Rule::DenyHostPath => "deny-host-path",
        Rule::RequireRunAsNonRoot => "require-run-as-non-root",
        Rule::RequireProbe { .. } => "require-probe",
        Rule::MinReplicas { .. } => "min-replicas",
    };
    format!("{kind}-{}", i + 1)
}

/// Every container list of a Pod spec carries `each`.
fn all_containers(each: Value) -> Value {
    json!({"containers": [each.clone()], "=(initContainers)": [each]})
}

fn rule_json(i: usize, statement: &str, rule: &Rule) -> Value {
    let pods = json!({"any": [{"resources": {"kinds": ["Pod"]}}]});
    let (matches, message, validate) = match rule {
        Rule::RequireLabel { key } => (
            pods,
            format!("the label {key} is required"),
            json!({"pattern": {"metadata": {"labels": {key: "?*"}}}}),
        ),
        Rule::RequireAnnotation { key } => (
            pods,
            format!("the annotation {key} is required"),
            json!({"pattern": {"metadata": {"annotations": {key: "?*"}}}}),
        ),
        Rule::DenyLatestTag => (
            pods,
            "images must name a tag other than latest".into(),
            json!({"pattern": {"spec": all_containers(json!({"image": "*:* & !*:latest"}))}}),
        ),
        Rule::RequireRegistry { prefix } => (
            pods,
            format!("images must come from {prefix}/"),
            json!({"pattern": {"spec": all_containers(json!({"image": format!("{prefix}/*")}))}}),
        ),
        Rule::RequireLimit { resource } => (
            pods,
            format!("containers must set a {resource} limit"),
            json!({"pattern": {"spec": {"containers": [{"resources": {"limits": {resource: "?*"}}}]}}}),
        ),
        Rule::RequireRequest { resource } => (
            pods,
            format!("containers must set a {resource} request"),
            json!({"pattern": {"spec": {"containers": [{"resources": {"requests": {resource: "?*"}}}]}}}),
        ),
        Rule::DenyPrivileged => (
            pods,
            "privileged containers are not allowed".into(),
            json!({"pattern": {"spec": all_containers(json!({"=(securityContext)": {"=(privileged)": "false"}}))}}),
        ),
        Rule::DenyHostNamespace { namespace } => (
            pods,
            format!("the host {namespace} namespace is not allowed"),
            json!({"pattern": {"spec": {format!("=(host{namespace})"): "false"}}}),
        ),
        Rule::DenyHostPath => (
            pods,
            "hostPath volumes are not allowed".into(),
            json!({"pattern": {"spec": {"=(volumes)": [{"X(hostPath)": "null"}]}}}),
        ),
        Rule::RequireRunAsNonRoot => (
            pods,
            "the Pod must run as a non-root user (securityContext.runAsNonRoot: true)".into(),
            json!({"pattern": {"spec": {"securityContext": {"runAsNonRoot": true}}}}),
        ),
        Rule::RequireProbe { probe } => (
            pods,
            format!("every container must define a {probe} probe"),
            json!({"deny": {"conditions": {"any": [{
                "key": format!("{{{{ request.object.spec.containers[?!{probe}Probe] | length(@) }}}}"),
                "operator": "GreaterThan",
                "value": 0,
            }]}}}),
        ),
        Rule::MinReplicas { min } => (
            json!({"any": [{"resources": {"kinds": ["Deployment", "StatefulSet"]}}]}),
            format!("at least {min} replicas are required"),
            json!({"pattern": {"spec": {"replicas": format!(">={min}")}}}),
        ),
    };
    let mut validate = validate;
    validate["message"] = json!(format!("{message} (pattern statement: {statement})"));
    json!({
        "name": rule_name(i, rule),
        "match": matches,
        "validate": validate,
    })
}
