//! Protocols and port sets: the unit every verdict and connectivity answer is expressed in.

use std::fmt;

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

/// A transport protocol a policy can name. ICMP "ports" are ICMP types (Cilium `icmps`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Protocol {
    Sctp,
    Tcp,
    Udp,
    Icmp,
}

impl Protocol {
    /// Every protocol, in the order answers are printed (SCTP, TCP, UDP, ICMP).
    pub const ALL: [Protocol; 4] = [Protocol::Sctp, Protocol::Tcp, Protocol::Udp, Protocol::Icmp];
    /// The protocols Kubernetes NetworkPolicy ports can name.
    pub const L4: [Protocol; 3] = [Protocol::Sctp, Protocol::Tcp, Protocol::Udp];

    fn index(self) -> usize {
        self as usize
    }

    /// The largest "port" of the protocol: 65535, or 255 for ICMP types.
    pub fn max_port(self) -> u16 {
        match self {
            Protocol::Icmp => 255,
            _ => 65535,
        }
    }

    /// The smallest port a set of this protocol holds: 1, or 0 for ICMP types.
    pub fn min_port(self) -> u16 {
        match self {
            Protocol::Icmp => 0,
            _ => 1,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Sctp => "SCTP",
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Icmp => "ICMP",
        }
    }

    /// Parses a protocol name, case-insensitively (`ICMPv6` counts as ICMP).
    pub fn parse(name: &str) -> Option<Protocol> {
        match name.to_ascii_uppercase().as_str() {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            "ICMP" | "ICMPV6" => Some(Protocol::Icmp),
            _ => None,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A sorted set of disjoint, non-adjacent inclusive ranges of `u16`. Small sets (the
/// common case) live inline, so set algebra on hot paths does not allocate.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct RangeSet {
    ranges: SmallVec<[(u16, u16); 3]>,
}

impl RangeSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// The set `lo..=hi` (empty when `lo > hi`).
    pub fn range(lo: u16, hi: u16) -> Self {
        if lo > hi {
            Self::new()
        } else {
            let mut ranges = SmallVec::new();
            ranges.push((lo, hi));
            RangeSet { ranges }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    pub fn ranges(&self) -> &[(u16, u16)] {
        &self.ranges
    }

    pub fn contains(&self, v: u16) -> bool {
        // Ranges are sorted: find the last range starting at or below v.
        match self.ranges.partition_point(|&(lo, _)| lo <= v) {
            0 => false,
            i => self.ranges[i - 1].1 >= v,
        }
    }

    /// Number of values in the set.
    pub fn len(&self) -> u32 {
        self.ranges
            .iter()
            .map(|&(lo, hi)| u32::from(hi) - u32::from(lo) + 1)
            .sum()
    }

    pub fn union(&self, other: &RangeSet) -> RangeSet {
        if other.ranges.is_empty() {
            return self.clone();
        }
        if self.ranges.is_empty() {
            return other.clone();
        }
        // Merge the two sorted lists, joining overlapping or adjacent ranges.
        let mut out: SmallVec<[(u16, u16); 3]> = SmallVec::new();
        let (mut i, mut j) = (0, 0);
        while i < self.ranges.len() || j < other.ranges.len() {
            let next = match (self.ranges.get(i), other.ranges.get(j)) {
                (Some(&a), Some(&b)) if a <= b => {
                    i += 1;
                    a
                }
                (_, Some(&b)) => {
                    j += 1;
                    b
                }
                (Some(&a), None) => {
                    i += 1;
                    a
                }
                (None, None) => break,
            };
            match out.last_mut() {
                Some(last) if u32::from(next.0) <= u32::from(last.1) + 1 => {
                    last.1 = last.1.max(next.1)
                }
                _ => out.push(next),
            }
        }
        RangeSet { ranges: out }
    }

    pub fn intersection(&self, other: &RangeSet) -> RangeSet {
        let (mut i, mut j) = (0, 0);
        let mut out = SmallVec::new();
        while i < self.ranges.len() && j < other.ranges.len() {
            let (a_lo, a_hi) = self.ranges[i];
            let (b_lo, b_hi) = other.ranges[j];
            let lo = a_lo.max(b_lo);
            let hi = a_hi.min(b_hi);
            if lo <= hi {
                out.push((lo, hi));
            }
            if a_hi < b_hi {
                i += 1;
            } else {
                j += 1;
            }
        }
        RangeSet { ranges: out }
    }

    pub fn difference(&self, other: &RangeSet) -> RangeSet {
        if other.ranges.is_empty() || self.ranges.is_empty() {
            return self.clone();
        }
        let mut out = SmallVec::new();
        let mut j = 0;
        for &(lo, hi) in &self.ranges {
            let mut cur = u32::from(lo);
            let hi = u32::from(hi);
            while j < other.ranges.len() && u32::from(other.ranges[j].1) < cur {
                j += 1;
            }
            let mut k = j;
            while cur <= hi && k < other.ranges.len() && u32::from(other.ranges[k].0) <= hi {
                let (b_lo, b_hi) = (u32::from(other.ranges[k].0), u32::from(other.ranges[k].1));
                if b_lo > cur {
                    out.push((cur as u16, (b_lo - 1) as u16));
                }
                cur = cur.max(b_hi + 1);
                k += 1;
            }
            if cur <= hi {
                out.push((cur as u16, hi as u16));
            }
        }
        RangeSet { ranges: out }
    }
}

/// A set of (protocol, port) pairs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct PortSet {
    by_proto: [RangeSet; 4],
}

impl PortSet {
    /// The empty set: "No Connections".
    pub fn none() -> Self {
        Self::default()
    }

    /// Every port of TCP, UDP and SCTP, and every ICMP type: "All Connections".
    pub fn all() -> Self {
        let mut set = Self::none();
        for proto in Protocol::ALL {
            set.by_proto[proto.index()] = RangeSet::range(proto.min_port(), proto.max_port());
        }
        set
    }

    /// Every port of one protocol.
    pub fn protocol(proto: Protocol) -> Self {
        Self::ports(proto, proto.min_port(), proto.max_port())
    }

    /// Ports `lo..=hi` of one protocol.
    pub fn ports(proto: Protocol, lo: u16, hi: u16) -> Self {
        let mut set = Self::none();
        set.by_proto[proto.index()] = RangeSet::range(lo, hi);
        set
    }

    /// One port of one protocol.
    pub fn single(proto: Protocol, port: u16) -> Self {
        Self::ports(proto, port, port)
    }

    pub fn is_empty(&self) -> bool {
        self.by_proto.iter().all(RangeSet::is_empty)
    }

    /// Whether the set holds every port of TCP, UDP and SCTP (ICMP is not compared,
    /// so that Kubernetes answers and Cilium answers print alike).
    pub fn is_all_l4(&self) -> bool {
        Protocol::L4.iter().all(|&p| {
            self.by_proto[p.index()].ranges() == [(p.min_port(), p.max_port())].as_slice()
        })
    }

    /// The TCP, UDP and SCTP part of the set (what Kubernetes answers compare).
    pub fn l4(&self) -> PortSet {
        let mut set = self.clone();
        set.by_proto[Protocol::Icmp.index()] = RangeSet::new();
        set
    }

    pub fn contains(&self, proto: Protocol, port: u16) -> bool {
        self.by_proto[proto.index()].contains(port)
    }

    pub fn get(&self, proto: Protocol) -> &RangeSet {
        &self.by_proto[proto.index()]
    }

    pub fn union(&self, other: &PortSet) -> PortSet {
        self.zip(other, RangeSet::union)
    }

    pub fn intersection(&self, other: &PortSet) -> PortSet {
        self.zip(other, RangeSet::intersection)
    }

    pub fn difference(&self, other: &PortSet) -> PortSet {
        self.zip(other, RangeSet::difference)
    }

    pub fn insert_all(&mut self, other: &PortSet) {
        *self = self.union(other);
    }

    fn zip(&self, other: &PortSet, op: impl Fn(&RangeSet, &RangeSet) -> RangeSet) -> PortSet {
        PortSet {
            by_proto: std::array::from_fn(|i| op(&self.by_proto[i], &other.by_proto[i])),
        }
    }

    /// Parses the corpus grammar: `All Connections`, `No Connections`, or groups such as
    /// `SCTP 1-65535,TCP 1-79,81-65535,UDP 53`.
    pub fn parse(text: &str) -> Result<PortSet, String> {
        let text = text.trim();
        match text {
            "All Connections" => return Ok(PortSet::all()),
            "No Connections" => return Ok(PortSet::none()),
            _ => {}
        }
        let mut set = PortSet::none();
        let mut proto: Option<Protocol> = None;
        for token in text.split(',') {
            let token = token.trim();
            let ports = match token.split_once(' ') {
                Some((name, rest)) => {
                    proto = Some(
                        Protocol::parse(name)
                            .ok_or_else(|| format!("unknown protocol {name:?} in {text:?}"))?,
                    );
                    rest.trim()
                }
                None => token,
            };
            let p = proto.ok_or_else(|| format!("port {token:?} before any protocol"))?;
            let (lo, hi) = match ports.split_once('-') {
                Some((lo, hi)) => (lo, hi),
                None => (ports, ports),
            };
            let lo: u16 = lo.parse().map_err(|_| format!("bad port {ports:?}"))?;
            let hi: u16 = hi.parse().map_err(|_| format!("bad port {ports:?}"))?;
            if lo > hi {
                return Err(format!("bad port range {ports:?}"));
            }
            set.insert_all(&PortSet::ports(p, lo, hi));
        }
        Ok(set)
    }
}

impl fmt::Display for PortSet {
    /// Prints in the corpus grammar; ICMP is printed only when it is not the whole range.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_all_l4() {
            return f.write_str("All Connections");
        }
        if Protocol::L4.iter().all(|&p| self.get(p).is_empty())
            && self.get(Protocol::Icmp).is_empty()
        {
            return f.write_str("No Connections");
        }
        let mut first = true;
        for proto in Protocol::ALL {
            let set = self.get(proto);
            if set.is_empty() {
                continue;
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(f, "{proto} ")?;
            for (i, &(lo, hi)) in set.ranges().iter().enumerate() {
                if i > 0 {
                    f.write_str(",")?;
                }
                if lo == hi {
                    write!(f, "{lo}")?;
                } else {
                    write!(f, "{lo}-{hi}")?;
                }
            }
        }
        Ok(())
    }
}

impl Serialize for PortSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn model(set: &RangeSet) -> Vec<u16> {
        (0..=300u16).filter(|&v| set.contains(v)).collect()
    }

    fn arb_set() -> impl Strategy<Value = RangeSet> {
        proptest::collection::vec((0u16..300, 0u16..40), 0..6).prop_map(|v| {
            v.into_iter().fold(RangeSet::new(), |acc, (lo, len)| {
                acc.union(&RangeSet::range(lo, lo + len))
            })
        })
    }

    proptest! {
        #[test]
        fn set_algebra_matches_a_membership_model(a in arb_set(), b in arb_set()) {
            let (ma, mb) = (model(&a), model(&b));
            let union: Vec<u16> = (0..=300).filter(|v| ma.contains(v) || mb.contains(v)).collect();
            let inter: Vec<u16> = (0..=300).filter(|v| ma.contains(v) && mb.contains(v)).collect();
            let diff: Vec<u16> = (0..=300).filter(|v| ma.contains(v) && !mb.contains(v)).collect();
            prop_assert_eq!(model(&a.union(&b)), union);
            prop_assert_eq!(model(&a.intersection(&b)), inter);
            prop_assert_eq!(model(&a.difference(&b)), diff);
            // canonical form: disjoint, sorted, non-adjacent ranges
            for w in a.union(&b).ranges().windows(2) {
                prop_assert!(u32::from(w[0].1) + 1 < u32::from(w[1].0));
            }
        }

        #[test]
        fn printed_sets_parse_back(a in arb_set(), b in arb_set()) {
            let mut set = PortSet::none();
            for &(lo, hi) in a.ranges() { set.insert_all(&PortSet::ports(Protocol::Tcp, lo.max(1), hi.max(1))); }
            for &(lo, hi) in b.ranges() { set.insert_all(&PortSet::ports(Protocol::Udp, lo.max(1), hi.max(1))); }
            prop_assert_eq!(PortSet::parse(&set.to_string()).unwrap(), set);
        }
    }

    #[test]
    fn corpus_grammar_round_trips() {
        let text = "SCTP 1-65535,TCP 1-79,81-65535,UDP 1-52,54-65535";
        let set = PortSet::parse(text).unwrap();
        assert!(set.contains(Protocol::Tcp, 79));
        assert!(!set.contains(Protocol::Tcp, 80));
        assert!(!set.contains(Protocol::Udp, 53));
        assert_eq!(set.to_string(), text);
        assert!(PortSet::parse("All Connections").unwrap().is_all_l4());
        assert!(PortSet::parse("No Connections").unwrap().is_empty());
        assert!(PortSet::parse("TCP 90-80").is_err());
        assert!(PortSet::parse("80").is_err());
    }
}
