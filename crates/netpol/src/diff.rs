//! Connectivity diff: which connections a change of manifests adds, removes or changes.
//!
//! Both clusters are analysed as [`connectivity::analyze`](crate::connectivity::analyze)
//! does (workload pairs, never a workload with itself, the ingress controller to each
//! workload when either side has one, and each workload against the external address
//! space); a workload is the same peer on both sides when its
//! `ns/name[Kind]` is the same, whatever its pods or labels became. A workload that exists
//! on one side only has no connections on the other. External ranges are the common
//! refinement of both sides' ranges, touching ranges with the same answers merged.
//!
//! Entries are handed to a sink as they are found: memory holds one workload's external
//! ranges at a time, never the connectivity matrix.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Serialize;

use crate::cidr::IpRange;
use crate::connectivity::{external_ranges, has_ipv6_cuts, ingress_ports, workloads, Peer};
use crate::engine::{Endpoint, Engine};
use crate::ingress;
use crate::model::WorkloadRef;
use crate::ports::PortSet;

/// How a pair's connections differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DiffType {
    /// No connection before, some after.
    Added,
    /// Some connection before, none after.
    Removed,
    /// Connections on both sides, not the same.
    Changed,
}

impl DiffType {
    pub fn as_str(self) -> &'static str {
        match self {
            DiffType::Added => "added",
            DiffType::Removed => "removed",
            DiffType::Changed => "changed",
        }
    }

    /// The category of a pair whose connections went from `before` to `after`; `None`
    /// when they are the same.
    pub fn of(before: &PortSet, after: &PortSet) -> Option<DiffType> {
        if before == after {
            None
        } else if before.is_empty() {
            Some(DiffType::Added)
        } else if after.is_empty() {
            Some(DiffType::Removed)
        } else {
            Some(DiffType::Changed)
        }
    }
}

impl fmt::Display for DiffType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One pair whose connections differ between the base and the target cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DiffEntry {
    pub diff_type: DiffType,
    pub src: Peer,
    pub dst: Peer,
    /// Connections in the base cluster.
    pub before: PortSet,
    /// Connections in the target cluster.
    pub after: PortSet,
    /// `src` is a workload that the target added (for `added`) or removed (for `removed`).
    pub src_new_or_removed: bool,
    /// The same for `dst`.
    pub dst_new_or_removed: bool,
}

impl DiffEntry {
    /// `workload a[ and b] added|removed` when the entry is due to workloads that exist
    /// on one side only.
    pub fn workloads_info(&self) -> Option<String> {
        let names: Vec<String> = [
            (self.src_new_or_removed, &self.src),
            (self.dst_new_or_removed, &self.dst),
        ]
        .into_iter()
        .filter(|(flag, _)| *flag)
        .map(|(_, p)| p.to_string())
        .collect();
        if names.is_empty() {
            return None;
        }
        let verb = match self.diff_type {
            DiffType::Removed => "removed",
            _ => "added",
        };
        Some(format!("workload {} {verb}", names.join(" and ")))
    }

    /// Ports the target allows that the base did not.
    pub fn gained(&self) -> PortSet {
        self.after.difference(&self.before)
    }
}

/// Counts per category, for summaries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DiffSummary {
    pub added: usize,
    pub removed: usize,
    pub changed: usize,
}

impl DiffSummary {
    pub fn count(&mut self, entry: &DiffEntry) {
        match entry.diff_type {
            DiffType::Added => self.added += 1,
            DiffType::Removed => self.removed += 1,
            DiffType::Changed => self.changed += 1,
        }
    }

    pub fn total(&self) -> usize {
        self.added + self.removed + self.changed
    }
}

/// A workload and its representative pod on each side.
struct Sides {
    before: Option<usize>,
    after: Option<usize>,
}

/// Calls `sink` for every pair whose connections differ from `base` to `target`, workload
/// pairs first (sorted by source, then destination), then the ingress controller to each
/// workload, then each workload's external ranges (outbound, then inbound). `progress(done, total)` counts source workloads.
pub fn diff(
    base: &Engine,
    target: &Engine,
    mut progress: impl FnMut(usize, usize),
    mut sink: impl FnMut(DiffEntry),
) {
    let mut all: BTreeMap<WorkloadRef, Sides> = BTreeMap::new();
    for (w, pod) in workloads(base) {
        all.insert(
            w,
            Sides {
                before: Some(pod),
                after: None,
            },
        );
    }
    for (w, pod) in workloads(target) {
        all.entry(w)
            .or_insert(Sides {
                before: None,
                after: None,
            })
            .after = Some(pod);
    }
    let all: Vec<(Peer, Sides)> = all
        .into_iter()
        .map(|(w, s)| (Peer::Workload(w), s))
        .collect();
    let ports = |engine: &Engine, src: Option<usize>, dst: Option<usize>| match (src, dst) {
        (Some(s), Some(d)) => engine.allowed_ports(&Endpoint::Pod(s), &Endpoint::Pod(d)),
        _ => PortSet::none(),
    };
    for (n, (src, s)) in all.iter().enumerate() {
        progress(n, all.len());
        for (dst, d) in &all {
            if src == dst {
                continue;
            }
            let before = ports(base, s.before, d.before);
            let after = ports(target, s.after, d.after);
            if let Some(entry) = entry(src, dst, before, after, s, d) {
                sink(entry);
            }
        }
    }
    progress(all.len(), all.len());
    let outside = Sides {
        before: Some(0),
        after: Some(0),
    };
    let controllers = (
        ingress::controller(base.inventory()),
        ingress::controller(target.inventory()),
    );
    if controllers != (None, None) {
        let ports = |engine: &Engine, controller: Option<usize>, pod: Option<usize>| match (
            controller, pod,
        ) {
            (Some(c), Some(p)) => ingress_ports(engine, c, p),
            _ => PortSet::none(),
        };
        for (w, s) in &all {
            let before = ports(base, controllers.0, s.before);
            let after = ports(target, controllers.1, s.after);
            if let Some(e) = entry(&Peer::IngressController, w, before, after, &outside, s) {
                sink(e);
            }
        }
    }
    let ipv6 = has_ipv6_cuts(base) || has_ipv6_cuts(target);
    for (w, s) in &all {
        for outbound in [true, false] {
            let side = |engine: &Engine, pod: Option<usize>| match pod {
                Some(p) => external_ranges(engine, p, outbound, ipv6),
                None => whole_space(ipv6),
            };
            let before = side(base, s.before);
            let after = side(target, s.after);
            for (range, b, a) in refine(&before, &after) {
                let ext = Peer::External(range);
                let e = if outbound {
                    entry(w, &ext, b, a, s, &outside)
                } else {
                    entry(&ext, w, b, a, &outside, s)
                };
                if let Some(e) = e {
                    sink(e);
                }
            }
        }
    }
}

/// Every entry of [`diff`], in its order.
pub fn diff_all(base: &Engine, target: &Engine) -> Vec<DiffEntry> {
    let mut out = Vec::new();
    diff(base, target, |_, _| {}, |e| out.push(e));
    out
}

fn entry(
    src: &Peer,
    dst: &Peer,
    before: PortSet,
    after: PortSet,
    s: &Sides,
    d: &Sides,
) -> Option<DiffEntry> {
    let diff_type = DiffType::of(&before, &after)?;
    let flag = |x: &Sides| match diff_type {
        DiffType::Added => x.before.is_none(),
        DiffType::Removed => x.after.is_none(),
        DiffType::Changed => false,
    };
    Some(DiffEntry {
        diff_type,
        src: src.clone(),
        dst: dst.clone(),
        before,
        after,
        src_new_or_removed: flag(s),
        dst_new_or_removed: flag(d),
    })
}

/// The external space with no connection: all of IPv4 (and IPv6).
fn whole_space(ipv6: bool) -> Vec<(IpRange, PortSet)> {
    let mut out = vec![(
        IpRange {
            first: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            last: IpAddr::V4(Ipv4Addr::BROADCAST),
        },
        PortSet::none(),
    )];
    if ipv6 {
        out.push((
            IpRange {
                first: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                last: IpAddr::V6(Ipv6Addr::from(u128::MAX)),
            },
            PortSet::none(),
        ));
    }
    out
}

/// The common refinement of two partitions of the same addresses (sorted ranges), as
/// (range, answer of `a`, answer of `b`), touching pieces with equal answers merged.
/// Pieces where the answers are equal are left out.
fn refine(a: &[(IpRange, PortSet)], b: &[(IpRange, PortSet)]) -> Vec<(IpRange, PortSet, PortSet)> {
    let mut out: Vec<(IpRange, PortSet, PortSet)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    // Whether the previous piece was kept, so that only touching pieces merge.
    let mut previous_kept = false;
    while let (Some((ra, pa)), Some((rb, pb))) = (a.get(i), b.get(j)) {
        // Both partitions are contiguous, so the piece starts where the later range does.
        let first = ra.first.max(rb.first);
        let last = ra.last.min(rb.last);
        let kept = pa != pb;
        if kept {
            match out.last_mut() {
                Some((r, x, y))
                    if previous_kept
                        && x == pa
                        && y == pb
                        && r.last.is_ipv4() == first.is_ipv4() =>
                {
                    r.last = last;
                }
                _ => out.push((IpRange { first, last }, pa.clone(), pb.clone())),
            }
        }
        previous_kept = kept;
        if ra.last == last {
            i += 1;
        }
        if rb.last == last {
            j += 1;
        }
    }
    out
}

#[cfg(test)]
#[path = "diff/tests.rs"]
mod tests;
