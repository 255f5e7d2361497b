//! Synthetic Hubble flows for a snapshot: seeded, realistic `hubble observe -o jsonpb`
//! lines (wrapper, snake_case keys, enum names, both directions, replies, world and DNS
//! traffic, policy-verdict, trace and drop events) with chosen shares of blocked, no-policy,
//! enforcement-gap and unexpected-drop connections, spread over hours.
//!
//! The expected validation result is computed while writing ([`Expected`]): each event's
//! class follows from the connection kind it was written for.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};

use flowtypes::{Counts, Discrepancy, Verdict};
use netpol::{Decision, Endpoint, Engine, Protocol};

use crate::validate::verdict_of;
use crate::Error;

/// What to synthesise.
#[derive(Debug, Clone)]
pub struct Config {
    /// Lines to write.
    pub count: u64,
    pub seed: u64,
    /// Share of connections the model blocks and the dataplane drops.
    pub blocked_share: f64,
    /// Share of connections no policy governs.
    pub no_policy_share: f64,
    /// Share of connections the model blocks but the dataplane forwards (enforcement gaps).
    pub gap_share: f64,
    /// Share of connections the model allows but the dataplane drops by policy.
    pub drop_share: f64,
    /// Hours the flows are spread over.
    pub hours: u32,
    /// Start time, seconds since the Unix epoch (UTC).
    pub start: i64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            count: 1000,
            seed: 1,
            blocked_share: 0.1,
            no_policy_share: 0.2,
            gap_share: 0.0,
            drop_share: 0.0,
            hours: 24,
            // 2025-03-14T00:00:00Z
            start: 1_741_910_400,
        }
    }
}

/// The validation result the written lines must produce.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expected {
    pub lines: u64,
    pub replies: u64,
    pub counts: Counts,
}

/// A small deterministic generator (SplitMix64), so output depends on the seed only.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A connection the synthesiser can emit, with the model's decision.
struct Conn {
    src: usize,
    /// A pod, or an outside address.
    dst: Dst,
    protocol: Protocol,
    port: u16,
    decision: Decision,
}

#[derive(Clone, Copy)]
enum Dst {
    Pod(usize),
    World(Ipv4Addr),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Allowed,
    NoPolicy,
    Blocked,
    Gap,
    Drop,
}

/// Per pod: IP, node, and its endpoint object as JSON.
struct PodJson {
    ip: IpAddr,
    node: String,
    json: String,
}

fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

fn pod_json(engine: &Engine, i: usize) -> PodJson {
    let pod = &engine.inventory().pods[i];
    let ip = pod.ips.first().copied().unwrap_or_else(|| {
        let n = i as u32 + 2;
        IpAddr::V4(Ipv4Addr::new(
            10,
            244 + ((n >> 16) & 7) as u8,
            (n >> 8) as u8,
            n as u8,
        ))
    });
    let mut labels: Vec<String> = pod
        .labels
        .iter()
        .map(|(k, v)| quote(&format!("k8s:{k}={v}")))
        .collect();
    if let Some(ns) = engine.inventory().namespaces.get(&pod.namespace) {
        for (k, v) in &ns.labels {
            labels.push(quote(&format!(
                "k8s:io.cilium.k8s.namespace.labels.{k}={v}"
            )));
        }
    }
    labels.push(quote("k8s:io.cilium.k8s.policy.cluster=default"));
    if let Some(sa) = &pod.service_account {
        labels.push(quote(&format!(
            "k8s:io.cilium.k8s.policy.serviceaccount={sa}"
        )));
    }
    labels.push(quote(&format!(
        "k8s:io.kubernetes.pod.namespace={}",
        pod.namespace
    )));
    labels.sort();
    let json = format!(
        r#"{{"ID":{},"identity":{},"cluster_name":"default","namespace":{},"labels":[{}],"pod_name":{},"workloads":[{{"name":{},"kind":{}}}]}}"#,
        100 + i,
        30000 + i,
        quote(&pod.namespace),
        labels.join(","),
        quote(&pod.name),
        quote(&pod.workload.name),
        quote(&pod.workload.kind),
    );
    PodJson {
        ip,
        node: format!("k8s-worker-{:02}", i % 4 + 1),
        json,
    }
}

/// RFC 3339 UTC with nanoseconds.
pub fn rfc3339(secs: i64, nanos: u32) -> String {
    let (y, m, d) = civil::from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

fn policy_list(d: &Option<netpol::DirectionDecision>, denied: bool) -> String {
    let Some(d) = d else { return String::new() };
    let refs: Vec<&netpol::policy::PolicyRef> = if denied {
        d.denied_by.iter().map(|m| &m.policy).collect()
    } else {
        d.allowed_by.iter().map(|m| &m.policy).collect()
    };
    let items: Vec<String> = refs
        .iter()
        .map(|p| {
            format!(
                r#"{{"name":{},"namespace":{},"labels":[{}],"revision":"1","kind":{}}}"#,
                quote(&p.name),
                quote(p.namespace.as_deref().unwrap_or("")),
                quote(&format!("k8s:io.cilium.k8s.policy.name={}", p.name)),
                quote(p.kind.as_str()),
            )
        })
        .collect();
    items.join(",")
}

struct Writer<'a, W: Write> {
    out: W,
    rng: Rng,
    cfg: &'a Config,
    written: u64,
    expected: Expected,
    line: Vec<u8>,
}

/// One event to write.
struct Event<'a> {
    verdict: &'static str,
    drop_desc: Option<&'static str>,
    event_type: u8,
    direction: &'static str,
    point: Option<&'static str>,
    reply: bool,
    node: &'a str,
    policies: Option<(&'static str, String)>,
    /// The judgement the validator must reach (`None` for replies).
    judged: Option<(Verdict, Discrepancy)>,
}

impl<W: Write> Writer<'_, W> {
    fn full(&self) -> bool {
        self.written >= self.cfg.count
    }

    #[allow(clippy::too_many_arguments)]
    fn emit(
        &mut self,
        ev: Event<'_>,
        (src_ip, src_json): (IpAddr, &str),
        (dst_ip, dst_json): (IpAddr, &str),
        protocol: Protocol,
        sport: u16,
        dport: u16,
    ) -> Result<(), Error> {
        if self.full() {
            return Ok(());
        }
        let span = i64::from(self.cfg.hours.max(1)) * 3600;
        let offset_ns = (self.written as u128 * span as u128 * 1_000_000_000
            / u128::from(self.cfg.count.max(1))) as i64;
        let secs = self.cfg.start + offset_ns / 1_000_000_000;
        let time = rfc3339(secs, (offset_ns % 1_000_000_000) as u32);
        let ((sip, sj, sp), (dip, dj, dp)) = if ev.reply {
            ((dst_ip, dst_json, dport), (src_ip, src_json, sport))
        } else {
            ((src_ip, src_json, sport), (dst_ip, dst_json, dport))
        };
        let (l4_name, flags, summary) = match protocol {
            Protocol::Udp => ("UDP", String::new(), "UDP"),
            _ if ev.reply => (
                "TCP",
                r#","flags":{"SYN":true,"ACK":true}"#.to_string(),
                "TCP Flags: SYN, ACK",
            ),
            _ => (
                "TCP",
                r#","flags":{"SYN":true}"#.to_string(),
                "TCP Flags: SYN",
            ),
        };
        let r = self.rng.next();
        let l = &mut self.line;
        l.clear();
        write!(
            l,
            r#"{{"flow":{{"time":"{time}","uuid":"{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}","verdict":"{}""#,
            r >> 32,
            (r >> 16) & 0xffff,
            r & 0xfff,
            (r >> 20) & 0xfff,
            r & 0xffff_ffff_ffff,
            ev.verdict
        )
        .map_err(Error::Write)?;
        if let Some(desc) = ev.drop_desc {
            let code = if desc == "POLICY_DENY" { 181 } else { 133 };
            write!(l, r#","drop_reason":{code}"#).map_err(Error::Write)?;
        }
        write!(
            l,
            r#","ethernet":{{"source":"0a:58:0a:f4:{:02x}:{:02x}","destination":"0a:58:0a:f4:{:02x}:{:02x}"}},"IP":{{"source":"{sip}","destination":"{dip}","ipVersion":"IPv4"}},"l4":{{"{l4_name}":{{"source_port":{sp},"destination_port":{dp}{flags}}}}},"source":{sj},"destination":{dj},"Type":"L3_L4","node_name":"{}","event_type":{{"type":{}}},"traffic_direction":"{}""#,
            r as u8,
            (r >> 8) as u8,
            (r >> 16) as u8,
            (r >> 24) as u8,
            ev.node,
            ev.event_type,
            ev.direction,
        )
        .map_err(Error::Write)?;
        if let Some(p) = ev.point {
            write!(l, r#","trace_observation_point":"{p}""#).map_err(Error::Write)?;
        }
        if ev.reply {
            l.extend_from_slice(br#","trace_reason":"REPLY","is_reply":true"#);
        } else {
            l.extend_from_slice(br#","is_reply":false"#);
        }
        if let Some(desc) = ev.drop_desc {
            write!(l, r#","drop_reason_desc":"{desc}""#).map_err(Error::Write)?;
        }
        if let Some((key, list)) = &ev.policies {
            if !list.is_empty() {
                write!(l, r#","{key}":[{list}]"#).map_err(Error::Write)?;
            }
        }
        writeln!(
            l,
            r#","Summary":"{summary}"}},"node_name":"{}","time":"{time}"}}"#,
            ev.node
        )
        .map_err(Error::Write)?;
        self.out.write_all(l).map_err(Error::Write)?;
        self.written += 1;
        self.expected.lines += 1;
        match ev.judged {
            Some((v, d)) => self.expected.counts.record(v, d),
            None => self.expected.replies += 1,
        }
        Ok(())
    }
}

/// Writes `cfg.count` lines of flows for the snapshot behind `engine`.
pub fn synth(engine: &Engine, cfg: &Config, out: impl Write) -> Result<Expected, Error> {
    let pods = engine.inventory().pods.len();
    if pods == 0 {
        return Err(Error::Synth("the snapshot has no pods".into()));
    }
    let pjson: Vec<PodJson> = (0..pods).map(|i| pod_json(engine, i)).collect();
    let mut rng = Rng(cfg.seed);

    // Candidate connections, binned by the model's verdict.
    let dns: Vec<usize> = (0..pods)
        .filter(|&i| {
            let l = &engine.inventory().pods[i].labels;
            l.get("k8s-app").is_some_and(|v| v == "kube-dns")
                || l.get("app")
                    .is_some_and(|v| v == "coredns" || v == "kube-dns")
        })
        .collect();
    let mut pools: [Vec<Conn>; 3] = Default::default();
    for _ in 0..(pods * 24).clamp(256, 20_000) {
        let src = rng.below(pods);
        let roll = rng.below(20);
        let (dst, protocol, port) = if roll == 0 {
            let ip = Ipv4Addr::new(203, 0, 113, 1 + rng.below(250) as u8);
            (Dst::World(ip), Protocol::Tcp, 443)
        } else if roll <= 2 && !dns.is_empty() {
            (Dst::Pod(dns[rng.below(dns.len())]), Protocol::Udp, 53)
        } else {
            let d = rng.below(pods);
            let ports = &engine.inventory().pods[d].ports;
            match ports.get(rng.below(ports.len().max(1))) {
                Some(p) if matches!(p.protocol, Protocol::Tcp | Protocol::Udp) => {
                    (Dst::Pod(d), p.protocol, p.port)
                }
                _ => (
                    Dst::Pod(d),
                    Protocol::Tcp,
                    [80, 443, 8080, 5432][rng.below(4)],
                ),
            }
        };
        if matches!(dst, Dst::Pod(d) if d == src) {
            continue;
        }
        let dep = match dst {
            Dst::Pod(d) => Endpoint::Pod(d),
            Dst::World(ip) => Endpoint::External(IpAddr::V4(ip)),
        };
        let decision = engine.decide(&Endpoint::Pod(src), &dep, protocol, port);
        let bin = verdict_of(decision.verdict) as usize;
        if pools[bin].len() < 512 {
            pools[bin].push(Conn {
                src,
                dst,
                protocol,
                port,
                decision,
            });
        }
    }
    if pools.iter().all(Vec::is_empty) {
        return Err(Error::Synth(
            "no connection between pods could be formed".into(),
        ));
    }

    let mut w = Writer {
        out: std::io::BufWriter::with_capacity(1 << 20, out),
        rng: Rng(cfg.seed ^ 0x5eed),
        cfg,
        written: 0,
        expected: Expected::default(),
        line: Vec::with_capacity(4096),
    };
    let world_json = r#"{"identity":2,"labels":["reserved:world"]}"#.to_string();
    let (a, n, b) = (
        Verdict::Allowed as usize,
        Verdict::NoPolicy as usize,
        Verdict::Blocked as usize,
    );
    while !w.full() {
        let r = rng.unit();
        let mut kind = if r < cfg.gap_share {
            Kind::Gap
        } else if r < cfg.gap_share + cfg.drop_share {
            Kind::Drop
        } else if r < cfg.gap_share + cfg.drop_share + cfg.blocked_share {
            Kind::Blocked
        } else if r < cfg.gap_share + cfg.drop_share + cfg.blocked_share + cfg.no_policy_share {
            Kind::NoPolicy
        } else {
            Kind::Allowed
        };
        let pool = match kind {
            Kind::Allowed => a,
            Kind::NoPolicy => n,
            Kind::Blocked | Kind::Gap => b,
            Kind::Drop if !pools[a].is_empty() => a,
            Kind::Drop => n,
        };
        // Fall back to any non-empty pool; the kind follows the pool.
        let pool = if pools[pool].is_empty() {
            let p = [a, n, b]
                .into_iter()
                .find(|&p| !pools[p].is_empty())
                .unwrap_or(a);
            kind = match p {
                x if x == a => Kind::Allowed,
                x if x == n => Kind::NoPolicy,
                _ => Kind::Blocked,
            };
            p
        } else {
            pool
        };
        let Some(c) = pools[pool].get(rng.below(pools[pool].len())) else {
            break;
        };
        connection(&mut w, &pjson, &world_json, c, kind)?;
    }
    w.out.flush().map_err(Error::Write)?;
    Ok(w.expected)
}

/// Writes the events of one connection.
fn connection<W: Write>(
    w: &mut Writer<'_, W>,
    pjson: &[PodJson],
    world_json: &str,
    c: &Conn,
    kind: Kind,
) -> Result<(), Error> {
    let s = &pjson[c.src];
    let (dip, djson, dnode, to_pod) = match c.dst {
        Dst::Pod(d) => (
            pjson[d].ip,
            pjson[d].json.as_str(),
            pjson[d].node.as_str(),
            true,
        ),
        Dst::World(ip) => (IpAddr::V4(ip), world_json, s.node.as_str(), false),
    };
    let v = verdict_of(c.decision.verdict);
    let src = (s.ip, s.json.as_str());
    let dst = (dip, djson);
    let sport = 32768 + w.rng.below(28000) as u16;
    let ev = |verdict, event_type, direction, point, node, judged| Event {
        verdict,
        drop_desc: None,
        event_type,
        direction,
        point,
        reply: false,
        node,
        policies: None,
        judged,
    };
    let (p, port) = (c.protocol, c.port);
    // Every connection starts with the packet leaving the source: no policy evidence yet.
    let from = ev(
        "FORWARDED",
        4,
        "EGRESS",
        Some("FROM_ENDPOINT"),
        &s.node,
        Some((v, Discrepancy::Unobserved)),
    );
    w.emit(from, src, dst, p, sport, port)?;
    // Delivery: at the destination pod (whole flow), or leaving the node (egress).
    let (deliver_point, deliver_node, deliver_dir) = if to_pod {
        ("TO_ENDPOINT", dnode, "INGRESS")
    } else {
        ("TO_STACK", s.node.as_str(), "EGRESS")
    };
    let egress_v = c.decision.egress.as_ref().map(|d| verdict_of(d.verdict));
    let ingress_v = c.decision.ingress.as_ref().map(|d| verdict_of(d.verdict));
    match kind {
        Kind::Allowed | Kind::NoPolicy => {
            for (dir, dv, dd, key, node) in [
                (
                    "EGRESS",
                    egress_v,
                    &c.decision.egress,
                    "egress_allowed_by",
                    s.node.as_str(),
                ),
                (
                    "INGRESS",
                    ingress_v,
                    &c.decision.ingress,
                    "ingress_allowed_by",
                    dnode,
                ),
            ] {
                // Cilium emits policy verdicts only where the endpoint enforces policy.
                if dv == Some(Verdict::Allowed) {
                    let mut e = ev(
                        "FORWARDED",
                        5,
                        dir,
                        None,
                        node,
                        Some((v, Discrepancy::Match)),
                    );
                    e.policies = Some((key, policy_list(dd, false)));
                    w.emit(e, src, dst, p, sport, port)?;
                }
            }
            let e = ev(
                "FORWARDED",
                4,
                deliver_dir,
                Some(deliver_point),
                deliver_node,
                Some((v, Discrepancy::Match)),
            );
            w.emit(e, src, dst, p, sport, port)?;
            let mut reply = ev("FORWARDED", 4, "EGRESS", Some("TO_ENDPOINT"), &s.node, None);
            reply.reply = true;
            w.emit(reply, src, dst, p, sport, port)?;
        }
        Kind::Blocked => {
            let egress_blocks = egress_v == Some(Verdict::Blocked);
            let (dir, dd, key, node) = if egress_blocks || !to_pod {
                (
                    "EGRESS",
                    &c.decision.egress,
                    "egress_denied_by",
                    s.node.as_str(),
                )
            } else {
                ("INGRESS", &c.decision.ingress, "ingress_denied_by", dnode)
            };
            let denied = policy_list(dd, true);
            let desc = if denied.is_empty() {
                "POLICY_DENIED"
            } else {
                "POLICY_DENY"
            };
            let mut verdict_ev = ev("DROPPED", 5, dir, None, node, Some((v, Discrepancy::Match)));
            verdict_ev.drop_desc = Some(desc);
            verdict_ev.policies = Some((key, denied));
            w.emit(verdict_ev, src, dst, p, sport, port)?;
            let mut drop = ev("DROPPED", 1, dir, None, node, Some((v, Discrepancy::Match)));
            drop.drop_desc = Some(desc);
            w.emit(drop, src, dst, p, sport, port)?;
        }
        Kind::Gap => {
            // Blocked by the model, yet delivered: the policy is not enforced.
            let d = if to_pod {
                Discrepancy::EnforcementGap
            } else {
                gap_at_egress(egress_v)
            };
            let e = ev(
                "FORWARDED",
                4,
                deliver_dir,
                Some(deliver_point),
                deliver_node,
                Some((v, d)),
            );
            w.emit(e, src, dst, p, sport, port)?;
            let mut reply = ev("FORWARDED", 4, "EGRESS", Some("TO_ENDPOINT"), &s.node, None);
            reply.reply = true;
            w.emit(reply, src, dst, p, sport, port)?;
        }
        Kind::Drop => {
            // Allowed by the model, dropped by the dataplane's policy.
            let (dir, node) = if to_pod {
                ("INGRESS", dnode)
            } else {
                ("EGRESS", s.node.as_str())
            };
            let mut drop = ev(
                "DROPPED",
                1,
                dir,
                None,
                node,
                Some((v, Discrepancy::UnexpectedDrop)),
            );
            drop.drop_desc = Some("POLICY_DENIED");
            w.emit(drop, src, dst, p, sport, port)?;
        }
    }
    Ok(())
}

fn gap_at_egress(egress: Option<Verdict>) -> Discrepancy {
    if egress == Some(Verdict::Blocked) {
        Discrepancy::EnforcementGap
    } else {
        Discrepancy::Match
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            rfc3339(1_741_910_400 + 3661, 5),
            "2025-03-14T01:01:01.000000005Z"
        );
        assert_eq!(rfc3339(951_782_400, 0), "2000-02-29T00:00:00.000000000Z");
    }
}
