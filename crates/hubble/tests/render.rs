//! `flow_to_json` over arbitrary flows: the line always reads back through
//! `flow::hubble::parse_line` with the same values (enums by number, strings with any
//! characters, out-of-range times left out).

use flow::hubble::{parse_line, Str};
use hubble_client::flow_to_json;
use hubble_client::proto::flow::{
    layer4, CiliumEventType, Endpoint, Flow, Ip, Layer4, Policy, Tcp, Udp, Workload,
};
use hubble_client::proto::observer::get_flows_response::ResponseTypes;
use hubble_client::proto::observer::GetFlowsResponse;
use proptest::prelude::*;
use prost_types::Timestamp;

fn endpoint() -> impl Strategy<Value = Endpoint> {
    (
        any::<u32>(),
        any::<u32>(),
        any::<String>(),
        any::<String>(),
        prop::collection::vec(any::<String>(), 0..3),
        any::<String>(),
        prop::collection::vec((any::<String>(), any::<String>()), 0..2),
    )
        .prop_map(
            |(id, identity, cluster_name, namespace, labels, pod_name, w)| Endpoint {
                id,
                identity,
                cluster_name,
                namespace,
                labels,
                pod_name,
                workloads: w
                    .into_iter()
                    .map(|(name, kind)| Workload { name, kind })
                    .collect(),
            },
        )
}

fn policies() -> impl Strategy<Value = Vec<Policy>> {
    prop::collection::vec(
        (
            any::<String>(),
            any::<String>(),
            any::<u64>(),
            any::<String>(),
        )
            .prop_map(|(name, namespace, revision, kind)| Policy {
                name,
                namespace,
                labels: vec![],
                revision,
                kind,
            }),
        0..2,
    )
}

prop_compose! {
    fn flows()(
        time in prop::option::of((any::<i64>(), any::<i32>())),
        uuid in any::<String>(),
        enums in any::<[i32; 5]>(),
        drop_reason in any::<u32>(),
        ip in (any::<String>(), any::<String>()),
        ports in (any::<bool>(), any::<u32>(), any::<u32>()),
        ends in (endpoint(), endpoint()),
        event in prop::option::of((any::<i32>(), any::<i32>())),
        reply in (any::<bool>(), prop::option::of(any::<bool>())),
        policy_match_type in any::<u32>(),
        by in (policies(), policies(), policies(), policies()),
    ) -> Flow {
        let (tcp, source_port, destination_port) = ports;
        let protocol = if tcp {
            layer4::Protocol::Tcp(Tcp { source_port, destination_port })
        } else {
            layer4::Protocol::Udp(Udp { source_port, destination_port })
        };
        Flow {
            time: time.map(|(seconds, nanos)| Timestamp { seconds, nanos }),
            uuid,
            verdict: enums[0],
            drop_reason,
            ip: Some(Ip { source: ip.0, destination: ip.1, ip_version: enums[1], encrypted: false }),
            l4: Some(Layer4 { protocol: Some(protocol) }),
            source: Some(ends.0),
            destination: Some(ends.1),
            r#type: enums[2],
            event_type: event.map(|(r#type, sub_type)| CiliumEventType { r#type, sub_type }),
            reply: reply.0,
            is_reply: reply.1,
            traffic_direction: enums[3],
            drop_reason_desc: enums[4],
            policy_match_type,
            egress_allowed_by: by.0,
            ingress_allowed_by: by.1,
            egress_denied_by: by.2,
            ingress_denied_by: by.3,
            ..Flow::default()
        }
    }
}

fn text(s: &Option<Str<'_>>) -> String {
    s.as_deref().unwrap_or("").to_string()
}

proptest! {
    #[test]
    fn every_rendered_flow_reads_back(want in flows()) {
        let resp = GetFlowsResponse {
            response_types: Some(ResponseTypes::Flow(want.clone())),
            ..GetFlowsResponse::default()
        };
        let line = flow_to_json(&resp).unwrap();
        let got = parse_line(&line).unwrap().unwrap();
        prop_assert_eq!(got.verdict_code(), i64::from(want.verdict));
        prop_assert_eq!(got.direction_code(), i64::from(want.traffic_direction));
        prop_assert_eq!(got.is_reply(), want.is_reply.unwrap_or(want.reply));
        prop_assert_eq!(text(&got.uuid), want.uuid.clone());
        prop_assert_eq!(got.drop_reason.map_or(0, |u| u.0), u64::from(want.drop_reason));
        prop_assert_eq!(got.policy_match_type.map_or(0, |u| u.0), u64::from(want.policy_match_type));
        let in_range = want.time.is_some_and(|t| {
            (-62_135_596_800..=253_402_300_799).contains(&t.seconds)
                && (0..1_000_000_000).contains(&t.nanos)
        });
        prop_assert_eq!(got.time.is_some(), in_range);
        let kind = want.event_type.map_or(0, |e| u64::try_from(e.r#type).unwrap_or(0));
        prop_assert_eq!(got.event_kind().unwrap_or(0), kind);

        let ip = got.ip.as_ref().unwrap();
        let want_ip = want.ip.as_ref().unwrap();
        prop_assert_eq!(text(&ip.source), want_ip.source.clone());
        prop_assert_eq!(text(&ip.destination), want_ip.destination.clone());
        let l4 = got.l4.as_ref().unwrap();
        let (ports, want_ports) = match want.l4.as_ref().unwrap().protocol.as_ref().unwrap() {
            layer4::Protocol::Tcp(t) => (l4.tcp.as_ref(), (t.source_port, t.destination_port)),
            layer4::Protocol::Udp(u) => (l4.udp.as_ref(), (u.source_port, u.destination_port)),
            _ => unreachable!(),
        };
        let ports = ports.unwrap();
        prop_assert_eq!(ports.source_port.map_or(0, |u| u.0), u64::from(want_ports.0));
        prop_assert_eq!(ports.destination_port.map_or(0, |u| u.0), u64::from(want_ports.1));

        for (got, want) in [(&got.source, &want.source), (&got.destination, &want.destination)] {
            let (got, want) = (got.as_ref().unwrap(), want.as_ref().unwrap());
            prop_assert_eq!(got.id.map_or(0, |u| u.0), u64::from(want.id));
            prop_assert_eq!(got.identity.map_or(0, |u| u.0), u64::from(want.identity));
            prop_assert_eq!(text(&got.cluster_name), want.cluster_name.clone());
            prop_assert_eq!(text(&got.namespace), want.namespace.clone());
            prop_assert_eq!(text(&got.pod_name), want.pod_name.clone());
            let labels: Vec<String> = got.labels().iter().map(|l| l.to_string()).collect();
            prop_assert_eq!(&labels, &want.labels);
            let workloads: Vec<(String, String)> =
                got.workloads().iter().map(|w| (text(&w.name), text(&w.kind))).collect();
            let want_workloads: Vec<(String, String)> =
                want.workloads.iter().map(|w| (w.name.clone(), w.kind.clone())).collect();
            prop_assert_eq!(workloads, want_workloads);
        }
        let lists = [
            (&got.egress_allowed_by, &want.egress_allowed_by),
            (&got.ingress_allowed_by, &want.ingress_allowed_by),
            (&got.egress_denied_by, &want.egress_denied_by),
            (&got.ingress_denied_by, &want.ingress_denied_by),
        ];
        for (got, want) in lists {
            let got: Vec<_> = got
                .iter()
                .flatten()
                .map(|p| (text(&p.name), text(&p.namespace), text(&p.kind)))
                .collect();
            let want: Vec<_> = want
                .iter()
                .map(|p| (p.name.clone(), p.namespace.clone(), p.kind.clone()))
                .collect();
            prop_assert_eq!(got, want);
        }
    }
}
