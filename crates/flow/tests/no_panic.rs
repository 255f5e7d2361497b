//! The reader never panics, whatever the line.

use netpol::{Bundle, Engine, Options};
use proptest::prelude::*;

fn engine() -> Engine {
    let mut b = Bundle::default();
    b.load_path(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/shop"))
        .unwrap();
    Engine::new(b.inventory, b.policies, Options::default())
}

/// JSON-ish fragments built from the keys and values the reader looks at.
fn flowish() -> impl Strategy<Value = String> {
    let key = prop::sample::select(vec![
        "flow",
        "verdict",
        "drop_reason",
        "drop_reason_desc",
        "dropReasonDesc",
        "IP",
        "l4",
        "TCP",
        "UDP",
        "ICMPv4",
        "source",
        "destination",
        "namespace",
        "pod_name",
        "labels",
        "workloads",
        "name",
        "identity",
        "event_type",
        "type",
        "traffic_direction",
        "trace_observation_point",
        "is_reply",
        "ingress_allowed_by",
        "egress_denied_by",
        "destination_port",
        "time",
        "l7",
    ]);
    let leaf = prop_oneof![
        Just("null".to_string()),
        Just("true".to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        "\"[a-zA-Z0-9:=_./-]{0,12}\"",
        Just("\"2025-03-14T09:00:00Z\"".to_string()),
        Just("\"POLICY_DENIED\"".to_string()),
        Just("\"10.0.0.1\"".to_string()),
        Just("[\"reserved:world\",\"k8s:app=web\"]".to_string()),
    ];
    leaf.prop_recursive(4, 32, 6, move |inner| {
        prop_oneof![
            prop::collection::vec((key.clone(), inner.clone()), 0..6).prop_map(|kv| {
                let body: Vec<String> = kv
                    .into_iter()
                    .map(|(k, v)| format!("\"{k}\":{v}"))
                    .collect();
                format!("{{{}}}", body.join(","))
            }),
            prop::collection::vec(inner, 0..4).prop_map(|v| format!("[{}]", v.join(","))),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn arbitrary_bytes_never_panic(lines in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 0..8)) {
        let engine = engine();
        let mut v = flow::Validator::new(&engine, flow::Config::default());
        for (i, l) in lines.iter().enumerate() {
            let _ = v.push_line(i as u64 + 1, l);
        }
        let _ = v.finish();
    }

    #[test]
    fn flow_shaped_lines_never_panic(lines in prop::collection::vec(flowish(), 1..6)) {
        let engine = engine();
        let mut v = flow::Validator::new(&engine, flow::Config::default());
        for (i, l) in lines.iter().enumerate() {
            let wrapped = format!("{{\"flow\":{l}}}");
            v.push_line(2 * i as u64 + 1, l.as_bytes()).unwrap();
            v.push_line(2 * i as u64 + 2, wrapped.as_bytes()).unwrap();
        }
        let p = v.finish();
        let _ = flow::html::render(&p);
    }
}
