//! Verification of generated (or hand-written) policies against the catalog, through the
//! `netpol` evaluator: documented edges must be allowed; whatever else is allowed between
//! services, or with the outside, is over-permission.

use std::collections::BTreeMap;
use std::net::IpAddr;

use netpol::model::{ContainerPort, Namespace, Pod, WorkloadRef};
use netpol::{Bundle, Endpoint, Engine, Options, PortSet, Protocol, Verdict};
use serde::Serialize;
use serde_json::Value;

use crate::catalog::{Catalog, Node};

/// Stand-in address for "outside the cluster".
pub const EXTERNAL: &str = "203.0.113.10";

#[derive(Debug, Clone, Serialize)]
pub struct EdgeCheck {
    pub src: String,
    pub dst: String,
    pub ports: String,
    pub allowed: bool,
    /// What the evaluator answered where the edge is not allowed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub origin: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct OverPermission {
    pub src: String,
    pub dst: String,
    /// Allowed beyond the documented ports.
    pub ports: String,
    /// How many of the destination's listening ports are reachable beyond the matrix.
    pub listening_ports: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct ComplianceCheck {
    pub control: String,
    pub title: String,
    pub pass: bool,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub edges_total: usize,
    pub edges_allowed: usize,
    pub edges: Vec<EdgeCheck>,
    /// Service pairs (and external) with anything allowed beyond the matrix.
    pub over_permission: Vec<OverPermission>,
    /// Sum of `listening_ports` over all pairs: reachable listeners the matrix does not need.
    pub over_permitted_listeners: usize,
    pub compliance: Vec<ComplianceCheck>,
}

/// The pods the catalog stands for, one per service, labelled `app` and `tier`, plus the
/// cluster DNS in kube-system. Pods get no IPs: external traffic is an outside address.
pub fn inventory_bundle(catalog: &Catalog) -> Bundle {
    let mut bundle = Bundle::default();
    let ns = &catalog.namespace;
    bundle.inventory.add_namespace(Namespace::implicit(ns));
    for s in catalog.services.values() {
        bundle.inventory.add_pod(Pod {
            namespace: ns.clone(),
            name: s.name.clone(),
            labels: [
                ("app".to_string(), s.name.clone()),
                ("tier".to_string(), s.tier.clone()),
            ]
            .into(),
            ips: Vec::new(),
            ports: s
                .ports
                .iter()
                .map(|&(protocol, port)| ContainerPort {
                    name: None,
                    port,
                    protocol,
                })
                .collect(),
            workload: WorkloadRef {
                namespace: ns.clone(),
                name: s.name.clone(),
                kind: "Deployment".into(),
            },
            service_account: None,
        });
    }
    bundle.inventory.add_pod(Pod {
        namespace: "kube-system".into(),
        name: "coredns".into(),
        labels: [("k8s-app".to_string(), "kube-dns".to_string())].into(),
        ips: Vec::new(),
        ports: vec![ContainerPort {
            name: Some("dns".into()),
            port: 53,
            protocol: Protocol::Udp,
        }],
        workload: WorkloadRef {
            namespace: "kube-system".into(),
            name: "coredns".into(),
            kind: "Deployment".into(),
        },
        service_account: None,
    });
    bundle
}

/// The engine over the catalog's pods and `policies`.
pub fn engine(catalog: &Catalog, policies: &[Value]) -> Result<Engine, netpol::Error> {
    let mut bundle = inventory_bundle(catalog);
    for (i, p) in policies.iter().enumerate() {
        bundle.add_object(p, "policies", i + 1, "")?;
    }
    Ok(Engine::new(
        bundle.inventory,
        bundle.policies,
        Options::default(),
    ))
}

fn documented_ports(ports: &[(Protocol, u16)]) -> PortSet {
    if ports.is_empty() {
        return PortSet::protocol(Protocol::Tcp);
    }
    ports.iter().fold(PortSet::none(), |acc, &(p, n)| {
        acc.union(&PortSet::single(p, n))
    })
}

/// Checks `policies` against the catalog.
pub fn verify(catalog: &Catalog, policies: &[Value]) -> Result<Report, netpol::Error> {
    let engine = engine(catalog, policies)?;
    let external: IpAddr = EXTERNAL.parse().expect("constant address");
    let endpoint = |node: &Node| match node {
        Node::Service(s) => Endpoint::Pod(
            engine
                .inventory()
                .pod_index(&format!("{}/{s}", catalog.namespace))
                .expect("catalog service has a pod"),
        ),
        Node::External => Endpoint::External(external),
    };
    let name = |node: &Node| match node {
        Node::Service(s) => s.clone(),
        Node::External => "external".to_string(),
    };
    // Documented edges, and the documented port set of every ordered pair.
    let mut documented: BTreeMap<(Node, Node), PortSet> = BTreeMap::new();
    let mut edges = Vec::new();
    for e in &catalog.edges {
        let want = documented_ports(&e.ports);
        documented
            .entry((e.src.clone(), e.dst.clone()))
            .or_default()
            .insert_all(&want);
        let (src, dst) = (endpoint(&e.src), endpoint(&e.dst));
        let got = engine.allowed_ports(&src, &dst);
        let missing = want.difference(&got);
        let reason = (!missing.is_empty()).then(|| {
            let (proto, port) = first_port(&missing);
            let d = engine.decide(&src, &dst, proto, port);
            format!("{proto}/{port}: {}", d.reason)
        });
        edges.push(EdgeCheck {
            src: name(&e.src),
            dst: name(&e.dst),
            ports: want.to_string(),
            allowed: missing.is_empty(),
            reason,
            origin: e.origin.clone(),
        });
    }
    // Everything allowed beyond the matrix.
    let mut nodes: Vec<Node> = catalog
        .services
        .keys()
        .map(|s| Node::Service(s.clone()))
        .collect();
    nodes.push(Node::External);
    let mut over = Vec::new();
    for a in &nodes {
        for b in &nodes {
            if a == b || (*a == Node::External && *b == Node::External) {
                continue;
            }
            let got = engine.allowed_ports(&endpoint(a), &endpoint(b)).l4();
            let extra = got.difference(
                documented
                    .get(&(a.clone(), b.clone()))
                    .unwrap_or(&PortSet::none()),
            );
            if extra.is_empty() {
                continue;
            }
            let listening = match b {
                Node::Service(s) => catalog.services[s]
                    .ports
                    .iter()
                    .filter(|(p, n)| extra.contains(*p, *n))
                    .count(),
                Node::External => 0,
            };
            over.push(OverPermission {
                src: name(a),
                dst: name(b),
                ports: extra.to_string(),
                listening_ports: listening,
            });
        }
    }
    let over_permitted_listeners = over.iter().map(|o| o.listening_ports).sum();
    let compliance = compliance(catalog, &engine, &over, external);
    Ok(Report {
        edges_total: edges.len(),
        edges_allowed: edges.iter().filter(|e| e.allowed).count(),
        edges,
        over_permission: over,
        over_permitted_listeners,
        compliance,
    })
}

fn first_port(set: &PortSet) -> (Protocol, u16) {
    Protocol::ALL
        .iter()
        .find_map(|&p| set.get(p).ranges().first().map(|&(lo, _)| (p, lo)))
        .unwrap_or((Protocol::Tcp, 1))
}

fn compliance(
    catalog: &Catalog,
    engine: &Engine,
    over: &[OverPermission],
    external: IpAddr,
) -> Vec<ComplianceCheck> {
    let ext = Endpoint::External(external);
    let pods: Vec<(String, Endpoint)> = catalog
        .services
        .keys()
        .map(|s| {
            (
                s.clone(),
                Endpoint::Pod(
                    engine
                        .inventory()
                        .pod_index(&format!("{}/{s}", catalog.namespace))
                        .expect("pod"),
                ),
            )
        })
        .collect();
    let uncovered: Vec<String> = pods
        .iter()
        .filter(|(_, p)| {
            let d = engine.decide(p, &ext, Protocol::Tcp, 443);
            let i = engine.decide(&ext, p, Protocol::Tcp, 443);
            d.egress.is_some_and(|x| x.verdict == Verdict::NoPolicy)
                || i.ingress.is_some_and(|x| x.verdict == Verdict::NoPolicy)
        })
        .map(|(n, _)| n.clone())
        .collect();
    let inbound: Vec<&OverPermission> = over
        .iter()
        .filter(|o| o.src == "external" || o.listening_ports > 0)
        .collect();
    let outbound: Vec<&OverPermission> = over.iter().filter(|o| o.dst == "external").collect();
    let data_exposed: Vec<String> = pods
        .iter()
        .filter(|(n, p)| {
            catalog.services[n].tier == "data" && !engine.allowed_ports(&ext, p).is_empty()
        })
        .map(|(n, _)| n.clone())
        .collect();
    let list = |v: Vec<String>| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(", ")
        }
    };
    vec![
        ComplianceCheck {
            control: "CIS Kubernetes 5.3.2".into(),
            title: "every namespace has network policies selecting all its pods, both directions"
                .into(),
            pass: uncovered.is_empty(),
            detail: format!("pods without ingress or egress policy: {}", list(uncovered)),
        },
        ComplianceCheck {
            control: "PCI DSS 1.3.1".into(),
            title: "inbound traffic restricted to what is necessary".into(),
            pass: inbound.is_empty(),
            detail: format!(
                "{} pairs reach listening ports beyond the matrix",
                inbound.len()
            ),
        },
        ComplianceCheck {
            control: "PCI DSS 1.3.2".into(),
            title: "outbound traffic restricted to what is necessary".into(),
            pass: outbound.is_empty(),
            detail: format!(
                "services that may reach outside beyond the matrix: {}",
                list(outbound.iter().map(|o| o.src.clone()).collect())
            ),
        },
        ComplianceCheck {
            control: "SOC 2 CC6.6".into(),
            title: "boundary protection: the data tier is not reachable from outside".into(),
            pass: data_exposed.is_empty(),
            detail: format!(
                "data services reachable from outside: {}",
                list(data_exposed)
            ),
        },
    ]
}
