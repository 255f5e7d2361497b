//! OpenTelemetry spans across kernel and agent, recorded by an in-memory exporter.

use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing_subscriber::layer::SubscriberExt;

use super::{exchange, immediate_status, request_headers, response_headers, Engine};

const ROUTES: &str = r#"    - route_name: traced
      request_policy_chain:
        - policy: apiKeyAuth
          metadata: {header_name: X-API-Key}
        - policy: allowAll
      response_policy_chain:
        - policy: addSecurityHeaders
"#;

/// Envoy's trace, as its `traceparent` header carries it.
const ENVOY_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const ENVOY_SPAN: &str = "00f067aa0ba902b7";

fn attr(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.as_str().into_owned())
}

fn children<'a>(spans: &'a [SpanData], parent: &SpanData, name: &str) -> Vec<&'a SpanData> {
    spans
        .iter()
        .filter(|s| {
            s.name == name
                && s.parent_span_id == parent.span_context.span_id()
                && s.span_context.trace_id() == parent.span_context.trace_id()
        })
        .collect()
}

/// The process-wide subscriber (a scoped one races with callsites that tests on other threads
/// register). It records every test's spans; this test reads those of its own route.
fn exporter() -> InMemorySpanExporter {
    static EXPORTER: OnceLock<InMemorySpanExporter> = OnceLock::new();
    EXPORTER
        .get_or_init(|| {
            let exporter = InMemorySpanExporter::default();
            let provider = SdkTracerProvider::builder()
                .with_simple_exporter(exporter.clone())
                .build();
            let subscriber = tracing_subscriber::registry()
                .with(extproc::telemetry::span_layer(&provider, "engine-test"));
            ::tracing::subscriber::set_global_default(subscriber).unwrap();
            exporter
        })
        .clone()
}

/// Kernel and agent share the subscriber, but the trace crosses the Unix socket only in the
/// call's `trace_context`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_follow_a_request_from_envoy_through_the_agent_policies() {
    let exporter = exporter();
    let engine = Engine::start(false, ROUTES).await;
    let mut client = engine.client().await;
    let traceparent = format!("00-{ENVOY_TRACE}-{ENVOY_SPAN}-01");
    let allowed = exchange(
        &mut client,
        vec![
            request_headers(
                "traced",
                &[("x-api-key", "alice-key"), ("traceparent", &traceparent)],
                true,
            ),
            response_headers("200", true),
        ],
    )
    .await;
    assert_eq!(allowed.len(), 2);
    let denied = exchange(
        &mut client,
        vec![request_headers("traced", &[("x-api-key", "nope")], true)],
    )
    .await;
    assert_eq!(immediate_status(&denied[0]), Some(403));

    // A request span ends when its ext_proc stream closes.
    let ours = |s: &&SpanData| {
        s.name == "ext_proc.request" && attr(s, "route").as_deref() == Some("traced")
    };
    let mut spans = Vec::new();
    for _ in 0..500 {
        spans = exporter.get_finished_spans().unwrap();
        if spans.iter().filter(ours).count() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let requests: Vec<&SpanData> = spans.iter().filter(ours).collect();
    assert_eq!(
        requests.len(),
        2,
        "{:?}",
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );

    // The allowed request continues Envoy's trace.
    let envoy_trace = TraceId::from_hex(ENVOY_TRACE).unwrap();
    let request = *requests
        .iter()
        .find(|s| s.span_context.trace_id() == envoy_trace)
        .expect("a request span in Envoy's trace");
    assert_eq!(
        request.parent_span_id,
        SpanId::from_hex(ENVOY_SPAN).unwrap()
    );
    assert_eq!(attr(request, "route").as_deref(), Some("traced"));
    assert_eq!(attr(request, "decision").as_deref(), Some("ok"));

    let phases = children(&spans, request, "ext_proc.phase");
    assert_eq!(phases.len(), 2, "request and response phase");
    let mut policies_seen = Vec::new();
    for phase in phases {
        assert_eq!(attr(phase, "decision").as_deref(), Some("ok"));
        let calls = children(&spans, phase, "agent.call");
        assert_eq!(calls.len(), 1, "one agent call per phase");
        assert_eq!(attr(calls[0], "agent").as_deref(), Some("test-agent"));
        let executions = children(&spans, calls[0], "agent.execute");
        assert_eq!(
            executions.len(),
            1,
            "the agent continues the kernel's trace"
        );
        assert!(executions[0].parent_span_is_remote);
        assert_eq!(attr(executions[0], "decision").as_deref(), Some("ok"));
        for policy in children(&spans, executions[0], "policy.execute") {
            assert_eq!(attr(policy, "decision").as_deref(), Some("ok"));
            policies_seen.push(attr(policy, "policy.name").unwrap());
        }
    }
    policies_seen.sort();
    assert_eq!(
        policies_seen,
        ["addSecurityHeaders", "allowAll", "apiKeyAuth"]
    );

    // Without a traceparent the request starts its own trace; the denial is on every level.
    let request = *requests
        .iter()
        .find(|s| s.span_context.trace_id() != envoy_trace)
        .unwrap();
    assert_eq!(request.parent_span_id, SpanId::INVALID);
    assert_eq!(attr(request, "decision").as_deref(), Some("denied"));
    let phase = children(&spans, request, "ext_proc.phase")[0];
    let call = children(&spans, phase, "agent.call")[0];
    let execution = children(&spans, call, "agent.execute")[0];
    assert_eq!(attr(execution, "decision").as_deref(), Some("denied"));
    let policies = children(&spans, execution, "policy.execute");
    assert_eq!(policies.len(), 1, "the chain stops at the denial");
    assert_eq!(
        attr(policies[0], "policy.name").as_deref(),
        Some("apiKeyAuth")
    );
    assert_eq!(attr(policies[0], "decision").as_deref(), Some("denied"));
}
