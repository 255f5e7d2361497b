//! The fast path of [`crate::hubble::parse_line`]: a scanner for the common line shape, the
//! `{"flow":{...},...}` wrapper with unescaped strings and integers, that builds the same
//! [`Flow`] serde would. Whatever it is not sure of (escapes, control bytes, floats,
//! negative numbers, duplicate keys, deep nesting, a struct written as an array, a missing
//! `flow` object) it leaves to serde by returning `None`, so it never decides an error.

use std::borrow::Cow;

use crate::hubble::{
    Endpoint, EnumVal, EventType, Flow, Icmp, Ip, Layer4, PolicyName, Ports, Raw, Str, Uint,
};

/// Nesting beyond this is left to serde (its own limit is 128).
const MAX_DEPTH: u32 = 64;

/// The flow of a wrapper line, or `None` to let serde read the line.
pub(crate) fn wrapped_flow(line: &str) -> Option<Flow<'_>> {
    let mut s = Scanner {
        s: line,
        i: 0,
        depth: 0,
    };
    let mut flow: Option<Flow<'_>> = None;
    let (mut node_name, mut time) = (None, None);
    let mut seen = 0u32;
    s.object(|s, key| {
        match key {
            "flow" => {
                once(&mut seen, 0)?;
                flow = Some(s.nested(Scanner::flow)?);
            }
            "node_name" | "nodeName" => {
                once(&mut seen, 1)?;
                node_name = s.opt_str()?;
            }
            "time" => {
                once(&mut seen, 2)?;
                time = s.opt_str()?;
            }
            _ => s.skip()?,
        }
        Some(())
    })?;
    s.ws();
    if s.i != s.s.len() {
        return None;
    }
    let mut flow = flow?;
    if flow.time.is_none() {
        flow.time = time;
    }
    if flow.node_name.is_none() {
        flow.node_name = node_name;
    }
    Some(flow)
}

/// Marks field `bit` seen; a second time is serde's "duplicate field" error.
fn once(seen: &mut u32, bit: u32) -> Option<()> {
    let was = *seen & (1 << bit) != 0;
    *seen |= 1 << bit;
    (!was).then_some(())
}

/// The index of the first quote, backslash or control byte (eight bytes at a time).
fn string_end(b: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // High bit of each byte that is zero; only the lowest flagged byte is exact.
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let special = |c: &u8| matches!(c, b'"' | b'\\' | 0..0x20);
    let mut i = 0;
    while let Some(chunk) = b.get(i..i + 8) {
        let v = u64::from_le_bytes(chunk.try_into().ok()?);
        let hit = zero(v ^ (ONES * u64::from(b'"')))
            | zero(v ^ (ONES * u64::from(b'\\')))
            | (v.wrapping_sub(ONES * 0x20) & !v & HIGH);
        if hit != 0 {
            return Some(i + hit.trailing_zeros() as usize / 8);
        }
        i += 8;
    }
    b[i..].iter().position(special).map(|p| i + p)
}

struct Scanner<'a> {
    s: &'a str,
    i: usize,
    depth: u32,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.i).copied()
    }

    fn ws(&mut self) {
        while self.peek() == Some(b' ') {
            self.i += 1;
        }
    }

    /// Skips spaces and consumes `c`.
    fn eat(&mut self, c: u8) -> Option<()> {
        if self.peek() != Some(c) {
            self.ws();
        }
        (self.peek()? == c).then(|| self.i += 1)
    }

    /// Whether the next value is `null` (consumed).
    fn null(&mut self) -> bool {
        self.ws();
        let null = self.s.as_bytes()[self.i..].starts_with(b"null");
        if null {
            self.i += 4;
        }
        null
    }

    /// An `Option` of a value read by `f`: `null` is `None`.
    fn opt<T>(&mut self, f: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
        if self.null() {
            return Some(None);
        }
        f(self).map(Some)
    }

    /// A string without escapes or control bytes.
    fn str(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let rest = &self.s.as_bytes()[self.i..];
        let end = string_end(rest)?;
        if rest[end] != b'"' {
            return None;
        }
        let out = self.s.get(self.i..self.i + end)?;
        self.i += end + 1;
        Some(out)
    }

    fn opt_str(&mut self) -> Option<Option<Str<'a>>> {
        self.opt(|s| s.str().map(|v| Str(Cow::Borrowed(v))))
    }

    /// Decimal digits of a non-negative integer that fits `max_digits`.
    fn digits(&mut self, max_digits: usize) -> Option<u64> {
        let rest = &self.s.as_bytes()[self.i..];
        let n = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        let leading_zero = n > 1 && rest[0] == b'0';
        if n == 0 || n > max_digits || leading_zero {
            return None;
        }
        if matches!(rest.get(n), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        self.i += n;
        rest[..n].iter().try_fold(0u64, |v, d| {
            v.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })
    }

    /// An unsigned integer as a number or as a string of digits.
    fn opt_uint(&mut self) -> Option<Option<Uint>> {
        self.opt(|s| {
            s.ws();
            if s.peek()? == b'"' {
                let v = s.str()?;
                let digits =
                    !v.is_empty() && v.len() <= 19 && v.bytes().all(|b| b.is_ascii_digit());
                return digits.then(|| v.parse().ok().map(Uint)).flatten();
            }
            s.digits(19).map(Uint)
        })
    }

    fn opt_enum(&mut self) -> Option<Option<EnumVal<'a>>> {
        self.opt(|s| {
            s.ws();
            if s.peek()? == b'"' {
                return s.str().map(|v| EnumVal::Name(Str(Cow::Borrowed(v))));
            }
            s.digits(18).map(|n| EnumVal::Number(n as i64))
        })
    }

    fn opt_bool(&mut self) -> Option<Option<bool>> {
        self.opt(|s| {
            s.ws();
            let rest = &s.s.as_bytes()[s.i..];
            let (v, n) = if rest.starts_with(b"true") {
                (true, 4)
            } else if rest.starts_with(b"false") {
                (false, 5)
            } else {
                return None;
            };
            s.i += n;
            Some(v)
        })
    }

    /// Runs `f` one level deeper.
    fn nested<T>(&mut self, f: impl FnOnce(&mut Self) -> Option<T>) -> Option<T> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return None;
        }
        let out = f(self);
        self.depth -= 1;
        out
    }

    /// An object, calling `field` with each key positioned before its value.
    fn object(&mut self, mut field: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        if self.eat(b'}').is_some() {
            return Some(());
        }
        loop {
            let key = self.str()?;
            self.eat(b':')?;
            field(self, key)?;
            self.ws();
            match self.peek()? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// An optional struct read by `f` from an object.
    fn opt_struct<T>(&mut self, f: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
        self.opt(|s| s.nested(f))
    }

    /// Skips one value, checking its syntax.
    fn skip(&mut self) -> Option<()> {
        self.ws();
        match self.peek()? {
            b'"' => self.str().map(drop),
            b'{' => self.nested(|s| s.object(|s, _| s.skip())),
            b'[' => self.nested(|s| {
                s.i += 1;
                if s.eat(b']').is_some() {
                    return Some(());
                }
                loop {
                    s.skip()?;
                    s.ws();
                    match s.peek()? {
                        b',' => s.i += 1,
                        b']' => {
                            s.i += 1;
                            return Some(());
                        }
                        _ => return None,
                    }
                }
            }),
            b'-' => {
                self.i += 1;
                self.digits(usize::MAX).map(drop)
            }
            b'0'..=b'9' => self.digits(usize::MAX).map(drop),
            // `true`, `false` or `null`.
            _ => self.opt_bool().map(drop),
        }
    }

    /// A value kept as written.
    fn opt_raw(&mut self) -> Option<Option<Raw<'a>>> {
        self.opt(|s| {
            s.ws();
            let start = s.i;
            s.skip()?;
            Some(Raw(&s.s[start..s.i]))
        })
    }

    fn flow(&mut self) -> Option<Flow<'a>> {
        let mut f = Flow::default();
        let mut seen = 0u32;
        self.object(|s, key| {
            match key {
                "time" => {
                    once(&mut seen, 0)?;
                    f.time = s.opt_str()?;
                }
                "uuid" => {
                    once(&mut seen, 1)?;
                    f.uuid = s.opt_str()?;
                }
                "verdict" => {
                    once(&mut seen, 2)?;
                    f.verdict = s.opt_enum()?;
                }
                "drop_reason" | "dropReason" => {
                    once(&mut seen, 3)?;
                    f.drop_reason = s.opt_uint()?;
                }
                "drop_reason_desc" | "dropReasonDesc" => {
                    once(&mut seen, 4)?;
                    f.drop_reason_desc = s.opt_enum()?;
                }
                "IP" | "ip" => {
                    once(&mut seen, 5)?;
                    f.ip = s.opt_struct(Self::ip)?;
                }
                "l4" => {
                    once(&mut seen, 6)?;
                    f.l4 = s.opt_struct(Self::layer4)?;
                }
                "source" => {
                    once(&mut seen, 7)?;
                    f.source = s.opt_struct(Self::endpoint)?;
                }
                "destination" => {
                    once(&mut seen, 8)?;
                    f.destination = s.opt_struct(Self::endpoint)?;
                }
                "Type" | "type" => {
                    once(&mut seen, 9)?;
                    f.flow_type = s.opt_enum()?;
                }
                "node_name" | "nodeName" => {
                    once(&mut seen, 10)?;
                    f.node_name = s.opt_str()?;
                }
                "reply" => {
                    once(&mut seen, 11)?;
                    f.reply = s.opt_bool()?;
                }
                "is_reply" | "isReply" => {
                    once(&mut seen, 12)?;
                    f.is_reply = s.opt_bool()?;
                }
                "event_type" | "eventType" => {
                    once(&mut seen, 13)?;
                    f.event_type = s.opt_struct(Self::event_type)?;
                }
                "traffic_direction" | "trafficDirection" => {
                    once(&mut seen, 14)?;
                    f.traffic_direction = s.opt_enum()?;
                }
                "trace_observation_point" | "traceObservationPoint" => {
                    once(&mut seen, 15)?;
                    f.trace_observation_point = s.opt_enum()?;
                }
                "trace_reason" | "traceReason" => {
                    once(&mut seen, 16)?;
                    f.trace_reason = s.opt_enum()?;
                }
                "policy_match_type" | "policyMatchType" => {
                    once(&mut seen, 17)?;
                    f.policy_match_type = s.opt_uint()?;
                }
                "ingress_allowed_by" | "ingressAllowedBy" => {
                    once(&mut seen, 18)?;
                    f.ingress_allowed_by = s.opt_policies()?;
                }
                "egress_allowed_by" | "egressAllowedBy" => {
                    once(&mut seen, 19)?;
                    f.egress_allowed_by = s.opt_policies()?;
                }
                "ingress_denied_by" | "ingressDeniedBy" => {
                    once(&mut seen, 20)?;
                    f.ingress_denied_by = s.opt_policies()?;
                }
                "egress_denied_by" | "egressDeniedBy" => {
                    once(&mut seen, 21)?;
                    f.egress_denied_by = s.opt_policies()?;
                }
                "l7" => {
                    once(&mut seen, 22)?;
                    f.l7 = s.opt(|s| s.skip().map(|()| serde::de::IgnoredAny))?;
                }
                _ => s.skip()?,
            }
            Some(())
        })?;
        Some(f)
    }

    fn ip(&mut self) -> Option<Ip<'a>> {
        let mut ip = Ip::default();
        let mut seen = 0u32;
        self.object(|s, key| {
            match key {
                "source" => {
                    once(&mut seen, 0)?;
                    ip.source = s.opt_str()?;
                }
                "destination" => {
                    once(&mut seen, 1)?;
                    ip.destination = s.opt_str()?;
                }
                "ipVersion" | "ip_version" => {
                    once(&mut seen, 2)?;
                    ip.ip_version = s.opt_enum()?;
                }
                _ => s.skip()?,
            }
            Some(())
        })?;
        Some(ip)
    }

    fn layer4(&mut self) -> Option<Layer4> {
        let mut l4 = Layer4::default();
        let mut seen = 0u32;
        self.object(|s, key| {
            match key {
                "TCP" | "tcp" => {
                    once(&mut seen, 0)?;
                    l4.tcp = s.opt_struct(Self::ports)?;
                }
                "UDP" | "udp" => {
                    once(&mut seen, 1)?;
                    l4.udp = s.opt_struct(Self::ports)?;
                }
                "SCTP" | "sctp" => {
                    once(&mut seen, 2)?;
                    l4.sctp = s.opt_struct(Self::ports)?;
                }
                "ICMPv4" | "icmpv4" => {
                    once(&mut seen, 3)?;
                    l4.icmpv4 = s.opt_struct(Self::icmp)?;
                }
                "ICMPv6" | "icmpv6" => {
                    once(&mut seen, 4)?;
                    l4.icmpv6 = s.opt_struct(Self::icmp)?;
                }
                _ => s.skip()?,
            }
            Some(())
        })?;
        Some(l4)
    }

    fn ports(&mut self) -> Option<Ports> {
        let mut p = Ports::default();
        let mut seen = 0u32;
        self.object(|s, key| {
            match key {
                "source_port" | "sourcePort" => {
                    once(&mut seen, 0)?;
                    p.source_port = s.opt_uint()?;
                }
                "destination_port" | "destinationPort" => {
                    once(&mut seen, 1)?;
                    p.destination_port = s.opt_uint()?;
                }
                _ => s.skip()?,
            }
            Some(())
        })?;
        Some(p)
    }

    fn icmp(&mut self) -> Option<Icmp> {
        let mut p = Icmp::default();
        let mut seen = 0u32;
        self.object(|s, key| {
            match key {
                "type" => {
                    once(&mut seen, 0)?;
                    p.icmp_type = s.opt_uint()?;
                }
                "code" => {
                    once(&mut seen, 1)?;
                    p.code = s.opt_uint()?;
                }
                _ => s.skip()?,
            }
            Some(())
        })?;
        Some(p)
    }

    fn event_type(&mut self) -> Option<EventType> {
        let mut e = EventType::default();
        let mut seen = 0u32;
        self.object(|s, key| {
            match key {
                "type" => {
                    once(&mut seen, 0)?;
                    e.event_type = s.opt_uint()?;
                }
                "sub_type" | "subType" => {
                    once(&mut seen, 1)?;
                    e.sub_type = s.opt_uint()?;
                }
                _ => s.skip()?,
            }
            Some(())
        })?;
        Some(e)
    }

    fn endpoint(&mut self) -> Option<Endpoint<'a>> {
        let mut e = Endpoint::default();
        let mut seen = 0u32;
        self.object(|s, key| {
            match key {
                "ID" | "id" => {
                    once(&mut seen, 0)?;
                    e.id = s.opt_uint()?;
                }
                "identity" => {
                    once(&mut seen, 1)?;
                    e.identity = s.opt_uint()?;
                }
                "cluster_name" | "clusterName" => {
                    once(&mut seen, 2)?;
                    e.cluster_name = s.opt_str()?;
                }
                "namespace" => {
                    once(&mut seen, 3)?;
                    e.namespace = s.opt_str()?;
                }
                "labels" => {
                    once(&mut seen, 4)?;
                    e.labels_raw = s.opt_raw()?;
                }
                "pod_name" | "podName" => {
                    once(&mut seen, 5)?;
                    e.pod_name = s.opt_str()?;
                }
                "workloads" => {
                    once(&mut seen, 6)?;
                    e.workloads_raw = s.opt_raw()?;
                }
                _ => s.skip()?,
            }
            Some(())
        })?;
        Some(e)
    }

    fn opt_policies(&mut self) -> Option<Option<Vec<PolicyName<'a>>>> {
        self.opt(|s| {
            s.nested(|s| {
                s.eat(b'[')?;
                let mut out = Vec::new();
                if s.eat(b']').is_some() {
                    return Some(out);
                }
                loop {
                    out.push(s.nested(Self::policy_name)?);
                    s.ws();
                    match s.peek()? {
                        b',' => s.i += 1,
                        b']' => {
                            s.i += 1;
                            return Some(out);
                        }
                        _ => return None,
                    }
                }
            })
        })
    }

    fn policy_name(&mut self) -> Option<PolicyName<'a>> {
        let mut p = PolicyName::default();
        let mut seen = 0u32;
        self.object(|s, key| {
            match key {
                "name" => {
                    once(&mut seen, 0)?;
                    p.name = s.opt_str()?;
                }
                "namespace" => {
                    once(&mut seen, 1)?;
                    p.namespace = s.opt_str()?;
                }
                "kind" => {
                    once(&mut seen, 2)?;
                    p.kind = s.opt_str()?;
                }
                _ => s.skip()?,
            }
            Some(())
        })?;
        Some(p)
    }
}
