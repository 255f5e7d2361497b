//! The agent's gRPC service on a Unix socket.

use std::sync::{Arc, RwLock};

use tokio::net::UnixListener;
use tokio::sync::Semaphore;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use super::Agent;
use crate::proto;
use crate::proto::policy_agent_server::{PolicyAgent, PolicyAgentServer};

struct Service {
    current: Arc<RwLock<Arc<Agent>>>,
    permits: Arc<Semaphore>,
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
        let agent = self.agent()?;
        let (metadata, _, request) = request.into_parts();
        let span = tracing::debug_span!(
            "agent.execute",
            otel.kind = "server",
            request_id = %request.request_id,
            phase = ?super::phase_of(request.phase),
            decision = tracing::field::Empty,
        );
        // The kernel sends the trace context as gRPC metadata; other clients may use the field.
        if !crate::telemetry::continue_trace(&span, &crate::telemetry::MetadataRef(&metadata)) {
            crate::telemetry::continue_trace(&span, &request.trace_context);
        }
        let answer = agent.execute(request).instrument(span.clone()).await;
        if let Some(status) = &answer.status {
            span.record("decision", super::decision_name(status.code));
        }
        Ok(Response::new(answer))
    }

    async fn health(
        &self,
        _request: Request<proto::HealthRequest>,
    ) -> Result<Response<proto::HealthResponse>, Status> {
        let agent = self.agent()?;
        Ok(Response::new(proto::HealthResponse {
            serving: true,
            config_version: agent.config_version().to_owned(),
        }))
    }
}

pub(super) fn spawn(
    current: Arc<RwLock<Arc<Agent>>>,
    max_concurrent: usize,
    listener: UnixListener,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<Result<(), tonic::transport::Error>> {
    let service = Service {
        current,
        permits: Arc::new(Semaphore::new(max_concurrent)),
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
