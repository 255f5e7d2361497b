//! `exposure` cases (`shared/corpus/netpol/cases-exposure`): manifests, the connectivity
//! report, the exposure lines and the unprotected workloads upstream printed. Every line of
//! ours must be listed too; ip-range lines are compared per address.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_json::Value;

use super::{check_ranges, uncovered, Case, CaseResult, Expected, Failure};
use crate::cidr::IpRange;
use crate::engine::Options;
use crate::exposure::{analyze, Connections, ExposedTo, NamedPort, Report};
use crate::manifest::Bundle;
use crate::policy::Direction;
use crate::ports::{PortSet, Protocol};

#[derive(Debug, Deserialize)]
pub struct ExposureCase {
    pub name: String,
    pub manifests: Vec<Value>,
    pub expected: ExposureExpected,
}

#[derive(Debug, Deserialize)]
pub struct ExposureExpected {
    /// The connectivity report, as in `connlist` cases (with `{ingress-controller}`).
    pub connections: Vec<Expected>,
    pub exposure: Vec<ExposureEntry>,
    /// `None` where upstream did not say.
    pub unprotected: Option<Vec<UnprotectedEntry>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ExposureEntry {
    pub direction: String,
    pub workload: String,
    pub peer: String,
    pub peer_type: String,
    pub conns: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct UnprotectedEntry {
    pub workload: String,
    pub direction: String,
}

fn direction(text: &str) -> Result<Direction, String> {
    match text {
        "ingress" => Ok(Direction::Ingress),
        "egress" => Ok(Direction::Egress),
        other => Err(format!("unknown direction {other:?}")),
    }
}

/// Parses the exposure grammar: the port grammar where an item may be a port name, and a
/// group may have an empty protocol (` local-port`).
fn parse_connections(text: &str) -> Result<Connections, String> {
    if matches!(text, "All Connections" | "No Connections") {
        return PortSet::parse(text).map(|ports| Connections {
            ports,
            names: BTreeSet::new(),
        });
    }
    let mut out = Connections::default();
    let mut numbers: Vec<String> = Vec::new();
    let mut protocol: Option<Option<Protocol>> = None;
    for item in text.split(',') {
        let port = match item.split_once(' ') {
            Some((name, rest)) => {
                protocol = Some(if name.is_empty() {
                    None
                } else {
                    Some(Protocol::parse(name).ok_or_else(|| format!("bad protocol in {text:?}"))?)
                });
                rest
            }
            None => item,
        };
        let proto = protocol.ok_or_else(|| format!("port before any protocol in {text:?}"))?;
        if port.starts_with(|c: char| c.is_ascii_digit()) {
            let proto = proto.ok_or_else(|| format!("number without protocol in {text:?}"))?;
            numbers.push(format!("{proto} {port}"));
        } else {
            out.names.insert(NamedPort {
                protocol: proto,
                name: port.to_string(),
            });
        }
    }
    if !numbers.is_empty() {
        out.ports = PortSet::parse(&numbers.join(","))?;
    }
    Ok(out)
}

/// Our lines, indexed: (direction, workload, peer) for named peers, and (direction,
/// workload) for address ranges.
#[derive(Default)]
struct Lines {
    named: BTreeMap<(Direction, String, String), Connections>,
    ranges: BTreeMap<(Direction, String), Vec<(IpRange, Connections)>>,
}

impl Lines {
    fn new(report: &Report) -> Lines {
        let mut lines = Lines::default();
        for l in &report.lines {
            let w = l.workload.to_string();
            match &l.peer {
                ExposedTo::IpRange(r) => lines
                    .ranges
                    .entry((l.direction, w))
                    .or_default()
                    .push((*r, l.ports.clone())),
                peer => {
                    lines
                        .named
                        .insert((l.direction, w, peer.to_string()), l.ports.clone());
                }
            }
        }
        for pieces in lines.ranges.values_mut() {
            pieces.sort_by_key(|(r, _)| *r);
        }
        lines
    }
}

impl ExposureCase {
    /// Checks the connectivity report, every exposure line (and that ours are all
    /// listed), and the unprotected workloads when the case gives them.
    pub fn run(&self, options: Options) -> Result<CaseResult, String> {
        let connections = Case {
            name: self.name.clone(),
            source: None,
            kind: "connlist".into(),
            namespaces: Vec::new(),
            pods: Vec::new(),
            policies: Vec::new(),
            manifests: Some(self.manifests.clone()),
            options: Default::default(),
            expected: self.expected.connections.clone(),
        };
        let mut result = connections.run(options)?;
        let mut bundle = Bundle::default();
        for (i, doc) in self.manifests.iter().enumerate() {
            bundle
                .add_object(doc, &format!("{}:manifests", self.name), i + 1, "")
                .map_err(|e| e.to_string())?;
        }
        let report = analyze(bundle.inventory, bundle.policies, options);
        let ours = Lines::new(&report);
        let mut listed_named: BTreeSet<(Direction, String, String)> = BTreeSet::new();
        let mut listed_ranges: BTreeMap<(Direction, String), Vec<IpRange>> = BTreeMap::new();
        for exp in &self.expected.exposure {
            let dir = direction(&exp.direction)?;
            let (src, dst) = match dir {
                Direction::Egress => (exp.workload.clone(), exp.peer.clone()),
                Direction::Ingress => (exp.peer.clone(), exp.workload.clone()),
            };
            let fail = |got: String| Failure {
                src: src.clone(),
                dst: dst.clone(),
                want: format!("{} ({})", exp.conns, exp.peer_type),
                got,
                rule: None,
            };
            let ranges = if exp.peer_type == "ip-range" {
                Some(
                    exp.peer
                        .trim_end_matches("[External]")
                        .split(',')
                        .map(|r| IpRange::parse(r).ok_or_else(|| format!("bad range {r:?}")))
                        .collect::<Result<Vec<_>, _>>()?,
                )
            } else {
                listed_named.insert((dir, exp.workload.clone(), exp.peer.clone()));
                None
            };
            if let Some(rs) = &ranges {
                listed_ranges
                    .entry((dir, exp.workload.clone()))
                    .or_default()
                    .extend(rs.iter().copied());
            }
            let want = parse_connections(&exp.conns)?;
            let same = |c: &Connections| c.ports.l4() == want.ports.l4() && c.names == want.names;
            let verdict = match &ranges {
                None => match ours
                    .named
                    .get(&(dir, exp.workload.clone(), exp.peer.clone()))
                {
                    None => Err("no such line".to_string()),
                    Some(c) if same(c) => Ok(()),
                    Some(c) => Err(c.to_string()),
                },
                Some(rs) => {
                    let pieces = ours
                        .ranges
                        .get(&(dir, exp.workload.clone()))
                        .map(Vec::as_slice)
                        .unwrap_or_default();
                    let wrong = check_ranges(rs, pieces, |c| (!same(c)).then(|| c.to_string()));
                    if wrong.is_empty() {
                        Ok(())
                    } else {
                        Err(wrong.join("; "))
                    }
                }
            };
            match verdict {
                Ok(()) => result.passed += 1,
                Err(got) => result.failures.push(fail(got)),
            }
        }
        let unexpected = |dir: Direction, w: &str, peer: String, ports: &Connections| {
            let (src, dst) = match dir {
                Direction::Egress => (w.to_string(), peer),
                Direction::Ingress => (peer, w.to_string()),
            };
            Failure {
                src,
                dst,
                want: "no line".into(),
                got: ports.to_string(),
                rule: None,
            }
        };
        for ((dir, w, peer), ports) in &ours.named {
            if !listed_named.contains(&(*dir, w.clone(), peer.clone())) {
                result
                    .failures
                    .push(unexpected(*dir, w, peer.clone(), ports));
            }
        }
        for ((dir, w), pieces) in &ours.ranges {
            let mut listed = listed_ranges
                .get(&(*dir, w.clone()))
                .cloned()
                .unwrap_or_default();
            listed.sort();
            for (r, ports) in pieces {
                if !uncovered(*r, &listed).is_empty() {
                    let peer = format!("{r}[External]");
                    result.failures.push(unexpected(*dir, w, peer, ports));
                }
            }
        }
        if let Some(expected) = &self.expected.unprotected {
            let ours: BTreeSet<(String, Direction)> = report
                .unprotected
                .iter()
                .map(|u| (u.workload.to_string(), u.direction))
                .collect();
            let mut listed = BTreeSet::new();
            for u in expected {
                let key = (u.workload.clone(), direction(&u.direction)?);
                let entry = |got: &str| Failure {
                    src: u.workload.clone(),
                    dst: u.direction.clone(),
                    want: "not protected".into(),
                    got: got.into(),
                    rule: None,
                };
                if ours.contains(&key) {
                    result.passed += 1;
                } else {
                    result.failures.push(entry("protected"));
                }
                listed.insert(key);
            }
            for (w, dir) in ours.difference(&listed) {
                result.failures.push(Failure {
                    src: w.clone(),
                    dst: dir.as_str().into(),
                    want: "protected".into(),
                    got: "not protected".into(),
                    rule: None,
                });
            }
        }
        Ok(result)
    }
}
