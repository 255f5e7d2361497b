//! The data shapes of flow validation that the CLI, the node agent and the hub share: hourly
//! [`ValidationSummary`]s, sampled [`ValidationEvent`]s and the [`ValidationPayload`]
//! envelope the hub ingests (`POST /api/operator/validation`).
//!
//! The JSON form uses lowerCamelCase keys and carries `schemaVersion`
//! ([`SCHEMA_VERSION`]). Compatible changes (a new optional field) keep the version;
//! renaming or removing a field, or changing its meaning, bumps it. Readers reject versions
//! they do not know ([`ValidationPayload::is_supported`]).
//!
//! This crate depends on serde only, so every component can use it.

use serde::{Deserialize, Serialize};

/// The version of the JSON form written by this crate.
pub const SCHEMA_VERSION: u32 = 1;

/// What the hub ingests from one validation run or one reporting interval of a collector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidationPayload {
    /// [`SCHEMA_VERSION`] of the writer.
    pub schema_version: u32,
    /// The cluster the flows came from (the hub maps it to its cluster id).
    pub cluster: String,
    /// Who reports within the cluster (a node's collector run). The hub keeps one summary
    /// per (cluster, hour, source) and a later post of the same key replaces the earlier
    /// one, so a reporter posts whole-hour summaries. Absent: `cluster`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// One summary per hour that saw flows, oldest first.
    pub summaries: Vec<ValidationSummary>,
    /// A bounded sample of individual judgements, for debugging.
    #[serde(default)]
    pub events: Vec<ValidationEvent>,
    /// How the input was read.
    #[serde(default)]
    pub input: InputStats,
}

impl ValidationPayload {
    /// An empty payload of the current version.
    pub fn new(cluster: impl Into<String>) -> Self {
        ValidationPayload {
            schema_version: SCHEMA_VERSION,
            cluster: cluster.into(),
            source: None,
            summaries: Vec::new(),
            events: Vec::new(),
            input: InputStats::default(),
        }
    }

    /// Whether a reader of this crate understands the payload's version.
    pub fn is_supported(&self) -> bool {
        self.schema_version == SCHEMA_VERSION
    }

    /// The sum of every hour's counts.
    pub fn totals(&self) -> Counts {
        let mut total = Counts::default();
        for s in &self.summaries {
            total.add(&s.counts);
        }
        total
    }
}

/// The model's verdict for a flow (the evaluator's answer, not the dataplane's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Verdict {
    /// Every isolated direction has a rule allowing the flow.
    Allowed,
    /// Some direction is isolated and nothing allows the flow, or a deny rule matches.
    Blocked,
    /// No policy governs the flow: a coverage gap.
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
}

/// How the model's verdict compares with what the dataplane did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Discrepancy {
    /// The dataplane did what the model says.
    Match,
    /// The model blocks the flow but the dataplane let it through: the policy is not enforced.
    EnforcementGap,
    /// The model allows the flow (or no policy governs it) but the dataplane dropped it by policy.
    UnexpectedDrop,
    /// The event says nothing about the policy decision (no verdict, a trace point before
    /// enforcement, a drop for a reason other than policy).
    Unobserved,
}

impl Discrepancy {
    pub const ALL: [Discrepancy; 4] = [
        Discrepancy::Match,
        Discrepancy::EnforcementGap,
        Discrepancy::UnexpectedDrop,
        Discrepancy::Unobserved,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Discrepancy::Match => "MATCH",
            Discrepancy::EnforcementGap => "ENFORCEMENT_GAP",
            Discrepancy::UnexpectedDrop => "UNEXPECTED_DROP",
            Discrepancy::Unobserved => "UNOBSERVED",
        }
    }
}

/// Verdict and discrepancy counts of judged flows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    pub allowed_count: u64,
    pub blocked_count: u64,
    pub no_policy_count: u64,
    #[serde(default)]
    pub discrepancies: DiscrepancyCounts,
}

impl Counts {
    /// Flows judged (the sum of the verdict counts).
    pub fn judged(&self) -> u64 {
        self.allowed_count + self.blocked_count + self.no_policy_count
    }

    pub fn add(&mut self, other: &Counts) {
        self.allowed_count += other.allowed_count;
        self.blocked_count += other.blocked_count;
        self.no_policy_count += other.no_policy_count;
        let (a, b) = (&mut self.discrepancies, &other.discrepancies);
        a.matched += b.matched;
        a.enforcement_gap += b.enforcement_gap;
        a.unexpected_drop += b.unexpected_drop;
        a.unobserved += b.unobserved;
        a.policy_name_mismatch += b.policy_name_mismatch;
    }

    /// Counts one judged flow.
    pub fn record(&mut self, verdict: Verdict, discrepancy: Discrepancy) {
        match verdict {
            Verdict::Allowed => self.allowed_count += 1,
            Verdict::Blocked => self.blocked_count += 1,
            Verdict::NoPolicy => self.no_policy_count += 1,
        }
        let d = &mut self.discrepancies;
        match discrepancy {
            Discrepancy::Match => d.matched += 1,
            Discrepancy::EnforcementGap => d.enforcement_gap += 1,
            Discrepancy::UnexpectedDrop => d.unexpected_drop += 1,
            Discrepancy::Unobserved => d.unobserved += 1,
        }
    }
}

/// Judged flows per [`Discrepancy`] class, plus policy-name disagreements.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiscrepancyCounts {
    #[serde(rename = "match")]
    pub matched: u64,
    pub enforcement_gap: u64,
    pub unexpected_drop: u64,
    pub unobserved: u64,
    /// Flows where Hubble named policies (`*_allowed_by` / `*_denied_by`) and none of them
    /// is among the policies the model names for that direction.
    pub policy_name_mismatch: u64,
}

impl DiscrepancyCounts {
    pub fn get(&self, d: Discrepancy) -> u64 {
        match d {
            Discrepancy::Match => self.matched,
            Discrepancy::EnforcementGap => self.enforcement_gap,
            Discrepancy::UnexpectedDrop => self.unexpected_drop,
            Discrepancy::Unobserved => self.unobserved,
        }
    }
}

/// Verdicts of one cluster in one hour, with its top coverage gaps and blocked flows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidationSummary {
    /// Start of the hour, RFC 3339 in UTC (`2025-03-14T09:00:00Z`).
    pub hour: String,
    #[serde(flatten)]
    pub counts: Counts,
    /// Most frequent NO_POLICY flows, most frequent first.
    pub coverage_gaps: Vec<CoverageGap>,
    /// Most frequent BLOCKED flows, most frequent first.
    pub top_blocked: Vec<BlockedFlow>,
    /// Whether the top lists are exact. When false, each entry's `count` may exceed the
    /// true count by at most its `countError` (Space-Saving summary).
    pub top_exact: bool,
}

/// A source/destination/port that no policy governs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CoverageGap {
    /// `namespace/workload`, a reserved identity (`reserved:host`) or an address.
    pub source: String,
    pub destination: String,
    pub protocol: String,
    pub port: u16,
    pub count: u64,
    /// Upper bound of the over-count in `count` (0 when exact).
    #[serde(default)]
    pub count_error: u64,
}

/// A source/destination pair the model blocks, with the policy that blocks it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockedFlow {
    pub source: String,
    pub destination: String,
    /// `Kind namespace/name` of the denying or isolating policy.
    pub policy: String,
    pub count: u64,
    /// Upper bound of the over-count in `count` (0 when exact).
    #[serde(default)]
    pub count_error: u64,
}

/// One judged flow, kept for debugging.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidationEvent {
    /// The flow's time as Hubble wrote it (RFC 3339).
    pub timestamp: String,
    pub verdict: Verdict,
    pub discrepancy: Discrepancy,
    pub src_namespace: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub src_pod_name: Option<String>,
    /// Labels as `key=value`, or a reserved identity (`reserved:world`).
    pub src_labels: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub src_ip: Option<String>,
    pub dst_namespace: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub dst_pod_name: Option<String>,
    pub dst_labels: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub dst_ip: Option<String>,
    pub dst_port: u16,
    pub protocol: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub matched_policy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
    /// What the dataplane did: `FORWARDED`, `DROPPED (POLICY_DENIED)`...; absent when unknown.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub observed: Option<String>,
    /// `INGRESS` / `EGRESS` when the event names the direction.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub traffic_direction: Option<String>,
    /// Policies Hubble named for the event (`Kind namespace/name`).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub observed_policies: Vec<String>,
    /// 1-based line number in the input.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub line: Option<u64>,
}

/// How the input was read: what was judged, what was not and why.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InputStats {
    /// Lines read, blank ones included.
    pub lines: u64,
    /// Flow events parsed.
    pub flows: u64,
    /// Flows judged against the policies (summed in the summaries).
    pub judged: u64,
    /// Replies of connections already judged.
    pub replies: u64,
    /// Events not judged: L7, socket traces, flows without an L4 header.
    pub not_l3l4: u64,
    /// Flows whose source or destination names a pod that is not in the snapshot.
    pub unresolved: u64,
    /// Lines that are not a flow; skipped (or fatal with `--strict`).
    pub corrupt: u64,
    /// The first corrupt lines with their error.
    #[serde(default)]
    pub corrupt_lines: Vec<CorruptLine>,
}

/// A line that could not be read as a flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CorruptLine {
    /// 1-based.
    pub line: u64,
    pub error: String,
}

#[cfg(test)]
mod tests;
