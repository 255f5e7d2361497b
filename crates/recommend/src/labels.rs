//! Selectors a suggested policy names: the narrowest stable labels of a workload's pods.

use std::collections::BTreeMap;

use netpol::model::{Inventory, Pod, WorkloadRef};

/// Labels a controller sets per pod or per revision: selecting by them breaks on rollout.
const UNSTABLE: [&str; 9] = [
    "pod-template-hash",
    "controller-revision-hash",
    "pod-template-generation",
    "statefulset.kubernetes.io/pod-name",
    "apps.kubernetes.io/pod-index",
    "job-name",
    "controller-uid",
    "batch.kubernetes.io/job-name",
    "batch.kubernetes.io/controller-uid",
];

/// Label sets tried in order, narrowest-looking first.
const PREFERRED: [&[&str]; 5] = [
    &["app.kubernetes.io/name"],
    &["app.kubernetes.io/name", "app.kubernetes.io/instance"],
    &["app"],
    &["k8s-app"],
    &["name"],
];

/// The labels to select `workload`'s pods by: the first preferred set its pods all carry
/// (with one value) that selects no other pod of the namespace, else all its stable labels
/// if those do; `None` when no stable selector tells the workload apart.
pub(crate) fn stable_selector(
    inv: &Inventory,
    workload: &WorkloadRef,
) -> Option<BTreeMap<String, String>> {
    let (own, others): (Vec<&Pod>, Vec<&Pod>) = inv
        .pods
        .iter()
        .filter(|p| p.namespace == workload.namespace)
        .partition(|p| &p.workload == workload);
    let first = own.first()?;
    let common = |keys: &mut dyn Iterator<Item = &str>| -> Option<BTreeMap<String, String>> {
        let mut sel = BTreeMap::new();
        for k in keys {
            let v = first.labels.get(k)?;
            if own.iter().any(|p| p.labels.get(k) != Some(v)) {
                return None;
            }
            sel.insert(k.to_string(), v.clone());
        }
        (!sel.is_empty()).then_some(sel)
    };
    let unique = |sel: &BTreeMap<String, String>| {
        !others
            .iter()
            .any(|p| sel.iter().all(|(k, v)| p.labels.get(k) == Some(v)))
    };
    PREFERRED
        .iter()
        .filter_map(|keys| common(&mut keys.iter().copied()))
        .find(&unique)
        .or_else(|| {
            let mut stable = first
                .labels
                .keys()
                .map(String::as_str)
                .filter(|k| !UNSTABLE.contains(k));
            common(&mut stable).filter(&unique)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use netpol::Bundle;

    fn inv(yaml: &str) -> Inventory {
        let mut b = Bundle::default();
        b.load_str(yaml, "t.yaml").unwrap();
        b.inventory
    }

    fn w(ns: &str, name: &str, kind: &str) -> WorkloadRef {
        WorkloadRef {
            namespace: ns.into(),
            name: name.into(),
            kind: kind.into(),
        }
    }

    #[test]
    fn prefers_the_recommended_name_label_and_never_a_hash() {
        let inv = inv(r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app.kubernetes.io/name: web}}
  template:
    metadata: {labels: {app.kubernetes.io/name: web, pod-template-hash: abc, tier: front}}
    spec: {containers: [{name: c, image: x}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: shop}
spec:
  selector: {matchLabels: {tier: front, role: api}}
  template:
    metadata: {labels: {tier: front, role: api, pod-template-hash: abc}}
    spec: {containers: [{name: c, image: x}]}
"#);
        assert_eq!(
            stable_selector(&inv, &w("shop", "web", "Deployment")),
            Some([("app.kubernetes.io/name".into(), "web".into())].into())
        );
        // No preferred label: every stable label, without the hash.
        assert_eq!(
            stable_selector(&inv, &w("shop", "api", "Deployment")),
            Some(
                [
                    ("role".into(), "api".into()),
                    ("tier".into(), "front".into())
                ]
                .into()
            )
        );
    }

    #[test]
    fn a_label_shared_with_another_workload_is_not_enough() {
        let inv = inv(r#"
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: ns, labels: {app: same}}
---
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: ns, labels: {app: same}}
"#);
        assert_eq!(stable_selector(&inv, &w("ns", "a", "Pod")), None);
    }
}
