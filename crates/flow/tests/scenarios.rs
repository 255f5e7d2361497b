//! End-to-end validation over scenarios whose counts are known by construction: hand-written
//! flows over examples/shop, and synthesised flows with every discrepancy class.

use std::io::Write;
use std::path::Path;

use flow::synth;
use flowtypes::{Discrepancy, Verdict};
use netpol::{Bundle, Engine, Options};

fn shop() -> Engine {
    let mut b = Bundle::default();
    b.load_path(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/shop"))
        .unwrap();
    Engine::new(b.inventory, b.policies, Options::default())
}

fn pod(engine: &Engine, workload: &str) -> (String, String) {
    let p = engine
        .inventory()
        .pods
        .iter()
        .find(|p| p.workload.name == workload)
        .unwrap();
    (p.namespace.clone(), p.name.clone())
}

fn ep(engine: &Engine, workload: &str) -> String {
    let (ns, name) = pod(engine, workload);
    format!(r#"{{"namespace":"{ns}","pod_name":"{name}"}}"#)
}

/// A wrapped flow line with the given endpoints and extra flow fields.
fn line(src: &str, dst: &str, l4: &str, extra: &str) -> String {
    format!(
        r#"{{"flow":{{"time":"2025-03-14T09:10:00Z","source":{src},"destination":{dst},"l4":{l4}{extra}}},"node_name":"n1"}}"#
    )
}

const TCP: fn(u16) -> String =
    |p| format!(r#"{{"TCP":{{"source_port":40000,"destination_port":{p}}}}}"#);

fn hand_written(engine: &Engine) -> String {
    let (web, api, db) = (ep(engine, "web"), ep(engine, "api"), ep(engine, "db"));
    let (prom, dns) = (ep(engine, "prometheus"), ep(engine, "coredns"));
    let udp53 = r#"{"UDP":{"source_port":40000,"destination_port":53}}"#;
    let world = r#"{"identity":2,"labels":["reserved:world"]}"#;
    let fwd_to_ep =
        r#","verdict":"FORWARDED","event_type":{"type":4},"trace_observation_point":"TO_ENDPOINT""#;
    let (_, db_pod) = pod(engine, "db");
    let (_, web_pod) = pod(engine, "web");
    [
        // 1-3: allowed, delivered; policy verdicts naming the right and a wrong policy.
        line(&web, &api, &TCP(9000), fwd_to_ep),
        line(&web, &api, &TCP(9000), r#","verdict":"FORWARDED","event_type":{"type":5},"traffic_direction":"INGRESS","ingress_allowed_by":[{"name":"api","namespace":"shop","kind":"NetworkPolicy"}]"#),
        line(&web, &api, &TCP(9000), r#","verdict":"FORWARDED","event_type":{"type":5},"traffic_direction":"INGRESS","ingress_allowed_by":[{"name":"other","namespace":"shop"}]"#),
        // 4: blocked by the model, delivered: enforcement gap.
        line(&web, &db, &TCP(5432), fwd_to_ep),
        // 5: blocked, dropped at egress.
        line(&web, &db, &TCP(5432), r#","verdict":"DROPPED","drop_reason_desc":"POLICY_DENIED","event_type":{"type":1},"traffic_direction":"EGRESS""#),
        // 6: allowed, dropped by policy: unexpected drop.
        line(&prom, &api, &TCP(9090), r#","verdict":"DROPPED","drop_reason":133,"event_type":{"type":1},"traffic_direction":"INGRESS""#),
        // 7-8: no policy: leaving the source (unobserved), then delivered.
        line(&prom, &dns, udp53, r#","verdict":"FORWARDED","event_type":{"type":4},"trace_observation_point":"FROM_ENDPOINT""#),
        line(&prom, &dns, udp53, fwd_to_ep),
        // 9: a reply.
        line(&api, &web, &TCP(40000), r#","verdict":"FORWARDED","is_reply":true"#),
        // 10: to the world, blocked by web's egress, yet it left the node.
        line(&web, world, &TCP(443), r#","IP":{"source":"10.1.1.1","destination":"1.2.3.4"},"verdict":"FORWARDED","event_type":{"type":4},"trace_observation_point":"TO_STACK""#),
        // 11: a bare flow in lowerCamelCase with enum numbers: blocked at ingress, dropped.
        format!(r#"{{"time":"2025-03-14T10:00:00Z","verdict":2,"dropReasonDesc":"POLICY_DENIED","trafficDirection":1,"eventType":{{"type":"1"}},"source":{{"namespace":"shop","podName":"{web_pod}"}},"destination":{{"namespace":"shop","podName":"{db_pod}"}},"l4":{{"TCP":{{"destinationPort":"5432"}}}}}}"#),
        // 12: corrupt.
        "{not json".to_string(),
        // 13: a pod the snapshot does not have.
        line(r#"{"namespace":"shop","pod_name":"ghost"}"#, &api, &TCP(9000), fwd_to_ep),
        // 14: an L7 record.
        line(&web, &api, &TCP(9000), r#","verdict":"FORWARDED","l7":{"http":{"code":200}}"#),
        // 15: blank.
        "  ".to_string(),
    ]
    .join("\n")
}

#[test]
fn hand_written_flows_have_the_counts_of_their_construction() {
    let engine = shop();
    let input = hand_written(&engine);
    let p = flow::validate(&engine, flow::Config::default(), input.as_bytes()).unwrap();
    let t = p.totals();
    assert_eq!(
        (t.allowed_count, t.blocked_count, t.no_policy_count),
        (4, 4, 2)
    );
    let d = t.discrepancies;
    assert_eq!(
        (
            d.matched,
            d.enforcement_gap,
            d.unexpected_drop,
            d.unobserved,
            d.policy_name_mismatch
        ),
        (6, 2, 1, 1, 1)
    );
    let i = &p.input;
    assert_eq!((i.lines, i.flows, i.judged, i.replies), (15, 13, 10, 1));
    assert_eq!((i.unresolved, i.not_l3l4, i.corrupt), (1, 1, 1));
    assert_eq!(i.corrupt_lines[0].line, 12);
    // Two hours: 09:00 and 10:00 (line 11).
    let hours: Vec<&str> = p.summaries.iter().map(|s| s.hour.as_str()).collect();
    assert_eq!(hours, ["2025-03-14T09:00:00Z", "2025-03-14T10:00:00Z"]);
    let nine = &p.summaries[0];
    assert!(nine.top_exact);
    let gap = &nine.coverage_gaps[0];
    assert_eq!(
        (
            gap.source.as_str(),
            gap.destination.as_str(),
            gap.protocol.as_str(),
            gap.port,
            gap.count
        ),
        ("monitoring/prometheus", "kube-system/coredns", "UDP", 53, 2)
    );
    let blocked = &nine.top_blocked[0];
    assert_eq!(
        (
            blocked.source.as_str(),
            blocked.destination.as_str(),
            blocked.count
        ),
        ("shop/web", "shop/db", 2)
    );
    assert!(
        blocked.policy.starts_with("NetworkPolicy shop/"),
        "{}",
        blocked.policy
    );
    assert!(nine.top_blocked.iter().any(|b| b.destination == "1.2.3.4"));
    // The sample holds each class, with the model's reason.
    let gap_event = p
        .events
        .iter()
        .find(|e| e.discrepancy == Discrepancy::EnforcementGap && e.dst_port == 5432)
        .unwrap();
    assert_eq!(gap_event.line, Some(4));
    assert_eq!(gap_event.verdict, Verdict::Blocked);
    assert!(gap_event.reason.as_deref().is_some_and(|r| !r.is_empty()));
    assert_eq!(gap_event.observed.as_deref(), Some("FORWARDED"));
    let drop = p
        .events
        .iter()
        .find(|e| e.discrepancy == Discrepancy::UnexpectedDrop)
        .unwrap();
    assert_eq!(drop.src_namespace, "monitoring");
    assert_eq!(drop.traffic_direction.as_deref(), Some("INGRESS"));
}

#[test]
fn strict_mode_stops_at_the_first_corrupt_line() {
    let engine = shop();
    let input = hand_written(&engine);
    let config = flow::Config {
        strict: true,
        ..flow::Config::default()
    };
    match flow::validate(&engine, config, input.as_bytes()) {
        Err(flow::Error::Corrupt { line, .. }) => assert_eq!(line, 12),
        other => panic!("{other:?}"),
    }
}

fn synth_and_validate(cfg: &synth::Config) -> (synth::Expected, flowtypes::ValidationPayload) {
    let engine = shop();
    let mut out = Vec::new();
    let expected = synth::synth(&engine, cfg, &mut out).unwrap();
    let p = flow::validate(&engine, flow::Config::default(), out.as_slice()).unwrap();
    (expected, p)
}

#[test]
fn synthesised_flows_validate_to_their_expected_counts() {
    for (seed, gap, drop) in [(1, 0.0, 0.0), (2, 0.05, 0.03), (3, 0.2, 0.1)] {
        let cfg = synth::Config {
            count: 5000,
            seed,
            gap_share: gap,
            drop_share: drop,
            hours: 5,
            ..synth::Config::default()
        };
        let (expected, p) = synth_and_validate(&cfg);
        assert_eq!(expected.lines, 5000);
        assert_eq!(p.input.lines, 5000);
        assert_eq!(p.input.corrupt, 0);
        assert_eq!(p.input.unresolved, 0);
        assert_eq!(p.input.replies, expected.replies);
        assert_eq!(p.totals(), expected.counts, "seed {seed}");
        assert_eq!(p.summaries.len(), 5);
        let d = expected.counts.discrepancies;
        assert!(d.matched > 0 && d.unobserved > 0);
        assert_eq!(d.policy_name_mismatch, 0);
        assert!(
            expected.counts.allowed_count > 0
                && expected.counts.blocked_count > 0
                && expected.counts.no_policy_count > 0
        );
        if gap > 0.0 {
            assert!(d.enforcement_gap > 0 && d.unexpected_drop > 0);
        } else {
            assert_eq!((d.enforcement_gap, d.unexpected_drop), (0, 0));
        }
    }
}

#[test]
fn synthesis_is_deterministic_and_gzip_reads_the_same() {
    let engine = shop();
    let cfg = synth::Config {
        count: 2000,
        seed: 9,
        gap_share: 0.1,
        ..synth::Config::default()
    };
    let (mut a, mut b) = (Vec::new(), Vec::new());
    synth::synth(&engine, &cfg, &mut a).unwrap();
    let expected = synth::synth(&engine, &cfg, &mut b).unwrap();
    assert_eq!(a, b);

    let path = std::env::temp_dir().join(format!(
        "policyhub-flow-test-{}.jsonl.gz",
        std::process::id()
    ));
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&path).unwrap(),
        flate2::Compression::fast(),
    );
    gz.write_all(&a).unwrap();
    gz.finish().unwrap();
    let input = flow::reader::open(path.to_str().unwrap()).unwrap();
    let p = flow::validate(&engine, flow::Config::default(), input).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(p.totals(), expected.counts);
    assert_eq!(p.input.lines, 2000);
}

#[test]
fn small_counters_make_top_lists_approximate_within_their_bound() {
    let engine = shop();
    let cfg = synth::Config {
        count: 20_000,
        seed: 4,
        no_policy_share: 0.6,
        hours: 1,
        ..synth::Config::default()
    };
    let mut out = Vec::new();
    synth::synth(&engine, &cfg, &mut out).unwrap();
    let exact = flow::validate(
        &engine,
        flow::Config {
            top_n: 1000,
            ..flow::Config::default()
        },
        out.as_slice(),
    )
    .unwrap();
    let approx = flow::validate(
        &engine,
        flow::Config {
            counters: 4,
            top_n: 4,
            ..flow::Config::default()
        },
        out.as_slice(),
    )
    .unwrap();
    let (e, a) = (&exact.summaries[0], &approx.summaries[0]);
    assert!(e.top_exact);
    let n = e.counts.no_policy_count;
    for g in &a.coverage_gaps {
        let truth = e
            .coverage_gaps
            .iter()
            .find(|x| {
                (&x.source, &x.destination, &x.protocol, x.port)
                    == (&g.source, &g.destination, &g.protocol, g.port)
            })
            .map_or(0, |x| x.count);
        assert!(g.count >= truth && g.count - g.count_error <= truth);
        assert!(g.count_error * 4 <= n);
    }
}

#[test]
fn html_report_is_self_contained() {
    let (_, p) = synth_and_validate(&synth::Config {
        count: 3000,
        gap_share: 0.1,
        drop_share: 0.1,
        ..synth::Config::default()
    });
    let html = flow::html::render(&p);
    assert!(html.starts_with("<!DOCTYPE html>"));
    for needle in [
        "<svg",
        "Top coverage gaps",
        "Top blocked flows",
        "ENFORCEMENT_GAP",
        "Hourly timeline",
    ] {
        assert!(html.contains(needle), "{needle}");
    }
    assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("<script"));
}
