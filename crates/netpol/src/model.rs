//! The cluster inventory: namespaces, pods and the workloads that own them.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use serde::Serialize;

use crate::ports::Protocol;
use crate::selector::Labels;

/// The label every namespace carries with its own name.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Namespace {
    pub name: String,
    pub labels: Labels,
}

impl Namespace {
    /// A namespace with only its name label (namespaces that pods use but no manifest declares).
    pub fn implicit(name: &str) -> Namespace {
        Namespace {
            name: name.to_string(),
            labels: [(NAMESPACE_NAME_LABEL.to_string(), name.to_string())].into(),
        }
    }
}

/// A container port; named ports are what `port: http` in a policy resolves to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct ContainerPort {
    pub name: Option<String>,
    pub port: u16,
    pub protocol: Protocol,
}

/// The controller that owns a pod (or the pod itself): the unit connectivity is reported in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct WorkloadRef {
    pub namespace: String,
    pub name: String,
    pub kind: String,
}

impl fmt::Display for WorkloadRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}[{}]", self.namespace, self.name, self.kind)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pod {
    pub namespace: String,
    pub name: String,
    pub labels: Labels,
    /// Pod IPs; empty for pods synthesised from a workload template.
    pub ips: Vec<IpAddr>,
    pub ports: Vec<ContainerPort>,
    pub workload: WorkloadRef,
    pub service_account: Option<String>,
}

impl Pod {
    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// Namespaces and pods the evaluator works over, and the Services, Ingresses and Routes
/// that expose pods to the ingress controller (see [`crate::ingress`]).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Inventory {
    pub namespaces: BTreeMap<String, Namespace>,
    pub pods: Vec<Pod>,
    pub services: Vec<crate::ingress::Service>,
    /// Backends of Ingresses and Routes.
    pub backends: Vec<crate::ingress::Backend>,
}

impl Inventory {
    /// Adds a pod, creating its namespace (with only the name label) if it is not known.
    pub fn add_pod(&mut self, pod: Pod) {
        self.ensure_namespace(&pod.namespace);
        self.pods.push(pod);
    }

    /// Adds or replaces a namespace; the name label is always present.
    pub fn add_namespace(&mut self, mut ns: Namespace) {
        ns.labels
            .entry(NAMESPACE_NAME_LABEL.to_string())
            .or_insert_with(|| ns.name.clone());
        self.namespaces.insert(ns.name.clone(), ns);
    }

    pub fn ensure_namespace(&mut self, name: &str) {
        if !self.namespaces.contains_key(name) {
            self.namespaces
                .insert(name.to_string(), Namespace::implicit(name));
        }
    }

    /// The pod called `namespace/name`.
    pub fn pod_index(&self, key: &str) -> Option<usize> {
        let (ns, name) = key.split_once('/')?;
        self.pods
            .iter()
            .position(|p| p.namespace == ns && p.name == name)
    }

    /// The pod that owns `ip`.
    pub fn pod_by_ip(&self, ip: IpAddr) -> Option<usize> {
        self.pods.iter().position(|p| p.ips.contains(&ip))
    }
}
