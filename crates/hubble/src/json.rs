//! Flows as the JSON lines `hubble observe -o json` prints: `{"flow":{...},"node_name":...,
//! "time":...}` with protobuf field names, enums by name (by number when not in our enums),
//! uint64 as strings, RFC 3339 timestamps and default values left out.
//!
//! Two departures from protobuf JSON, both for data Cilium never sends: a timestamp outside
//! years 1-9999 and a negative `event_type` are left out, so every line stays readable by
//! `flow::hubble::parse_line`.

use std::io::Write;

use prost_types::Timestamp;

use crate::proto::flow::{
    layer4, DropReason, Endpoint, Flow, FlowType, IpVersion, L7FlowType, Policy,
    TraceObservationPoint, TrafficDirection, Verdict,
};
use crate::proto::observer::{get_flows_response, GetFlowsResponse};

/// Renders a response holding a flow as one JSON object (no trailing newline); `None` for
/// node status and lost-events responses.
pub fn flow_to_json(resp: &GetFlowsResponse) -> Option<Vec<u8>> {
    let Some(get_flows_response::ResponseTypes::Flow(flow)) = &resp.response_types else {
        return None;
    };
    let mut out = Vec::with_capacity(1024);
    let mut o = Obj::open(&mut out);
    o.key("flow");
    write_flow(o.out, flow);
    o.str("node_name", &resp.node_name);
    o.time("time", resp.time.as_ref());
    o.close();
    Some(out)
}

fn write_flow(out: &mut Vec<u8>, f: &Flow) {
    let mut o = Obj::open(out);
    o.time("time", f.time.as_ref());
    o.str("uuid", &f.uuid);
    o.enumeration("verdict", f.verdict, |v| {
        Verdict::try_from(v).ok().map(|e| e.as_str_name())
    });
    o.uint("drop_reason", f.drop_reason.into());
    if let Some(ip) = &f.ip {
        o.key("IP");
        let mut i = Obj::open(o.out);
        i.str("source", &ip.source);
        i.str("destination", &ip.destination);
        i.enumeration("ipVersion", ip.ip_version, |v| {
            IpVersion::try_from(v).ok().map(|e| e.as_str_name())
        });
        i.bool("encrypted", ip.encrypted);
        i.close();
    }
    if let Some(l4) = &f.l4 {
        o.key("l4");
        let mut l = Obj::open(o.out);
        match &l4.protocol {
            Some(layer4::Protocol::Tcp(p)) => l.ports("TCP", p.source_port, p.destination_port),
            Some(layer4::Protocol::Udp(p)) => l.ports("UDP", p.source_port, p.destination_port),
            Some(layer4::Protocol::Sctp(p)) => l.ports("SCTP", p.source_port, p.destination_port),
            Some(layer4::Protocol::IcmPv4(p)) => l.icmp("ICMPv4", p.r#type, p.code),
            Some(layer4::Protocol::IcmPv6(p)) => l.icmp("ICMPv6", p.r#type, p.code),
            None => {}
        }
        l.close();
    }
    o.endpoint("source", f.source.as_ref());
    o.endpoint("destination", f.destination.as_ref());
    o.enumeration("Type", f.r#type, |v| {
        FlowType::try_from(v).ok().map(|e| e.as_str_name())
    });
    o.str("node_name", &f.node_name);
    if let Some(l7) = &f.l7 {
        o.key("l7");
        let mut l = Obj::open(o.out);
        l.enumeration("type", l7.r#type, |v| {
            L7FlowType::try_from(v).ok().map(|e| e.as_str_name())
        });
        l.uint_string("latency_ns", l7.latency_ns);
        l.close();
    }
    o.bool("reply", f.reply);
    if let Some(e) = &f.event_type {
        o.key("event_type");
        let mut t = Obj::open(o.out);
        t.uint("type", u64::try_from(e.r#type).unwrap_or(0));
        t.uint("sub_type", u64::try_from(e.sub_type).unwrap_or(0));
        t.close();
    }
    o.enumeration("traffic_direction", f.traffic_direction, |v| {
        TrafficDirection::try_from(v).ok().map(|e| e.as_str_name())
    });
    o.uint("policy_match_type", f.policy_match_type.into());
    o.enumeration("trace_observation_point", f.trace_observation_point, |v| {
        TraceObservationPoint::try_from(v)
            .ok()
            .map(|e| e.as_str_name())
    });
    o.enumeration("drop_reason_desc", f.drop_reason_desc, |v| {
        DropReason::try_from(v).ok().map(|e| e.as_str_name())
    });
    if let Some(r) = f.is_reply {
        o.key("is_reply");
        o.out.extend_from_slice(if r { b"true" } else { b"false" });
    }
    o.policies("egress_allowed_by", &f.egress_allowed_by);
    o.policies("ingress_allowed_by", &f.ingress_allowed_by);
    o.policies("egress_denied_by", &f.egress_denied_by);
    o.policies("ingress_denied_by", &f.ingress_denied_by);
    o.close();
}

/// A JSON object being written: keys in call order, default values skipped.
struct Obj<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Obj<'a> {
    fn open(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Obj { out, first: true }
    }

    fn close(self) {
        self.out.push(b'}');
    }

    /// Writes `"key":` (after a comma unless first); the value follows.
    fn key(&mut self, key: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        string(self.out, key);
        self.out.push(b':');
    }

    fn str(&mut self, key: &str, v: &str) {
        if !v.is_empty() {
            self.key(key);
            string(self.out, v);
        }
    }

    fn uint(&mut self, key: &str, v: u64) {
        if v != 0 {
            self.key(key);
            let _ = write!(self.out, "{v}");
        }
    }

    /// A uint64: protobuf JSON writes it as a decimal string.
    fn uint_string(&mut self, key: &str, v: u64) {
        if v != 0 {
            self.key(key);
            let _ = write!(self.out, "\"{v}\"");
        }
    }

    fn bool(&mut self, key: &str, v: bool) {
        if v {
            self.key(key);
            self.out.extend_from_slice(b"true");
        }
    }

    /// An enum by name, or by number when `name` does not know it.
    fn enumeration(&mut self, key: &str, v: i32, name: impl Fn(i32) -> Option<&'static str>) {
        if v == 0 {
            return;
        }
        self.key(key);
        match name(v) {
            Some(n) => string(self.out, n),
            None => {
                let _ = write!(self.out, "{v}");
            }
        }
    }

    fn time(&mut self, key: &str, t: Option<&Timestamp>) {
        if let Some(text) = t.and_then(rfc3339) {
            self.key(key);
            string(self.out, &text);
        }
    }

    fn strings(&mut self, key: &str, v: &[String]) {
        if v.is_empty() {
            return;
        }
        self.key(key);
        self.out.push(b'[');
        for (i, s) in v.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            string(self.out, s);
        }
        self.out.push(b']');
    }

    fn ports(&mut self, key: &str, source: u32, destination: u32) {
        self.key(key);
        let mut p = Obj::open(self.out);
        p.uint("source_port", source.into());
        p.uint("destination_port", destination.into());
        p.close();
    }

    fn icmp(&mut self, key: &str, icmp_type: u32, code: u32) {
        self.key(key);
        let mut p = Obj::open(self.out);
        p.uint("type", icmp_type.into());
        p.uint("code", code.into());
        p.close();
    }

    fn endpoint(&mut self, key: &str, e: Option<&Endpoint>) {
        let Some(e) = e else { return };
        self.key(key);
        let mut o = Obj::open(self.out);
        o.uint("ID", e.id.into());
        o.uint("identity", e.identity.into());
        o.str("cluster_name", &e.cluster_name);
        o.str("namespace", &e.namespace);
        o.strings("labels", &e.labels);
        o.str("pod_name", &e.pod_name);
        if !e.workloads.is_empty() {
            o.key("workloads");
            o.out.push(b'[');
            for (i, w) in e.workloads.iter().enumerate() {
                if i > 0 {
                    o.out.push(b',');
                }
                let mut wo = Obj::open(o.out);
                wo.str("name", &w.name);
                wo.str("kind", &w.kind);
                wo.close();
            }
            o.out.push(b']');
        }
        o.close();
    }

    fn policies(&mut self, key: &str, v: &[Policy]) {
        if v.is_empty() {
            return;
        }
        self.key(key);
        self.out.push(b'[');
        for (i, p) in v.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            let mut o = Obj::open(self.out);
            o.str("name", &p.name);
            o.str("namespace", &p.namespace);
            o.strings("labels", &p.labels);
            o.uint_string("revision", p.revision);
            o.str("kind", &p.kind);
            o.close();
        }
        self.out.push(b']');
    }
}

/// A JSON string with escapes (serde_json's, so the output is always valid JSON).
fn string(out: &mut Vec<u8>, s: &str) {
    // Writing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Seconds of 0001-01-01T00:00:00Z and of 9999-12-31T23:59:59Z, the range protobuf JSON allows.
const MIN_SECONDS: i64 = -62_135_596_800;
const MAX_SECONDS: i64 = 253_402_300_799;

/// RFC 3339 in UTC with 0, 3, 6 or 9 fractional digits, as protobuf JSON writes timestamps;
/// `None` outside years 1-9999 or with nanos outside 0..1e9.
pub(crate) fn rfc3339(t: &Timestamp) -> Option<String> {
    if !(MIN_SECONDS..=MAX_SECONDS).contains(&t.seconds) || !(0..1_000_000_000).contains(&t.nanos) {
        return None;
    }
    let days = t.seconds.div_euclid(86_400);
    let secs = t.seconds.rem_euclid(86_400);
    let (y, m, d) = civil::from_days(days);
    let mut s = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    let n = t.nanos;
    if n != 0 {
        if n % 1_000_000 == 0 {
            s.push_str(&format!(".{:03}", n / 1_000_000));
        } else if n % 1_000 == 0 {
            s.push_str(&format!(".{:06}", n / 1_000));
        } else {
            s.push_str(&format!(".{n:09}"));
        }
    }
    s.push('Z');
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(seconds: i64, nanos: i32) -> Option<String> {
        rfc3339(&Timestamp { seconds, nanos })
    }

    #[test]
    fn timestamps_as_protobuf_json_writes_them() {
        assert_eq!(ts(0, 0).as_deref(), Some("1970-01-01T00:00:00Z"));
        assert_eq!(
            ts(1_785_494_462, 202_450_754).as_deref(),
            Some("2026-07-31T10:41:02.202450754Z")
        );
        assert_eq!(
            ts(951_782_400, 5_000_000).as_deref(),
            Some("2000-02-29T00:00:00.005Z")
        );
        assert_eq!(
            ts(-1, 123_000).as_deref(),
            Some("1969-12-31T23:59:59.000123Z")
        );
        assert_eq!(ts(MIN_SECONDS, 0).as_deref(), Some("0001-01-01T00:00:00Z"));
        assert_eq!(
            ts(MAX_SECONDS, 999_999_999).as_deref(),
            Some("9999-12-31T23:59:59.999999999Z")
        );
        assert_eq!(ts(MAX_SECONDS + 1, 0), None);
        assert_eq!(ts(0, -1), None);
        assert_eq!(ts(0, 1_000_000_000), None);
    }

    #[test]
    fn non_flow_responses_render_nothing_and_unknown_enums_render_as_numbers() {
        assert!(flow_to_json(&GetFlowsResponse::default()).is_none());
        let resp = GetFlowsResponse {
            response_types: Some(get_flows_response::ResponseTypes::Flow(Flow {
                verdict: 42,
                drop_reason_desc: 204,
                ..Flow::default()
            })),
            ..GetFlowsResponse::default()
        };
        let line = String::from_utf8(flow_to_json(&resp).unwrap()).unwrap();
        assert_eq!(line, r#"{"flow":{"verdict":42,"drop_reason_desc":204}}"#);
    }
}
