//! The manifests of existing policies: finding one, readying it for `kubectl apply`, and
//! showing a change to it.

use netpol::policy::PolicyRef;
use serde_json::Value;

/// Metadata fields the API server writes; a suggestion for `kubectl apply` leaves them out.
const SERVER_FIELDS: [&str; 7] = [
    "resourceVersion",
    "uid",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
];

/// The NetworkPolicy manifest of `id` among `sources`.
pub(crate) fn find_source<'a>(sources: &'a [Value], id: &PolicyRef) -> Option<&'a Value> {
    let ns = id.namespace.as_deref().unwrap_or("default");
    sources.iter().find(|d| {
        d.get("kind").and_then(Value::as_str) == Some("NetworkPolicy")
            && d.pointer("/metadata/name").and_then(Value::as_str) == Some(id.name.as_str())
            && d.pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("default")
                == ns
    })
}

/// The manifest without what the API server adds (status, server metadata, kubectl's
/// last-applied annotation).
pub(crate) fn clean(source: &Value) -> Value {
    let mut doc = source.clone();
    if let Some(meta) = doc.get_mut("metadata").and_then(Value::as_object_mut) {
        for f in SERVER_FIELDS {
            meta.remove(f);
        }
        if let Some(a) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            a.remove("kubectl.kubernetes.io/last-applied-configuration");
        }
    }
    if let Some(obj) = doc.as_object_mut() {
        obj.remove("status");
    }
    doc
}

/// A unified diff of two YAML texts of the policy `name` (`namespace/name`).
pub(crate) fn unified_diff(before: &str, after: &str, name: &str) -> String {
    similar::TextDiff::from_lines(before, after)
        .unified_diff()
        .header(&format!("a/{name}"), &format!("b/{name}"))
        .to_string()
}
