//! Policy generators: tier mode and service mode, as NetworkPolicy or CiliumNetworkPolicy,
//! plus tier-label patches, a kustomization and Prometheus alert rules.

use std::collections::{BTreeMap, BTreeSet};

use netpol::Protocol;
use serde_json::{json, Value};

use crate::catalog::{Catalog, Edge, Node};

/// One policy per tier (the design) or one per service (least privilege).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Tier,
    Service,
}

/// Which policy dialect to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Kubernetes,
    Cilium,
}

/// Private ranges excluded from "external" egress.
const PRIVATE: [&str; 3] = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"];

/// What a generator cannot express.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct GenerateError(String);

/// Generated files: relative path → content.
#[derive(Debug, Default)]
pub struct Output {
    pub files: BTreeMap<String, String>,
    /// The policy objects, for verification.
    pub policies: Vec<Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Peer {
    Labels(BTreeMap<String, String>),
    External,
    Dns,
}

#[derive(Debug, Clone)]
struct Rule {
    peer: Peer,
    /// None: every TCP port (the destination's ports are unknown).
    ports: Option<BTreeSet<(Protocol, u16)>>,
}

struct Spec {
    name: String,
    subject: BTreeMap<String, String>,
    ingress: Vec<Rule>,
    egress: Vec<Rule>,
}

fn labels(key: &str, value: &str) -> BTreeMap<String, String> {
    [(key.to_string(), value.to_string())].into()
}

/// Adds `edge`'s ports to the rule for `peer`, creating it; an edge with unknown ports
/// makes the rule cover every port.
fn add(rules: &mut Vec<Rule>, peer: Peer, edge: &Edge) {
    let idx = match rules.iter().position(|r| r.peer == peer) {
        Some(i) => i,
        None => {
            rules.push(Rule {
                peer,
                ports: Some(BTreeSet::new()),
            });
            rules.len() - 1
        }
    };
    let rule = &mut rules[idx];
    match (&mut rule.ports, edge.ports.is_empty()) {
        (Some(_), true) => rule.ports = None,
        (Some(set), false) => set.extend(edge.ports.iter().copied()),
        (None, _) => {}
    }
}

/// The policy specs of a mode, in a stable order.
fn specs(catalog: &Catalog, mode: Mode) -> Result<Vec<Spec>, GenerateError> {
    let (key, groups): (&str, Vec<String>) = match mode {
        Mode::Tier => ("tier", catalog.tiers()),
        Mode::Service => ("app", catalog.services.keys().cloned().collect()),
    };
    let group_of = |node: &Node| -> Option<String> {
        match (node, mode) {
            (Node::External, _) => None,
            (Node::Service(s), Mode::Service) => Some(s.clone()),
            (Node::Service(_), Mode::Tier) => catalog.tier_of(node).map(str::to_string),
        }
    };
    let mut out = Vec::new();
    for group in groups {
        let mut spec = Spec {
            name: match mode {
                Mode::Tier => format!("{group}-tier-policy"),
                Mode::Service => format!("{group}-policy"),
            },
            subject: labels(key, &group),
            ingress: Vec::new(),
            egress: vec![Rule {
                peer: Peer::Dns,
                ports: Some([(Protocol::Udp, 53), (Protocol::Tcp, 53)].into()),
            }],
        };
        for edge in &catalog.edges {
            let (src, dst) = (group_of(&edge.src), group_of(&edge.dst));
            if dst.as_deref() == Some(group.as_str()) {
                let peer = src
                    .as_ref()
                    .map_or(Peer::External, |s| Peer::Labels(labels(key, s)));
                add(&mut spec.ingress, peer, edge);
            }
            if src.as_deref() == Some(group.as_str()) {
                let peer = dst.map_or(Peer::External, |d| Peer::Labels(labels(key, &d)));
                add(&mut spec.egress, peer, edge);
            }
        }
        if mode == Mode::Tier && group == "data" && spec.egress.len() > 1 {
            let sources: Vec<String> = catalog
                .edges
                .iter()
                .filter(|e| catalog.tier_of(&e.src) == Some("data"))
                .map(|e| e.origin.clone())
                .collect();
            return Err(GenerateError(format!(
                "tier mode cannot express connections opened by the data tier (the design's data tier opens none): {}; use --mode service or move those services to another tier",
                sources.join(", ")
            )));
        }
        out.push(spec);
    }
    Ok(out)
}

fn port_list(ports: &BTreeSet<(Protocol, u16)>, cilium: bool) -> Vec<Value> {
    ports
        .iter()
        .map(|(proto, port)| {
            if cilium {
                json!({"port": port.to_string(), "protocol": proto.as_str()})
            } else {
                json!({"protocol": proto.as_str(), "port": port})
            }
        })
        .collect()
}

fn kubernetes(spec: &Spec, ns: &str) -> Value {
    let rule = |r: &Rule, side: &str| -> Value {
        let peer = match &r.peer {
            Peer::Labels(l) => json!({"podSelector": {"matchLabels": l}}),
            Peer::External if side == "from" => json!({"ipBlock": {"cidr": "0.0.0.0/0"}}),
            Peer::External => json!({"ipBlock": {"cidr": "0.0.0.0/0", "except": PRIVATE}}),
            Peer::Dns => json!({
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}
            }),
        };
        let ports = match &r.ports {
            Some(ports) => Value::Array(port_list(ports, false)),
            // Unknown ports: every TCP port (the catalog's ports are TCP unless noted).
            None => json!([{"protocol": "TCP"}]),
        };
        json!({ side: [peer], "ports": ports })
    };
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": spec.name, "namespace": ns, "labels": {"app.kubernetes.io/managed-by": "policyhub"}},
        "spec": {
            "podSelector": {"matchLabels": spec.subject},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": spec.ingress.iter().map(|r| rule(r, "from")).collect::<Vec<_>>(),
            "egress": spec.egress.iter().map(|r| rule(r, "to")).collect::<Vec<_>>(),
        }
    })
}

fn cilium(spec: &Spec, ns: &str) -> Value {
    let rule = |r: &Rule, ingress: bool| -> Value {
        let (endpoints, entities) = if ingress {
            ("fromEndpoints", "fromEntities")
        } else {
            ("toEndpoints", "toEntities")
        };
        let mut v = match &r.peer {
            Peer::Labels(l) => json!({ endpoints: [{"matchLabels": l}] }),
            Peer::External => json!({ entities: ["world"] }),
            Peer::Dns => {
                json!({ endpoints: [{"matchLabels": {"k8s:io.kubernetes.pod.namespace": "kube-system", "k8s-app": "kube-dns"}}] })
            }
        };
        v["toPorts"] = match &r.ports {
            Some(ports) => json!([{"ports": port_list(ports, true)}]),
            None => json!([{"ports": [{"port": "0", "protocol": "TCP"}]}]),
        };
        v
    };
    json!({
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumNetworkPolicy",
        "metadata": {"name": spec.name, "namespace": ns, "labels": {"app.kubernetes.io/managed-by": "policyhub"}},
        "spec": {
            "endpointSelector": {"matchLabels": spec.subject},
            // An empty rule list still isolates: `- {}` selects nothing.
            "ingress": if spec.ingress.is_empty() { vec![json!({})] } else { spec.ingress.iter().map(|r| rule(r, true)).collect() },
            "egress": spec.egress.iter().map(|r| rule(r, false)).collect::<Vec<_>>(),
        }
    })
}

fn yaml(v: &Value) -> String {
    yaml_serde::to_string(v).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
}

/// Generates the policies and the files around them.
pub fn generate(catalog: &Catalog, mode: Mode, format: Format) -> Result<Output, GenerateError> {
    let ns = &catalog.namespace;
    let mut out = Output::default();
    let mut resources = Vec::new();
    for spec in specs(catalog, mode)? {
        let policy = match format {
            Format::Kubernetes => kubernetes(&spec, ns),
            Format::Cilium => cilium(&spec, ns),
        };
        let path = format!("network-policies/{}.yaml", spec.name);
        out.files.insert(path.clone(), yaml(&policy));
        resources.push(path);
        out.policies.push(policy);
    }
    let mut patches = Vec::new();
    for s in catalog.services.values() {
        let patch = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": s.name, "namespace": ns},
            "spec": {"template": {"metadata": {"labels": {"app": s.name, "tier": s.tier}}}}
        });
        let path = format!("labels/{}.yaml", s.name);
        let note = if s.described {
            String::new()
        } else {
            "# assumed: referenced by the catalog but not described\n".into()
        };
        out.files
            .insert(path.clone(), format!("{note}{}", yaml(&patch)));
        patches.push(json!({"path": path, "target": {"kind": "Deployment", "name": s.name}}));
    }
    out.files
        .insert("prometheus-rules.yaml".into(), yaml(&alert_rules(catalog)));
    resources.push("prometheus-rules.yaml".into());
    let kustomization = json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": ns,
        "resources": resources,
        "patches": patches,
    });
    out.files
        .insert("kustomization.yaml".into(), yaml(&kustomization));
    out.files.insert(
        "docker-compose.segmentation.yml".into(),
        crate::compose::override_file(catalog),
    );
    Ok(out)
}

/// Prometheus alert rules on denied connections (Hubble drop metrics), one per tier plus a
/// namespace-wide rate alert.
pub fn alert_rules(catalog: &Catalog) -> Value {
    let ns = &catalog.namespace;
    let mut rules = vec![json!({
        "alert": "NetworkPolicyDeniedConnections",
        "expr": format!("sum by (destination_workload) (rate(hubble_drop_total{{reason=\"POLICY_DENIED\",destination_namespace=\"{ns}\"}}[5m])) > 10"),
        "for": "5m",
        "labels": {"severity": "warning"},
        "annotations": {
            "summary": "High rate of network policy denials",
            "description": "{{ $labels.destination_workload }} is refusing {{ $value }} connections/s denied by policy"
        }
    })];
    for tier in catalog.tiers() {
        let members: Vec<&str> = catalog
            .services
            .values()
            .filter(|s| s.tier == tier)
            .map(|s| s.name.as_str())
            .collect();
        let mut title = tier.clone();
        if let Some(first) = title.get_mut(0..1) {
            first.make_ascii_uppercase();
        }
        rules.push(json!({
            "alert": format!("UnauthorizedAccess{title}Tier"),
            "expr": format!("sum(increase(hubble_drop_total{{reason=\"POLICY_DENIED\",destination_namespace=\"{ns}\",destination_workload=~\"{}\"}}[5m])) > 0", members.join("|")),
            "labels": {"severity": if tier == "data" { "critical" } else { "warning" }, "tier": tier},
            "annotations": {"summary": format!("Connections to the {tier} tier were denied by policy")}
        }));
    }
    json!({"groups": [{"name": "policyhub-segmentation", "rules": rules}]})
}
