use serde_json::json;

use super::*;

fn pod(name: &str, node: &str, ip: &str, phase: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "shop",
            "labels": {"app": name},
            "uid": "d6f1",
            "resourceVersion": "12",
            "annotations": {"note": "dropped"},
            "managedFields": [{"manager": "kubectl"}],
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "1", "controller": true}]
        },
        "spec": {
            "nodeName": node,
            "containers": [{"name": "c", "image": "nginx", "ports": [{"containerPort": 80}]}],
            "volumes": [{"name": "v"}]
        },
        "status": {
            "phase": phase,
            "podIP": ip,
            "podIPs": [{"ip": ip}, {"ip": "fd00::1"}],
            "conditions": [{"type": "Ready"}]
        }
    })
}

#[test]
fn apply_strips_what_the_engine_does_not_read() {
    let mut inv = Inventory::default();
    assert!(inv
        .apply(pod("web", "node-a", "10.0.0.1", "Running"))
        .unwrap());
    let key = ObjectKey::new(Kind::Pod, Some("shop"), "web");
    let stored = inv.get(&key).unwrap();
    assert_eq!(
        stored,
        &json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "web",
                "namespace": "shop",
                "labels": {"app": "web"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "controller": true}]
            },
            "spec": {"nodeName": "node-a", "containers": [{"name": "c", "ports": [{"containerPort": 80}]}]},
            "status": {"phase": "Running", "podIP": "10.0.0.1", "podIPs": [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}]}
        })
    );
}

#[test]
fn generation_counts_changes_only() {
    let mut inv = Inventory::default();
    inv.apply(pod("web", "node-a", "10.0.0.1", "Running"))
        .unwrap();
    assert_eq!(inv.generation(), 1);
    assert!(!inv
        .apply(pod("web", "node-a", "10.0.0.1", "Running"))
        .unwrap());
    assert_eq!(inv.generation(), 1);
    inv.apply(pod("web", "node-a", "10.0.0.2", "Running"))
        .unwrap();
    assert_eq!(inv.generation(), 2);
    let key = ObjectKey::new(Kind::Pod, Some("shop"), "web");
    assert!(inv.delete(&key));
    assert!(!inv.delete(&key));
    assert_eq!(inv.generation(), 3);
}

#[test]
fn kind_and_api_version_are_filled_in_and_checked() {
    let mut inv = Inventory::default();
    inv.apply(json!({"kind": "Namespace", "metadata": {"name": "shop", "namespace": "x"}, "spec": {"finalizers": ["kubernetes"]}}))
        .unwrap();
    let ns = inv
        .get(&ObjectKey::new(Kind::Namespace, None, "shop"))
        .unwrap();
    assert_eq!(
        ns,
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})
    );

    let calico = json!({"apiVersion": "crd.projectcalico.org/v1", "kind": "NetworkPolicy", "metadata": {"name": "p"}});
    assert!(matches!(inv.apply(calico), Err(Error::Unsupported { .. })));
    let nameless = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"namespace": "shop"}});
    assert_eq!(
        inv.apply(nameless).unwrap_err().to_string(),
        "Pod without metadata.name"
    );
    assert!(matches!(inv.apply(json!("text")), Err(Error::NotAnObject)));
    assert!(matches!(
        inv.apply(json!({"kind": "Pod", "metadata": null})),
        Err(Error::MissingName { .. })
    ));

    let np = json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "p"}});
    let err = inv.apply(np.clone()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "NetworkPolicy default/p: missing field `spec`"
    );
    let mut np = np;
    np["spec"] = json!({"podSelector": {}});
    inv.apply(np).unwrap();
    assert!(inv
        .get(&ObjectKey::new(Kind::NetworkPolicy, Some("default"), "p"))
        .is_some());
    assert_eq!(inv.len(), 2);
}

#[test]
fn an_object_the_engine_rejects_is_not_stored() {
    let mut inv = Inventory::default();
    let bad = json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "p", "namespace": "shop"},
        "spec": {"podSelector": {}, "ingress": [{"ports": [{"port": 70000}]}]}
    });
    let err = inv.apply(bad).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("NetworkPolicy shop/p: spec.ingress[0].ports[0].port: "),
        "{err}"
    );
    assert!(inv.is_empty());
    assert_eq!(inv.generation(), 0);
}

#[test]
fn replace_kind_removes_what_a_relist_no_longer_has() {
    let mut inv = Inventory::default();
    inv.apply(json!({"kind": "Namespace", "metadata": {"name": "shop"}}))
        .unwrap();
    let first = [
        pod("a", "n", "10.0.0.1", "Running"),
        pod("b", "n", "10.0.0.2", "Running"),
    ];
    assert!(inv.replace_kind(Kind::Pod, first.clone()).is_empty());
    assert_eq!((inv.len(), inv.generation()), (3, 2));
    assert!(inv.replace_kind(Kind::Pod, first).is_empty());
    assert_eq!(inv.generation(), 2, "an identical relist changes nothing");

    let nameless = json!({"kind": "Pod", "metadata": {}});
    let ns = json!({"kind": "Namespace", "metadata": {"name": "x"}});
    let errors = inv.replace_kind(
        Kind::Pod,
        [pod("b", "n", "10.0.0.2", "Running"), nameless, ns],
    );
    assert_eq!(errors.len(), 2);
    assert!(matches!(errors[1], Error::OtherKind { .. }));
    let keys: Vec<String> = inv.documents().map(|(k, _)| k.to_string()).collect();
    assert_eq!(keys, ["Namespace shop", "Pod shop/b"]);
}

#[test]
fn local_pod_ips_are_those_of_live_pods_on_the_node() {
    let mut inv = Inventory::default();
    inv.apply(pod("a", "node-a", "10.0.0.1", "Running"))
        .unwrap();
    inv.apply(pod("b", "node-b", "10.0.0.2", "Running"))
        .unwrap();
    inv.apply(pod("c", "node-a", "10.0.0.3", "Succeeded"))
        .unwrap();
    let ips = inv.local_pod_ips("node-a");
    let want: HashSet<IpAddr> = ["10.0.0.1", "fd00::1"].map(|s| s.parse().unwrap()).into();
    assert_eq!(ips, want);
    let engine = inv.engine(netpol::Options::default()).unwrap();
    let names: Vec<&str> = engine
        .inventory()
        .pods
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(names, ["a", "b"], "finished pods are not evaluated");
}

#[test]
fn to_yaml_loads_back_to_the_same_documents() {
    let mut inv = Inventory::default();
    inv.apply(pod("a", "node-a", "10.0.0.1", "Running"))
        .unwrap();
    inv.apply(
        json!({"kind": "Namespace", "metadata": {"name": "shop", "labels": {"team": "shop"}}}),
    )
    .unwrap();
    let mut back = Inventory::default();
    assert!(back
        .load_str(&inv.to_yaml().unwrap(), "dump.yaml")
        .unwrap()
        .is_empty());
    assert!(inv.documents().eq(back.documents()));
}

#[test]
fn snapshot_workloads_stand_in_for_their_pods() {
    let mut inv = Inventory::default();
    let skipped = inv
        .load_str(
            r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: nginx}]}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: shop}
spec: {selector: {matchLabels: {app: db}}}
"#,
            "shop.yaml",
        )
        .unwrap();
    // The StatefulSet has no template: skipped with the engine's message.
    assert_eq!(skipped.len(), 1);
    assert!(
        skipped[0].to_string().contains("template"),
        "{}",
        skipped[0]
    );
    let engine = inv.engine(netpol::Options::default()).unwrap();
    assert_eq!(engine.inventory().pods.len(), 1);
    assert_eq!(engine.inventory().pods[0].workload.name, "web");
    assert_eq!(inv.generation(), 1);
    assert!(inv.to_yaml().unwrap().contains("kind: Deployment"));
}
