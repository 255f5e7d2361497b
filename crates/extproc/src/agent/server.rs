//! The agent's gRPC service on a Unix socket.

use std::pin::Pin;
use std::sync::{Arc, RwLock};

use tokio::net::UnixListener;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_stream::wrappers::{ReceiverStream, UnixListenerStream};
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use super::Agent;
use crate::proto;
use crate::proto::policy_agent_server::{PolicyAgent, PolicyAgentServer};

/// Answers of one `ExecutePoliciesStream` call waiting to be written.
const STREAM_BUFFER: usize = 1024;

struct Service {
    current: Arc<RwLock<Arc<Agent>>>,
    permits: Arc<Semaphore>,
    /// Turns true when the agent shuts down: open streams then end, since a graceful
    /// shutdown waits for every stream.
    shutdown: watch::Receiver<bool>,
}

impl Service {
    fn agent(&self) -> Result<Arc<Agent>, Status> {
        self.current
            .read()
            .map(|a| Arc::clone(&a))
            .map_err(|_| Status::internal("agent state poisoned"))
    }
}

#[tonic::async_trait]
impl PolicyAgent for Service {
    async fn get_agent_config(
        &self,
        _request: Request<proto::GetAgentConfigRequest>,
    ) -> Result<Response<proto::GetAgentConfigResponse>, Status> {
        Ok(Response::new(self.agent()?.config_response()))
    }

    async fn execute_policies(
        &self,
        request: Request<proto::PolicyRequest>,
    ) -> Result<Response<proto::PolicyResponse>, Status> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| Status::unavailable("agent shutting down"))?;
        let (metadata, _, request) = request.into_parts();
        let answer = run(self.agent()?, request, Some(&metadata)).await;
        Ok(Response::new(answer))
    }

    type ExecutePoliciesStreamStream =
        Pin<Box<dyn Stream<Item = Result<proto::PolicyResponse, Status>> + Send>>;

    async fn execute_policies_stream(
        &self,
        request: Request<Streaming<proto::PolicyRequest>>,
    ) -> Result<Response<Self::ExecutePoliciesStreamStream>, Status> {
        let mut inbound = request.into_inner();
        let (answers, outbound) = mpsc::channel(STREAM_BUFFER);
        let (current, permits) = (Arc::clone(&self.current), Arc::clone(&self.permits));
        let mut shutdown = self.shutdown.clone();
        // Calls run concurrently, one task each, and answer as they finish; the stream ends
        // after the last answer once the kernel stops sending or the agent shuts down.
        tokio::spawn(async move {
            loop {
                let request = tokio::select! {
                    message = inbound.message() => match message {
                        Ok(Some(request)) => request,
                        _ => break,
                    },
                    _ = shutdown.wait_for(|stop| *stop) => break,
                };
                let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
                    break;
                };
                let Ok(agent) = current.read().map(|a| Arc::clone(&a)) else {
                    break;
                };
                let answers = answers.clone();
                tokio::spawn(async move {
                    let answer = run(agent, request, None).await;
                    drop(permit);
                    let _ = answers.send(Ok(answer)).await;
                });
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(outbound))))
    }

    async fn health(
        &self,
        _request: Request<proto::HealthRequest>,
    ) -> Result<Response<proto::HealthResponse>, Status> {
        let agent = self.agent()?;
        Ok(Response::new(proto::HealthResponse {
            serving: true,
            config_version: agent.config_version().to_owned(),
            policies: agent.policy_health(),
        }))
    }
}

/// Runs one call in an `agent.execute` span that continues the caller's trace (from gRPC
/// metadata, or the request's `trace_context`).
async fn run(
    agent: Arc<Agent>,
    request: proto::PolicyRequest,
    metadata: Option<&tonic::metadata::MetadataMap>,
) -> proto::PolicyResponse {
    let span = tracing::debug_span!(
        "agent.execute",
        otel.kind = "server",
        request_id = %request.request_id,
        phase = ?super::phase_of(request.phase),
        decision = tracing::field::Empty,
    );
    let from_metadata = metadata.is_some_and(|metadata| {
        crate::telemetry::continue_trace(&span, &crate::telemetry::MetadataRef(metadata))
    });
    if !from_metadata {
        crate::telemetry::continue_trace(&span, &request.trace_context);
    }
    let answer = agent.execute(request).instrument(span.clone()).await;
    if let Some(status) = &answer.status {
        span.record("decision", super::decision_name(status.code));
    }
    answer
}

pub(super) fn spawn(
    current: Arc<RwLock<Arc<Agent>>>,
    max_concurrent: usize,
    listener: UnixListener,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<Result<(), tonic::transport::Error>> {
    let service = Service {
        current,
        permits: Arc::new(Semaphore::new(max_concurrent)),
        shutdown: shutdown.clone(),
    };
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(PolicyAgentServer::new(service))
            .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async move {
                let _ = shutdown.wait_for(|stop| *stop).await;
            })
            .await
    })
}
