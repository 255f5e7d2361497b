//! `follow` against a real tonic server implementing `observer.Observer` from the same protos:
//! over a Unix socket, over TCP with TLS and mutual TLS, through stream ends and errors, with
//! the server down at start, and shutdown. Every line must read back through
//! `flow::hubble::parse_line` with the fields it was built from.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, UNIX_EPOCH};

use flow::hubble::parse_line;
use hubble_client::proto::flow::{
    layer4, CiliumEventType, DropReason, Endpoint, Flow, FlowType, IcmPv6, Ip, IpVersion, Layer4,
    LostEvent, Policy, Tcp, TraceObservationPoint, TrafficDirection, Udp, Verdict, Workload,
};
use hubble_client::proto::observer::get_flows_response::ResponseTypes;
use hubble_client::proto::observer::observer_server::{Observer, ObserverServer};
use hubble_client::proto::observer::{GetFlowsRequest, GetFlowsResponse, NodeStatusEvent};
use hubble_client::{follow, Config, Error, Stats, Target, Tls};
use prost_types::Timestamp;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream, UnixListenerStream};
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic::{Request, Response, Status};

/// Seconds of 2026-07-31T10:41:02Z, the time of the policy-deny sample.
const T0: i64 = 1_785_494_462;

#[tokio::test]
async fn unix_socket_delivers_every_flow_in_order_and_lines_parse_back() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("hubble.sock");
    let mut script = vec![node_status()];
    for (i, f) in samples().into_iter().enumerate() {
        script.push(response(f));
        if i == 1 {
            script.push(lost(7));
        }
    }
    let hubble = FakeHubble::new(script, vec![]);
    let _server = serve_unix(hubble.clone(), &socket);

    let mut run = Run::start(config(Target::Unix(socket)));
    let lines = run.take(samples().len()).await;
    for (line, want) in lines.iter().zip(samples()) {
        assert_reads_back(line, &want);
    }
    // The wrapper keeps the response's node name and time, as `hubble observe` prints them.
    let text = std::str::from_utf8(&lines[1]).unwrap();
    assert!(
        text.ends_with(
            r#""node_name":"topgun/cilium-w1","time":"2026-07-31T10:41:03.202450754Z"}"#
        ),
        "{text}"
    );
    assert_eq!(run.stats.flows(), samples().len() as u64);
    assert_eq!(run.stats.lost_events(), 7);
    assert_eq!(run.stats.reconnects(), 0);
    let requests = hubble.requests();
    assert_eq!(requests.len(), 1);
    assert!(requests[0].follow);
    assert_eq!(requests[0].since, None);
    assert_eq!(requests[0].number, 0);
    run.shutdown().await.unwrap();
}

#[tokio::test]
async fn resumes_after_end_and_error_from_the_last_flow_time_without_repeating() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("hubble.sock");
    // Flows 2 and 3 share a timestamp: the resumed stream replays both.
    let times = [0, 1, 2, 2, 3, 4];
    let script: Vec<_> = times
        .iter()
        .enumerate()
        .map(|(i, dt)| {
            response(Flow {
                time: Some(ts(T0 + dt, 0)),
                uuid: format!("uuid-{i}"),
                ..samples()[i % 3].clone()
            })
        })
        .collect();
    let hubble = FakeHubble::new(script, vec![Plan::EndAfter(3), Plan::FailAfter(2)]);
    let _server = serve_unix(hubble.clone(), &socket);

    let mut run = Run::start(config(Target::Unix(socket)));
    let lines = run.take(times.len()).await;
    let uuids: Vec<String> = lines
        .iter()
        .map(|l| parse_line(l).unwrap().unwrap().uuid.unwrap().to_string())
        .collect();
    assert_eq!(
        uuids,
        (0..6).map(|i| format!("uuid-{i}")).collect::<Vec<_>>()
    );
    run.assert_quiet(Duration::from_millis(200)).await;

    let since: Vec<_> = hubble.requests().into_iter().map(|r| r.since).collect();
    assert_eq!(since, vec![None, Some(ts(T0 + 2, 0)), Some(ts(T0 + 2, 0))]);
    assert_eq!(run.stats.reconnects(), 2);
    // Second stream: uuid-2 again; third: uuid-2 and uuid-3 again.
    assert_eq!(run.stats.duplicates(), 3);
    assert_eq!(run.stats.flows(), 6);
    run.shutdown().await.unwrap();
}

#[tokio::test]
async fn retries_while_the_server_is_down_and_reads_once_it_is_up() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("hubble.sock");
    let mut run = Run::start(config(Target::Unix(socket.clone())));
    let deadline = Instant::now() + Duration::from_secs(5);
    while run.stats.reconnects() < 3 {
        assert!(Instant::now() < deadline, "no retries");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _server = serve_unix(
        FakeHubble::new(vec![response(samples()[1].clone())], vec![]),
        &socket,
    );
    let lines = run.take(1).await;
    assert_reads_back(&lines[0], &samples()[1]);
    run.shutdown().await.unwrap();
}

#[tokio::test]
async fn tls_and_mutual_tls_over_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let script = vec![
        response(samples()[0].clone()),
        response(samples()[1].clone()),
    ];

    // TLS: the server's certificate names hubble-relay.test, not 127.0.0.1.
    let hubble = FakeHubble::new(script.clone(), vec![]);
    let (addr, _server) = serve_tcp(hubble, Some(pki.server_tls(false))).await;
    let tls = Tls {
        ca: Some(pki.ca.clone()),
        server_name: Some("hubble-relay.test".into()),
        ..Tls::default()
    };
    let mut run = Run::start(config(tcp(&addr, Some(tls.clone()))));
    let lines = run.take(2).await;
    assert_reads_back(&lines[1], &samples()[1]);
    run.shutdown().await.unwrap();

    // Mutual TLS: without a client certificate the handshake fails and is retried.
    let hubble = FakeHubble::new(script, vec![]);
    let (addr, _server) = serve_tcp(hubble.clone(), Some(pki.server_tls(true))).await;
    let mut run = Run::start(config(tcp(&addr, Some(tls.clone()))));
    run.assert_quiet(Duration::from_millis(400)).await;
    assert!(run.stats.reconnects() >= 1);
    assert!(hubble.requests().is_empty(), "a request got through");
    run.shutdown().await.unwrap();

    let mtls = Tls {
        cert: Some(pki.client_cert.clone()),
        key: Some(pki.client_key.clone()),
        ..tls
    };
    let mut run = Run::start(config(tcp(&addr, Some(mtls))));
    let lines = run.take(2).await;
    assert_reads_back(&lines[0], &samples()[0]);
    assert_eq!(hubble.requests().len(), 1);
    run.shutdown().await.unwrap();
}

#[tokio::test]
async fn rotated_certificate_files_are_read_at_the_next_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (dir.path().join("old"), dir.path().join("new"));
    std::fs::create_dir_all(&old).unwrap();
    std::fs::create_dir_all(&new).unwrap();
    let (old, new) = (Pki::new(&old), Pki::new(&new));
    // The relay already has certificates of the new CA, and wants a client certificate.
    let hubble = FakeHubble::new(vec![response(samples()[0].clone())], vec![]);
    let (addr, _server) = serve_tcp(hubble.clone(), Some(new.server_tls(true))).await;
    let mtls = Tls {
        ca: Some(old.ca.clone()),
        cert: Some(old.client_cert.clone()),
        key: Some(old.client_key.clone()),
        server_name: Some("hubble-relay.test".into()),
    };
    let mut run = Run::start(config(tcp(&addr, Some(mtls))));
    run.assert_quiet(Duration::from_millis(300)).await;
    assert!(run.stats.reconnects() >= 1);
    assert!(hubble.requests().is_empty(), "the old CA was accepted");
    // The files are replaced in place (as a mounted Secret is): the next dial uses them.
    for (from, to) in [
        (&new.ca, &old.ca),
        (&new.client_cert, &old.client_cert),
        (&new.client_key, &old.client_key),
    ] {
        std::fs::copy(from, to).unwrap();
    }
    let lines = run.take(1).await;
    assert_reads_back(&lines[0], &samples()[0]);
    run.shutdown().await.unwrap();
}

#[tokio::test]
async fn plain_tcp_from_a_given_start_time() {
    // The fake honours `since`: the flow before it is not served.
    let script = vec![
        response(samples()[1].clone()),
        response(samples()[2].clone()),
    ];
    let hubble = FakeHubble::new(script, vec![]);
    let (addr, _server) = serve_tcp(hubble.clone(), None).await;
    let mut config = config(hubble_client::target_from_str(&addr).unwrap());
    config.since = Some(UNIX_EPOCH + Duration::from_secs(T0 as u64 + 1));
    let mut run = Run::start(config);
    let lines = run.take(1).await;
    assert_reads_back(&lines[0], &samples()[2]);
    run.assert_quiet(Duration::from_millis(100)).await;
    assert_eq!(hubble.requests()[0].since, Some(ts(T0 + 1, 0)));
    run.shutdown().await.unwrap();
}

#[tokio::test]
async fn unusable_tls_settings_are_reported_before_connecting_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let missing = dir.path().join("missing-ca.pem");
    let not_pem = dir.path().join("key.txt");
    std::fs::write(&not_pem, "not a key").unwrap();
    let run = |tls: Tls| async move {
        let (tx, _rx) = mpsc::channel(1);
        let config = config(tcp("127.0.0.1:4245", Some(tls)));
        follow(config, Arc::default(), tx, std::future::pending()).await
    };

    let err = run(Tls {
        ca: Some(missing.clone()),
        ..Tls::default()
    })
    .await
    .unwrap_err();
    assert!(matches!(err, Error::ReadFile { .. }), "{err}");
    assert!(
        err.to_string().contains(&missing.display().to_string()),
        "{err}"
    );

    let err = run(Tls {
        ca: Some(pki.ca.clone()),
        cert: Some(pki.client_cert.clone()),
        key: Some(not_pem.clone()),
        ..Tls::default()
    })
    .await
    .unwrap_err();
    assert!(matches!(err, Error::NotPem { .. }), "{err}");
    assert!(err.to_string().contains("client key"), "{err}");
    assert!(
        err.to_string().contains(&not_pem.display().to_string()),
        "{err}"
    );

    let err = run(Tls {
        ca: Some(pki.ca.clone()),
        cert: Some(pki.client_cert.clone()),
        ..Tls::default()
    })
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Tls { .. }), "{err}");
    assert!(err.to_string().contains("127.0.0.1:4245"), "{err}");
}

#[tokio::test]
async fn shutdown_and_a_closed_output_end_follow_promptly() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("hubble.sock");

    // While waiting to reconnect (long backoff, no server).
    let mut slow = config(Target::Unix(socket.clone()));
    slow.backoff_initial = Duration::from_secs(30);
    let run = Run::start(slow);
    tokio::time::sleep(Duration::from_millis(50)).await;
    run.shutdown().await.unwrap();

    // While the stream is open and quiet.
    let _server = serve_unix(
        FakeHubble::new(vec![response(samples()[0].clone())], vec![]),
        &socket,
    );
    let mut run = Run::start(config(Target::Unix(socket.clone())));
    run.take(1).await;
    run.shutdown().await.unwrap();

    // When nobody reads the lines any more.
    let run = Run::start(config(Target::Unix(socket)));
    drop(run.rx);
    let result = tokio::time::timeout(Duration::from_secs(2), run.task).await;
    result.expect("follow kept running").unwrap().unwrap();
}

// ---------------------------------------------------------------------------------------------
// The flows: shapes of the samples in shared/corpus/hubble.

fn ts(seconds: i64, nanos: i32) -> Timestamp {
    Timestamp { seconds, nanos }
}

fn policy(name: &str, kind: &str) -> Policy {
    Policy {
        name: name.into(),
        namespace: "net-lab".into(),
        labels: vec![format!("k8s:io.cilium.k8s.policy.name={name}")],
        revision: 6,
        kind: kind.into(),
    }
}

fn endpoint(identity: u32, app: &str, pod: &str, workload: &str) -> Endpoint {
    Endpoint {
        id: 423,
        identity,
        cluster_name: "topgun".into(),
        namespace: "net-lab".into(),
        labels: vec![format!("k8s:app={app}")],
        pod_name: pod.into(),
        workloads: vec![Workload {
            name: workload.into(),
            kind: "Deployment".into(),
        }],
    }
}

fn tcp_l4(source_port: u32, destination_port: u32) -> Option<Layer4> {
    Some(Layer4 {
        protocol: Some(layer4::Protocol::Tcp(Tcp {
            source_port,
            destination_port,
        })),
    })
}

fn ipv4(source: &str, destination: &str) -> Option<Ip> {
    Some(Ip {
        source: source.into(),
        destination: destination.into(),
        ip_version: IpVersion::IPv4 as i32,
        encrypted: false,
    })
}

/// A forwarded TCP policy verdict, a policy-denied drop naming its policy, a reply, a DNS query
/// allowed at ingress and an ICMPv6 drop with empty endpoints.
fn samples() -> Vec<Flow> {
    let tg = endpoint(
        24753,
        "traffic-generator",
        "traffic-generator-9b649846d-bxqfc",
        "traffic-generator",
    );
    let echo = endpoint(
        24075,
        "echo-server",
        "echo-server-65887564dc-jjw7k",
        "echo-server",
    );
    let forwarded = Flow {
        time: Some(ts(T0, 102_450_754)),
        uuid: "0b5b1e4e-4c59-4a8b-9d7e-1f6f3c1d9a01".into(),
        verdict: Verdict::Forwarded as i32,
        ip: ipv4("10.0.1.235", "10.0.0.21"),
        l4: tcp_l4(60524, 80),
        source: Some(tg.clone()),
        destination: Some(echo.clone()),
        r#type: FlowType::L3L4 as i32,
        node_name: "topgun/cilium-w1".into(),
        event_type: Some(CiliumEventType {
            r#type: 5,
            sub_type: 0,
        }),
        traffic_direction: TrafficDirection::Egress as i32,
        policy_match_type: 2,
        is_reply: Some(false),
        egress_allowed_by: vec![policy("allow-tg-to-echo", "CiliumNetworkPolicy")],
        ..Flow::default()
    };
    let denied = Flow {
        time: Some(ts(T0, 202_450_754)),
        uuid: "cd75b2ac-8dd3-486b-beca-3d17d9d56cff".into(),
        verdict: Verdict::Dropped as i32,
        drop_reason: 181,
        drop_reason_desc: DropReason::PolicyDeny as i32,
        policy_match_type: 1,
        egress_allowed_by: vec![],
        egress_denied_by: vec![policy("deny-tg-to-echo", "CiliumNetworkPolicy")],
        is_reply: None,
        ..forwarded.clone()
    };
    let reply = Flow {
        time: Some(ts(T0 + 1, 0)),
        uuid: "60e8fedd-6d98-49d8-b7f6-cb84455757ab".into(),
        verdict: Verdict::Forwarded as i32,
        ip: ipv4("10.0.1.13", "10.0.1.178"),
        l4: tcp_l4(8080, 60778),
        source: Some(Endpoint {
            labels: vec!["k8s:app=kapinger".into(), "k8s:server=good".into()],
            ..endpoint(
                39459,
                "kapinger",
                "kapinger-good-64cbf459c4-q4tr9",
                "kapinger-good",
            )
        }),
        destination: Some(endpoint(
            17221,
            "kapinger",
            "kapinger-bad-6b5b787dc9-ds4j4",
            "kapinger-bad",
        )),
        r#type: FlowType::L3L4 as i32,
        node_name: "aks-nodepool1-27013129-vmss000000".into(),
        reply: true,
        event_type: Some(CiliumEventType {
            r#type: 4,
            sub_type: 0,
        }),
        traffic_direction: TrafficDirection::Egress as i32,
        trace_observation_point: TraceObservationPoint::ToEndpoint as i32,
        is_reply: Some(true),
        ..Flow::default()
    };
    let dns = Flow {
        time: Some(ts(T0 + 2, 0)),
        uuid: "8a1d7c0e-2f7b-4c43-a6f9-5d2b8e3c4f10".into(),
        verdict: Verdict::Forwarded as i32,
        ip: ipv4("10.0.1.235", "10.96.0.10"),
        l4: Some(Layer4 {
            protocol: Some(layer4::Protocol::Udp(Udp {
                source_port: 41234,
                destination_port: 53,
            })),
        }),
        source: Some(tg),
        destination: Some(Endpoint {
            namespace: "kube-system".into(),
            pod_name: "coredns-5d78c9869d-abcde".into(),
            labels: vec!["k8s:k8s-app=kube-dns".into()],
            identity: 102_400,
            ..Endpoint::default()
        }),
        event_type: Some(CiliumEventType {
            r#type: 5,
            sub_type: 0,
        }),
        traffic_direction: TrafficDirection::Ingress as i32,
        ingress_allowed_by: vec![Policy {
            namespace: "kube-system".into(),
            ..policy("allow-dns", "NetworkPolicy")
        }],
        ..Flow::default()
    };
    let icmp_drop = Flow {
        time: Some(ts(T0 + 3, 517_394_084)),
        verdict: Verdict::Dropped as i32,
        ip: Some(Ip {
            source: "fe80::64d8:8aff:fe72:fc14".into(),
            destination: "ff02::2".into(),
            ip_version: IpVersion::IPv6 as i32,
            encrypted: false,
        }),
        l4: Some(Layer4 {
            protocol: Some(layer4::Protocol::IcmPv6(IcmPv6 {
                r#type: 133,
                code: 0,
            })),
        }),
        source: Some(Endpoint::default()),
        destination: Some(Endpoint::default()),
        node_name: "kind-kind/kind-worker".into(),
        drop_reason_desc: DropReason::InvalidSourceIp as i32,
        ..Flow::default()
    };
    vec![forwarded, denied, reply, dns, icmp_drop]
}

fn response(flow: Flow) -> GetFlowsResponse {
    let time = flow.time.map(|t| ts(t.seconds + 1, t.nanos));
    GetFlowsResponse {
        node_name: flow.node_name.clone(),
        time,
        response_types: Some(ResponseTypes::Flow(flow)),
    }
}

fn lost(n: u64) -> GetFlowsResponse {
    GetFlowsResponse {
        response_types: Some(ResponseTypes::LostEvents(LostEvent {
            source: 1,
            num_events_lost: n,
            cpu: Some(3),
        })),
        ..GetFlowsResponse::default()
    }
}

fn node_status() -> GetFlowsResponse {
    GetFlowsResponse {
        response_types: Some(ResponseTypes::NodeStatus(NodeStatusEvent {
            state_change: 1,
            node_names: vec!["topgun/cilium-w1".into()],
            message: String::new(),
        })),
        ..GetFlowsResponse::default()
    }
}

/// Reads `line` with the consumer's parser and compares it with the flow it was built from.
fn assert_reads_back(line: &[u8], want: &Flow) {
    let text = String::from_utf8_lossy(line);
    let got = parse_line(line)
        .unwrap_or_else(|e| panic!("{e}: {text}"))
        .unwrap_or_else(|| panic!("not a flow: {text}"));
    assert_eq!(got.verdict_code(), i64::from(want.verdict), "{text}");
    assert_eq!(
        got.direction_code(),
        i64::from(want.traffic_direction),
        "{text}"
    );
    // By name: `parse_line` numbers observation points its own way.
    let point = TraceObservationPoint::try_from(want.trace_observation_point).unwrap();
    assert_eq!(
        got.trace_observation_point.as_ref().map(|p| p.to_string()),
        (want.trace_observation_point != 0).then(|| point.as_str_name().to_string()),
        "{text}"
    );
    assert_eq!(
        got.is_reply(),
        want.is_reply.unwrap_or(want.reply),
        "{text}"
    );
    assert_eq!(
        got.is_policy_drop(),
        want.drop_reason_desc == DropReason::PolicyDeny as i32,
        "{text}"
    );
    assert_eq!(got.uuid.as_deref().unwrap_or(""), want.uuid, "{text}");
    assert_eq!(
        got.node_name.as_deref().unwrap_or(""),
        want.node_name,
        "{text}"
    );
    assert_eq!(
        got.event_kind().unwrap_or(0),
        want.event_type.map_or(0, |e| e.r#type as u64)
    );
    assert_eq!(
        got.policy_match_type.map_or(0, |u| u.0),
        u64::from(want.policy_match_type)
    );
    let want_ip = want.ip.clone().unwrap_or_default();
    let ip = got.ip.as_ref().expect("IP");
    assert_eq!(ip.source.as_deref(), Some(want_ip.source.as_str()));
    assert_eq!(
        ip.destination.as_deref(),
        Some(want_ip.destination.as_str())
    );

    let l4 = got.l4.as_ref().expect("l4");
    let ports = |p: &flow::hubble::Ports| {
        (
            p.source_port.map_or(0, |u| u.0 as u32),
            p.destination_port.map_or(0, |u| u.0 as u32),
        )
    };
    match want.l4.as_ref().and_then(|l| l.protocol.as_ref()) {
        Some(layer4::Protocol::Tcp(t)) => {
            assert_eq!(
                ports(l4.tcp.as_ref().unwrap()),
                (t.source_port, t.destination_port)
            )
        }
        Some(layer4::Protocol::Udp(u)) => {
            assert_eq!(
                ports(l4.udp.as_ref().unwrap()),
                (u.source_port, u.destination_port)
            )
        }
        Some(layer4::Protocol::IcmPv6(i)) => {
            let icmp = l4.icmpv6.as_ref().unwrap();
            assert_eq!(icmp.icmp_type.map_or(0, |u| u.0), u64::from(i.r#type));
        }
        other => panic!("unexpected l4 {other:?}"),
    }

    for (got, want) in [
        (&got.source, &want.source),
        (&got.destination, &want.destination),
    ] {
        let (got, want) = (got.as_ref().expect("endpoint"), want.as_ref().unwrap());
        assert_eq!(got.identity.map_or(0, |u| u.0), u64::from(want.identity));
        assert_eq!(got.id.map_or(0, |u| u.0), u64::from(want.id));
        assert_eq!(got.namespace.as_deref().unwrap_or(""), want.namespace);
        assert_eq!(got.pod_name.as_deref().unwrap_or(""), want.pod_name);
        assert_eq!(got.cluster_name.as_deref().unwrap_or(""), want.cluster_name);
        let labels: Vec<String> = got.labels().iter().map(|l| l.to_string()).collect();
        assert_eq!(labels, want.labels);
        let workloads: Vec<(String, String)> = got
            .workloads()
            .iter()
            .map(|w| {
                let s = |v: &Option<flow::hubble::Str>| v.as_deref().unwrap_or("").to_string();
                (s(&w.name), s(&w.kind))
            })
            .collect();
        let want_workloads: Vec<(String, String)> = want
            .workloads
            .iter()
            .map(|w| (w.name.clone(), w.kind.clone()))
            .collect();
        assert_eq!(workloads, want_workloads);
    }

    let names = |v: &Option<Vec<flow::hubble::PolicyName>>| -> Vec<(String, String, String)> {
        v.iter()
            .flatten()
            .map(|p| {
                let s = |v: &Option<flow::hubble::Str>| v.as_deref().unwrap_or("").to_string();
                (s(&p.name), s(&p.namespace), s(&p.kind))
            })
            .collect()
    };
    let want_names = |v: &[Policy]| -> Vec<(String, String, String)> {
        v.iter()
            .map(|p| (p.name.clone(), p.namespace.clone(), p.kind.clone()))
            .collect()
    };
    assert_eq!(
        names(&got.egress_allowed_by),
        want_names(&want.egress_allowed_by)
    );
    assert_eq!(
        names(&got.ingress_allowed_by),
        want_names(&want.ingress_allowed_by)
    );
    assert_eq!(
        names(&got.egress_denied_by),
        want_names(&want.egress_denied_by)
    );
    assert_eq!(
        names(&got.ingress_denied_by),
        want_names(&want.ingress_denied_by)
    );
}

// ---------------------------------------------------------------------------------------------
// The client under test.

fn config(target: Target) -> Config {
    Config {
        target,
        backoff_initial: Duration::from_millis(10),
        backoff_max: Duration::from_millis(40),
        ..Config::default()
    }
}

fn tcp(addr: &str, tls: Option<Tls>) -> Target {
    Target::Tcp {
        uri: addr.to_string(),
        tls,
    }
}

/// A `follow` task with its output, counters and shutdown switch.
struct Run {
    task: JoinHandle<Result<(), Error>>,
    rx: mpsc::Receiver<Vec<u8>>,
    stats: Arc<Stats>,
    stop: oneshot::Sender<()>,
}

impl Run {
    fn start(config: Config) -> Self {
        let (tx, rx) = mpsc::channel(64);
        let (stop, stopped) = oneshot::channel::<()>();
        let stats = Arc::new(Stats::default());
        let task = tokio::spawn(follow(config, stats.clone(), tx, async move {
            let _ = stopped.await;
        }));
        Run {
            task,
            rx,
            stats,
            stop,
        }
    }

    /// The next `n` lines (fails after 10 s).
    async fn take(&mut self, n: usize) -> Vec<Vec<u8>> {
        let mut lines = Vec::new();
        while lines.len() < n {
            let line = tokio::time::timeout(Duration::from_secs(10), self.rx.recv())
                .await
                .unwrap_or_else(|_| panic!("{} of {n} lines after 10 s", lines.len()))
                .expect("follow ended");
            lines.push(line);
        }
        lines
    }

    async fn assert_quiet(&mut self, time: Duration) {
        if let Ok(line) = tokio::time::timeout(time, self.rx.recv()).await {
            panic!(
                "unexpected line {:?}",
                line.map(|l| String::from_utf8_lossy(&l).into_owned())
            );
        }
    }

    /// Resolves the shutdown future; `follow` must return within a second.
    async fn shutdown(self) -> Result<(), Error> {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(1), self.task)
            .await
            .expect("follow did not stop")
            .expect("follow panicked")
    }
}

// ---------------------------------------------------------------------------------------------
// A fake Hubble: replays a script, honouring `since` (inclusive, as Hubble does), following
// each stream with the next plan (and, once plans run out, staying open like `follow`).

#[derive(Clone, Copy)]
enum Plan {
    /// End the stream after this many responses.
    EndAfter(usize),
    /// Fail the stream with UNAVAILABLE after this many responses.
    FailAfter(usize),
}

#[derive(Clone)]
struct FakeHubble(Arc<Inner>);

struct Inner {
    script: Vec<GetFlowsResponse>,
    plans: Mutex<VecDeque<Plan>>,
    requests: Mutex<Vec<GetFlowsRequest>>,
}

impl FakeHubble {
    fn new(script: Vec<GetFlowsResponse>, plans: Vec<Plan>) -> Self {
        FakeHubble(Arc::new(Inner {
            script,
            plans: Mutex::new(plans.into()),
            requests: Mutex::default(),
        }))
    }

    fn requests(&self) -> Vec<GetFlowsRequest> {
        self.0.requests.lock().unwrap().clone()
    }
}

#[tonic::async_trait]
impl Observer for FakeHubble {
    type GetFlowsStream = ReceiverStream<Result<GetFlowsResponse, Status>>;

    async fn get_flows(
        &self,
        request: Request<GetFlowsRequest>,
    ) -> Result<Response<Self::GetFlowsStream>, Status> {
        let request = request.into_inner();
        let since = request.since.map(|t| (t.seconds, t.nanos));
        self.0.requests.lock().unwrap().push(request);
        let plan = self.0.plans.lock().unwrap().pop_front();
        let replay: Vec<GetFlowsResponse> = self
            .0
            .script
            .iter()
            .filter(|r| match (&r.response_types, since) {
                (Some(ResponseTypes::Flow(f)), Some(since)) => {
                    f.time.is_some_and(|t| (t.seconds, t.nanos) >= since)
                }
                _ => true,
            })
            .cloned()
            .collect();
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            let limit = match plan {
                Some(Plan::EndAfter(n) | Plan::FailAfter(n)) => n,
                None => usize::MAX,
            };
            for r in replay.into_iter().take(limit) {
                if tx.send(Ok(r)).await.is_err() {
                    return;
                }
            }
            match plan {
                Some(Plan::EndAfter(_)) => {}
                Some(Plan::FailAfter(_)) => {
                    let _ = tx.send(Err(Status::unavailable("ring buffer reset"))).await;
                }
                None => tx.closed().await,
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// Serves on a Unix socket until the handle is dropped.
fn serve_unix(hubble: FakeHubble, path: &Path) -> ServerGuard {
    let listener = tokio::net::UnixListener::bind(path).unwrap();
    ServerGuard(tokio::spawn(async move {
        Server::builder()
            .add_service(ObserverServer::new(hubble))
            .serve_with_incoming(UnixListenerStream::new(listener))
            .await
            .unwrap();
    }))
}

/// Serves on 127.0.0.1 (port chosen by the system) until the handle is dropped.
async fn serve_tcp(hubble: FakeHubble, tls: Option<ServerTlsConfig>) -> (String, ServerGuard) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let mut builder = Server::builder();
    if let Some(tls) = tls {
        builder = builder.tls_config(tls).unwrap();
    }
    let server = builder
        .add_service(ObserverServer::new(hubble))
        .serve_with_incoming(TcpListenerStream::new(listener));
    (
        addr,
        ServerGuard(tokio::spawn(async move { server.await.unwrap() })),
    )
}

struct ServerGuard(JoinHandle<()>);

impl Drop for ServerGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A CA, a server certificate for `hubble-relay.test` and a client certificate, as PEM files.
struct Pki {
    ca: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
    ca_pem: String,
    server_cert: String,
    server_key: String,
}

impl Pki {
    fn new(dir: &Path) -> Self {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf = |name: &str| {
            let key = KeyPair::generate().unwrap();
            let cert = CertificateParams::new(vec![name.to_string()])
                .unwrap()
                .signed_by(&key, &issuer)
                .unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let (server_cert, server_key) = leaf("hubble-relay.test");
        let (client_cert, client_key) = leaf("policyhub-collector.test");
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        Pki {
            ca: write("ca.pem", &ca_cert.pem()),
            client_cert: write("client.pem", &client_cert),
            client_key: write("client-key.pem", &client_key),
            ca_pem: ca_cert.pem(),
            server_cert,
            server_key,
        }
    }

    fn server_tls(&self, require_client_cert: bool) -> ServerTlsConfig {
        let config = ServerTlsConfig::new()
            .identity(Identity::from_pem(&self.server_cert, &self.server_key));
        if require_client_cert {
            config.client_ca_root(Certificate::from_pem(&self.ca_pem))
        } else {
            config
        }
    }
}
