//! The kernel's side of `ExecutePoliciesStream` against hand-written agents: one that only
//! has the spec's unary `ExecutePolicies` (the kernel falls back to it), and one that answers
//! a stream's calls in reverse order (answers find their call by `call_id`, not by order or
//! request id).

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use extproc::proto;
use extproc::proto::policy_agent_server::{PolicyAgent, PolicyAgentServer};
use tokio_stream::wrappers::{ReceiverStream, UnixListenerStream};
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

use super::*;

/// Calls answered together, in reverse order, by the streaming agent.
const REVERSED_BATCH: usize = 4;

#[derive(Clone, Default)]
struct FakeAgent {
    /// Answer streams in reverse batches (otherwise the stream is UNIMPLEMENTED).
    streams: bool,
    unary_calls: Arc<AtomicUsize>,
    stream_calls: Arc<AtomicUsize>,
    stream_opens: Arc<AtomicUsize>,
}

/// Allows the call and tells in a header which request it answered.
fn answer(request: &proto::PolicyRequest) -> proto::PolicyResponse {
    let path = request.context.as_ref().map(|c| c.path.clone());
    proto::PolicyResponse {
        request_id: request.request_id.clone(),
        instructions: vec![proto::Instruction {
            r#type: proto::InstructionType::SetHeader as i32,
            payload: Some(proto::instruction::Payload::Header(
                proto::HeaderInstruction {
                    key: "x-answered-path".into(),
                    value: path.unwrap_or_default(),
                },
            )),
        }],
        status: Some(proto::ResponseStatus {
            code: proto::StatusCode::Ok as i32,
            policy_name: "echo".into(),
        }),
        call_id: request.call_id,
        ..Default::default()
    }
}

#[tonic::async_trait]
impl PolicyAgent for FakeAgent {
    async fn get_agent_config(
        &self,
        _request: Request<proto::GetAgentConfigRequest>,
    ) -> Result<Response<proto::GetAgentConfigResponse>, Status> {
        Ok(Response::new(proto::GetAgentConfigResponse {
            agent_name: "fake".into(),
            supported_policies: vec![proto::PolicyInfo {
                name: "echo".into(),
                supported_phases: vec![proto::PolicyPhase::Request as i32],
                ..Default::default()
            }],
            config_version: "fake-v1".into(),
            ..Default::default()
        }))
    }

    async fn execute_policies(
        &self,
        request: Request<proto::PolicyRequest>,
    ) -> Result<Response<proto::PolicyResponse>, Status> {
        self.unary_calls.fetch_add(1, Ordering::Relaxed);
        Ok(Response::new(answer(request.get_ref())))
    }

    type ExecutePoliciesStreamStream =
        Pin<Box<dyn Stream<Item = Result<proto::PolicyResponse, Status>> + Send>>;

    async fn execute_policies_stream(
        &self,
        request: Request<Streaming<proto::PolicyRequest>>,
    ) -> Result<Response<Self::ExecutePoliciesStreamStream>, Status> {
        self.stream_opens.fetch_add(1, Ordering::Relaxed);
        if !self.streams {
            return Err(Status::unimplemented("ExecutePoliciesStream"));
        }
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(16);
        let calls = Arc::clone(&self.stream_calls);
        tokio::spawn(async move {
            let mut batch = Vec::new();
            while let Ok(Some(request)) = inbound.message().await {
                calls.fetch_add(1, Ordering::Relaxed);
                batch.push(request);
                if batch.len() == REVERSED_BATCH {
                    for request in batch.drain(..).rev() {
                        let _ = tx.send(Ok(answer(&request))).await;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn health(
        &self,
        _request: Request<proto::HealthRequest>,
    ) -> Result<Response<proto::HealthResponse>, Status> {
        Ok(Response::new(proto::HealthResponse {
            serving: true,
            config_version: "fake-v1".into(),
            // An agent that reports no per-policy health (as before it existed).
            ..proto::HealthResponse::default()
        }))
    }
}

const ECHO_ROUTE: &str = r#"    - route_name: echo
      request_policy_chain:
        - policy: echo
"#;

/// Serves `agent` on the socket of `dir` and starts a kernel with one lane to it.
async fn kernel_with(dir: &Path, agent: FakeAgent) -> RunningKernel {
    let listener = tokio::net::UnixListener::bind(dir.join("agent.sock")).unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(PolicyAgentServer::new(agent))
            .serve_with_incoming(UnixListenerStream::new(listener)),
    );
    let yaml = kernel_yaml(dir, false, ECHO_ROUTE).replace(
        "      fail_open: false\n",
        "      fail_open: false\n      connections: 1\n",
    );
    let kernel = kernel::start(KernelConfig::from_yaml(&yaml).unwrap(), "k".into())
        .await
        .unwrap();
    for _ in 0..500 {
        if kernel.kernel().readiness().is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    kernel
}

/// Sends `count` requests at once, all with the same `x-request-id`, each with its own path;
/// returns the path each answer says it answered, by the path asked.
async fn concurrent_requests(kernel: &RunningKernel, count: usize) -> Vec<(String, String)> {
    let client = ExternalProcessorClient::connect(format!("http://{}", kernel.addr()))
        .await
        .unwrap();
    let calls = (0..count).map(|i| {
        let mut client = client.clone();
        async move {
            let path = format!("/item/{i}");
            // The later `:path` wins over the default one.
            let message = request_headers(
                "echo",
                &[("x-request-id", "same-id"), (":path", path.as_str())],
                true,
            );
            let answers = exchange(&mut client, vec![message]).await;
            let answered = set_headers(&answers[0])
                .remove("x-answered-path")
                .unwrap_or_else(|| format!("{:?}", immediate_status(&answers[0])));
            (path, answered)
        }
    });
    futures_util::future::join_all(calls).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unary_only_agent_is_used_through_execute_policies() {
    let dir = tempfile::tempdir().unwrap();
    let agent = FakeAgent::default();
    let kernel = kernel_with(dir.path(), agent.clone()).await;
    for (asked, answered) in concurrent_requests(&kernel, 8).await {
        assert_eq!(asked, answered);
    }
    for (asked, answered) in concurrent_requests(&kernel, 8).await {
        assert_eq!(asked, answered);
    }
    assert_eq!(agent.unary_calls.load(Ordering::Relaxed), 16);
    assert_eq!(
        agent.stream_opens.load(Ordering::Relaxed),
        1,
        "the stream is tried once, then the lane stays unary"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_answers_find_their_calls_out_of_order() {
    let dir = tempfile::tempdir().unwrap();
    let agent = FakeAgent {
        streams: true,
        ..FakeAgent::default()
    };
    let kernel = kernel_with(dir.path(), agent.clone()).await;
    let answers = concurrent_requests(&kernel, 4 * REVERSED_BATCH).await;
    for (asked, answered) in answers {
        assert_eq!(asked, answered);
    }
    assert_eq!(
        agent.stream_calls.load(Ordering::Relaxed),
        4 * REVERSED_BATCH
    );
    assert_eq!(agent.unary_calls.load(Ordering::Relaxed), 0);
    assert_eq!(agent.stream_opens.load(Ordering::Relaxed), 1);
}
