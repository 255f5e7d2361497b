//! `UNUSED_RULE`: allow rules of a NetworkPolicy that no observed flow matched while the
//! pods the policy selects did receive (ingress) or send (egress) traffic. The suggestion
//! is the policy without them, with a diff; absence means something only for the window, so
//! the description says how many flows it saw.

use flow::graph::{Edge, Graph};
use flowtypes::Verdict;
use netpol::policy::{Action, Direction, Policy, PolicyKind};
use netpol::{Endpoint, Engine};
use serde_json::Value;

use crate::manifest::{clean, find_source, unified_diff};
use crate::verify::{checked, selects, subject_pods};
use crate::{
    confidence, digest, EvidenceEdge, Judged, Kind, Recommendation, Rejected, Report, Severity,
};

pub(crate) fn unused_rules(
    engine: &Engine,
    sources: &[Value],
    graph: &Graph,
    judged: &Judged,
    report: &mut Report,
) {
    for policy in engine
        .policies()
        .iter()
        .filter(|p| p.id.kind == PolicyKind::NetworkPolicy)
    {
        let subject = |ep: &Endpoint| matches!(ep, Endpoint::Pod(i) if selects(engine, policy, *i));
        let mut unused: Vec<(Direction, usize, String)> = Vec::new();
        let mut activity: Vec<&Edge> = Vec::new();
        for dir in [Direction::Ingress, Direction::Egress] {
            let Some(rules) = policy.direction(dir) else {
                continue;
            };
            let seen: Vec<&Edge> = graph
                .edges
                .iter()
                .filter(|e| match dir {
                    Direction::Ingress => subject(&e.destination_endpoint),
                    Direction::Egress => subject(&e.source_endpoint),
                })
                .collect();
            if seen.is_empty() {
                continue;
            }
            for (i, rule) in rules.rules.iter().enumerate() {
                if rule.action == Action::Allow
                    && !judged
                        .usage
                        .contains_key(&(policy.id.clone(), rule.name.clone()))
                {
                    unused.push((dir, i, rule.name.clone()));
                }
            }
            if unused.iter().any(|(d, _, _)| *d == dir) {
                activity.extend(seen);
            }
        }
        if unused.is_empty() {
            continue;
        }
        match suggestion(engine, sources, graph, policy, &unused, &activity) {
            Ok(r) => report.recommendations.push(r),
            Err((reason, suggested_yaml)) => report.rejected.push(Rejected {
                kind: Kind::UnusedRule,
                target: policy.id.to_string(),
                reason,
                suggested_yaml,
            }),
        }
    }
}

/// The policy without its unused rules, checked; or why not, with the YAML when there is one.
fn suggestion(
    engine: &Engine,
    sources: &[Value],
    graph: &Graph,
    policy: &Policy,
    unused: &[(Direction, usize, String)],
    activity: &[&Edge],
) -> Result<Recommendation, (String, Option<String>)> {
    let id = &policy.id;
    let ns = id.namespace.as_deref().unwrap_or("default");
    let source = find_source(sources, id).ok_or_else(|| {
        (
            format!("the manifest of {id} is not at hand to rewrite"),
            None,
        )
    })?;
    let before = clean(source);
    let mut after = before.clone();
    // Highest index first, so earlier indices stay valid.
    let mut by_index: Vec<&(Direction, usize, String)> = unused.iter().collect();
    by_index.sort_by_key(|u| std::cmp::Reverse(u.1));
    for (dir, i, _) in by_index {
        let field = match dir {
            Direction::Ingress => "/spec/ingress",
            Direction::Egress => "/spec/egress",
        };
        if let Some(list) = after.pointer_mut(field).and_then(Value::as_array_mut) {
            if *i < list.len() {
                list.remove(*i);
            }
        }
    }
    let text = |v: &Value| yaml_serde::to_string(v).map_err(|e| (e.to_string(), None));
    let (before_yaml, after_yaml) = (text(&before)?, text(&after)?);
    let targets = subject_pods(engine, policy);
    let applied = checked(engine, &after_yaml, graph, &targets, Some(id))
        .map_err(|reason| (reason, Some(after_yaml.clone())))?;
    let names: Vec<&str> = unused.iter().map(|(_, _, n)| n.as_str()).collect();
    let flows: u64 = activity.iter().map(|e| e.count).sum();
    let hours = activity.iter().map(|e| e.hours).max().unwrap_or(0);
    let allowed = activity
        .iter()
        .filter(|e| e.verdict != Verdict::Blocked)
        .count();
    let diff = unified_diff(&before_yaml, &after_yaml, &format!("{ns}/{}", id.name));
    Ok(Recommendation {
        kind: Kind::UnusedRule,
        severity: Severity::Low,
        confidence: confidence(activity, graph.hours),
        title: format!(
            "Remove {} unused rule(s) from NetworkPolicy {ns}/{}",
            names.len(),
            id.name
        ),
        description: format!(
            "Rule(s) {} of {id} matched none of the {flows} flow(s) ({allowed} allowed edge(s)) \
             its pods sent or received over {hours} hour(s) of a {}-hour window. Removing them \
             changes no observed flow; it closes what they would allow. Absence is evidence only \
             for the window observed.",
            names.join(", "),
            graph.hours
        ),
        suggested_yaml: after_yaml,
        target_policy: format!("{ns}/{}", id.name),
        evidence: activity.iter().map(|e| EvidenceEdge::from(*e)).collect(),
        impact: applied.impact,
        fingerprint: digest(&["UNUSED_RULE", &id.to_string(), &names.join(",")]),
        // Material change: the flows seen through the policy's pods at least double.
        evidence_digest: digest(&[&names.join(","), &flows.max(1).ilog2().to_string()]),
        diff: Some(diff),
        controls: Vec::new(),
    })
}
