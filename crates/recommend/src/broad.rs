//! `OVERLY_BROAD`: NetworkPolicy allow rules whose allowed set — measured by the evaluator
//! on the rule alone — exceeds what was observed through them by a large factor. Only rules
//! that are broad as written are measured: no ports, no peers, a peer in every namespace or
//! every pod of the namespace, an ipBlock wider than /16 (/48 for IPv6). The suggestion
//! replaces each such rule by rules allowing exactly its observed peers and ports.

use std::collections::BTreeSet;

use flow::graph::{Edge, Graph};
use netpol::policy::{Action, Direction, DirectionRules, Policy, PolicyKind};
use netpol::{Endpoint, Engine};
use serde_json::Value;

use crate::coverage::{observed_rules, Dialect};
use crate::manifest::{clean, find_source, unified_diff};
use crate::verify::{checked, port_count, sources, subject_pods};
use crate::{
    confidence, digest, EvidenceEdge, Judged, Kind, Recommendation, Rejected, Report, Severity,
};

/// How many times what was observed a rule must allow to count as overly broad.
const FACTOR: u64 = 10;

/// One rule to tighten: where it is, its name, what it allows and what was observed.
struct Broad<'a> {
    dir: Direction,
    index: usize,
    name: String,
    allowed: u64,
    observed: u64,
    edges: Vec<&'a Edge>,
}

pub(crate) fn overly_broad(
    engine: &Engine,
    manifests: &[Value],
    graph: &Graph,
    judged: &Judged,
    report: &mut Report,
) {
    for policy in engine
        .policies()
        .iter()
        .filter(|p| p.id.kind == PolicyKind::NetworkPolicy)
    {
        let Some(source) = find_source(manifests, &policy.id) else {
            continue;
        };
        let before = clean(source);
        let mut broad: Vec<Broad> = Vec::new();
        for dir in [Direction::Ingress, Direction::Egress] {
            let Some(rules) = policy.direction(dir) else {
                continue;
            };
            for (index, rule) in rules.rules.iter().enumerate() {
                let Some(edges) = judged.usage.get(&(policy.id.clone(), rule.name.clone())) else {
                    continue;
                };
                let written = before.pointer(&format!("/spec/{}/{index}", dir.as_str()));
                if rule.action != Action::Allow
                    || !written.is_some_and(|r| broad_as_written(r, dir))
                {
                    continue;
                }
                let allowed = allowed_by_rule(engine, policy, dir, index);
                let observed = observed(edges, dir);
                if allowed >= FACTOR * observed.max(1) {
                    broad.push(Broad {
                        dir,
                        index,
                        name: rule.name.clone(),
                        allowed,
                        observed,
                        edges: edges.clone(),
                    });
                }
            }
        }
        if broad.is_empty() {
            continue;
        }
        match tightened(engine, graph, policy, &before, &broad) {
            Ok(r) => report.recommendations.push(r),
            Err((reason, suggested_yaml)) => report.rejected.push(Rejected {
                kind: Kind::OverlyBroad,
                target: policy.id.to_string(),
                reason,
                suggested_yaml,
            }),
        }
    }
}

/// Whether a rule as written admits more than named peers on named ports.
fn broad_as_written(rule: &Value, dir: Direction) -> bool {
    let empty = |v: Option<&Value>| match v {
        None | Some(Value::Null) => true,
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Object(o)) => o.is_empty(),
        _ => false,
    };
    let peers_key = match dir {
        Direction::Ingress => "from",
        Direction::Egress => "to",
    };
    if empty(rule.get("ports")) || empty(rule.get(peers_key)) {
        return true;
    }
    rule[peers_key]
        .as_array()
        .into_iter()
        .flatten()
        .any(|peer| {
            let ns = peer.get("namespaceSelector");
            let pods = peer.get("podSelector");
            let wide_block = peer
                .pointer("/ipBlock/cidr")
                .and_then(Value::as_str)
                .and_then(|c| c.split_once('/'))
                .and_then(|(ip, bits)| Some((ip.contains(':'), bits.parse::<u8>().ok()?)))
                .is_some_and(|(v6, bits)| bits <= if v6 { 48 } else { 16 });
            (ns.is_some() && empty(ns))
                || (ns.is_none() && pods.is_some() && empty(pods))
                || wide_block
        })
}

/// The (peer, protocol, port) triples the rule was seen allowing.
fn observed(edges: &[&Edge], dir: Direction) -> u64 {
    let seen: BTreeSet<(&str, netpol::Protocol, u16)> = edges
        .iter()
        .map(|e| {
            let peer = match dir {
                Direction::Ingress => e.source.as_str(),
                Direction::Egress => e.destination.as_str(),
            };
            (peer, e.protocol, e.port)
        })
        .collect();
    seen.len() as u64
}

/// The (peer, protocol, port) triples the rule allows, by the evaluator on a cluster where
/// the policy holds that rule alone: every workload and external range to (ingress) or from
/// (egress) each workload the policy selects.
fn allowed_by_rule(engine: &Engine, policy: &Policy, dir: Direction, index: usize) -> u64 {
    let mut alone = policy.clone();
    let only = DirectionRules {
        isolates: true,
        rules: policy
            .direction(dir)
            .map(|r| vec![r.rules[index].clone()])
            .unwrap_or_default(),
    };
    (alone.ingress, alone.egress) = match dir {
        Direction::Ingress => (Some(only), None),
        Direction::Egress => (None, Some(only)),
    };
    let single = Engine::new(engine.inventory().clone(), vec![alone], engine.options());
    let subjects = subject_pods(engine, policy);
    let mut total = 0;
    for peer in sources(&single) {
        for &s in &subjects {
            let subject = Endpoint::Pod(s);
            if peer == subject {
                continue;
            }
            let ports = match dir {
                Direction::Ingress => single.allowed_ports(&peer, &subject),
                Direction::Egress => single.allowed_ports(&subject, &peer),
            };
            total += port_count(&ports);
        }
    }
    total
}

/// The policy with each broad rule replaced by the rules of its observed traffic, checked.
fn tightened(
    engine: &Engine,
    graph: &Graph,
    policy: &Policy,
    before: &Value,
    broad: &[Broad],
) -> Result<Recommendation, (String, Option<String>)> {
    let id = &policy.id;
    let ns = id.namespace.as_deref().unwrap_or("default");
    let mut after = before.clone();
    // Highest index first within a direction, so earlier indices stay valid.
    let mut order: Vec<&Broad> = broad.iter().collect();
    order.sort_by_key(|b| std::cmp::Reverse(b.index));
    for b in order {
        let rules = observed_rules(
            engine,
            &id.to_string(),
            ns,
            &b.edges,
            b.dir,
            Dialect::NetworkPolicy,
        )
        .map_err(|reason| (reason, None))?;
        if let Some(list) = after
            .pointer_mut(&format!("/spec/{}", b.dir.as_str()))
            .and_then(Value::as_array_mut)
        {
            if b.index < list.len() {
                list.splice(b.index..=b.index, rules);
            }
        }
    }
    let text = |v: &Value| yaml_serde::to_string(v).map_err(|e| (e.to_string(), None));
    let (before_yaml, after_yaml) = (text(before)?, text(&after)?);
    let targets = subject_pods(engine, policy);
    let applied = checked(engine, &after_yaml, graph, &targets, Some(id))
        .map_err(|reason| (reason, Some(after_yaml.clone())))?;
    let names: Vec<&str> = broad.iter().map(|b| b.name.as_str()).collect();
    let edges: Vec<&Edge> = broad.iter().flat_map(|b| b.edges.iter().copied()).collect();
    let detail: Vec<String> = broad
        .iter()
        .map(|b| {
            format!(
                "{} allows {} (peer, port) pairs, {} were used",
                b.name, b.allowed, b.observed
            )
        })
        .collect();
    let seen: BTreeSet<String> = edges
        .iter()
        .map(|e| format!("{}>{}>{}/{}", e.source, e.destination, e.protocol, e.port))
        .collect();
    Ok(Recommendation {
        kind: Kind::OverlyBroad,
        severity: Severity::Medium,
        confidence: confidence(&edges, graph.hours),
        title: format!(
            "Tighten {} broad rule(s) of NetworkPolicy {ns}/{}",
            names.len(),
            id.name
        ),
        description: format!(
            "In {id}, {} (measured by the evaluator on each rule alone). The suggestion keeps \
             exactly the observed peers and ports; no observed flow changes.",
            detail.join("; ")
        ),
        controls: Vec::new(),
        diff: Some(unified_diff(
            &before_yaml,
            &after_yaml,
            &format!("{ns}/{}", id.name),
        )),
        suggested_yaml: after_yaml,
        target_policy: format!("{ns}/{}", id.name),
        evidence: edges.iter().map(|e| EvidenceEdge::from(*e)).collect(),
        impact: applied.impact,
        fingerprint: digest(&["OVERLY_BROAD", &id.to_string(), &names.join(",")]),
        evidence_digest: digest(&[&seen.into_iter().collect::<Vec<_>>().join(",")]),
    })
}
