//! `cilium.io/v2` CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy.
//!
//! Semantics (Cilium documentation, "Using Kubernetes constructs in policy"): a CNP's
//! endpointSelector "always applies to pods in the namespace associated with the
//! CiliumNetworkPolicy resource itself"; its peers are scoped to that namespace unless they
//! name `io.kubernetes.pod.namespace`; a CCNP's selectors are cluster-wide. A direction with rules
//! (allow or deny) puts the subject in default deny unless `enableDefaultDeny` says
//! otherwise. Deny rules win over every allow. CIDR rules select addresses outside the
//! cluster only. An L3 section with no selector but with `toPorts` applies to every peer;
//! an empty rule `{}` selects nothing. L7 rules count as an L4 allow, with a note.

use serde::Deserialize;

use super::ObjectMeta;
use crate::cidr::IpBlock;
use crate::error::FieldError;
use crate::policy::*;
use crate::ports::Protocol;
use crate::selector::LabelSelector;

/// The label key Cilium gives a pod's namespace.
pub const NAMESPACE_KEY: &str = "io.kubernetes.pod.namespace";

/// The match label Cilium's converter overwrites with a CNP's namespace.
const SUBJECT_NAMESPACE_LABEL: &str = "k8s:io.kubernetes.pod.namespace";

#[derive(Debug, Deserialize)]
pub struct CiliumPolicy {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: Option<CnpRule>,
    #[serde(default)]
    pub specs: Option<Vec<CnpRule>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CnpRule {
    #[serde(default)]
    pub endpoint_selector: Option<LabelSelector>,
    #[serde(default)]
    pub node_selector: Option<LabelSelector>,
    #[serde(default)]
    pub ingress: Option<Vec<CnpL3>>,
    #[serde(default)]
    pub ingress_deny: Option<Vec<CnpL3>>,
    #[serde(default)]
    pub egress: Option<Vec<CnpL3>>,
    #[serde(default)]
    pub egress_deny: Option<Vec<CnpL3>>,
    #[serde(default)]
    pub enable_default_deny: Option<DefaultDeny>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub labels: Option<serde_json::Value>,
    #[serde(default)]
    pub log: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DefaultDeny {
    #[serde(default)]
    pub ingress: Option<bool>,
    #[serde(default)]
    pub egress: Option<bool>,
}

/// One ingress or egress (allow or deny) rule: both directions' field names are accepted
/// here and checked against the direction when compiling.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CnpL3 {
    #[serde(default)]
    pub from_endpoints: Option<Vec<LabelSelector>>,
    #[serde(default)]
    pub to_endpoints: Option<Vec<LabelSelector>>,
    #[serde(default)]
    pub from_entities: Option<Vec<String>>,
    #[serde(default)]
    pub to_entities: Option<Vec<String>>,
    #[serde(default, rename = "fromCIDR")]
    pub from_cidr: Option<Vec<String>>,
    #[serde(default, rename = "toCIDR")]
    pub to_cidr: Option<Vec<String>>,
    #[serde(default, rename = "fromCIDRSet")]
    pub from_cidr_set: Option<Vec<CidrRule>>,
    #[serde(default, rename = "toCIDRSet")]
    pub to_cidr_set: Option<Vec<CidrRule>>,
    #[serde(default)]
    pub from_requires: Option<Vec<LabelSelector>>,
    #[serde(default)]
    pub to_requires: Option<Vec<LabelSelector>>,
    #[serde(default)]
    pub from_nodes: Option<Vec<LabelSelector>>,
    #[serde(default)]
    pub to_nodes: Option<Vec<LabelSelector>>,
    #[serde(default)]
    pub from_groups: Option<serde_json::Value>,
    #[serde(default)]
    pub to_groups: Option<serde_json::Value>,
    #[serde(default, rename = "toFQDNs")]
    pub to_fqdns: Option<serde_json::Value>,
    #[serde(default)]
    pub to_services: Option<serde_json::Value>,
    #[serde(default)]
    pub to_ports: Option<Vec<PortRule>>,
    #[serde(default)]
    pub icmps: Option<Vec<IcmpRule>>,
    #[serde(default)]
    pub authentication: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CidrRule {
    #[serde(default)]
    pub cidr: Option<String>,
    #[serde(default)]
    pub except: Vec<String>,
    #[serde(default)]
    pub cidr_group_ref: Option<String>,
    #[serde(default)]
    pub cidr_group_selector: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortRule {
    #[serde(default)]
    pub ports: Option<Vec<PortProtocol>>,
    #[serde(default)]
    pub rules: Option<serde_json::Value>,
    #[serde(default, rename = "originatingTLS")]
    pub originating_tls: Option<serde_json::Value>,
    #[serde(default, rename = "terminatingTLS")]
    pub terminating_tls: Option<serde_json::Value>,
    #[serde(default)]
    pub server_names: Option<serde_json::Value>,
    #[serde(default)]
    pub listener: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortProtocol {
    #[serde(default)]
    pub port: Option<super::IntOrString>,
    #[serde(default)]
    pub end_port: Option<i64>,
    #[serde(default)]
    pub protocol: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IcmpRule {
    #[serde(default)]
    pub fields: Vec<IcmpField>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IcmpField {
    #[serde(rename = "type")]
    pub icmp_type: super::IntOrString,
    #[serde(default)]
    pub family: Option<String>,
}

impl CiliumPolicy {
    /// Converts a CNP (`clusterwide` false; namespace defaults to `default_namespace`) or a
    /// CCNP. A policy with `specs` yields one [`Policy`] per entry, named `name[i]`.
    pub fn compile(
        &self,
        clusterwide: bool,
        default_namespace: &str,
    ) -> Result<Vec<Policy>, FieldError> {
        let ns = (!clusterwide).then(|| {
            self.metadata
                .namespace
                .clone()
                .unwrap_or_else(|| default_namespace.to_string())
        });
        let mut rules: Vec<(String, &CnpRule)> = Vec::new();
        if let Some(spec) = &self.spec {
            rules.push(("spec".into(), spec));
        }
        for (i, spec) in self.specs.iter().flatten().enumerate() {
            rules.push((format!("specs[{i}]"), spec));
        }
        if rules.is_empty() {
            return Err(FieldError::new(
                "spec",
                "a Cilium policy needs spec or specs",
            ));
        }
        let many = rules.len() > 1;
        rules
            .into_iter()
            .map(|(path, rule)| {
                let name = if many {
                    format!("{}[{}]", self.metadata.name, path)
                } else {
                    self.metadata.name.clone()
                };
                compile_spec(rule, ns.as_deref(), clusterwide, name).map_err(|e| e.under(&path))
            })
            .collect()
    }
}

fn compile_spec(
    rule: &CnpRule,
    ns: Option<&str>,
    clusterwide: bool,
    name: String,
) -> Result<Policy, FieldError> {
    let Some(subject) = &rule.endpoint_selector else {
        let msg = if rule.node_selector.is_some() {
            "nodeSelector (host policies) is not supported: host endpoints are not in the inventory"
        } else {
            "endpointSelector is required"
        };
        return Err(FieldError::new("endpointSelector", msg));
    };
    super::check_selector(subject, "endpointSelector")?;
    let dd = rule.enable_default_deny.as_ref();
    let direction = |allow: &Option<Vec<CnpL3>>,
                     deny: &Option<Vec<CnpL3>>,
                     dir: Direction,
                     explicit: Option<bool>|
     -> Result<Option<DirectionRules>, FieldError> {
        let has_rules = allow.as_ref().is_some_and(|v| !v.is_empty())
            || deny.as_ref().is_some_and(|v| !v.is_empty());
        if !has_rules {
            return Ok(None);
        }
        let field = dir.as_str();
        let mut rules = Vec::new();
        for (list, action, field) in [
            (allow, Action::Allow, field.to_string()),
            (deny, Action::Deny, format!("{field}Deny")),
        ] {
            for (i, l3) in list.iter().flatten().enumerate() {
                let path = format!("{field}[{i}]");
                rules.push(compile_l3(l3, dir, action, ns, &path).map_err(|e| e.under(&path))?);
            }
        }
        Ok(Some(DirectionRules {
            isolates: explicit.unwrap_or(true),
            rules,
        }))
    };
    let kind = if clusterwide {
        PolicyKind::CiliumClusterwideNetworkPolicy
    } else {
        PolicyKind::CiliumNetworkPolicy
    };
    Ok(Policy {
        id: PolicyRef {
            kind,
            namespace: ns.map(str::to_string),
            name,
        },
        tier: Tier::Namespaced,
        priority: 0,
        subject: cilium_subject(subject, ns),
        ingress: direction(
            &rule.ingress,
            &rule.ingress_deny,
            Direction::Ingress,
            dd.and_then(|d| d.ingress),
        )?,
        egress: direction(
            &rule.egress,
            &rule.egress_deny,
            Direction::Egress,
            dd.and_then(|d| d.egress),
        )?,
    })
}

/// The pods a Cilium policy applies to. A CCNP selects in every namespace. A CNP's
/// endpointSelector applies in the policy's namespace only: Cilium's converter sets the
/// match label `k8s:io.kubernetes.pod.namespace` to the policy namespace, replacing any value
/// the user gave it (with a warning in the agent's log); other requirements on the namespace
/// label stay and can only narrow the selection further.
fn cilium_subject(sel: &LabelSelector, ns: Option<&str>) -> PodSelector {
    let Some(ns) = ns else {
        return PodSelector {
            namespaces: NamespaceScope::Any,
            pods: sel.clone(),
            flavor: SelectorFlavor::Cilium,
        };
    };
    let mut pods = sel.clone();
    pods.match_labels.remove(SUBJECT_NAMESPACE_LABEL);
    PodSelector {
        namespaces: NamespaceScope::Exact(ns.to_string()),
        pods,
        flavor: SelectorFlavor::Cilium,
    }
}

/// A Cilium peer selector (fromEndpoints/toEndpoints); in a CNP it is confined to the
/// policy namespace unless it names the namespace label itself.
fn cilium_selector(sel: &LabelSelector, ns: Option<&str>) -> PodSelector {
    let names_namespace = sel.keys().any(|k| {
        k.strip_prefix("k8s:")
            .or_else(|| k.strip_prefix("any:"))
            .unwrap_or(k)
            == NAMESPACE_KEY
    });
    PodSelector {
        namespaces: match ns {
            Some(ns) if !names_namespace => NamespaceScope::Exact(ns.to_string()),
            _ => NamespaceScope::Any,
        },
        pods: sel.clone(),
        flavor: SelectorFlavor::Cilium,
    }
}

fn compile_l3(
    l3: &CnpL3,
    dir: Direction,
    action: Action,
    ns: Option<&str>,
    _path: &str,
) -> Result<Rule, FieldError> {
    let ingress = dir == Direction::Ingress;
    let wrong = if ingress {
        [
            ("toEndpoints", l3.to_endpoints.is_some()),
            ("toEntities", l3.to_entities.is_some()),
            ("toCIDR", l3.to_cidr.is_some()),
            ("toCIDRSet", l3.to_cidr_set.is_some()),
            ("toFQDNs", l3.to_fqdns.is_some()),
            ("toServices", l3.to_services.is_some()),
        ]
    } else {
        [
            ("fromEndpoints", l3.from_endpoints.is_some()),
            ("fromEntities", l3.from_entities.is_some()),
            ("fromCIDR", l3.from_cidr.is_some()),
            ("fromCIDRSet", l3.from_cidr_set.is_some()),
            ("fromRequires", l3.from_requires.is_some()),
            ("fromGroups", l3.from_groups.is_some()),
        ]
    };
    if let Some((field, _)) = wrong.iter().find(|(_, set)| *set) {
        return Err(FieldError::new(
            *field,
            format!("{field} is not valid in an {} rule", dir.as_str()),
        ));
    }
    let (endpoints, entities, cidrs, cidr_sets) = if ingress {
        (
            &l3.from_endpoints,
            &l3.from_entities,
            &l3.from_cidr,
            &l3.from_cidr_set,
        )
    } else {
        (
            &l3.to_endpoints,
            &l3.to_entities,
            &l3.to_cidr,
            &l3.to_cidr_set,
        )
    };
    let (ep_field, ent_field, cidr_field, set_field) = if ingress {
        ("fromEndpoints", "fromEntities", "fromCIDR", "fromCIDRSet")
    } else {
        ("toEndpoints", "toEntities", "toCIDR", "toCIDRSet")
    };
    let mut peers = Vec::new();
    let mut notes = Vec::new();
    let mut has_l3 = false;
    for (i, sel) in endpoints.iter().flatten().enumerate() {
        has_l3 = true;
        super::check_selector(sel, &format!("{ep_field}[{i}]"))?;
        if let Some(entity) = reserved_entity(sel) {
            peers.push(Peer::Entities(entity.bit()));
        } else {
            peers.push(Peer::Pods(cilium_selector(sel, ns)));
        }
    }
    if let Some(list) = entities {
        has_l3 = true;
        let mut mask = 0u16;
        for (i, name) in list.iter().enumerate() {
            let entity = Entity::parse(name).ok_or_else(|| {
                FieldError::new(
                    format!("{ent_field}[{i}]"),
                    format!("unknown entity {name:?}"),
                )
            })?;
            // `cluster` and `all` select every endpoint that belongs to them.
            mask |= entity.bit();
        }
        peers.push(Peer::Entities(mask));
    }
    for (i, c) in cidrs.iter().flatten().enumerate() {
        has_l3 = true;
        let block = IpBlock::parse(c, &[])
            .map_err(|(_, m)| FieldError::new(format!("{cidr_field}[{i}]"), m))?;
        peers.push(Peer::Block {
            block,
            pods_match: Some(false),
        });
    }
    for (i, c) in cidr_sets.iter().flatten().enumerate() {
        has_l3 = true;
        let path = format!("{set_field}[{i}]");
        let Some(cidr) = &c.cidr else {
            notes.push(format!("{path}: CIDR groups are not evaluated offline"));
            continue;
        };
        let block = IpBlock::parse(cidr, &c.except)
            .map_err(|(p, m)| FieldError::new(format!("{path}.{p}"), m))?;
        peers.push(Peer::Block {
            block,
            pods_match: Some(false),
        });
    }
    for (field, set) in [
        ("toFQDNs", l3.to_fqdns.is_some()),
        ("toServices", l3.to_services.is_some()),
        ("toGroups", l3.to_groups.is_some()),
        ("fromGroups", l3.from_groups.is_some()),
        ("toNodes", l3.to_nodes.is_some()),
        ("fromNodes", l3.from_nodes.is_some()),
    ] {
        if set {
            has_l3 = true;
            notes.push(format!(
                "{field} peers are not evaluated offline and match nothing"
            ));
        }
    }
    if l3.from_requires.is_some() || l3.to_requires.is_some() {
        notes.push("fromRequires/toRequires are deprecated and not evaluated".into());
    }
    let (ports, l7) = compile_ports(l3)?;
    if l7 {
        notes.push("L7 rules apply: only part of this traffic may be allowed by the proxy".into());
    }
    if !has_l3 && ports.is_some() {
        peers.push(Peer::Any);
    }
    Ok(Rule {
        name: _path.to_string(),
        action,
        peers,
        ports,
        note: (!notes.is_empty()).then(|| notes.join("; ")),
    })
}

/// `reserved:host` style endpoint selectors select an entity.
fn reserved_entity(sel: &LabelSelector) -> Option<Entity> {
    if sel.match_labels.len() != 1 || !sel.match_expressions.is_empty() {
        return None;
    }
    let key = sel.match_labels.keys().next()?;
    key.strip_prefix("reserved:").and_then(Entity::parse)
}

/// Ports of `toPorts` and `icmps`; None when the rule names none (all ports).
fn compile_ports(l3: &CnpL3) -> Result<(Option<Vec<PortMatch>>, bool), FieldError> {
    let mut out = Vec::new();
    let mut any = false;
    let mut l7 = false;
    for (i, pr) in l3.to_ports.iter().flatten().enumerate() {
        any = true;
        l7 |= pr.rules.as_ref().is_some_and(|r| !r.is_null());
        let ports = pr.ports.as_deref().unwrap_or_default();
        if ports.is_empty() {
            out.push(PortMatch::Range {
                protocol: None,
                first: 1,
                last: 65535,
            });
        }
        for (j, p) in ports.iter().enumerate() {
            let path = format!("toPorts[{i}].ports[{j}]");
            out.push(compile_port(p).map_err(|e| e.under(&path))?);
        }
    }
    for (i, icmp) in l3.icmps.iter().flatten().enumerate() {
        any = true;
        for (j, f) in icmp.fields.iter().enumerate() {
            let t = icmp_type(&f.icmp_type).ok_or_else(|| {
                FieldError::new(format!("icmps[{i}].fields[{j}].type"), "unknown ICMP type")
            })?;
            out.push(PortMatch::Range {
                protocol: Some(Protocol::Icmp),
                first: t,
                last: t,
            });
        }
    }
    Ok((any.then_some(out), l7))
}

fn compile_port(p: &PortProtocol) -> Result<PortMatch, FieldError> {
    let protocol = match p.protocol.as_deref() {
        None | Some("ANY") | Some("any") => None,
        Some(name) => Some(
            Protocol::parse(name)
                .filter(|p| *p != Protocol::Icmp)
                .ok_or_else(|| {
                    FieldError::new(
                        "protocol",
                        format!("unsupported protocol {name:?} (want TCP, UDP, SCTP or ANY)"),
                    )
                })?,
        ),
    };
    let number = match &p.port {
        None => None,
        Some(super::IntOrString::Int(n)) => Some(*n),
        Some(super::IntOrString::String(s)) => match s.parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => {
                if p.end_port.is_some() {
                    return Err(FieldError::new(
                        "endPort",
                        format!("endPort cannot be used with the named port {s:?}"),
                    ));
                }
                return Ok(PortMatch::Named {
                    protocol,
                    name: s.clone(),
                });
            }
        },
    };
    match number {
        None | Some(0) => Ok(PortMatch::Range {
            protocol,
            first: 1,
            last: 65535,
        }),
        Some(n) => {
            // Cilium writes "no end port" as 0.
            let (first, last) = super::port_range(n, p.end_port.filter(|&e| e != 0))?;
            Ok(PortMatch::Range {
                protocol,
                first,
                last,
            })
        }
    }
}

fn icmp_type(t: &super::IntOrString) -> Option<u16> {
    match t {
        super::IntOrString::Int(n) => u8::try_from(*n).ok().map(u16::from),
        super::IntOrString::String(s) => s.parse::<u8>().ok().map(u16::from).or(match s.as_str() {
            "EchoReply" => Some(0),
            "DestinationUnreachable" => Some(3),
            "Redirect" => Some(5),
            "EchoRequest" => Some(8),
            "TimeExceeded" => Some(11),
            _ => None,
        }),
    }
}
