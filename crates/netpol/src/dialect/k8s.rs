//! Kubernetes `networking.k8s.io/v1` NetworkPolicy.

use serde::Deserialize;

use super::{check_selector, IntOrString, ObjectMeta};
use crate::cidr::IpBlock;
use crate::error::FieldError;
use crate::policy::*;
use crate::ports::Protocol;
use crate::selector::LabelSelector;

#[derive(Debug, Deserialize)]
pub struct NetworkPolicy {
    #[serde(default)]
    pub metadata: ObjectMeta,
    pub spec: Spec,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Spec {
    #[serde(default)]
    pub pod_selector: LabelSelector,
    #[serde(default)]
    pub policy_types: Option<Vec<String>>,
    #[serde(default)]
    pub ingress: Option<Vec<IngressRule>>,
    #[serde(default)]
    pub egress: Option<Vec<EgressRule>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IngressRule {
    #[serde(default)]
    pub from: Option<Vec<NpPeer>>,
    #[serde(default)]
    pub ports: Option<Vec<NpPort>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EgressRule {
    #[serde(default)]
    pub to: Option<Vec<NpPeer>>,
    #[serde(default)]
    pub ports: Option<Vec<NpPort>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NpPeer {
    #[serde(default)]
    pub pod_selector: Option<LabelSelector>,
    #[serde(default)]
    pub namespace_selector: Option<LabelSelector>,
    #[serde(default)]
    pub ip_block: Option<RawIpBlock>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawIpBlock {
    pub cidr: String,
    #[serde(default)]
    pub except: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NpPort {
    #[serde(default)]
    pub protocol: Option<String>,
    #[serde(default)]
    pub port: Option<IntOrString>,
    #[serde(default)]
    pub end_port: Option<i64>,
}

impl NetworkPolicy {
    /// Converts to the common model; a policy without namespace lives in `default`.
    pub fn compile(&self, default_namespace: &str) -> Result<Policy, FieldError> {
        let ns = self
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| default_namespace.to_string());
        let spec = &self.spec;
        check_selector(&spec.pod_selector, "spec.podSelector")?;
        let (mut has_ingress, mut has_egress) =
            (true, spec.egress.as_ref().is_some_and(|e| !e.is_empty()));
        if let Some(types) = &spec.policy_types {
            has_ingress = false;
            has_egress = false;
            for (i, t) in types.iter().enumerate() {
                match t.as_str() {
                    "Ingress" => has_ingress = true,
                    "Egress" => has_egress = true,
                    other => {
                        return Err(FieldError::new(
                            format!("spec.policyTypes[{i}]"),
                            format!("unknown policy type {other:?} (want Ingress or Egress)"),
                        ))
                    }
                }
            }
        }
        let ingress = spec.ingress.as_deref().unwrap_or_default();
        let egress = spec.egress.as_deref().unwrap_or_default();
        let ingress_rules = ingress
            .iter()
            .enumerate()
            .map(|(i, r)| compile_rule(&ns, r.from.as_ref(), r.ports.as_ref(), "ingress", i))
            .collect::<Result<Vec<_>, _>>()?;
        let egress_rules = egress
            .iter()
            .enumerate()
            .map(|(i, r)| compile_rule(&ns, r.to.as_ref(), r.ports.as_ref(), "egress", i))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Policy {
            id: PolicyRef {
                kind: PolicyKind::NetworkPolicy,
                namespace: Some(ns.clone()),
                name: self.metadata.name.clone(),
            },
            tier: Tier::Namespaced,
            priority: 0,
            subject: PodSelector {
                namespaces: NamespaceScope::Exact(ns),
                pods: spec.pod_selector.clone(),
                flavor: SelectorFlavor::Kubernetes,
            },
            ingress: has_ingress.then_some(DirectionRules {
                isolates: true,
                rules: ingress_rules,
            }),
            egress: has_egress.then_some(DirectionRules {
                isolates: true,
                rules: egress_rules,
            }),
        })
    }
}

fn compile_rule(
    ns: &str,
    peers: Option<&Vec<NpPeer>>,
    ports: Option<&Vec<NpPort>>,
    field: &str,
    index: usize,
) -> Result<Rule, FieldError> {
    let path = format!("spec.{field}[{index}]");
    let peer_field = if field == "ingress" { "from" } else { "to" };
    let peers = match peers {
        None => vec![Peer::Any],
        Some(list) if list.is_empty() => vec![Peer::Any],
        Some(list) => list
            .iter()
            .enumerate()
            .map(|(i, p)| {
                compile_peer(ns, p).map_err(|e| e.under(&format!("{path}.{peer_field}[{i}]")))
            })
            .collect::<Result<_, _>>()?,
    };
    let ports = match ports {
        None => None,
        Some(list) if list.is_empty() => None,
        Some(list) => Some(
            list.iter()
                .enumerate()
                .map(|(i, p)| compile_port(p).map_err(|e| e.under(&format!("{path}.ports[{i}]"))))
                .collect::<Result<_, _>>()?,
        ),
    };
    Ok(Rule {
        name: format!("{field}[{index}]"),
        action: Action::Allow,
        peers,
        ports,
        note: None,
    })
}

fn compile_peer(ns: &str, peer: &NpPeer) -> Result<Peer, FieldError> {
    match (&peer.pod_selector, &peer.namespace_selector, &peer.ip_block) {
        (None, None, None) => Err(FieldError::new(
            "",
            "a peer needs podSelector, namespaceSelector or ipBlock",
        )),
        (_, _, Some(block)) => {
            if peer.pod_selector.is_some() || peer.namespace_selector.is_some() {
                return Err(FieldError::new(
                    "ipBlock",
                    "ipBlock cannot be combined with podSelector or namespaceSelector",
                ));
            }
            let block = IpBlock::parse(&block.cidr, &block.except)
                .map_err(|(p, m)| FieldError::new(format!("ipBlock.{p}"), m))?;
            Ok(Peer::Block {
                block,
                pods_match: None,
            })
        }
        (pods, namespaces, None) => {
            if let Some(p) = pods {
                check_selector(p, "podSelector")?;
            }
            if let Some(n) = namespaces {
                check_selector(n, "namespaceSelector")?;
            }
            Ok(Peer::Pods(PodSelector {
                namespaces: match namespaces {
                    Some(sel) => NamespaceScope::Selector(sel.clone()),
                    None => NamespaceScope::Exact(ns.to_string()),
                },
                pods: pods.clone().unwrap_or_default(),
                flavor: SelectorFlavor::Kubernetes,
            }))
        }
    }
}

fn compile_port(port: &NpPort) -> Result<PortMatch, FieldError> {
    let protocol = match &port.protocol {
        None => Protocol::Tcp,
        Some(p) => Protocol::parse(p)
            .filter(|p| *p != Protocol::Icmp)
            .ok_or_else(|| {
                FieldError::new(
                    "protocol",
                    format!("unsupported protocol {p:?} (want TCP, UDP or SCTP)"),
                )
            })?,
    };
    match &port.port {
        None => {
            if port.end_port.is_some() {
                return Err(FieldError::new("endPort", "endPort needs port"));
            }
            Ok(PortMatch::Range {
                protocol: Some(protocol),
                first: 1,
                last: 65535,
            })
        }
        Some(IntOrString::Int(n)) => {
            let (first, last) = super::port_range(*n, port.end_port)?;
            Ok(PortMatch::Range {
                protocol: Some(protocol),
                first,
                last,
            })
        }
        Some(IntOrString::String(name)) => {
            if let Ok(n) = name.parse::<i64>() {
                // "80" written as a string is still a number to the API server.
                return compile_port(&NpPort {
                    protocol: port.protocol.clone(),
                    port: Some(IntOrString::Int(n)),
                    end_port: port.end_port,
                });
            }
            if port.end_port.is_some() {
                return Err(FieldError::new(
                    "endPort",
                    format!("endPort cannot be used with the named port {name:?}"),
                ));
            }
            if name.is_empty() || name.len() > 15 {
                return Err(FieldError::new(
                    "port",
                    format!("invalid port name {name:?}"),
                ));
            }
            Ok(PortMatch::Named {
                protocol: Some(protocol),
                name: name.clone(),
            })
        }
    }
}
