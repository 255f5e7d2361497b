//! Verdicts and their explanations.

use serde::Serialize;

use crate::engine::{Endpoint, Engine};
use crate::policy::{Action, Direction, PolicyRef};
use crate::ports::{PortSet, Protocol};

/// The answer for a flow, or for one direction of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Verdict {
    /// Every isolated direction has a rule allowing the flow.
    Allowed,
    /// Some direction is isolated and nothing allows the flow, or a deny rule matches.
    Blocked,
    /// No policy decides either direction: a coverage gap.
    NoPolicy,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allowed => "ALLOWED",
            Verdict::Blocked => "BLOCKED",
            Verdict::NoPolicy => "NO_POLICY",
        }
    }

    /// From the allowed ports of a one-port query and those allowed by default.
    pub(crate) fn from_sets(allowed: &PortSet, default: &PortSet) -> Verdict {
        if allowed.is_empty() {
            Verdict::Blocked
        } else if !default.is_empty() {
            Verdict::NoPolicy
        } else {
            Verdict::Allowed
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rule that took part in a decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleMatch {
    pub policy: PolicyRef,
    pub rule: String,
    pub action: Action,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The decision of one direction: egress at the source, ingress at the destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DirectionDecision {
    pub direction: Direction,
    pub verdict: Verdict,
    pub reason: String,
    /// The rules that allowed the flow.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed_by: Vec<RuleMatch>,
    /// The deny rule that matched.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub denied_by: Vec<RuleMatch>,
    /// The policies that isolate the endpoint when nothing allowed the flow.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub isolated_by: Vec<PolicyRef>,
    /// Set when no rule allowed the flow but the dataplane lets it through by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub implicit_allow: Option<ImplicitAllow>,
}

/// Traffic an isolated endpoint accepts without a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ImplicitAllow {
    /// Ingress from the local host (Cilium's `--allow-localhost` default).
    LocalHost,
}

/// A flow's verdict with its explanation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub source: String,
    pub destination: String,
    pub protocol: Protocol,
    pub port: u16,
    pub verdict: Verdict,
    pub reason: String,
    /// Absent when the source is not a pod (nothing filters its egress).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub egress: Option<DirectionDecision>,
    /// Absent when the destination is not a pod.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingress: Option<DirectionDecision>,
}

impl Decision {
    /// The policy a summary should name: the denying one, else the isolating one with the
    /// fewest rules (a default deny), when blocked; the allowing one otherwise.
    pub fn policy(&self) -> Option<&PolicyRef> {
        let dirs = [&self.egress, &self.ingress];
        let dirs = dirs.iter().filter_map(|d| d.as_ref());
        match self.verdict {
            Verdict::Blocked => dirs
                .filter(|d| d.verdict == Verdict::Blocked)
                .find_map(|d| {
                    d.denied_by
                        .first()
                        .map(|m| &m.policy)
                        .or(d.isolated_by.first())
                }),
            _ => dirs
                .clone()
                .find_map(|d| d.allowed_by.first().map(|m| &m.policy)),
        }
    }
}

/// What the walk of one direction recorded.
#[derive(Debug, Default)]
pub(crate) struct DirTrace {
    pub hits: Vec<Hit>,
    pub isolated_by: Vec<usize>,
    /// Ports no rule allowed that the local host reaches by default.
    pub local_host: PortSet,
}

impl DirTrace {
    /// Records that a rule decided `ports`, when tracing.
    pub(crate) fn record(
        trace: Option<&mut DirTrace>,
        policy: usize,
        rule: usize,
        action: Action,
        ports: PortSet,
    ) {
        if let Some(t) = trace {
            t.hits.push(Hit {
                policy,
                rule,
                action,
                ports,
            });
        }
    }
}

#[derive(Debug)]
pub(crate) struct Hit {
    pub policy: usize,
    pub rule: usize,
    pub action: Action,
    pub ports: PortSet,
}

/// Builds the decision from each direction's (allowed, default) sets, ingress first.
pub(crate) fn build(
    engine: &Engine,
    src: &Endpoint,
    dst: &Endpoint,
    protocol: Protocol,
    port: u16,
    sets: [(PortSet, PortSet); 2],
    traces: [DirTrace; 2],
) -> Decision {
    let source = engine.endpoint_name(src);
    let destination = engine.endpoint_name(dst);
    let flow = format!("{protocol}/{port}");
    let [ingress_sets, egress_sets] = sets;
    let [ingress_trace, egress_trace] = traces;
    let self_traffic = src == dst && matches!(src, Endpoint::Pod(_));
    let direction = |dir: Direction,
                     (allowed, default): (PortSet, PortSet),
                     trace: DirTrace,
                     subject: &str,
                     peer: &str| {
        let matches = |wanted: &dyn Fn(Action) -> bool| -> Vec<RuleMatch> {
            trace
                .hits
                .iter()
                .filter(|h| wanted(h.action) && h.ports.contains(protocol, port))
                .map(|h| {
                    let policy = &engine.policies()[h.policy];
                    let rule = &policy.direction(dir).expect("traced direction").rules[h.rule];
                    RuleMatch {
                        policy: policy.id.clone(),
                        rule: rule.name.clone(),
                        action: h.action,
                        note: rule.note.clone(),
                    }
                })
                .collect()
        };
        let verdict = Verdict::from_sets(&allowed, &default);
        let (from_to, peer_word) = match dir {
            Direction::Egress => ("to", "egress"),
            Direction::Ingress => ("from", "ingress"),
        };
        let allowed_by = matches(&|a| a == Action::Allow);
        let denied_by = matches(&|a| a == Action::Deny);
        let implicit_allow = (verdict == Verdict::Allowed
            && allowed_by.is_empty()
            && trace.local_host.contains(protocol, port))
        .then_some(ImplicitAllow::LocalHost);
        let isolated_by: Vec<PolicyRef> = if verdict == Verdict::Blocked && denied_by.is_empty() {
            // Pure default-deny policies (no rules in this direction) first: they are what
            // blocks the flow; policies with allow rules for other traffic come after.
            let mut isolating = trace.isolated_by.clone();
            isolating.sort_by_key(|&p| {
                engine.policies()[p]
                    .direction(dir)
                    .map_or(0, |r| r.rules.len())
            });
            isolating
                .iter()
                .map(|&p| engine.policies()[p].id.clone())
                .collect()
        } else {
            Vec::new()
        };
        let passed = !matches(&|a| a == Action::Pass).is_empty();
        let reason = match verdict {
            Verdict::NoPolicy if passed => format!("{peer_word} of {subject}: passed by an admin policy and no policy below decides it"),
            Verdict::NoPolicy => format!("no policy selects {subject} for {peer_word}"),
            Verdict::Allowed if implicit_allow.is_some() => format!(
                "{peer_word} of {subject} {from_to} {peer} on {flow} allowed: local host, Cilium default (--allow-localhost policy makes ingress policy apply to it)"
            ),
            Verdict::Allowed => {
                let names: Vec<String> = allowed_by.iter().map(|m| format!("{} rule {}", m.policy, m.rule)).collect();
                format!("{peer_word} of {subject} {from_to} {peer} on {flow} allowed by {}", names.join(", "))
            }
            Verdict::Blocked if !denied_by.is_empty() => {
                format!("{peer_word} of {subject} {from_to} {peer} on {flow} denied by {} rule {}", denied_by[0].policy, denied_by[0].rule)
            }
            Verdict::Blocked => {
                let names: Vec<String> = isolated_by.iter().map(ToString::to_string).collect();
                format!("{subject} is isolated for {peer_word} by {} and no rule allows {flow} {from_to} {peer}", names.join(", "))
            }
        };
        DirectionDecision {
            direction: dir,
            verdict,
            reason,
            allowed_by,
            denied_by,
            isolated_by,
            implicit_allow,
        }
    };
    let egress = matches!(src, Endpoint::Pod(_)).then(|| {
        direction(
            Direction::Egress,
            egress_sets,
            egress_trace,
            &source,
            &destination,
        )
    });
    let ingress = matches!(dst, Endpoint::Pod(_)).then(|| {
        direction(
            Direction::Ingress,
            ingress_sets,
            ingress_trace,
            &destination,
            &source,
        )
    });
    let dirs: Vec<&DirectionDecision> = egress.iter().chain(ingress.iter()).collect();
    let (verdict, reason) = if self_traffic {
        (
            Verdict::Allowed,
            format!("{source} reaching itself is never filtered"),
        )
    } else if let Some(blocked) = dirs.iter().find(|d| d.verdict == Verdict::Blocked) {
        (Verdict::Blocked, blocked.reason.clone())
    } else if dirs.iter().all(|d| d.verdict == Verdict::NoPolicy) {
        (
            Verdict::NoPolicy,
            format!("no policy applies to {source} -> {destination} on {flow}: a coverage gap"),
        )
    } else {
        let reasons: Vec<&str> = dirs
            .iter()
            .filter(|d| d.verdict == Verdict::Allowed)
            .map(|d| d.reason.as_str())
            .collect();
        (Verdict::Allowed, reasons.join("; "))
    };
    Decision {
        source,
        destination,
        protocol,
        port,
        verdict,
        reason,
        egress,
        ingress,
    }
}
