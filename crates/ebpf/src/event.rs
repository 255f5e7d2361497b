//! Decoding of the byte layouts shared with `bpf/capture.bpf.c`: the ring buffer event and
//! the UDP flow map's key and value. Parsed field by field (no casts), so a short or odd
//! record is rejected instead of read out of bounds.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::{FlowRecord, Outcome, Protocol, WallClock};

/// `struct flow_event` size.
pub(crate) const EVENT_LEN: usize = 72;
/// `struct udp_key` size.
pub(crate) const UDP_KEY_LEN: usize = 48;
/// `struct udp_flow` size.
pub(crate) const UDP_FLOW_LEN: usize = 32;
/// Offset of `reported` in `struct udp_flow`.
pub(crate) const UDP_FLOW_REPORTED: usize = 29;
/// `struct tuple` size.
pub(crate) const TUPLE_LEN: usize = 40;

const OUTCOME_ESTABLISHED: u8 = 1;
const OUTCOME_REFUSED: u8 = 2;
const OUTCOME_DROPPED: u8 = 3;
const OUTCOME_REPLIED: u8 = 4;
const OUTCOME_UNANSWERED: u8 = 5;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;

/// `struct flow_event`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawEvent {
    netns: u64,
    ts_ns: u64,
    drop_netns: u64,
    saddr: [u8; 16],
    daddr: [u8; 16],
    sport: u16,
    dport: u16,
    family: u8,
    proto: u8,
    outcome: u8,
    initiated_here: bool,
    drop_reason: u32,
}

/// `struct udp_key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UdpKey {
    netns: u64,
    laddr: [u8; 16],
    raddr: [u8; 16],
    lport: u16,
    rport: u16,
    family: u8,
}

/// `struct udp_flow`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UdpFlowValue {
    pub(crate) first_ns: u64,
    pub(crate) last_ns: u64,
    drop_netns: u64,
    drop_reason: u32,
    pub(crate) initiated_here: bool,
    pub(crate) reported: bool,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_ne_bytes(a)
}

fn addr_at(b: &[u8], at: usize) -> [u8; 16] {
    let mut a = [0; 16];
    a.copy_from_slice(&b[at..at + 16]);
    a
}

/// An address of the given family (4: the first 4 bytes); v4-mapped IPv6 becomes IPv4.
fn socket_addr(family: u8, addr: &[u8; 16], port: u16) -> SocketAddr {
    let ip = if family == 4 {
        IpAddr::V4(Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]))
    } else {
        let v6 = Ipv6Addr::from(*addr);
        match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        }
    };
    SocketAddr::new(ip, port)
}

fn dropped(reason: u32, netns: u64, names: &HashMap<u32, String>) -> Outcome {
    Outcome::Dropped {
        reason,
        name: names
            .get(&reason)
            .cloned()
            .unwrap_or_else(|| format!("REASON_{reason}")),
        netns,
    }
}

impl RawEvent {
    /// Decodes one ring buffer record; `None` when it is too short or malformed.
    pub(crate) fn parse(b: &[u8]) -> Option<RawEvent> {
        if b.len() < EVENT_LEN {
            return None;
        }
        let e = RawEvent {
            netns: u64_at(b, 0),
            ts_ns: u64_at(b, 8),
            drop_netns: u64_at(b, 16),
            saddr: addr_at(b, 24),
            daddr: addr_at(b, 40),
            sport: u16_at(b, 56),
            dport: u16_at(b, 58),
            family: b[60],
            proto: b[61],
            outcome: b[62],
            initiated_here: b[63] != 0,
            drop_reason: u32_at(b, 64),
        };
        let known = matches!(e.family, 4 | 6)
            && matches!(e.proto, PROTO_TCP | PROTO_UDP)
            && (OUTCOME_ESTABLISHED..=OUTCOME_UNANSWERED).contains(&e.outcome);
        known.then_some(e)
    }

    pub(crate) fn to_record(&self, clock: &WallClock, names: &HashMap<u32, String>) -> FlowRecord {
        let outcome = match self.outcome {
            OUTCOME_ESTABLISHED => Outcome::Established,
            OUTCOME_REFUSED => Outcome::Refused,
            OUTCOME_DROPPED => dropped(self.drop_reason, self.drop_netns, names),
            OUTCOME_REPLIED => Outcome::Replied,
            _ => Outcome::Unanswered,
        };
        FlowRecord {
            netns: self.netns,
            protocol: if self.proto == PROTO_TCP {
                Protocol::Tcp
            } else {
                Protocol::Udp
            },
            src: socket_addr(self.family, &self.saddr, self.sport),
            dst: socket_addr(self.family, &self.daddr, self.dport),
            initiated_here: self.initiated_here,
            outcome,
            time: clock.wall(self.ts_ns),
        }
    }
}

impl UdpKey {
    pub(crate) fn parse(b: &[u8]) -> Option<UdpKey> {
        (b.len() >= UDP_KEY_LEN).then(|| UdpKey {
            netns: u64_at(b, 0),
            laddr: addr_at(b, 8),
            raddr: addr_at(b, 24),
            lport: u16_at(b, 40),
            rport: u16_at(b, 42),
            family: b[44],
        })
    }
}

impl UdpFlowValue {
    pub(crate) fn parse(b: &[u8]) -> Option<UdpFlowValue> {
        (b.len() >= UDP_FLOW_LEN).then(|| UdpFlowValue {
            first_ns: u64_at(b, 0),
            last_ns: u64_at(b, 8),
            drop_netns: u64_at(b, 16),
            drop_reason: u32_at(b, 24),
            initiated_here: b[28] != 0,
            reported: b[UDP_FLOW_REPORTED] != 0,
        })
    }
}

/// The `udp_origin` key (`struct tuple`, local → remote) of a locally initiated flow.
pub(crate) fn origin_key(k: &UdpKey) -> [u8; TUPLE_LEN] {
    let mut t = [0; TUPLE_LEN];
    t[0..16].copy_from_slice(&k.laddr);
    t[16..32].copy_from_slice(&k.raddr);
    t[32..34].copy_from_slice(&k.lport.to_ne_bytes());
    t[34..36].copy_from_slice(&k.rport.to_ne_bytes());
    t[36] = k.family;
    t[37] = PROTO_UDP;
    t
}

/// The record of a UDP flow that went idle without an outcome.
pub(crate) fn udp_final(
    k: &UdpKey,
    v: &UdpFlowValue,
    clock: &WallClock,
    names: &HashMap<u32, String>,
) -> FlowRecord {
    let local = socket_addr(k.family, &k.laddr, k.lport);
    let remote = socket_addr(k.family, &k.raddr, k.rport);
    let (src, dst) = if v.initiated_here {
        (local, remote)
    } else {
        (remote, local)
    };
    FlowRecord {
        netns: k.netns,
        protocol: Protocol::Udp,
        src,
        dst,
        initiated_here: v.initiated_here,
        outcome: if v.drop_reason != 0 {
            dropped(v.drop_reason, v.drop_netns, names)
        } else {
            Outcome::Unanswered
        },
        time: clock.wall(v.first_ns),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::skel::types;

    #[test]
    fn layouts_match_the_bpf_structs() {
        assert_eq!(std::mem::size_of::<types::udp_key>(), UDP_KEY_LEN);
        assert_eq!(std::mem::size_of::<types::udp_flow>(), UDP_FLOW_LEN);
        assert_eq!(std::mem::size_of::<types::tuple>(), TUPLE_LEN);
    }

    #[test]
    fn short_and_unknown_records_are_rejected() {
        assert_eq!(RawEvent::parse(&[0; EVENT_LEN - 1]), None);
        assert_eq!(RawEvent::parse(&[0; EVENT_LEN]), None); // family 0
    }

    #[test]
    fn decodes_a_tcp_event() {
        let mut b = [0u8; EVENT_LEN];
        b[0..8].copy_from_slice(&4026531840u64.to_ne_bytes());
        b[24..28].copy_from_slice(&[10, 0, 0, 1]);
        b[40..44].copy_from_slice(&[10, 0, 0, 2]);
        b[56..58].copy_from_slice(&40000u16.to_ne_bytes());
        b[58..60].copy_from_slice(&80u16.to_ne_bytes());
        b[60] = 4;
        b[61] = PROTO_TCP;
        b[62] = OUTCOME_DROPPED;
        b[63] = 1;
        b[64..68].copy_from_slice(&12u32.to_ne_bytes());
        let names = HashMap::from([(12, "NETFILTER_DROP".to_string())]);
        let clock = WallClock::now();
        let r = RawEvent::parse(&b).unwrap().to_record(&clock, &names);
        assert_eq!(r.netns, 4026531840);
        assert_eq!(r.src, "10.0.0.1:40000".parse().unwrap());
        assert_eq!(r.dst, "10.0.0.2:80".parse().unwrap());
        assert!(r.initiated_here);
        assert_eq!(
            r.outcome,
            Outcome::Dropped {
                reason: 12,
                name: "NETFILTER_DROP".into(),
                netns: 0
            }
        );
    }
}
