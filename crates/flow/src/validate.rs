//! Per-flow validation and hourly aggregation.
//!
//! Each flow event that is not a reply, not an L7 or socket record and has an L4 header is
//! *judged*: the model's verdict ([`netpol::Engine`], cached by endpoint identity) is
//! counted, and compared with what the event says the dataplane did ([`observe`],
//! [`classify`]). Replies belong to connections already judged and are only counted.

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use flowtypes::{
    BlockedFlow, CorruptLine, Counts, CoverageGap, Discrepancy, InputStats, ValidationEvent,
    ValidationPayload, ValidationSummary, Verdict,
};
use netpol::policy::PolicyRef;
use netpol::{Decision, Endpoint, Engine, Protocol};
use rustc_hash::FxHashMap;

use crate::graph::{Graph, Judged, Recorder};
use crate::hubble::{self, Flow};
use crate::resolve::{EpKey, Resolver};
use crate::topk::SpaceSaving;
use crate::Error;

/// How validation runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Cluster name written into the payload.
    pub cluster: String,
    /// Entries in each hour's coverage-gap and blocked lists.
    pub top_n: usize,
    /// Space-Saving counters per hour and list (the error bound is flows-per-hour / counters).
    pub counters: usize,
    /// Events kept per (verdict, discrepancy) class.
    pub sample_per_class: usize,
    /// Stop at the first corrupt line instead of counting and skipping it.
    pub strict: bool,
    /// Corrupt lines listed with their error (all are counted).
    pub corrupt_listed: usize,
    /// Cached decisions before the cache is emptied (bounds memory on adversarial input).
    pub cache_limit: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            cluster: "default".into(),
            top_n: 10,
            counters: 1024,
            sample_per_class: 20,
            strict: false,
            corrupt_listed: 20,
            cache_limit: 1 << 20,
        }
    }
}

/// Where a dataplane verdict applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The whole flow (delivered to the destination, or a drop without direction).
    Flow,
    /// Ingress at the destination.
    Ingress,
    /// Egress at the source.
    Egress,
}

/// What a flow event says the dataplane did about policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    /// Nothing about policy: no verdict, a trace point before enforcement, a drop for
    /// another reason.
    Unknown,
    /// The packet passed enforcement in this scope (FORWARDED, REDIRECTED, or AUDIT: audit
    /// mode lets everything through).
    Passed(Scope),
    /// Dropped by policy (POLICY_DENIED, POLICY_DENY) in this scope.
    PolicyDrop(Scope),
}

/// Reads the dataplane's decision from an event.
///
/// - Policy-verdict events (type 5) and drops apply to their `traffic_direction` (the whole
///   flow when it is absent).
/// - Forwarded trace events prove enforcement only after it happened: `TO_ENDPOINT` (at the
///   destination) for the whole flow; `TO_STACK`, `TO_HOST`, `TO_OVERLAY`, `TO_NETWORK`,
///   `TO_CRYPTO` (leaving the source) for egress. `FROM_*` and `TO_PROXY` prove nothing.
pub fn observe(flow: &Flow<'_>) -> Observed {
    let dir = match flow.direction_code() {
        1 => Scope::Ingress,
        2 => Scope::Egress,
        _ => Scope::Flow,
    };
    match flow.verdict_code() {
        2 if flow.is_policy_drop() => Observed::PolicyDrop(dir),
        1 | 4 | 5 => {
            if flow.event_kind() == Some(hubble::EVENT_POLICY_VERDICT) {
                return Observed::Passed(dir);
            }
            match flow.observation_point() {
                // TO_ENDPOINT
                101 => Observed::Passed(Scope::Flow),
                // TO_HOST, TO_STACK, TO_OVERLAY, TO_NETWORK, TO_CRYPTO
                2 | 3 | 4 | 11 | 13 => Observed::Passed(Scope::Egress),
                _ => Observed::Unknown,
            }
        }
        _ => Observed::Unknown,
    }
}

/// The model's answers for one (source identity, destination identity, protocol, port).
#[derive(Debug, Clone)]
pub struct Outcome {
    pub verdict: Verdict,
    /// Per direction; `None` when that end is not a pod (nothing filters it).
    pub ingress: Option<Verdict>,
    pub egress: Option<Verdict>,
    /// Policies the model names per direction (allowing, denying, isolating): interned ids.
    ingress_policies: Vec<u32>,
    egress_policies: Vec<u32>,
    /// The policy a summary names ([`Decision::policy`]).
    policy: Option<u32>,
}

impl Outcome {
    fn at(&self, scope: Scope) -> Verdict {
        match scope {
            Scope::Flow => self.verdict,
            Scope::Ingress => self.ingress.unwrap_or(Verdict::NoPolicy),
            Scope::Egress => self.egress.unwrap_or(Verdict::NoPolicy),
        }
    }
}

/// Compares the model with the dataplane.
pub fn classify(outcome: &Outcome, observed: Observed) -> Discrepancy {
    match observed {
        Observed::Unknown => Discrepancy::Unobserved,
        Observed::Passed(s) if outcome.at(s) == Verdict::Blocked => Discrepancy::EnforcementGap,
        Observed::Passed(_) => Discrepancy::Match,
        Observed::PolicyDrop(s) if outcome.at(s) == Verdict::Blocked => Discrepancy::Match,
        Observed::PolicyDrop(_) => Discrepancy::UnexpectedDrop,
    }
}

pub(crate) fn verdict_of(v: netpol::Verdict) -> Verdict {
    match v {
        netpol::Verdict::Allowed => Verdict::Allowed,
        netpol::Verdict::Blocked => Verdict::Blocked,
        netpol::Verdict::NoPolicy => Verdict::NoPolicy,
    }
}

fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "TCP",
        Protocol::Udp => "UDP",
        Protocol::Sctp => "SCTP",
        Protocol::Icmp => "ICMP",
    }
}

/// The protocol and destination port of a flow (ICMP: port 0).
pub fn l4_of(flow: &Flow<'_>) -> Option<(Protocol, u16)> {
    let l4 = flow.l4.as_ref()?;
    let port = |p: &hubble::Ports| {
        p.destination_port
            .map_or(0, |u| u16::try_from(u.0).unwrap_or(0))
    };
    if let Some(p) = &l4.tcp {
        Some((Protocol::Tcp, port(p)))
    } else if let Some(p) = &l4.udp {
        Some((Protocol::Udp, port(p)))
    } else if let Some(p) = &l4.sctp {
        Some((Protocol::Sctp, port(p)))
    } else if l4.icmpv4.is_some() || l4.icmpv6.is_some() {
        Some((Protocol::Icmp, 0))
    } else {
        None
    }
}

/// The hour of an RFC 3339 UTC timestamp, as its `YYYY-MM-DDTHH` prefix.
fn hour_of(time: Option<&str>) -> [u8; 13] {
    const UNKNOWN: [u8; 13] = *b"1970-01-01T00";
    let Some(t) = time else { return UNKNOWN };
    let b = t.as_bytes();
    if b.len() < 13 {
        return UNKNOWN;
    }
    let shape = b"dddd-dd-ddTdd";
    let ok = shape.iter().zip(b).all(|(s, c)| match s {
        b'd' => c.is_ascii_digit(),
        s => s == c,
    });
    let mut out = UNKNOWN;
    if ok {
        out.copy_from_slice(&b[..13]);
    }
    out
}

type GapKey = (EpKey, EpKey, Protocol, u16);
type BlockKey = (EpKey, EpKey, u32);

struct HourAgg {
    counts: Counts,
    gaps: SpaceSaving<GapKey>,
    blocked: SpaceSaving<BlockKey>,
}

struct PolicyName {
    namespace: Option<String>,
    name: String,
    display: String,
}

const NO_POLICY_ID: u32 = u32::MAX;

/// Streaming validator: feed it lines or flows, then [`Validator::finish`] (one run) or
/// [`Validator::flush`] now and then (an agent). `E` holds the engine: `&Engine`, or
/// `Arc<Engine>` where [`Validator::set_engine`] swaps it while aggregates carry on.
pub struct Validator<E> {
    resolver: Resolver<E>,
    /// Workload names across engines; aggregation keys index it.
    workloads: Vec<String>,
    workload_ids: FxHashMap<String, u32>,
    /// The resolver's workload index → index into `workloads`.
    workload_map: Vec<u32>,
    /// Hours changed since the last flush.
    dirty: BTreeSet<[u8; 13]>,
    config: Config,
    cache: FxHashMap<(u32, u32, Protocol, u16), u32>,
    outcomes: Vec<Outcome>,
    policies: Vec<PolicyName>,
    policy_ids: FxHashMap<PolicyRef, u32>,
    hours: BTreeMap<[u8; 13], HourAgg>,
    /// Every judged flow's counts, across hours (flushed or not).
    totals: Counts,
    stats: InputStats,
    events: Vec<ValidationEvent>,
    sampled: [usize; 12],
    /// The observed graph, when asked for ([`Validator::record_graph`]).
    graph: Option<Recorder>,
}

impl<E: Borrow<Engine>> Validator<E> {
    pub fn new(engine: E, config: Config) -> Self {
        let mut v = Validator {
            resolver: Resolver::new(engine),
            workloads: Vec::new(),
            workload_ids: FxHashMap::default(),
            workload_map: Vec::new(),
            dirty: BTreeSet::new(),
            config,
            cache: FxHashMap::default(),
            outcomes: Vec::new(),
            policies: Vec::new(),
            policy_ids: FxHashMap::default(),
            hours: BTreeMap::new(),
            totals: Counts::default(),
            stats: InputStats::default(),
            events: Vec::new(),
            sampled: [0; 12],
            graph: None,
        };
        v.map_workloads();
        v
    }

    /// Also records the observed communication graph from now on ([`Validator::graph`]).
    pub fn record_graph(&mut self) {
        self.graph.get_or_insert_with(Recorder::default);
    }

    /// The graph recorded so far (empty unless [`Validator::record_graph`] was called).
    pub fn graph(&self) -> Graph {
        self.graph
            .as_ref()
            .map(|g| g.graph(|k| self.key_name(k)))
            .unwrap_or_default()
    }

    /// Judges from now on with `engine` (a new inventory or new policies); hours already
    /// aggregated are kept and go on counting.
    pub fn set_engine(&mut self, engine: E) {
        self.resolver = Resolver::new(engine);
        self.cache.clear();
        self.outcomes.clear();
        self.map_workloads();
    }

    fn map_workloads(&mut self) {
        let mut map = Vec::with_capacity(self.resolver.workload_names().len());
        for name in self.resolver.workload_names() {
            let next = self.workloads.len() as u32;
            let id = *self.workload_ids.entry(name.clone()).or_insert(next);
            if id == next {
                self.workloads.push(name.clone());
            }
            map.push(id);
        }
        self.workload_map = map;
    }

    /// The engine flows are judged with.
    pub fn engine(&self) -> &Engine {
        self.resolver.engine()
    }

    pub fn stats(&self) -> &InputStats {
        &self.stats
    }

    /// The counts of every flow judged so far.
    pub fn totals(&self) -> &Counts {
        &self.totals
    }

    fn key(&self, ep: &Endpoint) -> EpKey {
        match self.resolver.key(ep) {
            EpKey::Workload(i) => {
                EpKey::Workload(self.workload_map.get(i as usize).copied().unwrap_or(0))
            }
            k => k,
        }
    }

    fn key_name(&self, key: &EpKey) -> String {
        match key {
            EpKey::Workload(i) => self.workloads.get(*i as usize).cloned().unwrap_or_default(),
            k => self.resolver.key_name(k),
        }
    }

    /// Reads every line of `input`; `progress` is called every 65,536 lines with the stats
    /// and the bytes consumed.
    pub fn run(
        &mut self,
        input: impl std::io::BufRead,
        mut progress: impl FnMut(&InputStats, u64),
    ) -> Result<(), Error> {
        let mut lines = crate::reader::Lines::new(input);
        loop {
            let step = lines.next_with(|line| match line {
                crate::reader::Line::Text(n, text) => {
                    self.stats.lines = n;
                    self.push_line(n, text)
                }
                crate::reader::Line::TooLong(n) => {
                    self.stats.lines = n;
                    let max = crate::reader::MAX_LINE;
                    self.corrupt(n, format!("line longer than {max} bytes"))
                }
            });
            match step.map_err(|source| Error::Io {
                path: "flows".into(),
                source,
            })? {
                None => break,
                Some(result) => result?,
            }
            if self.stats.lines & 0xffff == 0 {
                progress(&self.stats, lines.bytes());
            }
        }
        progress(&self.stats, lines.bytes());
        Ok(())
    }

    fn corrupt(&mut self, line: u64, message: String) -> Result<(), Error> {
        if self.config.strict {
            return Err(Error::Corrupt { line, message });
        }
        self.stats.corrupt += 1;
        if self.stats.corrupt_lines.len() < self.config.corrupt_listed {
            self.stats.corrupt_lines.push(CorruptLine {
                line,
                error: message,
            });
        }
        Ok(())
    }

    /// Judges one line (1-based number `n`). Blank lines are ignored; a corrupt line is an
    /// error only in strict mode.
    pub fn push_line(&mut self, n: u64, line: &[u8]) -> Result<(), Error> {
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        match hubble::parse_line(line) {
            Ok(Some(flow)) => {
                self.push_flow(n, &flow);
                Ok(())
            }
            Ok(None) => {
                self.stats.not_l3l4 += 1;
                Ok(())
            }
            Err(e) => self.corrupt(n, e.to_string()),
        }
    }

    /// Judges one flow already parsed or built by a capture (`n`: its number in the input).
    pub fn push_flow(&mut self, n: u64, flow: &Flow<'_>) {
        self.stats.flows += 1;
        self.judge(n, flow);
    }

    fn judge(&mut self, n: u64, flow: &Flow<'_>) {
        if flow.is_reply() {
            self.stats.replies += 1;
            return;
        }
        if flow.is_l7_or_sock() {
            self.stats.not_l3l4 += 1;
            return;
        }
        let Some((protocol, port)) = l4_of(flow) else {
            self.stats.not_l3l4 += 1;
            return;
        };
        let ip = flow.ip.as_ref();
        let parse_ip = |s: Option<&hubble::Str<'_>>| s.and_then(|s| s.parse::<IpAddr>().ok());
        let src_ip = parse_ip(ip.and_then(|i| i.source.as_ref()));
        let dst_ip = parse_ip(ip.and_then(|i| i.destination.as_ref()));
        let src = self.resolver.resolve(flow.source.as_ref(), src_ip);
        let dst = self.resolver.resolve(flow.destination.as_ref(), dst_ip);
        let (Some(src), Some(dst)) = (src, dst) else {
            self.stats.unresolved += 1;
            return;
        };
        self.stats.judged += 1;
        let oi = self.outcome(&src, &dst, protocol, port);
        let outcome = &self.outcomes[oi as usize];
        let discrepancy = classify(outcome, observe(flow));
        let verdict = outcome.verdict;
        let mismatch = self.names_disagree(oi, flow);
        let policy = self.outcomes[oi as usize].policy;

        let (sk, dk) = (self.key(&src), self.key(&dst));
        let counters = self.config.counters;
        let hour_key = hour_of(flow.time.as_deref());
        if let Some(g) = &mut self.graph {
            g.record(Judged {
                keys: (sk, dk),
                endpoints: (&src, &dst),
                protocol,
                port,
                hour: hour_key,
                verdict,
            });
        }
        self.dirty.insert(hour_key);
        let hour = self.hours.entry(hour_key).or_insert_with(|| HourAgg {
            counts: Counts::default(),
            gaps: SpaceSaving::new(counters),
            blocked: SpaceSaving::new(counters),
        });
        hour.counts.record(verdict, discrepancy);
        self.totals.record(verdict, discrepancy);
        if mismatch {
            hour.counts.discrepancies.policy_name_mismatch += 1;
        }
        match verdict {
            Verdict::NoPolicy => hour.gaps.insert((sk, dk, protocol, port)),
            Verdict::Blocked => hour
                .blocked
                .insert((sk, dk, policy.unwrap_or(NO_POLICY_ID))),
            Verdict::Allowed => {}
        }
        let class = discrepancy as usize * 3 + verdict as usize;
        if self.sampled[class] < self.config.sample_per_class {
            self.sampled[class] += 1;
            let event = self.event(n, flow, &src, &dst, protocol, port, verdict, discrepancy);
            self.events.push(event);
        }
    }

    /// The cached outcome index for a flow.
    fn outcome(&mut self, src: &Endpoint, dst: &Endpoint, protocol: Protocol, port: u16) -> u32 {
        let engine = self.resolver.engine();
        if src == dst {
            let d = engine.decide(src, dst, protocol, port);
            return self.intern_outcome(&d);
        }
        let key = (
            engine.identity_key(src),
            engine.identity_key(dst),
            protocol,
            port,
        );
        if let Some(&i) = self.cache.get(&key) {
            return i;
        }
        if self.outcomes.len() >= self.config.cache_limit {
            self.outcomes.clear();
            self.cache.clear();
        }
        let d = engine.decide(src, dst, protocol, port);
        let i = self.intern_outcome(&d);
        self.cache.insert(key, i);
        i
    }

    fn policy_id(&mut self, p: &PolicyRef) -> u32 {
        if let Some(&i) = self.policy_ids.get(p) {
            return i;
        }
        let i = self.policies.len() as u32;
        self.policies.push(PolicyName {
            namespace: p.namespace.clone(),
            name: p.name.clone(),
            display: p.to_string(),
        });
        self.policy_ids.insert(p.clone(), i);
        i
    }

    fn intern_outcome(&mut self, d: &Decision) -> u32 {
        let mut dir_policies = |dd: &Option<netpol::DirectionDecision>| -> Vec<u32> {
            let Some(dd) = dd else { return Vec::new() };
            let refs = dd
                .allowed_by
                .iter()
                .chain(&dd.denied_by)
                .map(|m| &m.policy)
                .chain(&dd.isolated_by);
            let mut ids: Vec<u32> = refs.map(|p| self.policy_id(p)).collect();
            ids.sort_unstable();
            ids.dedup();
            ids
        };
        let ingress_policies = dir_policies(&d.ingress);
        let egress_policies = dir_policies(&d.egress);
        let policy = d.policy().cloned().map(|p| self.policy_id(&p));
        self.outcomes.push(Outcome {
            verdict: verdict_of(d.verdict),
            ingress: d.ingress.as_ref().map(|x| verdict_of(x.verdict)),
            egress: d.egress.as_ref().map(|x| verdict_of(x.verdict)),
            ingress_policies,
            egress_policies,
            policy,
        });
        (self.outcomes.len() - 1) as u32
    }

    /// Whether Hubble names policies for a direction and none of them is among the model's.
    fn names_disagree(&self, oi: u32, flow: &Flow<'_>) -> bool {
        let outcome = &self.outcomes[oi as usize];
        let check = |lists: [&Option<Vec<hubble::PolicyName<'_>>>; 2], model: &[u32]| {
            let named: Vec<&hubble::PolicyName<'_>> =
                lists.iter().filter_map(|l| l.as_ref()).flatten().collect();
            if named.is_empty() {
                return false;
            }
            !named.iter().any(|h| {
                model.iter().any(|&id| {
                    let m = &self.policies[id as usize];
                    h.name.as_deref() == Some(m.name.as_str())
                        && h.namespace.as_deref().filter(|n| !n.is_empty())
                            == m.namespace.as_deref()
                })
            })
        };
        check(
            [&flow.ingress_allowed_by, &flow.ingress_denied_by],
            &outcome.ingress_policies,
        ) || check(
            [&flow.egress_allowed_by, &flow.egress_denied_by],
            &outcome.egress_policies,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn event(
        &self,
        n: u64,
        flow: &Flow<'_>,
        src: &Endpoint,
        dst: &Endpoint,
        protocol: Protocol,
        port: u16,
        verdict: Verdict,
        discrepancy: Discrepancy,
    ) -> ValidationEvent {
        let engine = self.resolver.engine();
        let d = engine.decide(src, dst, protocol, port);
        let side = |ep: Option<&hubble::Endpoint<'_>>, resolved: &Endpoint| {
            // An event without Kubernetes information (a capture's, an address only) names
            // the pod it was resolved to.
            let inventory_pod = match resolved {
                Endpoint::Pod(i) if ep.is_none_or(|e| e.namespace.is_none()) => {
                    engine.inventory().pods.get(*i)
                }
                _ => None,
            };
            if let Some(p) = inventory_pod {
                let labels = p.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                return (p.namespace.clone(), Some(p.name.clone()), labels);
            }
            let ns = ep
                .and_then(|e| e.namespace.as_deref())
                .unwrap_or_default()
                .to_string();
            let pod = ep.and_then(|e| e.pod_name.as_deref()).map(str::to_string);
            let mut labels: Vec<String> = ep
                .map(|e| e.labels())
                .map(|ls| {
                    ls.iter()
                        .map(|l| l.strip_prefix("k8s:").unwrap_or(l).to_string())
                        .filter(|l| {
                            !l.starts_with("io.cilium.k8s.")
                                && !l.starts_with("io.kubernetes.pod.namespace")
                        })
                        .collect()
                })
                .unwrap_or_default();
            if labels.is_empty() {
                if let Endpoint::Entity(e, _) = resolved {
                    labels.push(format!("reserved:{}", e.as_str()));
                } else if let Endpoint::External(_) = resolved {
                    labels.push("reserved:world".into());
                }
            }
            (ns, pod, labels)
        };
        let (src_namespace, src_pod_name, src_labels) = side(flow.source.as_ref(), src);
        let (dst_namespace, dst_pod_name, dst_labels) = side(flow.destination.as_ref(), dst);
        let ip = flow.ip.as_ref();
        let observed = flow.verdict.as_ref().map(|v| match &flow.drop_reason_desc {
            Some(r) => format!("{v} ({r})"),
            None => v.to_string(),
        });
        let observed_policies = [
            &flow.ingress_allowed_by,
            &flow.ingress_denied_by,
            &flow.egress_allowed_by,
            &flow.egress_denied_by,
        ]
        .into_iter()
        .filter_map(|l| l.as_ref())
        .flatten()
        .map(|p| {
            let kind = p.kind.as_deref().unwrap_or("Policy");
            let name = p.name.as_deref().unwrap_or("");
            match p.namespace.as_deref().filter(|n| !n.is_empty()) {
                Some(ns) => format!("{kind} {ns}/{name}"),
                None => format!("{kind} {name}"),
            }
        })
        .collect();
        ValidationEvent {
            timestamp: flow.time.as_deref().unwrap_or_default().to_string(),
            verdict,
            discrepancy,
            src_namespace,
            src_pod_name,
            src_labels,
            src_ip: ip.and_then(|i| i.source.as_deref()).map(str::to_string),
            dst_namespace,
            dst_pod_name,
            dst_labels,
            dst_ip: ip
                .and_then(|i| i.destination.as_deref())
                .map(str::to_string),
            dst_port: port,
            protocol: protocol_name(protocol).to_string(),
            matched_policy: d.policy().map(|p| p.to_string()),
            reason: Some(d.reason.clone()),
            observed,
            traffic_direction: flow
                .traffic_direction
                .as_ref()
                .map(|d| d.to_string())
                .filter(|d| d != "TRAFFIC_DIRECTION_UNKNOWN"),
            observed_policies,
            line: Some(n),
        }
    }

    fn summary(&self, hour: &[u8; 13], agg: &HourAgg) -> ValidationSummary {
        let gaps = agg
            .gaps
            .top(self.config.top_n)
            .into_iter()
            .map(|c| CoverageGap {
                source: self.key_name(&c.key.0),
                destination: self.key_name(&c.key.1),
                protocol: protocol_name(c.key.2).to_string(),
                port: c.key.3,
                count: c.count,
                count_error: c.error,
            })
            .collect();
        let blocked = agg
            .blocked
            .top(self.config.top_n)
            .into_iter()
            .map(|c| BlockedFlow {
                source: self.key_name(&c.key.0),
                destination: self.key_name(&c.key.1),
                policy: self
                    .policies
                    .get(c.key.2 as usize)
                    .map_or_else(String::new, |p| p.display.clone()),
                count: c.count,
                count_error: c.error,
            })
            .collect();
        ValidationSummary {
            hour: format!("{}:00:00Z", String::from_utf8_lossy(hour)),
            counts: agg.counts,
            coverage_gaps: gaps,
            top_blocked: blocked,
            top_exact: agg.gaps.is_exact() && agg.blocked.is_exact(),
        }
    }

    /// The payload: one summary per hour, the event sample and the input statistics.
    pub fn finish(mut self) -> ValidationPayload {
        self.dirty = self.hours.keys().copied().collect();
        let mut payload = self.flush("");
        payload.events.sort_by_key(|e| e.line);
        payload
    }

    /// For an agent: the whole-hour summaries of every hour that saw flows since the last
    /// flush (so a later flush of the same hour replaces the earlier one), the events sampled
    /// since, and the input statistics so far. Hours before `keep_from` (a `YYYY-MM-DDTHH`
    /// prefix) are forgotten after being flushed; flows that arrive for them later start
    /// that hour again from zero, so choose `keep_from` well behind the flows' clock.
    pub fn flush(&mut self, keep_from: &str) -> ValidationPayload {
        let mut payload = ValidationPayload::new(self.config.cluster.clone());
        for hour in std::mem::take(&mut self.dirty) {
            if let Some(agg) = self.hours.get(&hour) {
                payload.summaries.push(self.summary(&hour, agg));
            }
        }
        self.hours
            .retain(|h, _| h.as_slice() >= keep_from.as_bytes());
        payload.events = std::mem::take(&mut self.events);
        self.sampled = [0; 12];
        payload.input = self.stats.clone();
        payload
    }
}

/// Validates every line of `input` against `engine`.
pub fn validate(
    engine: &Engine,
    config: Config,
    input: impl std::io::BufRead,
) -> Result<ValidationPayload, Error> {
    let mut v = Validator::new(engine, config);
    v.run(input, |_, _| {})?;
    Ok(v.finish())
}
