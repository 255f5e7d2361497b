//! `COVERAGE_GAP`: workloads that receive traffic no ingress policy governs get a policy
//! allowing exactly their observed peers and ports; a namespace whose workloads are then all
//! covered gets a default deny.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use flow::graph::{Edge, Graph};
use netpol::model::{WorkloadRef, NAMESPACE_NAME_LABEL};
use netpol::policy::{Direction, Entity, PolicyKind};
use netpol::{AllowLocalhost, Endpoint, Engine, Protocol, Verdict};
use serde_json::{json, Value};

use crate::labels::stable_selector;
use crate::verify::{apply, checked, Applied};
use crate::{
    confidence, digest, Control, EvidenceEdge, Judged, Kind, Recommendation, Rejected, Report,
    Severity, CIS_5_3_2, PCI_1_3_1, PCI_1_3_2,
};

/// Ports that mark a data-tier workload.
const DATA_PORTS: [u16; 9] = [5432, 3306, 6379, 27017, 9042, 9200, 5984, 1433, 1521];

/// Who a rule lets in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Peer {
    /// Pods of a workload (by its stable labels) in its namespace.
    Workload(WorkloadRef),
    /// Every pod of a namespace.
    Namespace(String),
    /// One outside address.
    Address(IpAddr),
    /// Every outside address of a family (`0.0.0.0/0`, `::/0`).
    World { v6: bool },
    /// A Cilium entity (`remote-node`, `kube-apiserver`, ...): CiliumNetworkPolicy only.
    Entity(Entity),
}

/// The policy kind suggestions are written in: the cluster's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    NetworkPolicy,
    /// The cluster uses CiliumNetworkPolicies: suggestions are CiliumNetworkPolicies, which
    /// can also name reserved entities.
    Cilium,
}

impl Dialect {
    /// Cilium when the cluster has any Cilium policy.
    pub(crate) fn of(engine: &Engine) -> Dialect {
        let cilium = engine.policies().iter().any(|p| {
            matches!(
                p.id.kind,
                PolicyKind::CiliumNetworkPolicy | PolicyKind::CiliumClusterwideNetworkPolicy
            )
        });
        if cilium {
            Dialect::Cilium
        } else {
            Dialect::NetworkPolicy
        }
    }
}

/// Distinct outside addresses on the same ports above which the peer is the whole world: a
/// workload that many clients reach (an ingress controller) is public on those ports.
const WORLD_AFTER: usize = 16;

type Ports = BTreeSet<(Protocol, u16)>;

pub(crate) fn coverage_gaps(engine: &Engine, graph: &Graph, judged: &Judged, report: &mut Report) {
    for dir in [Direction::Ingress, Direction::Egress] {
        coverage_gaps_at(engine, graph, judged, report, dir);
    }
}

/// The side of an edge a direction's policy selects, and the other side.
fn sides(e: &Edge, dir: Direction) -> (&Endpoint, &Endpoint) {
    match dir {
        Direction::Ingress => (&e.destination_endpoint, &e.source_endpoint),
        Direction::Egress => (&e.source_endpoint, &e.destination_endpoint),
    }
}

fn decided(d: &netpol::Decision, dir: Direction) -> Option<&netpol::DirectionDecision> {
    match dir {
        Direction::Ingress => d.ingress.as_ref(),
        Direction::Egress => d.egress.as_ref(),
    }
}

fn coverage_gaps_at(
    engine: &Engine,
    graph: &Graph,
    judged: &Judged,
    report: &mut Report,
    dir: Direction,
) {
    let inv = engine.inventory();
    let mut first_pod: BTreeMap<&WorkloadRef, usize> = BTreeMap::new();
    for (i, pod) in inv.pods.iter().enumerate() {
        first_pod.entry(&pod.workload).or_insert(i);
    }
    let mut gaps: BTreeMap<&WorkloadRef, Vec<&Edge>> = BTreeMap::new();
    for (e, decision) in graph.edges.iter().zip(&judged.decisions) {
        let (&Endpoint::Pod(subject), _) = sides(e, dir) else {
            continue;
        };
        if e.source_endpoint == e.destination_endpoint {
            continue;
        }
        if decided(decision, dir).is_some_and(|d| d.verdict == Verdict::NoPolicy) {
            gaps.entry(&inv.pods[subject].workload).or_default().push(e);
        }
    }

    // Workloads covered in this direction, per namespace, as suggestions are accepted.
    let mut covered: BTreeMap<&str, BTreeSet<&WorkloadRef>> = BTreeMap::new();
    for (w, &pod) in &first_pod {
        if isolated(engine, pod, dir) {
            covered.entry(&w.namespace).or_default().insert(w);
        }
    }
    let mut accepted: BTreeMap<&str, Vec<(String, Vec<&Edge>)>> = BTreeMap::new();
    for (w, edges) in gaps {
        let target = w.to_string();
        match workload_policy(engine, w, &edges, dir) {
            Err(reason) => report.rejected.push(Rejected {
                kind: Kind::CoverageGap,
                target,
                reason,
                suggested_yaml: None,
            }),
            Ok((name, yaml)) => match checked(engine, &yaml, graph, &[first_pod[w]], None) {
                Err(reason) => report.rejected.push(Rejected {
                    kind: Kind::CoverageGap,
                    target,
                    reason,
                    suggested_yaml: Some(yaml),
                }),
                Ok(applied) => {
                    report.recommendations.push(workload_recommendation(
                        w,
                        &name,
                        yaml.clone(),
                        &edges,
                        applied,
                        graph,
                        dir,
                    ));
                    covered.entry(&w.namespace).or_default().insert(w);
                    accepted
                        .entry(&w.namespace)
                        .or_default()
                        .push((yaml, edges));
                }
            },
        }
    }

    for (ns, suggestions) in accepted {
        let workloads: Vec<&WorkloadRef> = first_pod
            .keys()
            .copied()
            .filter(|w| w.namespace == ns)
            .collect();
        let done = covered.get(ns).map_or(0, BTreeSet::len);
        if done < workloads.len() {
            continue;
        }
        let targets: Vec<usize> = workloads.iter().map(|w| first_pod[w]).collect();
        let together: Vec<&str> = suggestions.iter().map(|(y, _)| y.as_str()).collect();
        let edges: Vec<&Edge> = suggestions
            .iter()
            .flat_map(|(_, e)| e.iter().copied())
            .collect();
        let deny = default_deny(ns, dir);
        let word = dir.as_str();
        let result = apply(engine, &together.join("---\n"), graph, &targets, None)
            .and_then(|with| checked(&with.engine, &deny, graph, &targets, None));
        match result {
            Err(reason) => report.rejected.push(Rejected {
                kind: Kind::CoverageGap,
                target: format!("namespace {ns}"),
                reason,
                suggested_yaml: Some(deny),
            }),
            Ok(applied) => report.recommendations.push(Recommendation {
                kind: Kind::CoverageGap,
                severity: severity(&edges),
                confidence: confidence(&edges, graph.hours),
                title: format!("Default-deny {word} in namespace {ns}"),
                description: format!(
                    "Every workload of {ns} is covered for {word} once the workload policies \
                     suggested for it are applied; a default deny keeps workloads added later \
                     closed until a policy opens them. Apply it with those policies. Checked: \
                     no observed flow that is allowed today becomes blocked."
                ),
                suggested_yaml: deny,
                target_policy: format!("{ns}/default-deny-{word}"),
                evidence: edges.iter().map(|e| EvidenceEdge::from(*e)).collect(),
                impact: applied.impact,
                fingerprint: digest(&["COVERAGE_GAP", "namespace-default-deny", word, ns]),
                evidence_digest: digest(&[&workloads
                    .iter()
                    .map(|w| w.to_string())
                    .collect::<Vec<_>>()
                    .join(",")]),
                diff: None,
                controls: vec![CIS_5_3_2],
            }),
        }
    }
}

/// Whether anything governs a pod's traffic in a direction (probed with an outside address).
fn isolated(engine: &Engine, pod: usize, dir: Direction) -> bool {
    let probe = Endpoint::External(IpAddr::from([192, 0, 2, 1]));
    let pod = Endpoint::Pod(pod);
    let d = match dir {
        Direction::Ingress => engine.decide(&probe, &pod, Protocol::Tcp, 1),
        Direction::Egress => engine.decide(&pod, &probe, Protocol::Tcp, 1),
    };
    decided(&d, dir).is_some_and(|d| d.verdict != Verdict::NoPolicy)
}

/// The policy for one workload's observed traffic in a direction: its name and YAML.
fn workload_policy(
    engine: &Engine,
    w: &WorkloadRef,
    edges: &[&Edge],
    dir: Direction,
) -> Result<(String, String), String> {
    let inv = engine.inventory();
    let selector = stable_selector(inv, w).ok_or_else(|| {
        format!(
            "no stable labels tell {w} apart from the other pods of {}",
            w.namespace
        )
    })?;
    let dialect = Dialect::of(engine);
    let rules = observed_rules(engine, &w.to_string(), &w.namespace, edges, dir, dialect)?;
    let word = dir.as_str();
    let name = policy_name(&w.name, &format!("-allow-observed-{word}"));
    let metadata = json!({
        "name": name,
        "namespace": w.namespace,
        "labels": {"app.kubernetes.io/managed-by": "policyhub"},
        "annotations": {"policyhub.io/recommendation": "COVERAGE_GAP"},
    });
    let doc = match dialect {
        Dialect::NetworkPolicy => json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": metadata,
            "spec": {
                "podSelector": {"matchLabels": selector},
                "policyTypes": [policy_type(dir)],
                word: rules,
            },
        }),
        Dialect::Cilium => json!({
            "apiVersion": "cilium.io/v2",
            "kind": "CiliumNetworkPolicy",
            "metadata": metadata,
            "spec": {
                "endpointSelector": {"matchLabels": selector},
                word: rules,
            },
        }),
    };
    let yaml = yaml_serde::to_string(&doc).map_err(|e| e.to_string())?;
    Ok((name, yaml))
}

/// Rules that allow exactly the peers and ports of `edges` in `dir` for pods of namespace
/// `ns` (`who` names them in errors): one rule per distinct port set, peers generalised
/// ([`generalise`]).
pub(crate) fn observed_rules(
    engine: &Engine,
    who: &str,
    ns: &str,
    edges: &[&Edge],
    dir: Direction,
    dialect: Dialect,
) -> Result<Vec<Value>, String> {
    let inv = engine.inventory();
    let mut peers: BTreeMap<Peer, Ports> = BTreeMap::new();
    let (verb, prep) = match dir {
        Direction::Ingress => ("receives", "from"),
        Direction::Egress => ("sends", "to"),
    };
    for e in edges {
        let peer = match *sides(e, dir).1 {
            Endpoint::Pod(s) => Peer::Workload(inv.pods[s].workload.clone()),
            Endpoint::External(ip) => Peer::Address(ip),
            Endpoint::Entity(Entity::Host, _)
                if dir == Direction::Ingress
                    && engine.options().allow_localhost == AllowLocalhost::Always =>
            {
                // The local host passes ingress policy anyway.
                continue;
            }
            Endpoint::Entity(entity, _) if dialect == Dialect::Cilium => Peer::Entity(entity),
            Endpoint::Entity(entity, _) => {
                return Err(format!(
                    "{who} {verb} traffic {prep} reserved:{}, which a NetworkPolicy cannot name",
                    entity.as_str()
                ))
            }
        };
        peers.entry(peer).or_default().insert((e.protocol, e.port));
    }
    if peers.is_empty() {
        return Err(format!("{who} {verb} traffic only {prep} the local host"));
    }
    let peers = generalise(engine, peers);
    // One rule per distinct port set, peers sorted.
    let mut rules: BTreeMap<Ports, Vec<Peer>> = BTreeMap::new();
    for (peer, ports) in peers {
        rules.entry(ports).or_default().push(peer);
    }
    if dialect == Dialect::Cilium {
        return Ok(rules
            .iter()
            .flat_map(|(ports, peers)| cilium_rules(engine, dir, ports, peers))
            .collect());
    }
    Ok(rules
        .iter()
        .map(|(ports, peers)| {
            let list: Vec<Value> = peers
                .iter()
                .filter_map(|p| peer_json(engine, ns, p))
                .collect();
            let mut rule = json!({prep: list});
            // NetworkPolicy cannot name ICMP: a peer seen with ICMP is allowed on every port.
            if !ports.iter().any(|(p, _)| *p == Protocol::Icmp) {
                rule["ports"] = ports
                    .iter()
                    .map(|(p, port)| json!({"protocol": p.as_str(), "port": port}))
                    .collect();
            }
            rule
        })
        .collect())
}

/// CiliumNetworkPolicy rules for peers on one port set: one rule per kind of peer
/// (endpoints, entities, CIDRs), each with the ports (no ports when ICMP was seen).
fn cilium_rules(engine: &Engine, dir: Direction, ports: &Ports, peers: &[Peer]) -> Vec<Value> {
    let (endpoints_key, entities_key, cidr_key) = match dir {
        Direction::Ingress => ("fromEndpoints", "fromEntities", "fromCIDR"),
        Direction::Egress => ("toEndpoints", "toEntities", "toCIDR"),
    };
    let (mut endpoints, mut entities, mut cidrs) = (Vec::new(), Vec::new(), Vec::new());
    for peer in peers {
        match peer {
            Peer::Workload(w) => {
                let mut labels = serde_json::Map::new();
                labels.insert(NAMESPACE_LABEL.into(), json!(w.namespace));
                // Without stable labels the namespace is the narrowest peer.
                if let Some(sel) = stable_selector(engine.inventory(), w) {
                    labels.extend(sel.into_iter().map(|(k, v)| (k, json!(v))));
                }
                endpoints.push(json!({"matchLabels": labels}));
            }
            Peer::Namespace(ns) => endpoints.push(json!({"matchLabels": {NAMESPACE_LABEL: ns}})),
            Peer::Address(ip) => {
                let bits = if ip.is_ipv4() { 32 } else { 128 };
                cidrs.push(json!(format!("{ip}/{bits}")));
            }
            Peer::World { .. } => entities.push(json!("world")),
            Peer::Entity(e) => entities.push(json!(e.as_str())),
        }
    }
    entities.dedup();
    let icmp = ports.iter().any(|(p, _)| *p == Protocol::Icmp);
    let to_ports: Vec<Value> = ports
        .iter()
        .map(|(p, port)| json!({"port": port.to_string(), "protocol": p.as_str()}))
        .collect();
    [
        (endpoints_key, endpoints),
        (entities_key, entities),
        (cidr_key, cidrs),
    ]
    .into_iter()
    .filter(|(_, list)| !list.is_empty())
    .map(|(key, list)| {
        let mut rule = json!({key: list});
        if !icmp {
            rule["toPorts"] = json!([{"ports": to_ports}]);
        }
        rule
    })
    .collect()
}

/// The label key Cilium gives a pod's namespace, with its source.
const NAMESPACE_LABEL: &str = "k8s:io.kubernetes.pod.namespace";

/// Workload peers of one namespace become the namespace when every workload of it talks,
/// on the same ports; more than [`WORLD_AFTER`] outside addresses on the same ports become
/// the world.
fn generalise(engine: &Engine, peers: BTreeMap<Peer, Ports>) -> BTreeMap<Peer, Ports> {
    let mut in_ns: BTreeMap<String, BTreeSet<&WorkloadRef>> = BTreeMap::new();
    for pod in &engine.inventory().pods {
        in_ns
            .entry(pod.namespace.clone())
            .or_default()
            .insert(&pod.workload);
    }
    let mut out = BTreeMap::new();
    let mut by_ns: BTreeMap<String, Vec<(Peer, Ports)>> = BTreeMap::new();
    let mut addresses: BTreeMap<(bool, Ports), usize> = BTreeMap::new();
    for (peer, ports) in peers {
        match &peer {
            Peer::Workload(w) => by_ns
                .entry(w.namespace.clone())
                .or_default()
                .push((peer, ports)),
            Peer::Address(ip) => {
                *addresses.entry((ip.is_ipv6(), ports.clone())).or_default() += 1;
                out.insert(peer, ports);
            }
            _ => {
                out.insert(peer, ports);
            }
        }
    }
    for ((v6, ports), n) in addresses {
        if n > WORLD_AFTER {
            out.retain(|p, pp| {
                !(matches!(p, Peer::Address(ip) if ip.is_ipv6() == v6) && *pp == ports)
            });
            // The world on every port set that qualifies on its own.
            out.entry(Peer::World { v6 }).or_default().extend(ports);
        }
    }
    for (ns, list) in by_ns {
        let all = in_ns.get(&ns).map_or(0, BTreeSet::len);
        let same_ports = list.windows(2).all(|p| p[0].1 == p[1].1);
        if list.len() >= 2 && list.len() == all && same_ports {
            out.insert(Peer::Namespace(ns), list[0].1.clone());
        } else {
            out.extend(list);
        }
    }
    out
}

/// A peer as a NetworkPolicy of namespace `ns` names it (`None` for a Cilium entity, which it
/// cannot name).
fn peer_json(engine: &Engine, ns: &str, peer: &Peer) -> Option<Value> {
    let ns_selector = |ns: &str| json!({"matchLabels": {NAMESPACE_NAME_LABEL: ns}});
    Some(match peer {
        Peer::Address(ip) => {
            let bits = if ip.is_ipv4() { 32 } else { 128 };
            json!({"ipBlock": {"cidr": format!("{ip}/{bits}")}})
        }
        Peer::World { v6 } => {
            json!({"ipBlock": {"cidr": if *v6 { "::/0" } else { "0.0.0.0/0" }}})
        }
        Peer::Entity(_) => return None,
        Peer::Namespace(ns) => json!({"namespaceSelector": ns_selector(ns)}),
        Peer::Workload(w) => match stable_selector(engine.inventory(), w) {
            Some(sel) if w.namespace == ns => {
                json!({"podSelector": {"matchLabels": sel}})
            }
            Some(sel) => json!({
                "namespaceSelector": ns_selector(&w.namespace),
                "podSelector": {"matchLabels": sel},
            }),
            // Nothing tells its pods apart: the namespace is the narrowest stable peer.
            None => json!({"namespaceSelector": ns_selector(&w.namespace)}),
        },
    })
}

/// A DNS-1123 name of at most 63 characters.
fn policy_name(base: &str, suffix: &str) -> String {
    let keep = 63usize.saturating_sub(suffix.len());
    let base: String = base.chars().take(keep).collect();
    format!("{}{suffix}", base.trim_end_matches(['-', '.']))
}

/// `Ingress` or `Egress`, as `policyTypes` spells it.
fn policy_type(dir: Direction) -> &'static str {
    match dir {
        Direction::Ingress => "Ingress",
        Direction::Egress => "Egress",
    }
}

fn default_deny(ns: &str, dir: Direction) -> String {
    let doc = json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": format!("default-deny-{}", dir.as_str()),
            "namespace": ns,
            "labels": {"app.kubernetes.io/managed-by": "policyhub"},
            "annotations": {"policyhub.io/recommendation": "COVERAGE_GAP"},
        },
        "spec": {"podSelector": {}, "policyTypes": [policy_type(dir)]},
    });
    yaml_serde::to_string(&doc).unwrap_or_default()
}

fn severity(edges: &[&Edge]) -> Severity {
    let external = edges.iter().any(|e| {
        matches!(e.source_endpoint, Endpoint::External(_))
            || matches!(e.destination_endpoint, Endpoint::External(_))
    });
    let data = edges.iter().any(|e| DATA_PORTS.contains(&e.port));
    if external || data {
        Severity::High
    } else {
        Severity::Medium
    }
}

fn workload_recommendation(
    w: &WorkloadRef,
    name: &str,
    yaml: String,
    edges: &[&Edge],
    applied: Applied,
    graph: &Graph,
    dir: Direction,
) -> Recommendation {
    let flows: u64 = edges.iter().map(|e| e.count).sum();
    let (verb, prep, side, word) = match dir {
        Direction::Ingress => ("received", "from", "source", "ingress"),
        Direction::Egress => ("sent", "to", "destination", "egress"),
    };
    let sources: BTreeSet<&str> = edges
        .iter()
        .map(|e| match dir {
            Direction::Ingress => e.source.as_str(),
            Direction::Egress => e.destination.as_str(),
        })
        .collect();
    let peers_ports: Vec<String> = edges
        .iter()
        .map(|e| format!("{}>{}/{}", e.source, e.protocol, e.port))
        .collect();
    Recommendation {
        kind: Kind::CoverageGap,
        severity: severity(edges),
        confidence: confidence(edges, graph.hours),
        title: format!(
            "Protect {w} ({word}): allow its {} observed {side}(s), block the rest",
            sources.len()
        ),
        description: format!(
            "{w} {verb} {flows} flow(s) {prep} {} {side}(s) over {} hour(s) that no {word} \
             policy governs (a coverage gap). This NetworkPolicy allows exactly those \
             {side}s on the observed ports; every other {side} is blocked. Checked by the \
             evaluator: no observed flow that is allowed today becomes blocked.",
            sources.len(),
            edges.iter().map(|e| e.hours).max().unwrap_or(0),
        ),
        suggested_yaml: yaml,
        target_policy: format!("{}/{name}", w.namespace),
        evidence: edges.iter().map(|e| EvidenceEdge::from(*e)).collect(),
        impact: applied.impact,
        fingerprint: digest(&["COVERAGE_GAP", word, &w.to_string()]),
        evidence_digest: digest(&[&peers_ports.join(",")]),
        diff: None,
        controls: controls(edges, dir),
    }
}

/// The controls a workload policy helps meet: traffic with outside addresses restricted
/// (PCI DSS 1.3.1 inbound, 1.3.2 outbound), and database ports closed to all but their
/// clients (1.3.1).
fn controls(edges: &[&Edge], dir: Direction) -> Vec<Control> {
    let outside = edges
        .iter()
        .any(|e| matches!(sides(e, dir).1, Endpoint::External(_)));
    let data = dir == Direction::Ingress && edges.iter().any(|e| DATA_PORTS.contains(&e.port));
    match dir {
        Direction::Ingress if outside || data => vec![PCI_1_3_1],
        Direction::Egress if outside => vec![PCI_1_3_2],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flow::graph::Edge;
    use flowtypes::Verdict as Seen;
    use netpol::{Bundle, Options};

    fn edge(engine: &Engine, src: Endpoint, port: u16) -> Edge {
        Edge {
            source: engine.endpoint_name(&src),
            destination: "edge/gateway".into(),
            protocol: Protocol::Tcp,
            port,
            count: 50,
            hours: 24,
            first_hour: "2026-12-01T00".into(),
            last_hour: "2026-12-01T23".into(),
            verdict: Seen::NoPolicy,
            source_endpoint: src,
            destination_endpoint: Endpoint::Pod(0),
        }
    }

    #[test]
    fn many_outside_clients_on_the_same_ports_are_the_world() {
        let mut b = Bundle::default();
        b.load_str(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: gateway, namespace: edge, labels: {app: gateway}}\nstatus: {podIP: 10.0.0.1}\n",
            "c.yaml",
        )
        .unwrap();
        let engine = Engine::new(b.inventory, b.policies, Options::default());
        let clients = |n: u8, port: u16| {
            (1..=n)
                .map(|i| {
                    edge(
                        &engine,
                        Endpoint::External(IpAddr::from([198, 51, 100, i])),
                        port,
                    )
                })
                .collect::<Vec<_>>()
        };
        let ingress_yaml = |edges: &[Edge]| {
            let refs: Vec<&Edge> = edges.iter().collect();
            let w = &engine.inventory().pods[0].workload;
            workload_policy(&engine, w, &refs, Direction::Ingress)
                .unwrap()
                .1
        };
        let many = clients(20, 443);
        let yaml = ingress_yaml(&many);
        assert!(yaml.contains("0.0.0.0/0"), "{yaml}");
        assert!(!yaml.contains("/32"), "{yaml}");
        // Two qualifying port sets: one world peer on both.
        let both: Vec<Edge> = clients(20, 80)
            .into_iter()
            .chain((1..=20u8).map(|i| {
                edge(
                    &engine,
                    Endpoint::External(IpAddr::from([203, 0, 113, i])),
                    443,
                )
            }))
            .collect();
        let yaml = ingress_yaml(&both);
        assert!(
            yaml.contains("port: 80") && yaml.contains("port: 443"),
            "{yaml}"
        );
        assert_eq!(yaml.matches("0.0.0.0/0").count(), 1, "{yaml}");
        let few = clients(3, 443);
        let yaml = ingress_yaml(&few);
        assert!(
            yaml.contains("198.51.100.3/32") && !yaml.contains("0.0.0.0/0"),
            "{yaml}"
        );
    }
}
