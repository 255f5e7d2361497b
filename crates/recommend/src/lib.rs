//! Traffic-informed policy recommendations, each checked by the exact evaluator before it
//! is shown.
//!
//! Input: the compiled cluster ([`netpol::Engine`]) and the communication graph observed
//! over a window ([`flow::graph::Graph`], recorded by the same reader and resolution as
//! validation). Output: ranked [`Recommendation`]s. Before one is returned its
//! `suggestedYaml` is parsed by netpol, added to the cluster, and every observed edge is
//! judged again: a suggestion that would block an edge that is allowed today is not shown
//! (it is listed in [`Report::rejected`] with the edge). Its [`Impact`] — the pairs and
//! ports it newly blocks or allows — comes from the same evaluator.
//!
//! Pure and synchronous, like netpol: no I/O, no clock (times come from the flows).
//!
//! Built so far: `COVERAGE_GAP` (a workload that receives or sends traffic no policy governs
//! gets an ingress or egress policy allowing exactly its observed peers and ports; a
//! namespace whose workloads are all covered gets a default deny) and `UNUSED_RULE` (NetworkPolicy allow
//! rules no observed flow used while the policy's pods had traffic: the policy without
//! them, with a diff) and `OVERLY_BROAD` (allow rules that allow at least ten times what was
//! observed through them: replaced by rules for exactly the observed peers and ports).

mod broad;
mod coverage;
mod labels;
mod manifest;
mod unused;
mod verify;

use flow::graph::{Edge, Graph};
use std::collections::BTreeMap;

use netpol::policy::PolicyRef;
use netpol::{Decision, Engine};
use serde::Serialize;
use sha2::{Digest, Sha256};

pub use verify::{newly_blocked, Impact};

/// What a recommendation is about (the seed's types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Kind {
    /// Traffic that no policy governs.
    CoverageGap,
    /// Allow rules no observed flow used.
    UnusedRule,
    /// Allow rules that allow far more than was observed through them.
    OverlyBroad,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::CoverageGap, Kind::UnusedRule, Kind::OverlyBroad];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::CoverageGap => "COVERAGE_GAP",
            Kind::UnusedRule => "UNUSED_RULE",
            Kind::OverlyBroad => "OVERLY_BROAD",
        }
    }
}

/// How much a recommendation matters: what the gap exposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Severity {
    Low,
    Medium,
    /// The target is reached from outside the cluster, or serves a database port.
    High,
}

/// One observed edge a recommendation rests on.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EvidenceEdge {
    pub source: String,
    pub destination: String,
    pub protocol: netpol::Protocol,
    pub port: u16,
    pub flows: u64,
    pub hours: u32,
    pub first_hour: String,
    pub last_hour: String,
}

impl From<&Edge> for EvidenceEdge {
    fn from(e: &Edge) -> Self {
        EvidenceEdge {
            source: e.source.clone(),
            destination: e.destination.clone(),
            protocol: e.protocol,
            port: e.port,
            flows: e.count,
            hours: e.hours,
            first_hour: e.first_hour.clone(),
            last_hour: e.last_hour.clone(),
        }
    }
}

/// A suggestion, already evaluated.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Recommendation {
    #[serde(rename = "type")]
    pub kind: Kind,
    pub severity: Severity,
    /// 0 to 1, from the evidence: volume, hours observed, length of the window.
    pub confidence: f64,
    pub title: String,
    pub description: String,
    /// A manifest ready for `kubectl apply`.
    pub suggested_yaml: String,
    /// `namespace/name` of the policy the YAML creates.
    pub target_policy: String,
    /// The observed edges the suggestion allows.
    pub evidence: Vec<EvidenceEdge>,
    pub impact: Impact,
    /// Stable across runs for the same type and target, so a dismissal is remembered.
    pub fingerprint: String,
    /// Changes when the evidence (peers, ports) changes.
    pub evidence_digest: String,
    /// For a change to an existing policy: a unified diff of its manifest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    /// Compliance controls the change helps meet, with the pack that covers each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub controls: Vec<Control>,
}

/// A framework control a suggestion helps meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Control {
    pub framework: &'static str,
    pub id: &'static str,
    /// What the control asks, in a few words.
    pub summary: &'static str,
    /// The policy pack (`policyhub pack show <slug>`) that covers the control.
    pub pack: &'static str,
}

/// CIS Kubernetes Benchmark v1.8 5.3.2: every namespace has network policies.
pub const CIS_5_3_2: Control = Control {
    framework: "CIS Kubernetes Benchmark v1.8",
    id: "5.3.2",
    summary: "every namespace has network policies",
    pack: "cis-kubernetes-network",
};

/// PCI DSS v4.0.1 1.3.1: inbound traffic to the cardholder data environment is restricted.
pub const PCI_1_3_1: Control = Control {
    framework: "PCI DSS v4.0.1",
    id: "1.3.1",
    summary: "inbound traffic to the CDE is restricted to what is needed",
    pack: "pci-dss-segmentation",
};

/// PCI DSS v4.0.1 1.3.2: outbound traffic from the cardholder data environment is restricted.
pub const PCI_1_3_2: Control = Control {
    framework: "PCI DSS v4.0.1",
    id: "1.3.2",
    summary: "outbound traffic from the CDE is restricted to what is needed",
    pack: "pci-dss-segmentation",
};

/// A suggestion the evaluator refused, and why.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rejected {
    #[serde(rename = "type")]
    pub kind: Kind,
    /// The workload or namespace it was for.
    pub target: String,
    pub reason: String,
    /// What would have been suggested, when it got that far.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suggested_yaml: Option<String>,
}

/// Everything one run found.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Highest severity, then confidence, first.
    pub recommendations: Vec<Recommendation>,
    pub rejected: Vec<Rejected>,
    /// Judged flows and distinct hours the graph holds: how much absence can mean.
    pub window_flows: u64,
    pub window_hours: u32,
}

/// What to look for.
#[derive(Debug, Clone)]
pub struct Options {
    /// Recommendations below this confidence are left out.
    pub min_confidence: f64,
    /// The types to produce.
    pub kinds: Vec<Kind>,
    /// Suggestions a user dismissed before.
    pub dismissed: Vec<Dismissal>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            min_confidence: 0.7,
            kinds: Kind::ALL.to_vec(),
            dismissed: Vec::new(),
        }
    }
}

/// A dismissed suggestion: it is not suggested again while its evidence is the same, and
/// its reason lowers the confidence of the same type on the same target when the evidence
/// changes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Dismissal {
    pub fingerprint: String,
    pub evidence_digest: String,
    #[serde(default)]
    pub reason: DismissReason,
}

/// Why a user dismissed a suggestion.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DismissReason {
    /// The traffic it would block is wanted (halves the confidence of a re-suggestion).
    FalsePositive,
    /// Known and accepted for now (confidence times 0.8).
    AcceptedRisk,
    /// No reason given (confidence times 0.9).
    #[default]
    Other,
}

impl DismissReason {
    fn factor(self) -> f64 {
        match self {
            DismissReason::FalsePositive => 0.5,
            DismissReason::AcceptedRisk => 0.8,
            DismissReason::Other => 0.9,
        }
    }
}

/// Every recommendation for a cluster and the traffic observed in it. `sources` are the
/// policy manifests as written ([`netpol::Bundle::sources`] of a bundle made with
/// [`netpol::Bundle::keeping_sources`]); suggestions that rewrite an existing policy need them.
pub fn recommend(
    engine: &Engine,
    sources: &[serde_json::Value],
    graph: &Graph,
    options: &Options,
) -> Report {
    let mut report = Report {
        recommendations: Vec::new(),
        rejected: Vec::new(),
        window_flows: graph.flows,
        window_hours: graph.hours,
    };
    let judged = Judged::new(engine, graph);
    if options.kinds.contains(&Kind::CoverageGap) {
        coverage::coverage_gaps(engine, graph, &judged, &mut report);
    }
    if options.kinds.contains(&Kind::UnusedRule) {
        unused::unused_rules(engine, sources, graph, &judged, &mut report);
    }
    if options.kinds.contains(&Kind::OverlyBroad) {
        broad::overly_broad(engine, sources, graph, &judged, &mut report);
    }
    apply_dismissals(&mut report.recommendations, &options.dismissed);
    report
        .recommendations
        .retain(|r| r.confidence >= options.min_confidence);
    report.recommendations.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(b.confidence.total_cmp(&a.confidence))
            .then(a.fingerprint.cmp(&b.fingerprint))
    });
    report
}

/// The observed graph judged once on the cluster, for every kind of suggestion.
pub(crate) struct Judged<'g> {
    /// Each edge's decision, in the order of the graph's edges.
    pub decisions: Vec<Decision>,
    /// The edges each allow rule, `(policy, rule name)`, allowed.
    pub usage: BTreeMap<(PolicyRef, String), Vec<&'g Edge>>,
}

impl<'g> Judged<'g> {
    fn new(engine: &Engine, graph: &'g Graph) -> Self {
        let decisions: Vec<Decision> = graph.edges.iter().map(|e| e.decide_under(engine)).collect();
        let mut usage: BTreeMap<(PolicyRef, String), Vec<&Edge>> = BTreeMap::new();
        for (e, d) in graph.edges.iter().zip(&decisions) {
            for dir in [&d.ingress, &d.egress].into_iter().flatten() {
                for m in &dir.allowed_by {
                    usage
                        .entry((m.policy.clone(), m.rule.clone()))
                        .or_default()
                        .push(e);
                }
            }
        }
        Judged { decisions, usage }
    }
}

/// Drops suggestions dismissed with the same evidence; lowers the confidence of those whose
/// evidence changed since.
fn apply_dismissals(recs: &mut Vec<Recommendation>, dismissed: &[Dismissal]) {
    recs.retain_mut(|r| {
        let mut keep = true;
        for d in dismissed.iter().filter(|d| d.fingerprint == r.fingerprint) {
            if d.evidence_digest == r.evidence_digest {
                keep = false;
            } else {
                r.confidence = (r.confidence * d.reason.factor() * 100.0).round() / 100.0;
            }
        }
        keep
    });
}

/// The first 16 hex digits of the SHA-256 of `parts` joined by NUL.
fn digest(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h.update([0u8]);
        }
        h.update(p.as_bytes());
    }
    h.finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Confidence from the evidence: flow volume (1,000 flows count fully), the share of the
/// window's hours the edges were seen in, and the window's length (a day counts fully).
fn confidence(edges: &[&Edge], window_hours: u32) -> f64 {
    let flows: u64 = edges.iter().map(|e| e.count).sum();
    let volume = ((flows.max(1) as f64).log10() / 3.0).clamp(0.0, 1.0);
    let seen = edges.iter().map(|e| e.hours).max().unwrap_or(0) as f64;
    let persistence = (seen / f64::from(window_hours.clamp(1, 24))).clamp(0.0, 1.0);
    let window = (f64::from(window_hours) / 24.0).clamp(0.0, 1.0);
    let c = 0.2 + 0.4 * volume + 0.2 * persistence + 0.2 * window;
    (c * 100.0).round() / 100.0
}
