//! `policy.networking.k8s.io/v1alpha1` AdminNetworkPolicy and BaselineAdminNetworkPolicy.

use serde::Deserialize;

use super::{check_selector, port_number, ObjectMeta};
use crate::cidr::IpBlock;
use crate::error::FieldError;
use crate::policy::*;
use crate::ports::Protocol;
use crate::selector::LabelSelector;

/// Both kinds share one shape; BANP has no priority and no `Pass`.
#[derive(Debug, Deserialize)]
pub struct AdminPolicy {
    #[serde(default)]
    pub metadata: ObjectMeta,
    pub spec: Spec,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Spec {
    #[serde(default)]
    pub priority: Option<i64>,
    pub subject: Subject,
    #[serde(default)]
    pub ingress: Option<Vec<AnpRule>>,
    #[serde(default)]
    pub egress: Option<Vec<AnpRule>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Subject {
    #[serde(default)]
    pub namespaces: Option<LabelSelector>,
    #[serde(default)]
    pub pods: Option<NamespacedPod>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamespacedPod {
    #[serde(default)]
    pub namespace_selector: LabelSelector,
    #[serde(default)]
    pub pod_selector: LabelSelector,
}

/// An ingress rule (`from`) or an egress rule (`to`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AnpRule {
    #[serde(default)]
    pub name: Option<String>,
    pub action: String,
    #[serde(default)]
    pub from: Option<Vec<AnpPeer>>,
    #[serde(default)]
    pub to: Option<Vec<AnpPeer>>,
    #[serde(default)]
    pub ports: Option<Vec<AnpPort>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AnpPeer {
    #[serde(default)]
    pub namespaces: Option<LabelSelector>,
    #[serde(default)]
    pub pods: Option<NamespacedPod>,
    #[serde(default)]
    pub networks: Option<Vec<String>>,
    #[serde(default)]
    pub nodes: Option<LabelSelector>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AnpPort {
    #[serde(default)]
    pub port_number: Option<PortNumber>,
    #[serde(default)]
    pub named_port: Option<String>,
    #[serde(default)]
    pub port_range: Option<PortRange>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortNumber {
    #[serde(default)]
    pub protocol: Option<String>,
    pub port: i64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortRange {
    #[serde(default)]
    pub protocol: Option<String>,
    pub start: i64,
    pub end: i64,
}

impl AdminPolicy {
    /// Converts an AdminNetworkPolicy (`baseline` false) or a BaselineAdminNetworkPolicy.
    pub fn compile(&self, baseline: bool) -> Result<Policy, FieldError> {
        let spec = &self.spec;
        let priority = match (baseline, spec.priority) {
            (true, _) => 0,
            (false, None) => return Err(FieldError::new("spec.priority", "priority is required")),
            (false, Some(p)) if !(0..=1000).contains(&p) => {
                return Err(FieldError::new(
                    "spec.priority",
                    format!("priority {p} is outside 0-1000"),
                ))
            }
            (false, Some(p)) => p as i32,
        };
        let subject = match (&spec.subject.namespaces, &spec.subject.pods) {
            (Some(ns), None) => {
                check_selector(ns, "spec.subject.namespaces")?;
                namespaced(ns, &LabelSelector::default())
            }
            (None, Some(p)) => {
                check_selector(&p.namespace_selector, "spec.subject.pods.namespaceSelector")?;
                check_selector(&p.pod_selector, "spec.subject.pods.podSelector")?;
                namespaced(&p.namespace_selector, &p.pod_selector)
            }
            _ => {
                return Err(FieldError::new(
                    "spec.subject",
                    "exactly one of namespaces or pods is required",
                ))
            }
        };
        let dir = |rules: &Option<Vec<AnpRule>>,
                   field: &str|
         -> Result<Option<DirectionRules>, FieldError> {
            let Some(rules) = rules else { return Ok(None) };
            if rules.len() > 100 {
                return Err(FieldError::new(
                    format!("spec.{field}"),
                    "at most 100 rules are allowed",
                ));
            }
            let rules = rules
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    compile_rule(r, field, i, baseline)
                        .map_err(|e| e.under(&format!("spec.{field}[{i}]")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Some(DirectionRules {
                isolates: false,
                rules,
            }))
        };
        let kind = if baseline {
            PolicyKind::BaselineAdminNetworkPolicy
        } else {
            PolicyKind::AdminNetworkPolicy
        };
        Ok(Policy {
            id: PolicyRef {
                kind,
                namespace: None,
                name: self.metadata.name.clone(),
            },
            tier: if baseline {
                Tier::Baseline
            } else {
                Tier::Admin
            },
            priority,
            subject,
            ingress: dir(&spec.ingress, "ingress")?,
            egress: dir(&spec.egress, "egress")?,
        })
    }
}

fn namespaced(ns: &LabelSelector, pods: &LabelSelector) -> PodSelector {
    PodSelector {
        namespaces: NamespaceScope::Selector(ns.clone()),
        pods: pods.clone(),
        flavor: SelectorFlavor::Kubernetes,
    }
}

fn compile_rule(
    rule: &AnpRule,
    field: &str,
    index: usize,
    baseline: bool,
) -> Result<Rule, FieldError> {
    let action = match (rule.action.as_str(), baseline) {
        ("Allow", _) => Action::Allow,
        ("Deny", _) => Action::Deny,
        ("Pass", false) => Action::Pass,
        (other, _) => {
            let allowed = if baseline {
                "Allow or Deny"
            } else {
                "Allow, Deny or Pass"
            };
            return Err(FieldError::new(
                "action",
                format!("unknown action {other:?} (want {allowed})"),
            ));
        }
    };
    let (peer_field, peers) = if field == "ingress" {
        ("from", &rule.from)
    } else {
        ("to", &rule.to)
    };
    let Some(peers) = peers.as_ref().filter(|p| !p.is_empty()) else {
        return Err(FieldError::new(peer_field, "at least one peer is required"));
    };
    let peers = peers
        .iter()
        .enumerate()
        .map(|(i, p)| compile_peer(p, field).map_err(|e| e.under(&format!("{peer_field}[{i}]"))))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .flatten()
        .collect();
    let ports = match &rule.ports {
        None => None,
        Some(list) => Some(
            list.iter()
                .enumerate()
                .map(|(i, p)| compile_port(p).map_err(|e| e.under(&format!("ports[{i}]"))))
                .collect::<Result<_, _>>()?,
        ),
    };
    Ok(Rule {
        name: rule
            .name
            .clone()
            .unwrap_or_else(|| format!("{field}[{index}]")),
        action,
        peers,
        ports,
        note: None,
    })
}

fn compile_peer(peer: &AnpPeer, field: &str) -> Result<Vec<Peer>, FieldError> {
    let set = [
        peer.namespaces.is_some(),
        peer.pods.is_some(),
        peer.networks.is_some(),
        peer.nodes.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if set != 1 {
        return Err(FieldError::new(
            "",
            "exactly one of namespaces, pods, networks or nodes is required",
        ));
    }
    if field == "ingress" && (peer.networks.is_some() || peer.nodes.is_some()) {
        return Err(FieldError::new(
            "",
            "networks and nodes peers are egress-only",
        ));
    }
    if let Some(ns) = &peer.namespaces {
        check_selector(ns, "namespaces")?;
        return Ok(vec![Peer::Pods(namespaced(ns, &LabelSelector::default()))]);
    }
    if let Some(p) = &peer.pods {
        check_selector(&p.namespace_selector, "pods.namespaceSelector")?;
        check_selector(&p.pod_selector, "pods.podSelector")?;
        return Ok(vec![Peer::Pods(namespaced(
            &p.namespace_selector,
            &p.pod_selector,
        ))]);
    }
    if let Some(nodes) = &peer.nodes {
        check_selector(nodes, "nodes")?;
        return Ok(vec![Peer::Nodes(nodes.clone())]);
    }
    let networks = peer.networks.as_deref().unwrap_or_default();
    networks
        .iter()
        .enumerate()
        .map(|(i, n)| {
            IpBlock::parse(n, &[])
                .map(|block| Peer::Block {
                    block,
                    pods_match: None,
                })
                .map_err(|(_, m)| FieldError::new(format!("networks[{i}]"), m))
        })
        .collect()
}

fn protocol(p: &Option<String>, path: &str) -> Result<Protocol, FieldError> {
    match p {
        None => Ok(Protocol::Tcp),
        Some(name) => Protocol::parse(name)
            .filter(|p| *p != Protocol::Icmp)
            .ok_or_else(|| FieldError::new(path, format!("unsupported protocol {name:?}"))),
    }
}

fn compile_port(port: &AnpPort) -> Result<PortMatch, FieldError> {
    match (&port.port_number, &port.named_port, &port.port_range) {
        (Some(n), None, None) => {
            let p = port_number(n.port, "portNumber.port")?;
            Ok(PortMatch::Range {
                protocol: Some(protocol(&n.protocol, "portNumber.protocol")?),
                first: p,
                last: p,
            })
        }
        (None, Some(name), None) => Ok(PortMatch::Named {
            protocol: None,
            name: name.clone(),
        }),
        (None, None, Some(r)) => {
            let first = port_number(r.start, "portRange.start")?;
            let last = port_number(r.end, "portRange.end")?;
            if last < first {
                return Err(FieldError::new(
                    "portRange.end",
                    format!("end {last} is below start {first}"),
                ));
            }
            Ok(PortMatch::Range {
                protocol: Some(protocol(&r.protocol, "portRange.protocol")?),
                first,
                last,
            })
        }
        _ => Err(FieldError::new(
            "",
            "exactly one of portNumber, namedPort or portRange is required",
        )),
    }
}
