//! Endpoint resolution: which snapshot pod, reserved identity or address a flow's source or
//! destination is.
//!
//! In order: a `reserved:` label or reserved identity number; the pod named by namespace and
//! `pod_name`; the pod with the flow's IP; a pod of the named workload in the namespace
//! (ReplicaSet names are matched to their Deployment); a pod whose labels equal the flow's
//! `k8s:` labels (Cilium's own `io.cilium.k8s.*` and hash labels left out). An endpoint with
//! a namespace that matches none of these is a pod the snapshot does not have: unresolved.
//! One without any Kubernetes information is resolved by IP (a pod, or an outside address).

use std::borrow::Borrow;
use std::net::IpAddr;

use netpol::policy::Entity;
use netpol::{Endpoint, Engine};
use rustc_hash::FxHashMap;

use crate::hubble;

/// An endpoint as aggregation keys it: workload, reserved identity or address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EpKey {
    Workload(u32),
    Entity(u8),
    Ip(IpAddr),
}

/// Lookups built once over the engine's inventory; `E` is how the engine is held (`&Engine`
/// for one run, `Arc<Engine>` for an agent that swaps engines).
pub struct Resolver<E> {
    engine: E,
    by_name: FxHashMap<Box<str>, FxHashMap<Box<str>, usize>>,
    by_workload: FxHashMap<Box<str>, FxHashMap<Box<str>, usize>>,
    by_labels: FxHashMap<String, usize>,
    workload_of_pod: Vec<u32>,
    workload_names: Vec<String>,
}

/// Reserved identity numbers (Cilium `identity.NumericIdentity`) and their entity.
const RESERVED_IDS: [(u64, Entity); 10] = [
    (1, Entity::Host),
    (2, Entity::World),
    (3, Entity::Unmanaged),
    (4, Entity::Health),
    (5, Entity::Init),
    (6, Entity::RemoteNode),
    (7, Entity::KubeApiserver),
    (8, Entity::Ingress),
    (9, Entity::World),
    (10, Entity::World),
];

/// Which reserved label wins when an endpoint carries several (`reserved:kube-apiserver`
/// with `reserved:world`): the most specific first.
const RESERVED_ORDER: [Entity; 8] = [
    Entity::KubeApiserver,
    Entity::Host,
    Entity::RemoteNode,
    Entity::Health,
    Entity::Init,
    Entity::Ingress,
    Entity::Unmanaged,
    Entity::World,
];

/// Labels that Cilium adds or that differ per pod of a workload; left out of label matching.
fn ignored_label(key: &str) -> bool {
    key.starts_with("io.cilium.k8s.")
        || key.starts_with("io.cilium.")
        || key == "io.kubernetes.pod.namespace"
        || key == "pod-template-hash"
        || key == "controller-revision-hash"
        || key == "pod-template-generation"
        || key == "statefulset.kubernetes.io/pod-name"
        || key == "apps.kubernetes.io/pod-index"
}

fn label_key<'a>(ns: &str, pairs: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut pairs: Vec<(&str, &str)> = pairs.filter(|(k, _)| !ignored_label(k)).collect();
    pairs.sort_unstable();
    let mut key = String::from(ns);
    for (k, v) in pairs {
        key.push('\0');
        key.push_str(k);
        key.push('=');
        key.push_str(v);
    }
    key
}

/// A ReplicaSet called `web-7d9f8b` belongs to the Deployment `web`.
fn deployment_of_replicaset(name: &str) -> Option<&str> {
    name.rsplit_once('-').map(|(d, _)| d)
}

impl<E: Borrow<Engine>> Resolver<E> {
    pub fn new(engine: E) -> Self {
        let mut r = Resolver {
            engine,
            by_name: FxHashMap::default(),
            by_workload: FxHashMap::default(),
            by_labels: FxHashMap::default(),
            workload_of_pod: Vec::new(),
            workload_names: Vec::new(),
        };
        let mut workload_ids: FxHashMap<String, u32> = FxHashMap::default();
        let inventory = r.engine.borrow().inventory();
        for (i, pod) in inventory.pods.iter().enumerate() {
            let ns: Box<str> = pod.namespace.as_str().into();
            r.by_name
                .entry(ns.clone())
                .or_default()
                .entry(pod.name.as_str().into())
                .or_insert(i);
            let workloads = r.by_workload.entry(ns).or_default();
            workloads
                .entry(pod.workload.name.as_str().into())
                .or_insert(i);
            if pod.workload.kind == "ReplicaSet" {
                if let Some(d) = deployment_of_replicaset(&pod.workload.name) {
                    workloads.entry(d.into()).or_insert(i);
                }
            }
            let key = label_key(
                &pod.namespace,
                pod.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            );
            r.by_labels.entry(key).or_insert(i);
            let mut wname = format!("{}/{}", pod.workload.namespace, pod.workload.name);
            if pod.workload.kind == "ReplicaSet" {
                if let Some(d) = deployment_of_replicaset(&pod.workload.name) {
                    wname = format!("{}/{}", pod.workload.namespace, d);
                }
            }
            let next = workload_ids.len() as u32;
            let id = *workload_ids.entry(wname.clone()).or_insert_with(|| {
                r.workload_names.push(wname);
                next
            });
            r.workload_of_pod.push(id);
        }
        r
    }

    pub fn engine(&self) -> &Engine {
        self.engine.borrow()
    }

    /// Workload names (`namespace/workload`), indexed by [`EpKey::Workload`].
    pub fn workload_names(&self) -> &[String] {
        &self.workload_names
    }

    /// The endpoint a flow's source or destination is, or `None` when it names a pod the
    /// snapshot lacks (or carries nothing to go by).
    pub fn resolve(
        &self,
        ep: Option<&hubble::Endpoint<'_>>,
        ip: Option<IpAddr>,
    ) -> Option<Endpoint> {
        let Some(ep) = ep else {
            return ip.map(|ip| self.engine().endpoint_for_ip(ip));
        };
        if let Some(entity) = reserved(ep) {
            return Some(match (entity, ip) {
                (Entity::World, Some(ip)) => Endpoint::External(ip),
                (e, ip) => Endpoint::Entity(e, ip),
            });
        }
        let ns = ep.namespace.as_deref().filter(|n| !n.is_empty());
        let Some(ns) = ns else {
            return ip.map(|ip| self.engine().endpoint_for_ip(ip));
        };
        if let Some(pod) = ep.pod_name.as_deref() {
            if let Some(&i) = self.by_name.get(ns).and_then(|m| m.get(pod)) {
                return Some(Endpoint::Pod(i));
            }
        }
        if let Some(ip) = ip {
            if let e @ Endpoint::Pod(_) = self.engine().endpoint_for_ip(ip) {
                return Some(e);
            }
        }
        if ep.workloads_raw.is_some() {
            let by_ns = self.by_workload.get(ns);
            for w in ep.workloads() {
                if let Some(&i) = w.name.as_deref().and_then(|n| by_ns.and_then(|m| m.get(n))) {
                    return Some(Endpoint::Pod(i));
                }
            }
        }
        if ep.labels_raw.is_some() {
            let labels = ep.labels();
            let pairs = labels
                .iter()
                .filter_map(|l| l.strip_prefix("k8s:"))
                .filter_map(|l| l.split_once('='));
            if let Some(&i) = self.by_labels.get(&label_key(ns, pairs)) {
                return Some(Endpoint::Pod(i));
            }
        }
        None
    }

    /// The aggregation key of an endpoint.
    pub fn key(&self, ep: &Endpoint) -> EpKey {
        match ep {
            Endpoint::Pod(i) => EpKey::Workload(self.workload_of_pod.get(*i).copied().unwrap_or(0)),
            Endpoint::External(ip) => EpKey::Ip(*ip),
            Endpoint::Entity(e, _) => EpKey::Entity(*e as u8),
        }
    }

    /// Display name of an aggregation key: `namespace/workload`, `reserved:host`, an address.
    pub fn key_name(&self, key: &EpKey) -> String {
        match key {
            EpKey::Workload(i) => self
                .workload_names
                .get(*i as usize)
                .cloned()
                .unwrap_or_default(),
            EpKey::Entity(e) => Entity::NAMES
                .iter()
                .find(|(_, x)| *x as u8 == *e)
                .map_or_else(
                    || "reserved:unknown".into(),
                    |(n, _)| format!("reserved:{n}"),
                ),
            EpKey::Ip(ip) => ip.to_string(),
        }
    }
}

/// The reserved identity of an endpoint, from its labels or identity number.
fn reserved(ep: &hubble::Endpoint<'_>) -> Option<Entity> {
    let has_k8s = ep.namespace.as_deref().is_some_and(|n| !n.is_empty()) || ep.pod_name.is_some();
    // Pods carry `k8s:` labels only; look for reserved ones elsewhere.
    if !has_k8s {
        let mut found: Option<usize> = None;
        for l in ep.labels() {
            if let Some(name) = l.strip_prefix("reserved:") {
                if let Some(e) = Entity::parse(name) {
                    let rank = RESERVED_ORDER
                        .iter()
                        .position(|x| *x == e)
                        .unwrap_or(usize::MAX);
                    found = Some(found.map_or(rank, |f| f.min(rank)));
                }
            } else if l.starts_with("cidr:") || l.starts_with("fqdn:") {
                found = Some(found.map_or(RESERVED_ORDER.len() - 1, |f| {
                    f.min(RESERVED_ORDER.len() - 1)
                }));
            }
        }
        if let Some(rank) = found {
            return RESERVED_ORDER.get(rank).copied();
        }
    }
    match ep.identity {
        Some(id) if !has_k8s => RESERVED_IDS
            .iter()
            .find(|(n, _)| *n == id.0)
            .map(|(_, e)| *e)
            .or_else(|| (id.0 >= 1 << 24).then_some(Entity::World)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netpol::{Bundle, Options};

    const SNAPSHOT: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: web-7d9f8b-abcde
  namespace: shop
  labels: {app: web, pod-template-hash: 7d9f8b}
  ownerReferences: [{kind: ReplicaSet, name: web-7d9f8b, controller: true}]
status: {podIP: 10.0.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: db-0, namespace: shop, labels: {app: db}}
"#;

    fn engine() -> Engine {
        let mut b = Bundle::default();
        b.load_str(SNAPSHOT, "t.yaml").unwrap();
        Engine::new(b.inventory, b.policies, Options::default())
    }

    fn ep(json: &str) -> hubble::Endpoint<'_> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn by_name_ip_workload_and_labels() {
        let engine = engine();
        let r = Resolver::new(&engine);
        let web = Some(Endpoint::Pod(0));
        let by_name = ep(r#"{"namespace":"shop","pod_name":"web-7d9f8b-abcde"}"#);
        assert_eq!(r.resolve(Some(&by_name), None), web);
        // A pod name the snapshot lacks, found by IP, by Deployment, or by labels.
        let other = ep(r#"{"namespace":"shop","pod_name":"web-7d9f8b-zzzzz"}"#);
        assert_eq!(
            r.resolve(Some(&other), Some("10.0.0.1".parse().unwrap())),
            web
        );
        assert_eq!(r.resolve(Some(&other), None), None);
        let by_workload = ep(
            r#"{"namespace":"shop","pod_name":"x","workloads":[{"name":"web","kind":"Deployment"}]}"#,
        );
        assert_eq!(r.resolve(Some(&by_workload), None), web);
        let by_labels = ep(
            r#"{"namespace":"shop","labels":["k8s:app=db","k8s:io.kubernetes.pod.namespace=shop","k8s:io.cilium.k8s.policy.cluster=c"]}"#,
        );
        assert_eq!(r.resolve(Some(&by_labels), None), Some(Endpoint::Pod(1)));
        // Aggregation names the Deployment, not the ReplicaSet.
        assert_eq!(r.key_name(&r.key(&Endpoint::Pod(0))), "shop/web");
        // No Kubernetes information: by IP, an outside address.
        let ip: IpAddr = "8.8.8.8".parse().unwrap();
        assert_eq!(
            r.resolve(Some(&ep("{}")), Some(ip)),
            Some(Endpoint::External(ip))
        );
        assert_eq!(
            r.resolve(Some(&ep(r#"{"labels":["reserved:world"]}"#)), Some(ip)),
            Some(Endpoint::External(ip))
        );
        assert_eq!(r.resolve(Some(&ep("{}")), None), None);
    }
}
