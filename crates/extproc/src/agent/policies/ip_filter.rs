//! `ipFilter`: allow and deny lists of CIDR blocks, matched against the request's client
//! address (`client_ip`: Envoy's `source.address`, or the trusted `X-Forwarded-For` hop when
//! the kernel's `trust_forwarded_for` says so; never a header the client chose).

use std::net::IpAddr;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{CompiledPolicy, Descriptor, PolicyError, PolicyKind, REQUEST};
use crate::agent::chain::{Context, ImmediateResponse, Outcome};

/// The `ipFilter` policy kind.
pub struct IpFilter;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Metadata {
    #[serde(default)]
    allow: Vec<String>,
    #[serde(default)]
    deny: Vec<String>,
}

/// An address block: `10.0.0.0/8`, `2001:db8::/32`, or one address (`192.0.2.7`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses a block; the address must have no bits set past the prefix (`10.1.0.0/8` is
    /// refused: it reads like a mistake). IPv4-mapped IPv6 (`::ffff:10.0.0.0/104`) is refused
    /// too: write the IPv4 block, which also matches mapped client addresses.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = address
            .trim()
            .parse()
            .map_err(|_| format!("`{text}` is not an address or CIDR block"))?;
        if network.to_canonical() != network {
            return Err(format!(
                "`{text}` is an IPv4-mapped IPv6 block: write it as IPv4"
            ));
        }
        let width = bits(network);
        let prefix = match prefix {
            None => width,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= width)
                .ok_or_else(|| format!("`{text}` has a prefix length outside 0..={width}"))?,
        };
        let cidr = Self { network, prefix };
        if masked(network, prefix) != value(network) {
            return Err(format!("`{text}` has bits set past its /{prefix} prefix"));
        }
        Ok(cidr)
    }

    /// Whether `ip` is in the block (an IPv4-mapped IPv6 address counts as its IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.network.is_ipv4()
            && masked(ip, self.prefix) == masked(self.network, self.prefix)
    }
}

fn bits(ip: IpAddr) -> u8 {
    if ip.is_ipv4() {
        32
    } else {
        128
    }
}

/// The address as a number, right-aligned in 128 bits.
fn value(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The address with the bits past `prefix` cleared.
fn masked(ip: IpAddr, prefix: u8) -> u128 {
    let host_bits = u32::from(bits(ip) - prefix.min(bits(ip)));
    value(ip) & u128::MAX.checked_shl(host_bits).unwrap_or(0)
}

fn parse_all(list: &[String], field: &str) -> Result<Vec<Cidr>, PolicyError> {
    list.iter()
        .map(|text| Cidr::parse(text).map_err(|e| PolicyError::Metadata(format!("{field}: {e}"))))
        .collect()
}

impl PolicyKind for IpFilter {
    fn descriptor(&self) -> Descriptor {
        let list = json!({"type": "array", "items": {"type": "string", "minLength": 1}});
        Descriptor {
            name: "ipFilter",
            version: "1.0.0",
            description: "Allows or denies the request by its client address (CIDR allow and deny lists; deny wins)",
            metadata_schema: json!({
                "type": "object",
                "additionalProperties": false,
                "properties": {"allow": list, "deny": list}
            }),
            phases: REQUEST,
            requires_body: false,
            body_flags: &[],
        }
    }

    fn compile(
        &self,
        metadata: &Map<String, Value>,
    ) -> Result<Arc<dyn CompiledPolicy>, PolicyError> {
        let meta: Metadata = super::typed(&self.descriptor().metadata_schema, metadata)?;
        if meta.allow.is_empty() && meta.deny.is_empty() {
            return Err(PolicyError::Metadata(
                "ipFilter needs an `allow` or a `deny` list".to_owned(),
            ));
        }
        Ok(Arc::new(CompiledIpFilter {
            allow: parse_all(&meta.allow, "allow")?,
            deny: parse_all(&meta.deny, "deny")?,
        }))
    }
}

struct CompiledIpFilter {
    allow: Vec<Cidr>,
    deny: Vec<Cidr>,
}

impl CompiledPolicy for CompiledIpFilter {
    fn execute(&self, ctx: &Context) -> Result<Outcome, PolicyError> {
        let forbidden = |message: &str| {
            Ok(Outcome::deny(
                message,
                ImmediateResponse::json_error(403, "forbidden"),
            ))
        };
        // No address (Envoy sent no source.address): no list can vouch for the client.
        let Ok(ip) = ctx.client_ip.parse::<IpAddr>() else {
            return forbidden("client address unknown");
        };
        if self.deny.iter().any(|block| block.contains(ip)) {
            return forbidden("client address denied");
        }
        if !self.allow.is_empty() && !self.allow.iter().any(|block| block.contains(ip)) {
            return forbidden("client address not allowed");
        }
        Ok(Outcome::allow())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::chain::Decision;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn blocks_parse_strictly() {
        assert_eq!(
            Cidr::parse("10.0.0.0/8").unwrap(),
            Cidr {
                network: ip("10.0.0.0"),
                prefix: 8
            }
        );
        assert_eq!(Cidr::parse("192.0.2.7").unwrap().prefix, 32);
        assert_eq!(Cidr::parse("2001:db8::/32").unwrap().prefix, 32);
        assert_eq!(Cidr::parse("0.0.0.0/0").unwrap().prefix, 0);
        assert_eq!(Cidr::parse("::/0").unwrap().prefix, 0);
        for bad in [
            "10.1.0.0/8",
            "10.0.0.0/33",
            "2001:db8::1/32",
            "::/129",
            "10.0.0.0/",
            "10.0.0.0/-1",
            "host.example/8",
            "",
            "::ffff:10.0.0.0/104",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn membership_by_family_and_prefix() {
        let net = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(net.contains(ip("10.255.1.2")));
        assert!(!net.contains(ip("11.0.0.0")));
        assert!(
            net.contains(ip("::ffff:10.1.2.3")),
            "IPv4-mapped counts as IPv4"
        );
        assert!(!net.contains(ip("::a00:1")), "IPv4-compatible IPv6 is IPv6");
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
        assert!(!v6.contains(ip("10.0.0.1")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("1.2.3.4")));
        assert!(!Cidr::parse("0.0.0.0/0").unwrap().contains(ip("::1")));
        assert!(Cidr::parse("::/0").unwrap().contains(ip("::1")));
        let host = Cidr::parse("192.0.2.7").unwrap();
        assert!(host.contains(ip("192.0.2.7")) && !host.contains(ip("192.0.2.6")));
    }

    /// Every prefix length agrees with a bit-by-bit comparison.
    #[test]
    fn membership_matches_bitwise_reference() {
        let samples = [
            "0.0.0.0",
            "10.1.2.3",
            "10.1.2.128",
            "255.255.255.255",
            "10.0.0.0",
        ];
        for base in samples {
            for prefix in 0..=32u8 {
                let net = IpAddr::V4(
                    (u32::from(base.parse::<std::net::Ipv4Addr>().unwrap())
                        & u32::MAX.checked_shl(u32::from(32 - prefix)).unwrap_or(0))
                    .into(),
                );
                let cidr = Cidr::parse(&format!("{net}/{prefix}")).unwrap();
                for probe in samples {
                    let p = u32::from(probe.parse::<std::net::Ipv4Addr>().unwrap());
                    let n = match net {
                        IpAddr::V4(v4) => u32::from(v4),
                        IpAddr::V6(_) => unreachable!(),
                    };
                    let same =
                        (0..prefix).all(|bit| (p >> (31 - bit)) & 1 == (n >> (31 - bit)) & 1);
                    assert_eq!(cidr.contains(ip(probe)), same, "{cidr:?} {probe}");
                }
            }
        }
    }

    fn run(metadata: Value, client_ip: &str) -> Result<Decision, PolicyError> {
        let policy = IpFilter.compile(metadata.as_object().unwrap())?;
        let ctx = Context {
            client_ip: client_ip.to_owned(),
            ..Context::default()
        };
        Ok(policy.execute(&ctx)?.decision)
    }

    #[test]
    fn deny_wins_and_allow_lists_close() {
        let meta = json!({"allow": ["10.0.0.0/8", "2001:db8::/32"], "deny": ["10.6.6.0/24"]});
        assert_eq!(run(meta.clone(), "10.1.1.1"), Ok(Decision::Allow));
        assert_eq!(run(meta.clone(), "2001:db8::5"), Ok(Decision::Allow));
        assert_eq!(run(meta.clone(), "10.6.6.6"), Ok(Decision::Deny));
        assert_eq!(run(meta.clone(), "192.0.2.1"), Ok(Decision::Deny));
        assert_eq!(run(meta.clone(), ""), Ok(Decision::Deny));
        assert_eq!(run(meta, "not-an-ip"), Ok(Decision::Deny));
        let deny_only = json!({"deny": ["192.0.2.0/24"]});
        assert_eq!(run(deny_only.clone(), "192.0.2.9"), Ok(Decision::Deny));
        assert_eq!(run(deny_only, "198.51.100.1"), Ok(Decision::Allow));
    }

    #[test]
    fn bad_metadata_is_refused() {
        for meta in [
            json!({}),
            json!({"allow": []}),
            json!({"allow": ["10.0.0.1/8"]}),
            json!({"deny": ["nope"]}),
            json!({"allow": "10.0.0.0/8"}),
            json!({"other": 1}),
        ] {
            assert!(
                matches!(run(meta.clone(), "10.0.0.1"), Err(PolicyError::Metadata(_))),
                "{meta}"
            );
        }
    }
}
