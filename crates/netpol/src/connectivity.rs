//! Connectivity analysis: the allowed port set between every ordered pair of workloads,
//! and between each workload and the external address ranges policies tell apart.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use serde::Serialize;

use crate::cidr::IpRange;
use crate::engine::{Endpoint, Engine};
use crate::model::WorkloadRef;
use crate::ports::PortSet;

/// One side of a connection.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Peer {
    Workload(WorkloadRef),
    External(IpRange),
    /// The cluster's ingress controller (see [`crate::ingress`]); only ever a source.
    IngressController,
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Workload(w) => write!(f, "{w}"),
            Peer::External(r) => write!(f, "{r}"),
            Peer::IngressController => f.write_str(INGRESS_CONTROLLER),
        }
    }
}

/// How the ingress controller peer is printed.
pub const INGRESS_CONTROLLER: &str = "{ingress-controller}";

/// A workload as its fields, a range or the controller as text.
impl Serialize for Peer {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Peer::Workload(w) => w.serialize(s),
            Peer::External(r) => r.serialize(s),
            Peer::IngressController => s.serialize_str(INGRESS_CONTROLLER),
        }
    }
}

impl Serialize for IpRange {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The ports `src` may open to `dst`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Connection {
    pub src: Peer,
    pub dst: Peer,
    pub ports: PortSet,
}

/// Calls `sink` for every ordered pair (workloads and external ranges), including pairs
/// with no connection, without keeping them: memory does not grow with the number of
/// pairs. Pods of one workload count as one peer, represented by its first pod.
pub fn analyze(
    engine: &Engine,
    mut progress: impl FnMut(usize, usize),
    mut sink: impl FnMut(&Peer, &Peer, &PortSet),
) {
    let workloads: Vec<(Peer, usize)> = workloads(engine)
        .into_iter()
        .map(|(w, pod)| (Peer::Workload(w), pod))
        .collect();
    for (n, (src_w, src)) in workloads.iter().enumerate() {
        progress(n, workloads.len());
        let src_ep = Endpoint::Pod(*src);
        for (dst_w, dst) in &workloads {
            if src_w != dst_w {
                sink(
                    src_w,
                    dst_w,
                    &engine.allowed_ports(&src_ep, &Endpoint::Pod(*dst)),
                );
            }
        }
    }
    progress(workloads.len(), workloads.len());
    if let Some(controller) = crate::ingress::controller(engine.inventory()) {
        for (w, pod) in &workloads {
            sink(
                &Peer::IngressController,
                w,
                &ingress_ports(engine, controller, *pod),
            );
        }
    }
    let ipv6 = has_ipv6_cuts(engine);
    for (w, pod) in &workloads {
        for outbound in [true, false] {
            for (range, ports) in external_ranges(engine, *pod, outbound, ipv6) {
                let ext = Peer::External(range);
                if outbound {
                    sink(w, &ext, &ports)
                } else {
                    sink(&ext, w, &ports)
                }
            }
        }
    }
}

/// Every workload of the inventory but the ingress controller, sorted, with the index of
/// its first pod (which stands for all its pods).
pub fn workloads(engine: &Engine) -> Vec<(WorkloadRef, usize)> {
    let mut workloads: BTreeMap<&WorkloadRef, usize> = BTreeMap::new();
    for (i, pod) in engine.inventory().pods.iter().enumerate() {
        if !crate::ingress::is_controller(&pod.workload) {
            workloads.entry(&pod.workload).or_insert(i);
        }
    }
    workloads
        .into_iter()
        .map(|(w, pod)| (w.clone(), pod))
        .collect()
}

/// What the ingress controller pod may open to `pod`: the candidate ports Ingresses and
/// Routes expose (see [`crate::ingress::candidate_ports`]) that the policies allow.
pub fn ingress_ports(engine: &Engine, controller: usize, pod: usize) -> PortSet {
    let candidates = crate::ingress::candidate_ports(engine.inventory(), pod);
    if candidates.is_empty() {
        return candidates;
    }
    engine
        .allowed_ports(&Endpoint::Pod(controller), &Endpoint::Pod(pod))
        .intersection(&candidates)
}

/// Whether some policy names an IPv6 block, so that the IPv6 space is cut and reported.
pub fn has_ipv6_cuts(engine: &Engine) -> bool {
    let atoms = engine.atoms();
    atoms.len() > atoms.v4_len() + 1
}

/// The ports between a pod and the external address space (`outbound`: pod to addresses),
/// as ranges in address order: one answer per CIDR atom, adjacent atoms with equal answers
/// merged. The ranges cover all of IPv4, and all of IPv6 too when `ipv6` is set.
pub fn external_ranges(
    engine: &Engine,
    pod: usize,
    outbound: bool,
    ipv6: bool,
) -> Vec<(IpRange, PortSet)> {
    let atoms = engine.atoms();
    let families = if ipv6 { atoms.len() } else { atoms.v4_len() };
    let pod_ep = Endpoint::Pod(pod);
    let mut out: Vec<(IpRange, PortSet)> = Vec::new();
    for atom in 0..families {
        let range = atoms.range(atom);
        let ext = Endpoint::External(range.first);
        let ports = if outbound {
            engine.allowed_ports(&pod_ep, &ext)
        } else {
            engine.allowed_ports(&ext, &pod_ep)
        };
        match out.last_mut() {
            Some((r, p)) if *p == ports && r.last.is_ipv4() == range.first.is_ipv4() => {
                r.last = range.last;
            }
            _ => out.push((range, ports)),
        }
    }
    out
}

/// The allowed ports between a pod and every address of `range`, if they are the same
/// for all of them (`outbound`: pod to range).
pub fn range_ports(
    engine: &Engine,
    pod: usize,
    range: IpRange,
    outbound: bool,
) -> Result<PortSet, Vec<(IpRange, PortSet)>> {
    let atoms = engine.atoms();
    let mut answers: Vec<(IpRange, PortSet)> = Vec::new();
    for atom in atoms.overlapping(range) {
        let a = atoms.range(atom);
        let first: IpAddr = a.first.max(range.first);
        let last: IpAddr = a.last.min(range.last);
        let ext = Endpoint::External(first);
        let pod_ep = Endpoint::Pod(pod);
        let ports = if outbound {
            engine.allowed_ports(&pod_ep, &ext)
        } else {
            engine.allowed_ports(&ext, &pod_ep)
        };
        answers.push((IpRange { first, last }, ports));
    }
    if answers.windows(2).all(|w| w[0].1 == w[1].1) {
        Ok(answers.pop().map(|(_, p)| p).unwrap_or_default())
    } else {
        Err(answers)
    }
}
