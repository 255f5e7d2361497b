//! Exposure analysis: what each workload is open to beyond the pods the manifests declare.
//!
//! Per workload and direction:
//! - not selected by any policy for that direction (a namespaced policy that isolates it,
//!   or an admin/baseline policy with rules in that direction): *unprotected*, exposed to
//!   the entire cluster on every port;
//! - otherwise its exposure to the *entire cluster* (a hypothetical pod that only rule
//!   peers selecting every namespace and every pod match), when not empty, and to each
//!   *representative* peer whose answer differs from it. Representatives are the distinct
//!   (namespace selector, pod selector) pairs of the policies' rule peers: a hypothetical
//!   pod that a rule peer matches only when each of the peer's selectors is empty or has
//!   exactly the representative's requirements. A pair of two non-empty matchLabels-only
//!   selectors that a declared pod matches is left out (the pod stands for it);
//! - for a workload with any of those lines, its connections with external ranges.
//!
//! Answers come from the evaluator itself ([`Engine::with_hypothetical_peers`]), through
//! the same tier walk (admin, namespaced, baseline) as any flow. A named port in an egress
//! rule towards a hypothetical peer cannot be resolved (its container ports are unknown), so
//! the answer keeps the name ([`Connections::names`]): each hypothetical peer is asked twice,
//! without container ports and with one placeholder port per named port the policies use;
//! a name counts when its placeholder is allowed only thanks to it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;

use crate::cidr::IpRange;
use crate::connectivity::{external_ranges, has_ipv6_cuts, workloads};
use crate::engine::{Engine, HypotheticalPeer, Options};
use crate::model::{ContainerPort, Inventory, WorkloadRef, NAMESPACE_NAME_LABEL};
use crate::policy::{Direction, NamespaceScope, Peer, PodSelector, Policy, PortMatch, Tier};
use crate::ports::{PortSet, Protocol};
use crate::selector::{LabelSelector, Operator};

/// Who a workload is exposed to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "type", content = "name", rename_all = "kebab-case")]
pub enum ExposedTo {
    /// Any pod of any namespace, including pods not yet declared.
    EntireCluster,
    /// A representative peer, printed as `NS/POD` (see [`Representative::name`]).
    Representative(String),
    /// External addresses.
    IpRange(IpRange),
}

impl fmt::Display for ExposedTo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExposedTo::EntireCluster => f.write_str("entire-cluster"),
            ExposedTo::Representative(name) => f.write_str(name),
            ExposedTo::IpRange(r) => write!(f, "{r}"),
        }
    }
}

/// A port by name, with the protocol the rule gives (`None`: whatever the container
/// port's protocol is, as AdminNetworkPolicy `namedPort`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct NamedPort {
    pub protocol: Option<Protocol>,
    pub name: String,
}

/// Connections to a peer whose container ports are unknown: port numbers, and named
/// ports that would resolve on its container ports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Connections {
    pub ports: PortSet,
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    pub names: BTreeSet<NamedPort>,
}

impl Connections {
    pub fn is_empty(&self) -> bool {
        self.ports.is_empty() && self.names.is_empty()
    }
}

/// The port grammar (`All Connections`, `TCP 80,http`), names after the numbers of their
/// protocol; names without protocol form a group with an empty protocol (` local-port`).
impl fmt::Display for Connections {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.names.is_empty() {
            return write!(f, "{}", self.ports);
        }
        let mut groups: Vec<String> = Vec::new();
        let unnamed: Vec<&str> = self
            .names
            .iter()
            .filter(|n| n.protocol.is_none())
            .map(|n| n.name.as_str())
            .collect();
        if !unnamed.is_empty() {
            groups.push(format!(" {}", unnamed.join(",")));
        }
        for proto in Protocol::ALL {
            let numbers = self.ports.get(proto).ranges().iter().map(|&(lo, hi)| {
                if lo == hi {
                    lo.to_string()
                } else {
                    format!("{lo}-{hi}")
                }
            });
            let names = self
                .names
                .iter()
                .filter(|n| n.protocol == Some(proto))
                .map(|n| n.name.clone());
            let items: Vec<String> = numbers.chain(names).collect();
            if !items.is_empty() {
                groups.push(format!("{proto} {}", items.join(",")));
            }
        }
        f.write_str(&groups.join(","))
    }
}

/// One exposure line: `workload => peer` (egress) or `workload <= peer` (ingress).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExposureLine {
    pub workload: WorkloadRef,
    pub direction: Direction,
    pub peer: ExposedTo,
    pub ports: Connections,
}

/// A workload no policy selects in a direction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unprotected {
    pub workload: WorkloadRef,
    pub direction: Direction,
}

/// The exposure of every workload.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub lines: Vec<ExposureLine>,
    pub unprotected: Vec<Unprotected>,
}

/// A selector's requirements in a canonical form: selectors with equal forms select the
/// same labels (`In` with one value is a label; `In`/`NotIn` values are a set).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Requirements {
    labels: BTreeMap<String, String>,
    /// `{Key:K,Operator:OP,Values:[V1 V2],}` per expression, values sorted, sorted.
    expressions: Vec<String>,
}

fn expression(key: &str, op: Operator, values: &[String]) -> String {
    let op = match op {
        Operator::In => "In",
        Operator::NotIn => "NotIn",
        Operator::Exists => "Exists",
        Operator::DoesNotExist => "DoesNotExist",
    };
    format!("{{Key:{key},Operator:{op},Values:[{}],}}", values.join(" "))
}

impl Requirements {
    fn of(sel: &LabelSelector) -> Option<Requirements> {
        if sel.is_empty() {
            return None;
        }
        let mut labels = sel.match_labels.clone();
        let mut expressions = Vec::new();
        for r in &sel.match_expressions {
            let mut values = r.values.clone();
            values.sort();
            values.dedup();
            match (r.operator, values.as_slice()) {
                (Operator::In, [one]) if labels.get(&r.key).is_none_or(|v| v == one) => {
                    labels.insert(r.key.clone(), one.clone());
                }
                _ => expressions.push(expression(&r.key, r.operator, &values)),
            }
        }
        expressions.sort();
        expressions.dedup();
        Some(Requirements {
            labels,
            expressions,
        })
    }

    fn labels_only(&self) -> bool {
        self.expressions.is_empty()
    }

    fn selector(&self) -> LabelSelector {
        LabelSelector {
            match_labels: self.labels.clone(),
            match_expressions: Vec::new(),
        }
    }
}

/// A selector as upstream prints it: `k=v,...` sorted by key, then each expression with its
/// values in manifest order, these sorted as strings; joined by `,`.
fn selector_text(sel: &LabelSelector) -> String {
    let mut expressions: Vec<String> = sel
        .match_expressions
        .iter()
        .map(|r| expression(&r.key, r.operator, &r.values))
        .collect();
    expressions.sort();
    sel.match_labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .chain(expressions)
        .collect::<Vec<_>>()
        .join(",")
}

/// The (namespace, pod) requirements of a rule peer; `None` stands for "every".
type PeerKey = (Option<Requirements>, Option<Requirements>);

fn peer_key(sel: &PodSelector) -> PeerKey {
    let namespaces = match &sel.namespaces {
        NamespaceScope::Any => None,
        NamespaceScope::Selector(s) => Requirements::of(s),
        NamespaceScope::Exact(name) => Some(Requirements {
            labels: [(NAMESPACE_NAME_LABEL.to_string(), name.clone())].into(),
            expressions: Vec::new(),
        }),
    };
    (namespaces, Requirements::of(&sel.pods))
}

/// A representative peer: a hypothetical pod standing for one (namespace selector, pod
/// selector) pair of the policies' rule peers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Representative {
    key: PeerKey,
    name: String,
    /// Whether both selectors were written as non-empty matchLabels only.
    labels_only: bool,
}

impl Representative {
    /// `NS/POD` as the first rule peer with these requirements is written: the namespace
    /// name when the namespace selector is exactly its name label, `[all namespaces]` or
    /// `[namespace with {SEL}]`; `[all pods]` or `[pod with {SEL}]`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether a rule peer selecting `sel` matches this representative: each of its
    /// selectors is empty or has exactly the representative's requirements.
    fn matched_by(&self, sel: &PodSelector) -> bool {
        let (ns, pods) = peer_key(sel);
        (ns.is_none() || ns == self.key.0) && (pods.is_none() || pods == self.key.1)
    }
}

fn representative_name(sel: &PodSelector) -> String {
    let ns = match &sel.namespaces {
        NamespaceScope::Any => "[all namespaces]".to_string(),
        NamespaceScope::Exact(name) => name.clone(),
        NamespaceScope::Selector(s) if s.is_empty() => "[all namespaces]".to_string(),
        NamespaceScope::Selector(s) => match (s.match_expressions.is_empty(), s.match_labels.len())
        {
            (true, 1) if s.match_labels.contains_key(NAMESPACE_NAME_LABEL) => {
                s.match_labels[NAMESPACE_NAME_LABEL].clone()
            }
            _ => format!("[namespace with {{{}}}]", selector_text(s)),
        },
    };
    let pods = if sel.pods.is_empty() {
        "[all pods]".to_string()
    } else {
        format!("[pod with {{{}}}]", selector_text(&sel.pods))
    };
    format!("{ns}/{pods}")
}

/// The representatives of `policies`, in a stable order.
pub fn representatives(inventory: &Inventory, policies: &[Policy]) -> Vec<Representative> {
    let mut reps: Vec<Representative> = Vec::new();
    for policy in policies {
        for dir in [Direction::Ingress, Direction::Egress] {
            let Some(rules) = policy.direction(dir) else {
                continue;
            };
            for peer in rules.rules.iter().flat_map(|r| &r.peers) {
                if let Peer::Pods(sel) = peer {
                    let key = peer_key(sel);
                    if key != (None, None) && !reps.iter().any(|r| r.key == key) {
                        let ns_labels_only = match &sel.namespaces {
                            NamespaceScope::Exact(_) => true,
                            NamespaceScope::Selector(s) => s.match_expressions.is_empty(),
                            NamespaceScope::Any => false,
                        };
                        reps.push(Representative {
                            labels_only: ns_labels_only && sel.pods.match_expressions.is_empty(),
                            key,
                            name: representative_name(sel),
                        });
                    }
                }
            }
        }
    }
    reps.retain(|r| !(r.labels_only && declared_pod_matches(inventory, &r.key)));
    reps.sort_by(|a, b| a.key.cmp(&b.key));
    reps
}

/// Whether the key is two non-empty label-only selectors that a declared pod matches.
fn declared_pod_matches(inventory: &Inventory, key: &PeerKey) -> bool {
    let (Some(ns), Some(pods)) = key else {
        return false;
    };
    if !ns.labels_only() || !pods.labels_only() {
        return false;
    }
    let (ns, pods) = (ns.selector(), pods.selector());
    inventory.pods.iter().any(|p| {
        !crate::ingress::is_controller(&p.workload)
            && pods.matches(&p.labels)
            && inventory
                .namespaces
                .get(&p.namespace)
                .is_some_and(|n| ns.matches(&n.labels))
    })
}

/// Whether a policy selecting a pod in `dir` protects it there: a namespaced policy that
/// isolates, or an admin or baseline policy with rules in that direction.
fn protects(policy: &Policy, dir: Direction) -> bool {
    policy.direction(dir).is_some_and(|d| match policy.tier {
        Tier::Namespaced => d.isolates,
        Tier::Admin | Tier::Baseline => !d.rules.is_empty(),
    })
}

/// Every named port the policies' rules name.
fn named_ports(policies: &[Policy]) -> Vec<NamedPort> {
    let mut names = BTreeSet::new();
    for policy in policies {
        for dir in [Direction::Ingress, Direction::Egress] {
            let rules = policy.direction(dir).map(|d| d.rules.as_slice());
            for port in rules
                .unwrap_or_default()
                .iter()
                .flat_map(|r| r.ports.iter().flatten())
            {
                if let PortMatch::Named { protocol, name } = port {
                    names.insert(NamedPort {
                        protocol: *protocol,
                        name: name.clone(),
                    });
                }
            }
        }
    }
    names.into_iter().collect()
}

/// The placeholder port number of the `i`th named port, counted down from 65535.
fn placeholder(i: usize) -> u16 {
    u16::try_from(65535 - i.min(65534)).unwrap_or(1)
}

/// Asks the engine about hypothetical peer `k` (pairs: without ports, then with the
/// placeholder ports of `names`).
fn connections(
    engine: &Engine,
    pod: usize,
    k: usize,
    dir: Direction,
    names: &[NamedPort],
) -> Connections {
    let ports = engine.hypothetical_ports(pod, 2 * k, dir);
    let mut out = Connections {
        ports,
        names: BTreeSet::new(),
    };
    if dir == Direction::Egress && !names.is_empty() {
        let with = engine.hypothetical_ports(pod, 2 * k + 1, dir);
        for (i, n) in names.iter().enumerate() {
            let proto = n.protocol.unwrap_or(Protocol::Tcp);
            let p = placeholder(i);
            if with.contains(proto, p) && !out.ports.contains(proto, p) {
                out.names.insert(n.clone());
            }
        }
    }
    out
}

/// Analyses the exposure of every workload of `inventory` under `policies`.
pub fn analyze(inventory: Inventory, policies: Vec<Policy>, options: Options) -> Report {
    let reps = representatives(&inventory, &policies);
    let names = named_ports(&policies);
    let placeholders: Vec<ContainerPort> = names
        .iter()
        .enumerate()
        .map(|(i, n)| ContainerPort {
            name: Some(n.name.clone()),
            port: placeholder(i),
            protocol: n.protocol.unwrap_or(Protocol::Tcp),
        })
        .collect();
    let entire = |sel: &PodSelector| peer_key(sel) == (None, None);
    // One closure type for all representatives.
    let matchers: Vec<_> = reps
        .iter()
        .map(|r| move |sel: &PodSelector| r.matched_by(sel))
        .collect();
    let mut predicates: Vec<&dyn Fn(&PodSelector) -> bool> = vec![&entire];
    predicates.extend(matchers.iter().map(|m| m as &dyn Fn(&PodSelector) -> bool));
    let peers: Vec<HypotheticalPeer> = predicates
        .iter()
        .flat_map(|&matches| {
            [
                HypotheticalPeer {
                    matches,
                    ports: Vec::new(),
                },
                HypotheticalPeer {
                    matches,
                    ports: placeholders.clone(),
                },
            ]
        })
        .collect();
    let engine = Engine::with_hypothetical_peers(inventory, policies, options, &peers);
    let ipv6 = has_ipv6_cuts(&engine);
    let mut report = Report::default();
    for (workload, pod) in workloads(&engine) {
        let mut lines = Vec::new();
        for dir in [Direction::Egress, Direction::Ingress] {
            let line = |peer: ExposedTo, ports: Connections| ExposureLine {
                workload: workload.clone(),
                direction: dir,
                peer,
                ports,
            };
            if !engine.policies_for(pod, dir).any(|p| protects(p, dir)) {
                report.unprotected.push(Unprotected {
                    workload: workload.clone(),
                    direction: dir,
                });
                let all = Connections {
                    ports: PortSet::all(),
                    names: BTreeSet::new(),
                };
                lines.push(line(ExposedTo::EntireCluster, all));
                continue;
            }
            let whole = connections(&engine, pod, 0, dir, &names);
            for (i, rep) in reps.iter().enumerate() {
                let conns = connections(&engine, pod, i + 1, dir, &names);
                if conns != whole {
                    lines.push(line(
                        ExposedTo::Representative(rep.name().to_string()),
                        conns,
                    ));
                }
            }
            if !whole.is_empty() {
                lines.push(line(ExposedTo::EntireCluster, whole));
            }
        }
        if lines.is_empty() {
            continue;
        }
        for dir in [Direction::Egress, Direction::Ingress] {
            let outbound = dir == Direction::Egress;
            for (range, ports) in external_ranges(&engine, pod, outbound, ipv6) {
                if !ports.is_empty() {
                    lines.push(ExposureLine {
                        workload: workload.clone(),
                        direction: dir,
                        peer: ExposedTo::IpRange(range),
                        ports: Connections {
                            ports,
                            names: BTreeSet::new(),
                        },
                    });
                }
            }
        }
        report.lines.extend(lines);
    }
    report
}

#[cfg(test)]
#[path = "exposure/tests.rs"]
mod tests;
