//! The kernel's side of an agent: a pool of gRPC channels over its Unix socket, discovery,
//! health, and calls with timeout and retries.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tonic::transport::Channel;

use super::config::AgentConfig;
use super::lane::Lane;
use super::routes::PolicyCatalog;
use super::wire::PolicyCall;
use crate::proto;
use crate::proto::policy_agent_client::PolicyAgentClient;

/// Health checks give up after this long (spec section 3.7).
pub const HEALTH_CHECK_TIMEOUT: Duration = Duration::from_millis(100);

/// Why an agent call produced no usable answer.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CallError {
    /// The agent could not be reached (after retries).
    #[error("agent unavailable: {0}")]
    Unavailable(String),
    /// The agent did not answer within its timeout.
    #[error("agent timed out")]
    Timeout,
    /// The agent answered something the kernel cannot use.
    #[error("invalid agent response: {0}")]
    Invalid(String),
}

/// A connection to one agent socket, shared across configuration reloads while the socket
/// path stays the same.
pub struct AgentConn {
    lanes: Vec<Lane>,
    next: AtomicUsize,
    healthy: AtomicBool,
    catalog: RwLock<Option<Arc<PolicyCatalog>>>,
    agent_config_version: RwLock<String>,
    /// Each policy's health at the last probe.
    policy_health: RwLock<std::collections::BTreeMap<String, bool>>,
    /// Health check period, updated on reload.
    pub health_interval_ms: AtomicU64,
}

impl std::fmt::Debug for AgentConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentConn")
            .field("healthy", &self.healthy.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl AgentConn {
    /// Lazily connected channels (they connect on first use and reconnect after failures).
    pub fn new(config: &AgentConfig) -> Self {
        let lanes = (0..config.connections.max(1))
            .map(|_| Lane::new(crate::uds::channel(&config.socket_path)))
            .collect();
        Self {
            lanes,
            next: AtomicUsize::new(0),
            healthy: AtomicBool::new(false),
            catalog: RwLock::new(None),
            agent_config_version: RwLock::new(String::new()),
            policy_health: RwLock::default(),
            health_interval_ms: AtomicU64::new(config.health_check_interval_ms),
        }
    }

    fn lane(&self) -> &Lane {
        &self.lanes[self.next.fetch_add(1, Ordering::Relaxed) % self.lanes.len()]
    }

    fn client(&self) -> PolicyAgentClient<Channel> {
        self.lane().client()
    }

    /// Last known health.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Records health; returns the previous value.
    pub fn set_healthy(&self, healthy: bool) -> bool {
        self.healthy.swap(healthy, Ordering::Relaxed)
    }

    /// What the agent advertised, once discovered.
    pub fn catalog(&self) -> Option<Arc<PolicyCatalog>> {
        self.catalog.read().ok().and_then(|c| c.clone())
    }

    /// Asks the agent for its configuration and stores its catalog.
    pub async fn discover(
        &self,
        timeout: Duration,
    ) -> Result<proto::GetAgentConfigResponse, CallError> {
        let mut client = self.client();
        let answer = tokio::time::timeout(
            timeout,
            client.get_agent_config(proto::GetAgentConfigRequest {}),
        )
        .await
        .map_err(|_| CallError::Timeout)?
        .map_err(|status| CallError::Unavailable(status.message().to_owned()))?
        .into_inner();
        let catalog = Arc::new(PolicyCatalog::from_agent(&answer));
        if let Ok(mut slot) = self.catalog.write() {
            *slot = Some(catalog);
        }
        if let Ok(mut version) = self.agent_config_version.write() {
            version.clone_from(&answer.config_version);
        }
        Ok(answer)
    }

    /// One health probe; returns the agent's answer when it serves.
    pub async fn probe(&self) -> Option<proto::HealthResponse> {
        let mut client = self.client();
        match tokio::time::timeout(HEALTH_CHECK_TIMEOUT, client.health(proto::HealthRequest {}))
            .await
        {
            Ok(Ok(answer)) => Some(answer.into_inner()).filter(|a| a.serving),
            _ => None,
        }
    }

    /// Records the policies' health from a probe; returns those whose health changed (or
    /// that are new and unhealthy).
    pub fn record_policy_health<'a>(
        &self,
        policies: &'a [proto::PolicyHealth],
    ) -> Vec<&'a proto::PolicyHealth> {
        let Ok(mut known) = self.policy_health.write() else {
            return Vec::new();
        };
        policies
            .iter()
            .filter(|p| known.insert(p.name.clone(), p.healthy).unwrap_or(true) != p.healthy)
            .collect()
    }

    /// The agent's configuration version seen at the last discovery.
    pub fn agent_config_version(&self) -> String {
        self.agent_config_version
            .read()
            .map(|v| v.clone())
            .unwrap_or_default()
    }

    /// Runs a chain with the agent's timeout, over a lane's stream (or a unary call when the
    /// agent has no stream). Unreachable agents are retried with exponential backoff within
    /// the same timeout (a known-unhealthy agent gets a single attempt).
    pub async fn execute(
        &self,
        config: &AgentConfig,
        request: PolicyCall,
    ) -> Result<proto::PolicyResponse, CallError> {
        let timeout = Duration::from_millis(config.timeout_ms);
        let attempts = if self.is_healthy() {
            config.retry.max_attempts.max(1)
        } else {
            1
        };
        let request_id = request.request_id.clone();
        let call = async {
            let mut last = String::new();
            for attempt in 0..attempts {
                if attempt > 0 {
                    let backoff = config
                        .retry
                        .backoff_ms
                        .saturating_mul(1 << (attempt - 1).min(10));
                    tracing::warn!(agent = %config.name, attempt, backoff_ms = backoff, "retrying agent call");
                    tokio::time::sleep(Duration::from_millis(backoff)).await;
                }
                // Cheap: the policies and the context are shared bytes.
                let answer = self.lane().execute(request.clone()).await;
                match answer {
                    Ok(answer) => return Ok(answer),
                    Err(status) => match status.code() {
                        tonic::Code::Unavailable
                        | tonic::Code::Unknown
                        | tonic::Code::Cancelled => {
                            last = status.message().to_owned();
                        }
                        tonic::Code::DeadlineExceeded => return Err(CallError::Timeout),
                        _ => {
                            return Err(CallError::Invalid(format!(
                                "{}: {}",
                                status.code(),
                                status.message()
                            )))
                        }
                    },
                }
            }
            Err(CallError::Unavailable(last))
        };
        let answer = tokio::time::timeout(timeout, call)
            .await
            .map_err(|_| CallError::Timeout)??;
        if answer.request_id != request_id {
            return Err(CallError::Invalid("request_id does not match".to_owned()));
        }
        Ok(answer)
    }
}
