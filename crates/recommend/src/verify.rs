//! Applying a suggestion to the cluster and measuring what changes, with the evaluator.

use std::collections::BTreeMap;

use flow::graph::{Edge, Graph};
use flowtypes::Verdict;
use netpol::model::WorkloadRef;
use netpol::policy::{NamespaceScope, Policy, PolicyRef};
use netpol::{Bundle, Endpoint, Engine, PortSet, Protocol};
use serde::Serialize;

/// What a suggestion changes, computed by the evaluator on the changed cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Impact {
    /// Observed edges allowed today that the change would block, and their flows: always 0
    /// in a suggestion that is shown.
    pub observed_edges_newly_blocked: usize,
    pub observed_flows_newly_blocked: u64,
    /// Workload ↔ target workload pairs (each direction counts) that lose some ports.
    pub pairs_newly_blocked: u64,
    /// External ranges (address ranges the policies tell apart) that lose some ports to or
    /// from a target workload.
    pub ranges_newly_blocked: u64,
    /// (protocol, port) pairs lost over both.
    pub ports_newly_blocked: u64,
    /// The same for what the change opens.
    pub pairs_newly_allowed: u64,
    pub ranges_newly_allowed: u64,
    pub ports_newly_allowed: u64,
}

/// A suggestion applied: the changed cluster and what changed.
pub(crate) struct Applied {
    pub engine: Engine,
    pub impact: Impact,
    /// The observed edges the change would block, named.
    pub blocked_edges: Vec<String>,
}

/// Parses `yaml` with netpol, adds its policies to `base`'s (in place of `replaces`, when
/// given), judges every observed edge again, and measures the pairs between `targets` (one
/// pod per target workload) and every workload and external range, both ways.
pub(crate) fn apply(
    base: &Engine,
    yaml: &str,
    graph: &Graph,
    targets: &[usize],
    replaces: Option<&PolicyRef>,
) -> Result<Applied, String> {
    let mut bundle = Bundle::default();
    bundle
        .load_str(yaml, "suggestion.yaml")
        .map_err(|e| format!("the suggested YAML does not parse: {e}"))?;
    if bundle.policies.is_empty() {
        return Err("the suggested YAML holds no policy".into());
    }
    let mut policies: Vec<_> = base
        .policies()
        .iter()
        .filter(|p| Some(&p.id) != replaces)
        .cloned()
        .collect();
    policies.extend(bundle.policies);
    let engine = Engine::new(base.inventory().clone(), policies, base.options());

    let mut impact = Impact::default();
    let mut blocked_edges = Vec::new();
    for e in newly_blocked(graph, &engine) {
        impact.observed_edges_newly_blocked += 1;
        impact.observed_flows_newly_blocked += e.count;
        blocked_edges.push(format!(
            "{} -> {} {}/{} ({} flows)",
            e.source, e.destination, e.protocol, e.port, e.count
        ));
    }

    let Impact {
        pairs_newly_blocked,
        ranges_newly_blocked,
        ports_newly_blocked,
        pairs_newly_allowed,
        ranges_newly_allowed,
        ports_newly_allowed,
        ..
    } = &mut impact;
    for src in sources(&engine) {
        let (closed, opened) = match src {
            Endpoint::External(_) => (&mut *ranges_newly_blocked, &mut *ranges_newly_allowed),
            _ => (&mut *pairs_newly_blocked, &mut *pairs_newly_allowed),
        };
        for &t in targets {
            let target = Endpoint::Pod(t);
            if src == target {
                continue;
            }
            for (a, b) in [(&src, &target), (&target, &src)] {
                let before = base.allowed_ports(a, b);
                let after = engine.allowed_ports(a, b);
                tally(closed, ports_newly_blocked, &before.difference(&after));
                tally(opened, ports_newly_allowed, &after.difference(&before));
            }
        }
    }
    Ok(Applied {
        engine,
        impact,
        blocked_edges,
    })
}

/// [`apply`], refusing a change that blocks an observed edge allowed today.
pub(crate) fn checked(
    engine: &Engine,
    yaml: &str,
    graph: &Graph,
    targets: &[usize],
    replaces: Option<&PolicyRef>,
) -> Result<Applied, String> {
    let applied = apply(engine, yaml, graph, targets, replaces)?;
    if applied.blocked_edges.is_empty() {
        return Ok(applied);
    }
    let n = applied.blocked_edges.len();
    let shown: Vec<&str> = applied
        .blocked_edges
        .iter()
        .take(5)
        .map(String::as_str)
        .collect();
    Err(format!(
        "would block {n} observed edge(s) allowed today: {}",
        shown.join("; ")
    ))
}

/// Whether a namespaced policy selects the pod at index `pod`.
pub(crate) fn selects(engine: &Engine, policy: &Policy, pod: usize) -> bool {
    let pod = &engine.inventory().pods[pod];
    matches!(&policy.subject.namespaces, NamespaceScope::Exact(ns) if *ns == pod.namespace)
        && policy.subject.pods.matches(&pod.labels)
}

/// One pod of each workload a namespaced policy selects.
pub(crate) fn subject_pods(engine: &Engine, policy: &Policy) -> Vec<usize> {
    let mut first: BTreeMap<&WorkloadRef, usize> = BTreeMap::new();
    for (i, pod) in engine.inventory().pods.iter().enumerate() {
        if selects(engine, policy, i) {
            first.entry(&pod.workload).or_insert(i);
        }
    }
    first.into_values().collect()
}

/// The observed edges not blocked when they were judged that `engine` blocks: what a change
/// compiled into `engine` would break.
pub fn newly_blocked<'g>(
    graph: &'g Graph,
    engine: &'g Engine,
) -> impl Iterator<Item = &'g Edge> + 'g {
    graph.edges.iter().filter(move |e| {
        e.verdict != Verdict::Blocked && e.verdict_under(engine) == netpol::Verdict::Blocked
    })
}

/// One pod per workload, then one address per external range the policies tell apart.
pub(crate) fn sources(engine: &Engine) -> Vec<Endpoint> {
    let mut first: BTreeMap<&WorkloadRef, usize> = BTreeMap::new();
    for (i, pod) in engine.inventory().pods.iter().enumerate() {
        first.entry(&pod.workload).or_insert(i);
    }
    let atoms = engine.atoms();
    first
        .into_values()
        .map(Endpoint::Pod)
        .chain((0..atoms.len()).filter_map(|a| {
            let ip = atoms.range(a).first;
            matches!(engine.endpoint_for_ip(ip), Endpoint::External(_))
                .then_some(Endpoint::External(ip))
        }))
        .collect()
}

/// Counts one more pair, and its ports, when `changed` is not empty.
fn tally(pairs: &mut u64, ports: &mut u64, changed: &PortSet) {
    let n = port_count(changed);
    if n > 0 {
        *pairs += 1;
        *ports += n;
    }
}

/// Number of (protocol, port) pairs in a set.
pub(crate) fn port_count(set: &PortSet) -> u64 {
    [Protocol::Tcp, Protocol::Udp, Protocol::Sctp, Protocol::Icmp]
        .iter()
        .map(|&p| u64::from(set.get(p).len()))
        .sum()
}
