//! `match` / `exclude` against a resource and its admission request.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::model::{
    LabelSelector, MatchResources, ResourceDescription, ResourceFilter, SelectorOperator,
};
use crate::value::wildcard_match;

/// The facts about a resource and its request that matching looks at.
#[derive(Debug, Clone, Default)]
pub struct ResourceInfo {
    /// API group (`""` for core).
    pub group: String,
    /// API version (`v1`).
    pub version: String,
    /// Kind.
    pub kind: String,
    /// Name.
    pub name: String,
    /// Namespace (`""` for cluster-scoped resources).
    pub namespace: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// Admission operation (`CREATE`, `UPDATE`, `DELETE`, `CONNECT`).
    pub operation: String,
    /// Labels of the resource's namespace, when known.
    pub namespace_labels: BTreeMap<String, String>,
}

impl ResourceInfo {
    /// Reads kind, name, namespace, labels and annotations from a Kubernetes object.
    pub fn from_object(obj: &Value, operation: &str) -> ResourceInfo {
        let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g.to_string(), v.to_string()),
            None => (String::new(), api_version.to_string()),
        };
        let meta = obj.get("metadata");
        let text = |k: &str| {
            meta.and_then(|m| m.get(k))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let map = |k: &str| -> BTreeMap<String, String> {
            meta.and_then(|m| m.get(k))
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), crate::value::sprint(v)))
                        .collect()
                })
                .unwrap_or_default()
        };
        ResourceInfo {
            group,
            version,
            kind: obj
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            name: text("name"),
            namespace: text("namespace"),
            labels: map("labels"),
            annotations: map("annotations"),
            operation: operation.to_string(),
            namespace_labels: BTreeMap::new(),
        }
    }
}

/// Whether `match` selects the resource. User-info conditions (subjects, roles, cluster
/// roles) cannot be evaluated offline: a filter that has them does not match, as with the
/// Kyverno CLI's empty user.
pub fn matches(m: &MatchResources, r: &ResourceInfo) -> bool {
    if !m.any.is_empty() {
        return m.any.iter().any(|f| filter_matches(f, r));
    }
    if !m.all.is_empty() {
        return m.all.iter().all(|f| filter_matches(f, r));
    }
    if !m.subjects.is_empty() || !m.roles.is_empty() || !m.cluster_roles.is_empty() {
        return false;
    }
    m.resources
        .as_ref()
        .is_some_and(|d| description_matches(d, r))
}

/// Whether `exclude` removes the resource.
pub fn excluded(e: &MatchResources, r: &ResourceInfo) -> bool {
    if !e.any.is_empty() {
        return e.any.iter().any(|f| filter_matches(f, r));
    }
    if !e.all.is_empty() {
        return e.all.iter().all(|f| filter_matches(f, r));
    }
    if !e.subjects.is_empty() || !e.roles.is_empty() || !e.cluster_roles.is_empty() {
        return false;
    }
    e.resources
        .as_ref()
        .is_some_and(|d| *d != ResourceDescription::default() && description_matches(d, r))
}

fn filter_matches(f: &ResourceFilter, r: &ResourceInfo) -> bool {
    if !f.subjects.is_empty() || !f.roles.is_empty() || !f.cluster_roles.is_empty() {
        return false;
    }
    f.resources
        .as_ref()
        .is_some_and(|d| description_matches(d, r))
}

/// Whether every condition set in a resource description holds.
pub fn description_matches(d: &ResourceDescription, r: &ResourceInfo) -> bool {
    if !d.kinds.is_empty() && !d.kinds.iter().any(|k| kind_matches(k, r)) {
        return false;
    }
    if let Some(name) = &d.name {
        if !wildcard_match(name, &r.name) {
            return false;
        }
    }
    if !d.names.is_empty() && !d.names.iter().any(|n| wildcard_match(n, &r.name)) {
        return false;
    }
    if !d.namespaces.is_empty() {
        let ns = if r.kind == "Namespace" {
            &r.name
        } else {
            &r.namespace
        };
        if !d.namespaces.iter().any(|n| wildcard_match(n, ns)) {
            return false;
        }
    }
    if let Some(annotations) = &d.annotations {
        let ok = annotations.iter().all(|(k, v)| {
            r.annotations
                .iter()
                .any(|(rk, rv)| wildcard_match(k, rk) && wildcard_match(v, rv))
        });
        if !ok {
            return false;
        }
    }
    if let Some(sel) = &d.selector {
        if !selector_matches(sel, &r.labels) {
            return false;
        }
    }
    if let Some(sel) = &d.namespace_selector {
        if !selector_matches(sel, &r.namespace_labels) {
            return false;
        }
    }
    if !d.operations.is_empty() && !d.operations.iter().any(|o| o == &r.operation) {
        return false;
    }
    true
}

/// Parses a kind selector into `(group, version, kind, subresource)` patterns.
pub fn parse_kind_selector(s: &str) -> (&str, &str, &str, &str) {
    let parts: Vec<&str> = s.split('/').collect();
    let upper = |p: &str| p.chars().next().is_some_and(|c| c.is_ascii_uppercase());
    match parts.as_slice() {
        [k] => ("*", "*", k, ""),
        [a, b] if upper(a) => ("*", "*", a, b),
        [v, k] => ("*", v, k, ""),
        [v, k, sub] if upper(k) => ("*", v, k, sub),
        [g, v, k] => (g, v, k, ""),
        [g, v, k, sub, ..] => (g, v, k, sub),
        [] => ("*", "*", "", ""),
    }
}

fn kind_matches(selector: &str, r: &ResourceInfo) -> bool {
    let (g, v, k, sub) = parse_kind_selector(selector);
    if !sub.is_empty() && sub != "*" {
        return false;
    }
    wildcard_match(g, &r.group) && wildcard_match(v, &r.version) && wildcard_match(k, &r.kind)
}

/// Label selector semantics (Kyverno allows wildcards in `matchLabels`).
pub fn selector_matches(sel: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let labels_ok = sel.match_labels.iter().all(|(k, v)| {
        labels
            .iter()
            .any(|(lk, lv)| wildcard_match(k, lk) && wildcard_match(v, lv))
    });
    labels_ok
        && sel.match_expressions.iter().all(|e| {
            let got = labels.get(&e.key);
            match e.operator {
                SelectorOperator::In => got.is_some_and(|v| e.values.contains(v)),
                SelectorOperator::NotIn => got.is_none_or(|v| !e.values.contains(v)),
                SelectorOperator::Exists => got.is_some(),
                SelectorOperator::DoesNotExist => got.is_none(),
            }
        })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn deploy() -> ResourceInfo {
        let mut r = ResourceInfo::from_object(
            &json!({"apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": "web", "namespace": "prod", "labels": {"app": "web"},
                                 "annotations": {"team": "a"}}}),
            "CREATE",
        );
        r.namespace_labels.insert("env".into(), "prod".into());
        r
    }

    fn desc(v: Value) -> ResourceDescription {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn kinds_in_all_forms() {
        let r = deploy();
        for (k, want) in [
            ("Deployment", true),
            ("apps/v1/Deployment", true),
            ("v1/Deployment", true),
            ("apps/*/Deployment", true),
            ("batch/v1/Deployment", false),
            ("Deploy*", true),
            ("*", true),
            ("Pod", false),
            ("Deployment/scale", false),
        ] {
            assert_eq!(
                description_matches(&desc(json!({"kinds": [k]})), &r),
                want,
                "{k}"
            );
        }
    }

    #[test]
    fn other_conditions() {
        let r = deploy();
        assert!(description_matches(
            &desc(json!({"names": ["w*"], "namespaces": ["prod"]})),
            &r
        ));
        assert!(!description_matches(
            &desc(json!({"namespaces": ["dev"]})),
            &r
        ));
        assert!(description_matches(
            &desc(json!({"selector": {"matchLabels": {"app": "w*"}}})),
            &r
        ));
        assert!(!description_matches(
            &desc(
                json!({"selector": {"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]}})
            ),
            &r
        ));
        assert!(description_matches(
            &desc(json!({"namespaceSelector": {"matchLabels": {"env": "prod"}}})),
            &r
        ));
        assert!(description_matches(
            &desc(json!({"annotations": {"team": "?"}})),
            &r
        ));
        assert!(!description_matches(
            &desc(json!({"operations": ["UPDATE"]})),
            &r
        ));
    }

    #[test]
    fn any_all_and_exclude() {
        let r = deploy();
        let m: MatchResources = serde_json::from_value(json!({"any": [
            {"resources": {"kinds": ["Pod"]}}, {"resources": {"kinds": ["Deployment"]}}]}))
        .unwrap();
        assert!(matches(&m, &r));
        let m: MatchResources = serde_json::from_value(json!({"all": [
            {"resources": {"kinds": ["Pod"]}}, {"resources": {"kinds": ["Deployment"]}}]}))
        .unwrap();
        assert!(!matches(&m, &r));
        let e: MatchResources = serde_json::from_value(json!({"any": [
            {"clusterRoles": ["cluster-admin"]}]}))
        .unwrap();
        assert!(!excluded(&e, &r));
        let e: MatchResources =
            serde_json::from_value(json!({"resources": {"namespaces": ["prod"]}})).unwrap();
        assert!(excluded(&e, &r));
    }
}
