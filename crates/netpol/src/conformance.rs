//! Runner for conformance case files (the format of `shared/corpus/netpol`): a scenario
//! (namespaces, pods, policies) and the expected answers (`cases/`), or two clusters'
//! manifests and the expected connectivity diff (`cases-diff/`, kind `diff`).

use std::net::IpAddr;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::cidr::IpRange;
use crate::connectivity::{ingress_ports, range_ports, INGRESS_CONTROLLER};
use crate::engine::{AllowLocalhost, Endpoint, Engine, Options};
use crate::manifest::Bundle;
use crate::model::{ContainerPort, Namespace, Pod, WorkloadRef};
use crate::policy::Entity;
use crate::ports::{PortSet, Protocol};
use crate::Verdict;

pub mod diff;
pub mod exposure;

#[derive(Debug, Deserialize)]
pub struct Case {
    pub name: String,
    #[serde(default)]
    pub source: Option<String>,
    pub kind: String,
    #[serde(default)]
    pub namespaces: Vec<CaseNamespace>,
    #[serde(default)]
    pub pods: Vec<CasePod>,
    #[serde(default)]
    pub policies: Vec<Value>,
    /// The manifests themselves (`connectivity-ingress` cases): when present the scenario is
    /// read from them, Services, Ingresses and Routes included, with the ingress controller.
    #[serde(default)]
    pub manifests: Option<Vec<Value>>,
    /// Evaluation options the expectations assume, over the runner's (project cases only).
    #[serde(default)]
    pub options: CaseOptions,
    pub expected: Vec<Expected>,
}

/// Options a case sets for itself, e.g. `{"allowLocalhost": "policy"}`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CaseOptions {
    #[serde(default)]
    pub allow_localhost: Option<String>,
}

impl CaseOptions {
    /// `base` with this case's settings applied.
    fn apply(&self, mut base: Options) -> Result<Options, String> {
        if let Some(mode) = &self.allow_localhost {
            base.allow_localhost = mode
                .parse::<AllowLocalhost>()
                .map_err(|e| format!("options.allowLocalhost: {e}"))?;
        }
        Ok(base)
    }
}

#[derive(Debug, Deserialize)]
pub struct CaseNamespace {
    pub name: String,
    #[serde(default)]
    pub labels: crate::selector::Labels,
}

#[derive(Debug, Deserialize)]
pub struct CasePod {
    pub namespace: String,
    pub name: String,
    #[serde(default)]
    pub labels: crate::selector::Labels,
    #[serde(default)]
    pub ip: Option<String>,
    #[serde(default)]
    pub ips: Vec<String>,
    #[serde(default)]
    pub ports: Vec<CasePort>,
    #[serde(default)]
    pub workload: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct CasePort {
    #[serde(default)]
    pub name: Option<String>,
    /// Null in upstream scenarios whose manifests leave `containerPort` out; such ports are skipped.
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub protocol: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Expected {
    pub src: String,
    pub dst: String,
    #[serde(default)]
    pub allowed_ports: Option<String>,
    #[serde(default)]
    pub protocol: Option<String>,
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub allowed: Option<bool>,
    /// Free text: why the entry is expected (Cilium cases cite the documented rule).
    #[serde(default)]
    pub rule: Option<String>,
}

/// One expected entry that did not hold, or an answer no entry expected.
#[derive(Debug, Clone)]
pub struct Failure {
    pub src: String,
    pub dst: String,
    /// What the case expects (`unchanged` for an answer the case does not list).
    pub want: String,
    pub got: String,
    /// Why the entry is expected, when the case says.
    pub rule: Option<String>,
}

/// An expected entry the runner did not evaluate, and why. Never counted as passed.
#[derive(Debug, Clone)]
pub struct NotEvaluated {
    pub src: String,
    pub dst: String,
    pub reason: String,
}

#[derive(Debug)]
pub struct CaseResult {
    pub name: String,
    pub passed: usize,
    pub failures: Vec<Failure>,
    pub not_evaluated: Vec<NotEvaluated>,
}

/// A case file of any kind the runner knows.
#[derive(Debug)]
pub enum AnyCase {
    /// `connlist`, `podmap`, `podmap-bool`, `eval-point` (`cases/`, project cases),
    /// `connectivity-ingress` (`cases-ingress/`).
    Connectivity(Case),
    /// `diff` (`cases-diff/`).
    Diff(diff::DiffCase),
    /// `exposure` (`cases-exposure/`).
    Exposure(exposure::ExposureCase),
}

impl AnyCase {
    /// Reads a case file, choosing its type by its `kind`.
    pub fn load(path: &Path) -> Result<AnyCase, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let kind = serde_json::from_str::<KindOnly>(&text)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .kind;
        let parsed = match kind.as_str() {
            "diff" => serde_json::from_str(&text).map(AnyCase::Diff),
            "exposure" => serde_json::from_str(&text).map(AnyCase::Exposure),
            "connlist" | "podmap" | "podmap-bool" | "eval-point" | "connectivity-ingress" => {
                serde_json::from_str(&text).map(AnyCase::Connectivity)
            }
            other => {
                return Err(format!(
                    "{}: case kind {other:?} is not supported (connlist, podmap, podmap-bool, \
                     eval-point, connectivity-ingress, diff, exposure)",
                    path.display()
                ))
            }
        };
        parsed.map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn kind(&self) -> &str {
        match self {
            AnyCase::Connectivity(c) => &c.kind,
            AnyCase::Diff(_) => "diff",
            AnyCase::Exposure(_) => "exposure",
        }
    }

    pub fn name(&self) -> &str {
        match self {
            AnyCase::Connectivity(c) => &c.name,
            AnyCase::Diff(c) => &c.name,
            AnyCase::Exposure(c) => &c.name,
        }
    }

    /// Builds the scenario and checks every expected entry.
    pub fn run(&self, options: Options) -> Result<CaseResult, String> {
        match self {
            AnyCase::Connectivity(c) => c.run(options),
            AnyCase::Diff(c) => c.run(options),
            AnyCase::Exposure(c) => c.run(options),
        }
    }
}

#[derive(Deserialize)]
struct KindOnly {
    kind: String,
}

impl Expected {
    /// The expected answer as text.
    pub fn want(&self) -> String {
        self.allowed_ports.clone().unwrap_or_else(|| {
            format!(
                "{}/{} allowed={}",
                self.protocol.as_deref().unwrap_or("?"),
                self.port.unwrap_or(0),
                self.allowed.unwrap_or(false)
            )
        })
    }
}

impl Case {
    pub fn load(path: &Path) -> Result<Case, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Builds the scenario and checks every expected entry.
    pub fn run(&self, options: Options) -> Result<CaseResult, String> {
        let mut bundle = Bundle::default();
        if let Some(manifests) = &self.manifests {
            for (i, doc) in manifests.iter().enumerate() {
                bundle
                    .add_object(doc, &format!("{}:manifests", self.name), i + 1, "")
                    .map_err(|e| e.to_string())?;
            }
            crate::ingress::add_controller(&mut bundle.inventory);
        }
        let model = if self.manifests.is_some() {
            (&[][..], &[][..], &[][..])
        } else {
            (&self.namespaces[..], &self.pods[..], &self.policies[..])
        };
        for ns in model.0 {
            bundle.inventory.add_namespace(Namespace {
                name: ns.name.clone(),
                labels: ns.labels.clone(),
            });
        }
        for pod in model.1 {
            bundle.inventory.add_pod(pod.to_pod()?);
        }
        for (i, policy) in model.2.iter().enumerate() {
            bundle
                .add_object(policy, &format!("{}:policies", self.name), i + 1, "")
                .map_err(|e| e.to_string())?;
        }
        let engine = Engine::new(
            bundle.inventory,
            bundle.policies,
            self.options.apply(options)?,
        );
        let mut result = CaseResult {
            name: self.name.clone(),
            passed: 0,
            failures: Vec::new(),
            not_evaluated: Vec::new(),
        };
        for exp in &self.expected {
            match check(&engine, exp) {
                Ok(()) => result.passed += 1,
                Err(got) => result.failures.push(Failure {
                    src: exp.src.clone(),
                    dst: exp.dst.clone(),
                    want: exp.want(),
                    got,
                    rule: exp.rule.clone(),
                }),
            }
        }
        Ok(result)
    }
}

impl CasePod {
    fn to_pod(&self) -> Result<Pod, String> {
        let mut ips = Vec::new();
        for text in self.ip.iter().chain(&self.ips) {
            let ip = text.parse().map_err(|_| {
                format!("pod {}/{}: invalid IP {text:?}", self.namespace, self.name)
            })?;
            if !ips.contains(&ip) {
                ips.push(ip);
            }
        }
        let ports = self
            .ports
            .iter()
            .filter_map(|p| p.port.map(|port| (p, port)))
            .map(|(p, port)| {
                let protocol = match &p.protocol {
                    None => Ok(Protocol::Tcp),
                    Some(s) => Protocol::parse(s)
                        .ok_or_else(|| format!("pod {}: unknown protocol {s:?}", self.name)),
                };
                protocol.map(|protocol| ContainerPort {
                    name: p.name.clone(),
                    port,
                    protocol,
                })
            })
            .collect::<Result<_, _>>()?;
        let workload = match self.workload.as_deref().and_then(parse_workload) {
            Some(w) => w,
            None => WorkloadRef {
                namespace: self.namespace.clone(),
                name: self.name.clone(),
                kind: "Pod".into(),
            },
        };
        Ok(Pod {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            labels: self.labels.clone(),
            ips,
            ports,
            workload,
            service_account: None,
        })
    }
}

/// Parses `ns/name[Kind]`.
fn parse_workload(text: &str) -> Option<WorkloadRef> {
    let (ns, rest) = text.split_once('/')?;
    let (name, kind) = rest.strip_suffix(']')?.split_once('[')?;
    Some(WorkloadRef {
        namespace: ns.into(),
        name: name.into(),
        kind: kind.into(),
    })
}

enum Side {
    Pod(usize),
    Ranges(Vec<IpRange>),
    Entity(Entity),
    /// The ingress controller pod.
    Controller(usize),
}

fn side(engine: &Engine, text: &str) -> Result<Side, String> {
    if let Some(i) = engine.inventory().pod_index(text) {
        return Ok(Side::Pod(i));
    }
    if text == INGRESS_CONTROLLER {
        return crate::ingress::controller(engine.inventory())
            .map(Side::Controller)
            .ok_or_else(|| "no Ingress or Route backend: no ingress controller".to_string());
    }
    if let Some(e) = Entity::parse(text) {
        return Ok(Side::Entity(e));
    }
    text.split(',')
        .map(|r| IpRange::parse(r).ok_or_else(|| format!("unknown pod or address range {r:?}")))
        .collect::<Result<Vec<_>, _>>()
        .map(Side::Ranges)
}

fn address_number(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u32::from(a) as u128,
        IpAddr::V6(a) => u128::from(a),
    }
}

/// The parts of `range` that `covering` (sorted, disjoint) leaves out.
pub(crate) fn uncovered(range: IpRange, covering: &[IpRange]) -> Vec<(u128, u128)> {
    let family = range.first.is_ipv4();
    let (mut cursor, end) = (address_number(range.first), address_number(range.last));
    let mut gaps = Vec::new();
    let mut done = false;
    for c in covering
        .iter()
        .filter(|c| c.first.is_ipv4() == family && c.last >= range.first && c.first <= range.last)
    {
        let (first, last) = (address_number(c.first), address_number(c.last));
        if first > cursor {
            gaps.push((cursor, first - 1));
        }
        if last >= end {
            done = true;
            break;
        }
        cursor = cursor.max(last + 1);
    }
    if !done {
        gaps.push((cursor, end));
    }
    gaps
}

/// Checks the answers `pieces` (sorted ranges, each with an answer; addresses without a
/// piece have none) over every address of `ranges`: `wrong` says what is wrong with an
/// answer, if anything. Returns the problems found.
pub(crate) fn check_ranges<T>(
    ranges: &[IpRange],
    pieces: &[(IpRange, T)],
    mut wrong: impl FnMut(&T) -> Option<String>,
) -> Vec<String> {
    let mut problems = Vec::new();
    for range in ranges {
        let overlapping: Vec<&(IpRange, T)> = pieces
            .iter()
            .filter(|(r, _)| r.first <= range.last && r.last >= range.first)
            .collect();
        let covering: Vec<IpRange> = overlapping.iter().map(|(r, _)| *r).collect();
        if !uncovered(*range, &covering).is_empty() {
            problems.push(format!("{range}: no answer for part of it"));
        }
        for (r, answer) in overlapping {
            if let Some(w) = wrong(answer) {
                problems.push(format!("{r}: {w}"));
            }
        }
    }
    problems
}

/// Checks one expected entry; the error is what the engine answered instead.
fn check(engine: &Engine, exp: &Expected) -> Result<(), String> {
    let src = side(engine, &exp.src)?;
    let dst = side(engine, &exp.dst)?;
    if let Some(want) = &exp.allowed_ports {
        let want = PortSet::parse(want)?.l4();
        let got: Vec<(String, PortSet)> = match (&src, &dst) {
            (Side::Pod(s), Side::Pod(d)) => {
                vec![(
                    String::new(),
                    engine
                        .allowed_ports(&Endpoint::Pod(*s), &Endpoint::Pod(*d))
                        .l4(),
                )]
            }
            (Side::Pod(p), Side::Ranges(rs)) | (Side::Ranges(rs), Side::Pod(p)) => {
                let outbound = matches!(src, Side::Pod(_));
                let mut all = Vec::new();
                for r in rs {
                    match range_ports(engine, *p, *r, outbound) {
                        Ok(ports) => all.push((r.to_string(), ports.l4())),
                        Err(parts) => {
                            all.extend(parts.into_iter().map(|(r, p)| (r.to_string(), p.l4())))
                        }
                    }
                }
                all
            }
            (Side::Controller(c), Side::Pod(d)) => {
                vec![(String::new(), ingress_ports(engine, *c, *d).l4())]
            }
            _ => return Err("allowed_ports needs a pod on at least one end, and no entity".into()),
        };
        let wrong: Vec<String> = got
            .iter()
            .filter(|(_, p)| *p != want)
            .map(|(r, p)| {
                if r.is_empty() {
                    p.to_string()
                } else {
                    format!("{r}: {p}")
                }
            })
            .collect();
        return if wrong.is_empty() {
            Ok(())
        } else {
            Err(wrong.join("; "))
        };
    }
    let (Some(proto), Some(port), Some(allowed)) = (&exp.protocol, exp.port, exp.allowed) else {
        return Err("entry has neither allowed_ports nor protocol/port/allowed".into());
    };
    let proto = Protocol::parse(proto).ok_or_else(|| format!("unknown protocol {proto:?}"))?;
    let endpoints = |s: &Side| -> Vec<Endpoint> {
        match s {
            Side::Pod(i) => vec![Endpoint::Pod(*i)],
            Side::Ranges(rs) => rs
                .iter()
                .flat_map(|r| [r.first, r.last])
                .map(Endpoint::External)
                .collect(),
            Side::Entity(e) => vec![Endpoint::Entity(*e, None)],
            Side::Controller(c) => vec![Endpoint::Pod(*c)],
        }
    };
    for s in endpoints(&src) {
        for d in endpoints(&dst) {
            let verdict = engine.verdict(&s, &d, proto, port);
            if (verdict != Verdict::Blocked) != allowed {
                return Err(format!(
                    "{verdict} for {} -> {}",
                    engine.endpoint_name(&s),
                    engine.endpoint_name(&d)
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_are_found_per_address() {
        let r = |a: &str| IpRange::parse(a).unwrap();
        assert!(uncovered(r("10.0.0.0-10.0.0.9"), &[r("9.0.0.0-10.0.0.9")]).is_empty());
        assert_eq!(
            uncovered(
                r("10.0.0.0-10.0.0.9"),
                &[r("10.0.0.0-10.0.0.3"), r("10.0.0.5-10.0.0.7")]
            )
            .len(),
            2
        );
        assert_eq!(uncovered(r("10.0.0.0-10.0.0.9"), &[]).len(), 1);
        assert!(uncovered(
            r("0.0.0.0-255.255.255.255"),
            &[r("0.0.0.0-9.255.255.255"), r("10.0.0.0-255.255.255.255")]
        )
        .is_empty());
    }
}
