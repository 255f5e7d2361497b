//! The cluster's ingress controller as a peer: which ports of which workloads Services,
//! Ingresses (networking.k8s.io/v1) and OpenShift Routes expose to it.
//!
//! The controller is modelled as a pod `ingress-controller` without labels in its own
//! namespace `ingress-controller-ns` (only the name label), evaluated like any pod — it
//! has no IP, so ipBlock peers never match it — and added to an inventory only on request
//! ([`add_controller`]). What it may open to a workload is the candidate ports
//! ([`candidate_ports`]: TCP, from the backends that reach the workload through a Service)
//! intersected with what the policies allow from the controller pod.

use serde::Deserialize;

use crate::error::FieldError;
use crate::model::{Inventory, Pod, WorkloadRef};
use crate::ports::{PortSet, Protocol};
use crate::selector::Labels;

/// Namespace of the modelled ingress controller pod.
pub const CONTROLLER_NAMESPACE: &str = "ingress-controller-ns";
/// Name of the modelled ingress controller pod.
pub const CONTROLLER_POD: &str = "ingress-controller";
/// Workload kind of the controller pod, which no manifest can give a pod.
pub const CONTROLLER_KIND: &str = "{ingress-controller}";

/// A port given by number or by name (`intstr` in Kubernetes).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(untagged)]
pub enum PortRef {
    Number(u16),
    Name(String),
}

/// A Service: which pods it selects and how its ports map to theirs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Service {
    pub namespace: String,
    pub name: String,
    /// `None` (or empty) for a Service without selector, whose endpoints are managed
    /// by hand: it never leads to a pod here.
    pub selector: Option<Labels>,
    pub ports: Vec<ServicePort>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePort {
    #[serde(default)]
    pub name: Option<String>,
    pub port: u16,
    #[serde(default)]
    pub target_port: Option<PortRef>,
}

/// A Service port an Ingress or a Route sends traffic to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Backend {
    /// The Ingress's or Route's namespace, which is the Service's.
    pub namespace: String,
    pub service: String,
    /// `None`: every port of the Service.
    pub port: Option<PortRef>,
    /// `Ingress ns/name` or `Route ns/name`, for explanations.
    pub source: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RawService {
    #[serde(default)]
    spec: RawServiceSpec,
}

#[derive(Debug, Default, Deserialize)]
struct RawServiceSpec {
    #[serde(default)]
    selector: Option<Labels>,
    #[serde(default)]
    ports: Vec<ServicePort>,
}

impl RawService {
    pub(crate) fn into_service(self, namespace: String, name: String) -> Service {
        Service {
            namespace,
            name,
            selector: self.spec.selector,
            ports: self.spec.ports,
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct RawIngress {
    #[serde(default)]
    spec: RawIngressSpec,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawIngressSpec {
    #[serde(default)]
    default_backend: Option<IngressBackend>,
    #[serde(default)]
    rules: Vec<IngressRule>,
}

#[derive(Debug, Deserialize)]
struct IngressRule {
    #[serde(default)]
    http: Option<IngressHttp>,
}

#[derive(Debug, Deserialize)]
struct IngressHttp {
    #[serde(default)]
    paths: Vec<IngressPath>,
}

#[derive(Debug, Deserialize)]
struct IngressPath {
    backend: IngressBackend,
}

#[derive(Debug, Deserialize)]
struct IngressBackend {
    /// Absent for a `resource` backend, which leads to no Service.
    #[serde(default)]
    service: Option<IngressServiceBackend>,
}

#[derive(Debug, Deserialize)]
struct IngressServiceBackend {
    name: String,
    #[serde(default)]
    port: Option<IngressServicePort>,
}

#[derive(Debug, Deserialize)]
struct IngressServicePort {
    #[serde(default)]
    number: Option<u16>,
    #[serde(default)]
    name: Option<String>,
}

impl RawIngress {
    pub(crate) fn backends(self, namespace: &str, name: &str) -> Vec<Backend> {
        let spec = self.spec;
        let paths = spec
            .rules
            .into_iter()
            .flat_map(|r| r.http.map(|h| h.paths).unwrap_or_default())
            .map(|p| p.backend);
        spec.default_backend
            .into_iter()
            .chain(paths)
            .filter_map(|b| b.service)
            .map(|s| Backend {
                namespace: namespace.to_string(),
                service: s.name,
                port: s.port.and_then(|p| match (p.number, p.name) {
                    (Some(n), _) => Some(PortRef::Number(n)),
                    (None, Some(name)) => Some(PortRef::Name(name)),
                    (None, None) => None,
                }),
                source: format!("Ingress {namespace}/{name}"),
            })
            .collect()
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct RawRoute {
    #[serde(default)]
    spec: RawRouteSpec,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRouteSpec {
    #[serde(default)]
    to: Option<RouteTarget>,
    #[serde(default)]
    alternate_backends: Vec<RouteTarget>,
    #[serde(default)]
    port: Option<RoutePort>,
}

#[derive(Debug, Deserialize)]
struct RouteTarget {
    #[serde(default)]
    kind: Option<String>,
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RoutePort {
    target_port: PortRef,
}

impl RawRoute {
    pub(crate) fn backends(self, namespace: &str, name: &str) -> Vec<Backend> {
        let port = self.spec.port.map(|p| p.target_port);
        self.spec
            .to
            .into_iter()
            .chain(self.spec.alternate_backends)
            .filter(|t| t.kind.as_deref().is_none_or(|k| k == "Service"))
            .map(|t| Backend {
                namespace: namespace.to_string(),
                service: t.name,
                port: port.clone(),
                source: format!("Route {namespace}/{name}"),
            })
            .collect()
    }
}

/// Checks what the API server would reject in a Service port.
pub(crate) fn validate_service(service: &Service) -> Result<(), FieldError> {
    for (i, p) in service.ports.iter().enumerate() {
        if p.port == 0 {
            return Err(FieldError::new(
                format!("spec.ports[{i}].port"),
                "port must be between 1 and 65535",
            ));
        }
        if p.target_port == Some(PortRef::Number(0)) {
            return Err(FieldError::new(
                format!("spec.ports[{i}].targetPort"),
                "targetPort must be between 1 and 65535",
            ));
        }
    }
    Ok(())
}

/// The controller's workload.
pub fn controller_workload() -> WorkloadRef {
    WorkloadRef {
        namespace: CONTROLLER_NAMESPACE.into(),
        name: CONTROLLER_POD.into(),
        kind: CONTROLLER_KIND.into(),
    }
}

/// Whether `w` is the modelled ingress controller.
pub fn is_controller(w: &WorkloadRef) -> bool {
    w.kind == CONTROLLER_KIND
}

/// Adds the controller pod (and its namespace) when some Ingress or Route has a backend;
/// returns whether it did.
pub fn add_controller(inventory: &mut Inventory) -> bool {
    if inventory.backends.is_empty() || controller(inventory).is_some() {
        return false;
    }
    inventory.add_pod(Pod {
        namespace: CONTROLLER_NAMESPACE.into(),
        name: CONTROLLER_POD.into(),
        labels: Labels::new(),
        ips: Vec::new(),
        ports: Vec::new(),
        workload: controller_workload(),
        service_account: None,
    });
    true
}

/// The index of the controller pod, if the inventory has one.
pub fn controller(inventory: &Inventory) -> Option<usize> {
    inventory
        .pods
        .iter()
        .position(|p| is_controller(&p.workload))
}

/// The TCP ports of `pod` that some Ingress or Route backend reaches through a Service of
/// the pod's namespace that selects it: the Service port's `targetPort` (`port` when unset),
/// resolved by name on the pod's container ports, kept only when it is one of the pod's
/// declared container port numbers (whatever their protocol). A backend port picks the
/// first Service port whose name, port or targetPort equals it; no backend port, every one.
pub fn candidate_ports(inventory: &Inventory, pod: usize) -> PortSet {
    let mut out = PortSet::none();
    let Some(pod) = inventory.pods.get(pod) else {
        return out;
    };
    if is_controller(&pod.workload) {
        return out;
    }
    let declared = |n: u16| pod.ports.iter().any(|c| c.port == n);
    for backend in inventory
        .backends
        .iter()
        .filter(|b| b.namespace == pod.namespace)
    {
        let Some(service) = inventory.services.iter().find(|s| {
            s.namespace == backend.namespace
                && s.name == backend.service
                && s.selector.as_ref().is_some_and(|sel| {
                    !sel.is_empty() && sel.iter().all(|(k, v)| pod.labels.get(k) == Some(v))
                })
        }) else {
            continue;
        };
        let ports: Vec<&ServicePort> = match &backend.port {
            None => service.ports.iter().collect(),
            Some(want) => service
                .ports
                .iter()
                .find(|p| {
                    p.target_port.as_ref() == Some(want)
                        || match want {
                            PortRef::Number(n) => p.port == *n,
                            PortRef::Name(name) => p.name.as_deref() == Some(name.as_str()),
                        }
                })
                .into_iter()
                .collect(),
        };
        for p in ports {
            let target = p.target_port.clone().unwrap_or(PortRef::Number(p.port));
            let numbers: Vec<u16> = match target {
                PortRef::Number(n) => vec![n],
                PortRef::Name(name) => pod
                    .ports
                    .iter()
                    .filter(|c| c.name.as_deref() == Some(name.as_str()))
                    .map(|c| c.port)
                    .collect(),
            };
            for n in numbers.into_iter().filter(|&n| declared(n)) {
                out.insert_all(&PortSet::single(Protocol::Tcp, n));
            }
        }
    }
    out
}

#[cfg(test)]
#[path = "ingress/tests.rs"]
mod tests;
