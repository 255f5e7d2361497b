//! CIDR blocks with exceptions, and the partition of the address space into
//! "atoms": maximal address ranges that no policy CIDR can tell apart.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// A CIDR with optional carved-out exceptions (`ipBlock`, `fromCIDRSet`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IpBlock {
    pub cidr: IpNet,
    pub except: Vec<IpNet>,
}

impl IpBlock {
    /// Parses a block; every exception must lie inside the CIDR, as the API server checks.
    /// Errors name the offending field relative to the block (`cidr`, `except[1]`).
    pub fn parse(cidr: &str, except: &[String]) -> Result<IpBlock, (String, String)> {
        let net = parse_cidr(cidr).map_err(|m| ("cidr".to_string(), m))?;
        let mut out = Vec::with_capacity(except.len());
        for (i, e) in except.iter().enumerate() {
            let field = format!("except[{i}]");
            let ex = parse_cidr(e).map_err(|m| (field.clone(), m))?;
            if !net.contains(&ex) {
                return Err((field, format!("{ex} is not inside {net}")));
            }
            out.push(ex);
        }
        Ok(IpBlock {
            cidr: net,
            except: out,
        })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.cidr.contains(&ip) && !self.except.iter().any(|e| e.contains(&ip))
    }

    /// Every network whose edges split the address space.
    fn nets(&self) -> impl Iterator<Item = &IpNet> {
        std::iter::once(&self.cidr).chain(&self.except)
    }
}

impl fmt::Display for IpBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.cidr)?;
        if !self.except.is_empty() {
            let ex: Vec<String> = self.except.iter().map(ToString::to_string).collect();
            write!(f, " except {}", ex.join(", "))?;
        }
        Ok(())
    }
}

/// Parses `a.b.c.d/n` or `x::y/n`; a bare address is a host route (`/32`, `/128`).
/// Host bits are cleared (`10.0.0.1/8` is `10.0.0.0/8`), as Kubernetes validation accepts
/// them and Go's `ParseCIDR` masks them.
pub fn parse_cidr(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    let net: IpNet = match text.parse() {
        Ok(net) => net,
        Err(_) => match text.parse::<IpAddr>() {
            Ok(ip) => IpNet::from(ip),
            Err(_) => return Err(format!("invalid CIDR {text:?}")),
        },
    };
    Ok(net.trunc())
}

/// The address space cut at every edge of a set of CIDRs. Two addresses in one atom are
/// matched by exactly the same blocks, so an atom can stand for all its addresses.
#[derive(Debug, Clone)]
pub struct Atoms {
    v4: Vec<u32>,
    v6: Vec<u128>,
}

/// An inclusive address range, printed `first-last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IpRange {
    pub first: IpAddr,
    pub last: IpAddr,
}

impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

impl IpRange {
    /// Parses `first-last`.
    pub fn parse(text: &str) -> Option<IpRange> {
        let (a, b) = text.split_once('-')?;
        let range = IpRange {
            first: a.trim().parse().ok()?,
            last: b.trim().parse().ok()?,
        };
        (range.first.is_ipv4() == range.last.is_ipv4() && range.first <= range.last)
            .then_some(range)
    }
}

impl Atoms {
    /// Cuts the space at the edges of `blocks`; IPv6 is cut only when `ipv6` is set or a
    /// block is IPv6.
    pub fn new<'a>(blocks: impl IntoIterator<Item = &'a IpBlock>) -> Atoms {
        let mut v4 = vec![0u32];
        let mut v6 = vec![0u128];
        for net in blocks.into_iter().flat_map(IpBlock::nets) {
            match net {
                IpNet::V4(n) => {
                    v4.push(u32::from(n.network()));
                    if let Some(next) = u32::from(n.broadcast()).checked_add(1) {
                        v4.push(next);
                    }
                }
                IpNet::V6(n) => {
                    v6.push(u128::from(n.network()));
                    if let Some(next) = u128::from(n.broadcast()).checked_add(1) {
                        v6.push(next);
                    }
                }
            }
        }
        v4.sort_unstable();
        v4.dedup();
        v6.sort_unstable();
        v6.dedup();
        Atoms { v4, v6 }
    }

    /// Number of atoms (IPv4 first, then IPv6).
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// Number of IPv4 atoms; atoms `0..v4_len()` are IPv4.
    pub fn v4_len(&self) -> usize {
        self.v4.len()
    }

    /// The atom holding `ip`.
    pub fn atom_of(&self, ip: IpAddr) -> usize {
        match ip {
            IpAddr::V4(a) => self.v4.partition_point(|&s| s <= u32::from(a)) - 1,
            IpAddr::V6(a) => self.v4.len() + self.v6.partition_point(|&s| s <= u128::from(a)) - 1,
        }
    }

    /// The address range of an atom.
    pub fn range(&self, atom: usize) -> IpRange {
        if atom < self.v4.len() {
            let first = self.v4[atom];
            let last = self.v4.get(atom + 1).map_or(u32::MAX, |n| n - 1);
            IpRange {
                first: IpAddr::V4(Ipv4Addr::from(first)),
                last: IpAddr::V4(Ipv4Addr::from(last)),
            }
        } else {
            let i = atom - self.v4.len();
            let first = self.v6[i];
            let last = self.v6.get(i + 1).map_or(u128::MAX, |n| n - 1);
            IpRange {
                first: IpAddr::V6(Ipv6Addr::from(first)),
                last: IpAddr::V6(Ipv6Addr::from(last)),
            }
        }
    }

    /// The atoms overlapping `range`.
    pub fn overlapping(&self, range: IpRange) -> std::ops::RangeInclusive<usize> {
        self.atom_of(range.first)..=self.atom_of(range.last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn block(cidr: &str, except: &[&str]) -> IpBlock {
        let ex: Vec<String> = except.iter().map(|s| s.to_string()).collect();
        IpBlock::parse(cidr, &ex).unwrap()
    }

    #[test]
    fn except_carves_out_addresses() {
        let b = block("10.0.0.0/8", &["10.1.0.0/16"]);
        assert!(b.contains("10.2.3.4".parse().unwrap()));
        assert!(!b.contains("10.1.3.4".parse().unwrap()));
        assert!(!b.contains("11.0.0.1".parse().unwrap()));
        assert!(!b.contains("::1".parse().unwrap()));
        let v6 = block("2001:db8::/32", &["2001:db8:1::/48"]);
        assert!(v6.contains("2001:db8:2::1".parse().unwrap()));
        assert!(!v6.contains("2001:db8:1::1".parse().unwrap()));
    }

    #[test]
    fn invalid_blocks_name_the_field() {
        assert_eq!(IpBlock::parse("10.0.0.0/33", &[]).unwrap_err().0, "cidr");
        assert_eq!(
            IpBlock::parse("10.0.0.1/8", &[]).unwrap().cidr.to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(IpBlock::parse("not-an-ip", &[]).unwrap_err().0, "cidr");
        let err = IpBlock::parse("10.0.0.0/8", &["10.0.0.0/16".into(), "11.0.0.0/16".into()]);
        assert_eq!(err.unwrap_err().0, "except[1]");
    }

    #[test]
    fn atoms_cut_at_block_edges() {
        let blocks = [block("10.0.0.0/8", &["10.1.0.0/16"])];
        let atoms = Atoms::new(&blocks);
        assert_eq!(atoms.v4_len(), 5);
        assert_eq!(atoms.range(0).to_string(), "0.0.0.0-9.255.255.255");
        assert_eq!(atoms.range(4).to_string(), "11.0.0.0-255.255.255.255");
        let atom = atoms.atom_of("10.1.2.3".parse().unwrap());
        assert_eq!(atoms.range(atom).to_string(), "10.1.0.0-10.1.255.255");
    }

    proptest! {
        /// Every address of an atom gets the same answer from every block.
        #[test]
        fn atoms_are_uniform(
            nets in proptest::collection::vec((any::<u32>(), 0u8..=32), 1..5),
            probes in proptest::collection::vec(any::<u32>(), 1..20)
        ) {
            let blocks: Vec<IpBlock> = nets.iter().map(|&(a, len)| {
                let net = ipnet::Ipv4Net::new(Ipv4Addr::from(a), len).unwrap().trunc();
                IpBlock { cidr: IpNet::V4(net), except: vec![] }
            }).collect();
            let atoms = Atoms::new(&blocks);
            for p in probes {
                let ip = IpAddr::V4(Ipv4Addr::from(p));
                let range = atoms.range(atoms.atom_of(ip));
                prop_assert!(range.first <= ip && ip <= range.last);
                for b in &blocks {
                    prop_assert_eq!(b.contains(ip), b.contains(range.first));
                    prop_assert_eq!(b.contains(ip), b.contains(range.last));
                }
            }
        }
    }
}
