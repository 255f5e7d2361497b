//! `diff` cases (`shared/corpus/netpol/cases-diff`): two clusters' manifests and the
//! connectivity diff upstream printed, one entry per line. Pairs no entry lists must be
//! unchanged, so an answer the case does not list is a failure too. External ranges are
//! compared per address: an entry for a range states the answer for every address in it.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_json::Value;

use super::{check_ranges, uncovered, CaseResult, Failure};
use crate::cidr::IpRange;
use crate::connectivity::Peer;
use crate::diff::{diff_all, DiffEntry};
use crate::engine::{Engine, Options};
use crate::manifest::Bundle;
use crate::ports::PortSet;

#[derive(Debug, Deserialize)]
pub struct DiffCase {
    pub name: String,
    /// Manifests of the base cluster (upstream's ref1).
    pub before: Vec<Value>,
    /// Manifests of the target cluster (upstream's ref2).
    pub after: Vec<Value>,
    pub expected: Vec<DiffExpected>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiffExpected {
    pub diff_type: String,
    pub src: String,
    pub dst: String,
    pub before: String,
    pub after: String,
    pub src_new_or_removed: bool,
    pub dst_new_or_removed: bool,
    #[serde(default)]
    pub workloads_diff_info: Option<String>,
}

impl DiffExpected {
    fn want(&self) -> String {
        let mut text = format!("{}: {} => {}", self.diff_type, self.before, self.after);
        if let Some(info) = &self.workloads_diff_info {
            text.push_str(&format!(" ({info})"));
        }
        text
    }
}

fn got(e: &DiffEntry) -> String {
    let mut text = format!("{}: {} => {}", e.diff_type, e.before.l4(), e.after.l4());
    if let Some(info) = e.workloads_info() {
        text.push_str(&format!(" ({info})"));
    }
    text
}

/// A side of an expected entry.
enum Side {
    Workload(String),
    Ranges(Vec<IpRange>),
}

fn side(text: &str) -> Result<Side, String> {
    match text.strip_suffix("[External]") {
        Some(ranges) => ranges
            .split(',')
            .map(|r| IpRange::parse(r).ok_or_else(|| format!("bad address range {r:?}")))
            .collect::<Result<_, _>>()
            .map(Side::Ranges),
        None => Ok(Side::Workload(text.to_string())),
    }
}

/// Our answers, indexed: workload pairs by name, external ranges by (workload, outbound).
#[derive(Default)]
struct Answers<'a> {
    pairs: BTreeMap<(String, String), &'a DiffEntry>,
    ranges: BTreeMap<(String, bool), Vec<(IpRange, &'a DiffEntry)>>,
}

impl<'a> Answers<'a> {
    fn new(entries: &'a [DiffEntry]) -> Self {
        let mut a = Answers::default();
        for e in entries {
            match (&e.src, &e.dst) {
                (Peer::External(r), w) => a
                    .ranges
                    .entry((w.to_string(), false))
                    .or_default()
                    .push((*r, e)),
                (w, Peer::External(r)) => a
                    .ranges
                    .entry((w.to_string(), true))
                    .or_default()
                    .push((*r, e)),
                (s, d) => {
                    a.pairs.insert((s.to_string(), d.to_string()), e);
                }
            }
        }
        for list in a.ranges.values_mut() {
            list.sort_by_key(|(r, _)| *r);
        }
        a
    }
}

impl DiffCase {
    fn engine(&self, docs: &[Value], side: &str, options: Options) -> Result<Engine, String> {
        let mut bundle = Bundle::default();
        for (i, doc) in docs.iter().enumerate() {
            bundle
                .add_object(doc, &format!("{}:{side}", self.name), i + 1, "")
                .map_err(|e| format!("{side}: {e}"))?;
        }
        crate::ingress::add_controller(&mut bundle.inventory);
        Ok(Engine::new(bundle.inventory, bundle.policies, options))
    }

    /// Builds both clusters, diffs them and checks every expected entry, then that every
    /// answer is expected.
    pub fn run(&self, options: Options) -> Result<CaseResult, String> {
        let base = self.engine(&self.before, "before", options)?;
        let target = self.engine(&self.after, "after", options)?;
        let ours = diff_all(&base, &target);
        let answers = Answers::new(&ours);
        let mut result = CaseResult {
            name: self.name.clone(),
            passed: 0,
            failures: Vec::new(),
            not_evaluated: Vec::new(),
        };
        let mut listed_pairs: BTreeSet<(String, String)> = BTreeSet::new();
        let mut listed_ranges: BTreeMap<(String, bool), Vec<IpRange>> = BTreeMap::new();
        for exp in &self.expected {
            let fail = |got: String| Failure {
                src: exp.src.clone(),
                dst: exp.dst.clone(),
                want: exp.want(),
                got,
                rule: None,
            };
            match check(exp, &answers, &mut listed_pairs, &mut listed_ranges) {
                Ok(()) => result.passed += 1,
                Err(got) => result.failures.push(fail(got)),
            }
        }
        // Every answer of ours must be listed.
        for ((src, dst), e) in &answers.pairs {
            if !listed_pairs.contains(&(src.clone(), dst.clone())) {
                result.failures.push(unexpected(src, dst, e));
            }
        }
        for (key, pieces) in &answers.ranges {
            let mut listed = listed_ranges.get(key).cloned().unwrap_or_default();
            listed.sort();
            for (range, e) in pieces {
                if !uncovered(*range, &listed).is_empty() {
                    let ext = format!("{range}[External]");
                    let (src, dst) = if key.1 {
                        (key.0.clone(), ext)
                    } else {
                        (ext, key.0.clone())
                    };
                    result.failures.push(unexpected(&src, &dst, e));
                }
            }
        }
        Ok(result)
    }
}

fn unexpected(src: &str, dst: &str, e: &DiffEntry) -> Failure {
    Failure {
        src: src.to_string(),
        dst: dst.to_string(),
        want: "unchanged (not listed)".into(),
        got: got(e),
        rule: None,
    }
}

/// Whether our entry has the expected category, connections and flags.
fn matches(exp: &DiffExpected, e: &DiffEntry) -> Result<bool, String> {
    let before = PortSet::parse(&exp.before)?;
    let after = PortSet::parse(&exp.after)?;
    Ok(e.diff_type.as_str() == exp.diff_type
        && e.before.l4() == before.l4()
        && e.after.l4() == after.l4()
        && e.src_new_or_removed == exp.src_new_or_removed
        && e.dst_new_or_removed == exp.dst_new_or_removed
        && e.workloads_info() == exp.workloads_diff_info)
}

fn check(
    exp: &DiffExpected,
    answers: &Answers,
    listed_pairs: &mut BTreeSet<(String, String)>,
    listed_ranges: &mut BTreeMap<(String, bool), Vec<IpRange>>,
) -> Result<(), String> {
    let (workload, ranges, outbound) = match (side(&exp.src)?, side(&exp.dst)?) {
        (Side::Workload(s), Side::Workload(d)) => {
            let key = (s, d);
            listed_pairs.insert(key.clone());
            return match answers.pairs.get(&key) {
                None => Err("unchanged".into()),
                Some(e) if matches(exp, e)? => Ok(()),
                Some(e) => Err(got(e)),
            };
        }
        (Side::Workload(w), Side::Ranges(r)) => (w, r, true),
        (Side::Ranges(r), Side::Workload(w)) => (w, r, false),
        (Side::Ranges(_), Side::Ranges(_)) => {
            return Err("an entry between two address ranges".into())
        }
    };
    let key = (workload, outbound);
    listed_ranges
        .entry(key.clone())
        .or_default()
        .extend(ranges.iter().copied());
    let pieces = answers
        .ranges
        .get(&key)
        .map(Vec::as_slice)
        .unwrap_or_default();
    // Parse errors are reported before any answer is judged.
    PortSet::parse(&exp.before)?;
    PortSet::parse(&exp.after)?;
    let wrong = check_ranges(&ranges, pieces, |e| {
        (!matches(exp, e).unwrap_or(false)).then(|| got(e))
    });
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(wrong.join("; "))
    }
}
