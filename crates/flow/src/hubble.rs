//! Hubble flow events as JSON: the `{"flow":{...},"node_name":...,"time":...}` wrapper of
//! `hubble observe -o jsonpb` and the exporter, or a bare flow. Keys are accepted in the
//! protobuf spelling (`drop_reason_desc`) and in lowerCamelCase (`dropReasonDesc`); enums by
//! name or number; integers as numbers or strings (protobuf JSON writes uint64 as a string).
//! Strings borrow from the line when they hold no escapes.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

/// A string, borrowed from the input when it holds no escapes. (serde borrows a `Cow` only
/// when it is a field's whole type, not inside an `Option`; this type borrows anywhere.)
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Str<'a>(pub Cow<'a, str>);

impl std::ops::Deref for Str<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for Str<'_> {
    fn eq(&self, other: &str) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<&str> for Str<'_> {
    fn eq(&self, other: &&str) -> bool {
        *self.0 == **other
    }
}

impl fmt::Display for Str<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// A JSON value kept as written (checked when the line was read) and parsed on demand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Raw<'a>(pub(crate) &'a str);

impl<'a> Raw<'a> {
    pub fn get(&self) -> &'a str {
        self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Raw<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <&'de RawValue>::deserialize(d).map(|r| Raw(r.get()))
    }
}

/// An enum value as written: by name or by number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnumVal<'a> {
    Name(Str<'a>),
    Number(i64),
}

impl EnumVal<'_> {
    /// The numeric value: the number, or the name looked up in `names` (index = value).
    pub fn code(&self, names: &[&str]) -> Option<i64> {
        match self {
            EnumVal::Number(n) => Some(*n),
            EnumVal::Name(s) => names.iter().position(|n| *n == &**s).map(|i| i as i64),
        }
    }

    pub fn name_is(&self, name: &str) -> bool {
        matches!(self, EnumVal::Name(s) if s == name)
    }
}

impl fmt::Display for EnumVal<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnumVal::Name(s) => f.write_str(s),
            EnumVal::Number(n) => write!(f, "{n}"),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for EnumVal<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = EnumVal<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an enum name or number")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(EnumVal::Name(Str(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(EnumVal::Name(Str(Cow::Owned(v.to_string()))))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(EnumVal::Number(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                i64::try_from(v)
                    .map(EnumVal::Number)
                    .map_err(|_| E::custom("enum number out of range"))
            }
        }
        d.deserialize_any(V)
    }
}

/// An unsigned integer written as a number or as a decimal string.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Uint(pub u64);

impl<'de> Deserialize<'de> for Uint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Uint;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an unsigned integer or a decimal string")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Uint, E> {
                Ok(Uint(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Uint, E> {
                u64::try_from(v)
                    .map(Uint)
                    .map_err(|_| E::custom("negative integer"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Uint, E> {
                v.parse().map(Uint).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// One line: the wrapper, or a bare flow (then `flow` is `None` and the line is read again
/// as a [`Flow`]).
#[derive(Debug, Default, Deserialize)]
pub struct Wrapper<'a> {
    #[serde(borrow, default)]
    pub flow: Option<Flow<'a>>,
    #[serde(borrow, default, alias = "nodeName")]
    pub node_name: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub time: Option<Str<'a>>,
}

/// The fields of a Hubble `Flow` that validation uses; the rest are skipped.
#[derive(Debug, Default, Deserialize)]
pub struct Flow<'a> {
    #[serde(borrow, default)]
    pub time: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub uuid: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub verdict: Option<EnumVal<'a>>,
    #[serde(default, alias = "dropReason")]
    pub drop_reason: Option<Uint>,
    #[serde(borrow, default, alias = "dropReasonDesc")]
    pub drop_reason_desc: Option<EnumVal<'a>>,
    #[serde(borrow, default, rename = "IP", alias = "ip")]
    pub ip: Option<Ip<'a>>,
    #[serde(default)]
    pub l4: Option<Layer4>,
    #[serde(borrow, default)]
    pub source: Option<Endpoint<'a>>,
    #[serde(borrow, default)]
    pub destination: Option<Endpoint<'a>>,
    #[serde(borrow, default, rename = "Type", alias = "type")]
    pub flow_type: Option<EnumVal<'a>>,
    #[serde(borrow, default, alias = "nodeName")]
    pub node_name: Option<Str<'a>>,
    /// Deprecated in favour of `is_reply`, still written by older agents.
    #[serde(default)]
    pub reply: Option<bool>,
    #[serde(default, alias = "isReply")]
    pub is_reply: Option<bool>,
    #[serde(default, alias = "eventType")]
    pub event_type: Option<EventType>,
    #[serde(borrow, default, alias = "trafficDirection")]
    pub traffic_direction: Option<EnumVal<'a>>,
    #[serde(borrow, default, alias = "traceObservationPoint")]
    pub trace_observation_point: Option<EnumVal<'a>>,
    #[serde(borrow, default, alias = "traceReason")]
    pub trace_reason: Option<EnumVal<'a>>,
    #[serde(default, alias = "policyMatchType")]
    pub policy_match_type: Option<Uint>,
    #[serde(borrow, default, alias = "ingressAllowedBy")]
    pub ingress_allowed_by: Option<Vec<PolicyName<'a>>>,
    #[serde(borrow, default, alias = "egressAllowedBy")]
    pub egress_allowed_by: Option<Vec<PolicyName<'a>>>,
    #[serde(borrow, default, alias = "ingressDeniedBy")]
    pub ingress_denied_by: Option<Vec<PolicyName<'a>>>,
    #[serde(borrow, default, alias = "egressDeniedBy")]
    pub egress_denied_by: Option<Vec<PolicyName<'a>>>,
    /// Present on L7 events; only its presence matters.
    #[serde(default)]
    pub l7: Option<IgnoredAny>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Ip<'a> {
    #[serde(borrow, default)]
    pub source: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub destination: Option<Str<'a>>,
    #[serde(borrow, default, alias = "ip_version")]
    #[serde(rename = "ipVersion")]
    pub ip_version: Option<EnumVal<'a>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Layer4 {
    #[serde(default, rename = "TCP", alias = "tcp")]
    pub tcp: Option<Ports>,
    #[serde(default, rename = "UDP", alias = "udp")]
    pub udp: Option<Ports>,
    #[serde(default, rename = "SCTP", alias = "sctp")]
    pub sctp: Option<Ports>,
    #[serde(default, rename = "ICMPv4", alias = "icmpv4")]
    pub icmpv4: Option<Icmp>,
    #[serde(default, rename = "ICMPv6", alias = "icmpv6")]
    pub icmpv6: Option<Icmp>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Ports {
    #[serde(default, alias = "sourcePort")]
    pub source_port: Option<Uint>,
    #[serde(default, alias = "destinationPort")]
    pub destination_port: Option<Uint>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Icmp {
    #[serde(default, rename = "type")]
    pub icmp_type: Option<Uint>,
    #[serde(default)]
    pub code: Option<Uint>,
}

#[derive(Debug, Default, Deserialize)]
pub struct EventType {
    #[serde(default, rename = "type")]
    pub event_type: Option<Uint>,
    #[serde(default, alias = "subType")]
    pub sub_type: Option<Uint>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Endpoint<'a> {
    #[serde(default, rename = "ID", alias = "id")]
    pub id: Option<Uint>,
    #[serde(default)]
    pub identity: Option<Uint>,
    #[serde(borrow, default, alias = "clusterName")]
    pub cluster_name: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub namespace: Option<Str<'a>>,
    /// Kept as written and read on demand ([`Endpoint::labels`]): most flows resolve by
    /// namespace and pod name and never need them. Skipping them without building values is
    /// a third of the time of reading a line.
    #[serde(borrow, default, rename = "labels")]
    pub labels_raw: Option<Raw<'a>>,
    #[serde(borrow, default, alias = "podName")]
    pub pod_name: Option<Str<'a>>,
    /// Read on demand ([`Endpoint::workloads`]).
    #[serde(borrow, default, rename = "workloads")]
    pub workloads_raw: Option<Raw<'a>>,
}

impl<'a> Endpoint<'a> {
    /// The labels (`k8s:app=web`, `reserved:host`...); empty when absent or not a list of
    /// strings.
    pub fn labels(&self) -> Vec<Str<'a>> {
        self.labels_raw
            .and_then(|r| serde_json::from_str(r.get()).ok())
            .unwrap_or_default()
    }

    /// The owning workloads; empty when absent or malformed.
    pub fn workloads(&self) -> Vec<Workload<'a>> {
        self.workloads_raw
            .and_then(|r| serde_json::from_str(r.get()).ok())
            .unwrap_or_default()
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct Workload<'a> {
    #[serde(borrow, default)]
    pub name: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub kind: Option<Str<'a>>,
}

/// An entry of `*_allowed_by` / `*_denied_by`.
#[derive(Debug, Default, Deserialize)]
pub struct PolicyName<'a> {
    #[serde(borrow, default)]
    pub name: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub namespace: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub kind: Option<Str<'a>>,
}

/// Verdict names by value (flow.proto `Verdict`).
pub const VERDICTS: [&str; 8] = [
    "VERDICT_UNKNOWN",
    "FORWARDED",
    "DROPPED",
    "ERROR",
    "AUDIT",
    "REDIRECTED",
    "TRACED",
    "TRANSLATED",
];
/// `TrafficDirection` names by value.
pub const TRAFFIC_DIRECTIONS: [&str; 3] = ["TRAFFIC_DIRECTION_UNKNOWN", "INGRESS", "EGRESS"];
/// `TraceObservationPoint` names and values (flow.proto; `TO_ENDPOINT` is 101).
pub const OBSERVATION_POINTS: [(&str, i64); 15] = [
    ("UNKNOWN_POINT", 0),
    ("TO_PROXY", 1),
    ("TO_HOST", 2),
    ("TO_STACK", 3),
    ("TO_OVERLAY", 4),
    ("TO_ENDPOINT", 101),
    ("FROM_ENDPOINT", 5),
    ("FROM_PROXY", 6),
    ("FROM_HOST", 7),
    ("FROM_STACK", 8),
    ("FROM_OVERLAY", 9),
    ("FROM_NETWORK", 10),
    ("TO_NETWORK", 11),
    ("FROM_CRYPTO", 12),
    ("TO_CRYPTO", 13),
];
/// Event types (monitor API `type`): drop, trace, policy verdict, socket trace, L7.
pub const EVENT_DROP: u64 = 1;
pub const EVENT_TRACE: u64 = 4;
pub const EVENT_POLICY_VERDICT: u64 = 5;
pub const EVENT_TRACE_SOCK: u64 = 7;
pub const EVENT_L7: u64 = 129;
/// Drop reasons that mean "denied by policy": POLICY_DENIED (no rule allowed) and
/// POLICY_DENY (a deny rule).
pub const POLICY_DROP_REASONS: [(&str, u64); 2] = [("POLICY_DENIED", 133), ("POLICY_DENY", 181)];

/// Reads one line. `Ok(None)` for lines that are valid JSON objects but not flows (node status, lost events).
pub fn parse_line(line: &[u8]) -> Result<Option<Flow<'_>>, serde_json::Error> {
    // One UTF-8 check for the line is much cheaper than one per string.
    let line = std::str::from_utf8(line).map_err(<serde_json::Error as de::Error>::custom)?;
    if let Some(flow) = crate::scan::wrapped_flow(line) {
        return Ok(Some(flow));
    }
    parse_serde(line)
}

/// [`parse_line`] by serde alone.
fn parse_serde(line: &str) -> Result<Option<Flow<'_>>, serde_json::Error> {
    let wrapper: Wrapper<'_> = serde_json::from_str(line)?;
    if let Some(mut flow) = wrapper.flow {
        if flow.time.is_none() {
            flow.time = wrapper.time;
        }
        if flow.node_name.is_none() {
            flow.node_name = wrapper.node_name;
        }
        return Ok(Some(flow));
    }
    if wrapper.node_name.is_some() || line_mentions_flow_keys(line) {
        let flow: Flow<'_> = serde_json::from_str(line)?;
        if flow.verdict.is_some() || flow.ip.is_some() || flow.l4.is_some() || flow.source.is_some()
        {
            return Ok(Some(flow));
        }
    }
    Ok(None)
}

/// A cheap check before reading a line a second time as a bare flow.
fn line_mentions_flow_keys(line: &str) -> bool {
    ["\"verdict\"", "\"IP\"", "\"l4\"", "\"source\""]
        .iter()
        .any(|k| line.contains(k))
}

impl Flow<'_> {
    /// The verdict's numeric value (0 when absent or unknown).
    pub fn verdict_code(&self) -> i64 {
        self.verdict
            .as_ref()
            .and_then(|v| v.code(&VERDICTS))
            .unwrap_or(0)
    }

    /// The monitor event type (`event_type.type`), when given.
    pub fn event_kind(&self) -> Option<u64> {
        self.event_type
            .as_ref()
            .and_then(|e| e.event_type)
            .map(|u| u.0)
    }

    /// Whether this is the reply direction of a connection.
    pub fn is_reply(&self) -> bool {
        match self.is_reply {
            Some(r) => r,
            None => {
                self.reply == Some(true)
                    || self
                        .trace_reason
                        .as_ref()
                        .is_some_and(|r| r.name_is("REPLY"))
            }
        }
    }

    /// Whether the flow is an L7 record or a socket-level trace (not an L3/L4 packet verdict).
    pub fn is_l7_or_sock(&self) -> bool {
        self.l7.is_some()
            || matches!(self.event_kind(), Some(EVENT_L7 | EVENT_TRACE_SOCK))
            || self
                .flow_type
                .as_ref()
                .is_some_and(|t| t.name_is("L7") || t.name_is("SOCK") || *t == EnumVal::Number(2))
    }

    /// Whether the flow was dropped because of policy.
    pub fn is_policy_drop(&self) -> bool {
        let by_desc = self.drop_reason_desc.as_ref().is_some_and(|d| match d {
            EnumVal::Name(n) => POLICY_DROP_REASONS.iter().any(|(name, _)| n == name),
            EnumVal::Number(c) => POLICY_DROP_REASONS.iter().any(|(_, v)| *c == *v as i64),
        });
        by_desc
            || self
                .drop_reason
                .is_some_and(|r| POLICY_DROP_REASONS.iter().any(|(_, v)| r.0 == *v))
    }

    /// `traffic_direction`: 1 ingress, 2 egress, 0 unknown or absent.
    pub fn direction_code(&self) -> i64 {
        self.traffic_direction
            .as_ref()
            .and_then(|d| d.code(&TRAFFIC_DIRECTIONS))
            .unwrap_or(0)
    }

    /// `trace_observation_point` as its numeric value (0 when absent or unknown).
    pub fn observation_point(&self) -> i64 {
        match &self.trace_observation_point {
            None => 0,
            Some(EnumVal::Number(n)) => *n,
            Some(EnumVal::Name(name)) => OBSERVATION_POINTS
                .iter()
                .find(|(n, _)| name == n)
                .map_or(0, |(_, c)| *c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn wrapper_and_bare_flows_with_both_spellings() {
        let wrapped = br#"{"flow":{"verdict":"DROPPED","drop_reason_desc":"POLICY_DENIED","IP":{"source":"10.0.0.1","destination":"10.0.0.2"},"l4":{"TCP":{"destination_port":80}}},"node_name":"n1","time":"2024-01-01T10:00:00Z"}"#;
        let f = parse_line(wrapped).unwrap().unwrap();
        assert_eq!(f.verdict_code(), 2);
        assert!(f.is_policy_drop());
        assert_eq!(f.time.as_deref(), Some("2024-01-01T10:00:00Z"));
        assert_eq!(f.node_name.as_deref(), Some("n1"));

        let bare = br#"{"verdict":2,"dropReasonDesc":181,"trafficDirection":"EGRESS","isReply":false,"l4":{"UDP":{"destinationPort":"53"}},"source":{"podName":"a","identity":"16777217"}}"#;
        let f = parse_line(bare).unwrap().unwrap();
        assert_eq!(f.verdict_code(), 2);
        assert!(f.is_policy_drop());
        assert_eq!(f.direction_code(), 2);
        assert!(!f.is_reply());
        let udp = f.l4.as_ref().unwrap().udp.as_ref().unwrap();
        assert_eq!(udp.destination_port, Some(Uint(53)));
        let src = f.source.as_ref().unwrap();
        assert_eq!(src.pod_name.as_deref(), Some("a"));
        assert_eq!(src.identity, Some(Uint(16_777_217)));
    }

    #[test]
    fn non_flow_objects_are_not_flows_and_garbage_is_an_error() {
        assert!(parse_line(br#"{"node_status":{"state":1}}"#)
            .unwrap()
            .is_none());
        assert!(parse_line(b"{\"flow\":").is_err());
        assert!(parse_line(b"[1,2]").is_err());
        assert!(parse_line(br#"{"flow":{"verdict":true}}"#).is_err());
    }

    /// The fast path reads a line as serde does, or leaves it to serde.
    fn agree(line: &str) -> bool {
        let Some(fast) = crate::scan::wrapped_flow(line) else {
            return false;
        };
        let slow = parse_serde(line).unwrap_or_else(|e| panic!("serde: {e}: {line}"));
        assert_eq!(format!("{:?}", Some(fast)), format!("{slow:?}"), "{line}");
        true
    }

    #[test]
    fn synthesised_lines_take_the_fast_path_and_agree() {
        let mut b = netpol::Bundle::default();
        let shop = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/shop");
        b.load_path(std::path::Path::new(shop)).unwrap();
        let engine = netpol::Engine::new(b.inventory, b.policies, netpol::Options::default());
        let cfg = crate::synth::Config {
            count: 2000,
            gap_share: 0.05,
            drop_share: 0.05,
            ..Default::default()
        };
        let mut out = Vec::new();
        crate::synth::synth(&engine, &cfg, &mut out).unwrap();
        for line in std::str::from_utf8(&out).unwrap().lines() {
            assert!(agree(line), "{line}");
        }
    }

    /// Values of every kind the fast path treats differently: escapes, control bytes,
    /// floats, negative and huge numbers, leading zeros, digit strings, literals.
    fn value() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just("null".to_string()),
            Just("true".to_string()),
            Just("false".to_string()),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<u64>().prop_map(|n| n.to_string()),
            prop::sample::select(vec![
                "-0",
                "007",
                "1.5",
                "1e3",
                "-",
                "nul",
                "18446744073709551616"
            ])
            .prop_map(str::to_string),
            "\"[a-zA-Z0-9:=_./ -]{0,12}\"",
            "\"[0-9+]{0,21}\"",
            prop::sample::select(vec![
                "\"a\\u0062\"",
                "\"a\\\"b\"",
                "\"tab\there\"",
                "\"POLICY_DENIED\"",
                "\"TO_ENDPOINT\"",
                "\"10.0.0.1\"",
                "[\"reserved:world\",\"k8s:app=web\"]",
                "[{\"name\":\"p\",\"namespace\":\"shop\",\"kind\":\"NetworkPolicy\"}]",
            ])
            .prop_map(str::to_string),
        ];
        let key = prop::sample::select(vec![
            "time",
            "uuid",
            "verdict",
            "drop_reason",
            "dropReason",
            "drop_reason_desc",
            "IP",
            "ip",
            "source",
            "destination",
            "ipVersion",
            "l4",
            "TCP",
            "udp",
            "ICMPv4",
            "source_port",
            "destinationPort",
            "type",
            "Type",
            "code",
            "sub_type",
            "namespace",
            "pod_name",
            "podName",
            "labels",
            "workloads",
            "ID",
            "identity",
            "name",
            "kind",
            "node_name",
            "nodeName",
            "reply",
            "is_reply",
            "event_type",
            "traffic_direction",
            "trace_observation_point",
            "trace_reason",
            "policy_match_type",
            "ingress_allowed_by",
            "egressDeniedBy",
            "l7",
            "Summary",
            "flow",
        ]);
        let sep = prop::sample::select(vec!["", "", "", " ", "\t", "\n"]);
        leaf.prop_recursive(5, 64, 8, move |inner| {
            prop_oneof![
                prop::collection::vec((key.clone(), sep.clone(), inner.clone()), 0..8).prop_map(
                    |kv| {
                        let body: Vec<String> = kv
                            .into_iter()
                            .map(|(k, s, v)| format!("{s}\"{k}\"{s}:{s}{v}"))
                            .collect();
                        format!("{{{}}}", body.join(","))
                    }
                ),
                prop::collection::vec(inner, 0..4).prop_map(|v| format!("[{}]", v.join(","))),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn fast_path_agrees_with_serde(flow in value(), extra in value(), tail in "[ ,}x]{0,2}") {
            for line in [
                format!("{{\"flow\":{flow}}}"),
                format!("{{\"flow\":{flow},\"node_name\":\"n\",\"time\":{extra}}}{tail}"),
                format!(" {{\"time\":{extra}, \"flow\" : {flow} }} "),
                flow.clone(),
            ] {
                agree(&line);
            }
        }
    }

    #[test]
    fn observation_points_by_name_and_number_agree() {
        for (name, code) in OBSERVATION_POINTS {
            let line = |point: String| {
                format!(r#"{{"flow":{{"verdict":"FORWARDED","trace_observation_point":{point}}}}}"#)
            };
            let (named, numbered) = (line(format!("\"{name}\"")), line(code.to_string()));
            let named = parse_line(named.as_bytes()).unwrap().unwrap();
            let numbered = parse_line(numbered.as_bytes()).unwrap().unwrap();
            assert_eq!(named.observation_point(), code, "{name}");
            assert_eq!(numbered.observation_point(), code, "{name}");
            assert_eq!(crate::observe(&named), crate::observe(&numbered), "{name}");
        }
        let numbered = parse_line(br#"{"flow":{"verdict":1,"trace_observation_point":101}}"#);
        let observed = crate::observe(&numbered.unwrap().unwrap());
        assert_eq!(observed, crate::Observed::Passed(crate::Scope::Flow));
        let numbered = parse_line(br#"{"flow":{"verdict":1,"trace_observation_point":5}}"#);
        let observed = crate::observe(&numbered.unwrap().unwrap());
        assert_eq!(
            observed,
            crate::Observed::Unknown,
            "FROM_ENDPOINT proves nothing"
        );
    }

    #[test]
    fn escaped_strings_are_owned() {
        let f = parse_line(br#"{"flow":{"source":{"pod_name":"a\u0062"}}}"#)
            .unwrap()
            .unwrap();
        assert_eq!(f.source.unwrap().pod_name.as_deref(), Some("ab"));
    }
}
