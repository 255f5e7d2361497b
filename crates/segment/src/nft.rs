//! Evaluated connectivity → nftables rules for one host (a network namespace standing for a
//! pod): default drop in both directions, replies allowed, and one accept per allowed peer
//! and port set. Used to prove generated policies with real packets.

use std::fmt::Write;
use std::net::IpAddr;

use netpol::{PortSet, Protocol};

/// The nftables ruleset (for `nft -f -`) of a host that may receive `inbound` (peer address,
/// ports on this host) and open `outbound` (peer address, ports on the peer).
pub fn ruleset(inbound: &[(IpAddr, PortSet)], outbound: &[(IpAddr, PortSet)]) -> String {
    let mut out =
        String::from("table inet policyhub\ndelete table inet policyhub\ntable inet policyhub {\n");
    for (chain, hook, dir, peers) in [
        ("input", "input", "saddr", inbound),
        ("output", "output", "daddr", outbound),
    ] {
        let _ = writeln!(
            out,
            "  chain {chain} {{\n    type filter hook {hook} priority 0; policy drop;"
        );
        out.push_str("    ct state established,related accept\n");
        let _ = writeln!(
            out,
            "    {} \"lo\" accept",
            if hook == "input" { "iif" } else { "oif" }
        );
        for (ip, ports) in peers {
            let family = if ip.is_ipv4() { "ip" } else { "ip6" };
            for proto in Protocol::ALL {
                let ranges = ports.get(proto).ranges();
                if ranges.is_empty() {
                    continue;
                }
                let set: Vec<String> = ranges
                    .iter()
                    .map(|&(lo, hi)| {
                        if lo == hi {
                            lo.to_string()
                        } else {
                            format!("{lo}-{hi}")
                        }
                    })
                    .collect();
                let matcher = match proto {
                    Protocol::Icmp if ip.is_ipv4() => "icmp type".to_string(),
                    Protocol::Icmp => "icmpv6 type".to_string(),
                    other => format!("{} dport", other.as_str().to_ascii_lowercase()),
                };
                let _ = writeln!(
                    out,
                    "    {family} {dir} {ip} {matcher} {{ {} }} accept",
                    set.join(", ")
                );
            }
        }
        out.push_str("  }\n");
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_accept_exactly_the_allowed_ports() {
        let a: IpAddr = "10.0.0.2".parse().unwrap();
        let mut ports = PortSet::ports(Protocol::Tcp, 8000, 8100);
        ports.insert_all(&PortSet::single(Protocol::Udp, 53));
        let text = ruleset(&[(a, ports)], &[]);
        assert!(
            text.contains("ip saddr 10.0.0.2 tcp dport { 8000-8100 } accept"),
            "{text}"
        );
        assert!(
            text.contains("ip saddr 10.0.0.2 udp dport { 53 } accept"),
            "{text}"
        );
        assert!(text.contains("policy drop"));
        // the output chain has no accept beyond replies and loopback
        let output = text.split("chain output").nth(1).unwrap();
        assert!(!output.contains("daddr"), "{output}");
    }
}
