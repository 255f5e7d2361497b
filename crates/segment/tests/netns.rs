//! Proof with real packets: every PMOVES service becomes a network namespace on one bridge,
//! the connectivity the generated (service mode) policies allow becomes nftables rules in
//! those namespaces, and real TCP connections show that documented edges connect and every
//! other listening port is dropped. Needs root, `ip` and `nft` (scripts/setup.d/netns.sh);
//! in CI (`CI=true`) a missing prerequisite fails the test instead of skipping it.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use netpol::{Endpoint, Protocol};
use segment::generate::generate;
use segment::lab::{self, Lab};
use segment::{Catalog, Format, Mode, Node};

#[test]
fn generated_policies_hold_with_real_packets() {
    if !lab::prerequisites("netns test") {
        return;
    }
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/pmoves/services.yaml"),
    )
    .unwrap();
    let catalog = Catalog::parse(&text, "services.yaml", false).unwrap();
    let out = generate(&catalog, Mode::Service, Format::Kubernetes).unwrap();
    let engine = segment::verify::engine(&catalog, &out.policies).unwrap();
    let services: Vec<&segment::catalog::Service> = catalog.services.values().collect();
    let ip = |i: usize| IpAddr::V4(Ipv4Addr::new(10, 213, 0, 10 + i as u8));
    let pod = |name: &str| {
        Endpoint::Pod(
            engine
                .inventory()
                .pod_index(&format!("{}/{name}", catalog.namespace))
                .unwrap(),
        )
    };

    let mut lab = Lab::new("phs").unwrap();
    let mut hosts = Vec::new();
    for (i, s) in services.iter().enumerate() {
        let ns = lab.add_host(ip(i), 24).unwrap();
        // nftables from the evaluated connectivity of this service with every other one.
        let me = pod(&s.name);
        let (mut inbound, mut outbound) = (Vec::new(), Vec::new());
        for (j, peer) in services.iter().enumerate() {
            if i != j {
                let other = pod(&peer.name);
                inbound.push((ip(j), engine.allowed_ports(&other, &me).l4()));
                outbound.push((ip(j), engine.allowed_ports(&me, &other).l4()));
            }
        }
        lab.nft(&ns, &segment::nft::ruleset(&inbound, &outbound))
            .unwrap();
        if !s.ports.is_empty() {
            let listeners: Vec<String> = s.ports.iter().map(|(_, p)| format!("tcp:{p}")).collect();
            lab.serve(&ns, &listeners)
                .unwrap_or_else(|e| panic!("server for {}: {e}", s.name));
        }
        hosts.push(ns);
    }

    // Probe every listening port of every other service from every service, in parallel.
    let mut probes = Vec::new();
    for (i, s) in services.iter().enumerate() {
        let targets: Vec<(usize, u16)> = services
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .flat_map(|(j, t)| {
                t.ports
                    .iter()
                    .filter(|(p, _)| *p == Protocol::Tcp)
                    .map(move |(_, port)| (j, *port))
            })
            .collect();
        let list: Vec<(&str, IpAddr, u16)> =
            targets.iter().map(|&(j, p)| ("tcp", ip(j), p)).collect();
        let child = lab.probe(&hosts[i], &list, 2.0).unwrap();
        probes.push((s.name.clone(), targets, child));
    }
    let documented = |src: &str, dst: &str, port: u16| {
        catalog.edges.iter().any(|e| {
            e.src == Node::Service(src.into())
                && e.dst == Node::Service(dst.into())
                && (e.ports.is_empty() || e.ports.contains(&(Protocol::Tcp, port)))
        })
    };
    let (mut connected, mut dropped, mut wrong) = (0, 0, Vec::new());
    for (src, targets, child) in probes {
        let results = lab::probe_results(child).unwrap_or_else(|e| panic!("probe of {src}: {e}"));
        for (&(j, port), ok) in targets.iter().zip(results) {
            let dst = &services[j].name;
            let model = engine
                .allowed_ports(&pod(&src), &pod(dst))
                .contains(Protocol::Tcp, port);
            let want = documented(&src, dst, port);
            assert_eq!(
                model, want,
                "model and matrix disagree on {src} -> {dst}:{port}"
            );
            if ok != want {
                wrong.push(format!(
                    "{src} -> {dst}:{port}: connected={ok}, documented={want}"
                ));
            }
            if ok {
                connected += 1;
            } else {
                dropped += 1;
            }
        }
    }
    eprintln!("real TCP: {connected} documented connections succeeded, {dropped} other listening ports dropped");
    assert!(
        wrong.is_empty(),
        "{} probes disagree:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert!(
        connected >= 50,
        "too few documented edges exercised: {connected}"
    );
    assert!(dropped > connected);
}
