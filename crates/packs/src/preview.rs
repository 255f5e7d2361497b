//! Impact preview: a rendered pack applied to a snapshot, judged against the flows observed
//! in it — which observed flows it would block, and coverage before → after.

use std::collections::BTreeSet;

use flow::graph::Graph;
use netpol::{Engine, Verdict};
use serde::Serialize;

use crate::render::Rendered;

/// What applying a pack would change.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Preview {
    pub pack: String,
    pub version: String,
    /// Network policies the pack adds.
    pub policies: usize,
    /// Policies of the snapshot with the kind, namespace and name of one of the pack's, which
    /// applying the pack would replace (and the preview leaves out).
    pub replaced: Vec<String>,
    pub observed_edges: usize,
    pub observed_flows: u64,
    /// Observed edges allowed (or ungoverned) today that the pack would block.
    pub blocked_edges: usize,
    pub blocked_flows: u64,
    /// The blocked edges with the most flows first.
    pub top_blocked: Vec<BlockedEdge>,
    pub before: Coverage,
    pub after: Coverage,
}

/// One observed edge the pack would block.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockedEdge {
    pub source: String,
    pub destination: String,
    pub protocol: netpol::Protocol,
    pub port: u16,
    pub flows: u64,
    /// The policy that would block it (the denying one, else the isolating one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
}

/// How much of the cluster and of its observed traffic policy governs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Coverage {
    /// Observed flows whose verdict is not NO_POLICY.
    pub flows_governed: u64,
    pub flow_share: f64,
    /// Workloads with a pod that some policy selects.
    pub workloads_governed: usize,
    pub workloads: usize,
    pub workload_share: f64,
}

/// Applies `rendered` to `base` (replacing the policies with the same kind, namespace and
/// name, as `kubectl apply` would) and judges `graph`'s edges again; `top` bounds the list
/// of blocked edges.
pub fn preview(base: &Engine, graph: &Graph, rendered: &Rendered, top: usize) -> Preview {
    let ours: BTreeSet<String> = rendered.policies.iter().map(|p| p.id.to_string()).collect();
    let (replaced, mut policies): (Vec<_>, Vec<_>) = base
        .policies()
        .iter()
        .cloned()
        .partition(|p| ours.contains(&p.id.to_string()));
    let mut replaced: Vec<String> = replaced.iter().map(|p| p.id.to_string()).collect();
    replaced.dedup();
    policies.extend(rendered.policies.iter().cloned());
    let after = Engine::new(base.inventory().clone(), policies, base.options());

    let mut blocked: Vec<_> = recommend::newly_blocked(graph, &after).collect();
    let blocked_edges = blocked.len();
    let blocked_flows = blocked.iter().map(|e| e.count).sum();
    blocked.sort_by_key(|e| std::cmp::Reverse(e.count));
    let top_blocked = blocked
        .into_iter()
        .take(top)
        .map(|e| BlockedEdge {
            source: e.source.clone(),
            destination: e.destination.clone(),
            protocol: e.protocol,
            port: e.port,
            flows: e.count,
            policy: e.decide_under(&after).policy().map(|p| p.to_string()),
        })
        .collect();
    Preview {
        pack: rendered.pack.clone(),
        version: rendered.version.clone(),
        policies: rendered.policies.len(),
        replaced,
        observed_edges: graph.edges.len(),
        observed_flows: graph.flows,
        blocked_edges,
        blocked_flows,
        top_blocked,
        before: coverage(base, graph),
        after: coverage(&after, graph),
    }
}

fn coverage(engine: &Engine, graph: &Graph) -> Coverage {
    let total: u64 = graph.edges.iter().map(|e| e.count).sum();
    let flows_governed = graph
        .edges
        .iter()
        .filter(|e| e.verdict_under(engine) != Verdict::NoPolicy)
        .map(|e| e.count)
        .sum();
    let mut workloads = BTreeSet::new();
    let mut governed = BTreeSet::new();
    for (i, pod) in engine.inventory().pods.iter().enumerate() {
        workloads.insert(&pod.workload);
        if engine.governs(i) {
            governed.insert(&pod.workload);
        }
    }
    let share = |n: f64, d: f64| if d > 0.0 { n / d } else { 0.0 };
    Coverage {
        flows_governed,
        flow_share: share(flows_governed as f64, total as f64),
        workloads_governed: governed.len(),
        workloads: workloads.len(),
        workload_share: share(governed.len() as f64, workloads.len() as f64),
    }
}
