//! The policy agent: policy registry, chain execution and the gRPC server on a Unix socket.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use prometheus_client::registry::Registry as MetricsRegistry;

use crate::proto;
use crate::telemetry::TelemetryError;

pub mod chain;
pub mod config;
pub mod metrics;
pub mod policies;
mod server;

pub use config::{AgentConfig, AgentConfigError};

use chain::{
    ChainStatus, Condition, Context, Instruction, Limits, OnFailure, Phase, ResponseData, Step,
};
use metrics::{AgentMetrics, PolicyLabel, PolicyReason, PolicyStatus, SizeType, VersionLabel};
use policies::{CompiledPolicy, PolicyError, Registry};

/// `PolicyResponse.metadata` key listing the shadow policies that would have stopped the
/// request, as `policy:status` separated by commas (`ipFilter:denied`).
pub const SHADOW_METADATA: &str = "shadow";

/// Version reported in `GetAgentConfig`.
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Compiled policies kept per agent; past this the cache is cleared (configs are small).
const MAX_CACHED_POLICIES: usize = 10_000;

/// Why the agent could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] AgentConfigError),
    /// The socket could not be created.
    #[error("cannot listen on {path}: {source}")]
    Listen {
        /// Socket path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Metrics or logs could not be set up.
    #[error(transparent)]
    Telemetry(#[from] TelemetryError),
    /// The gRPC server failed.
    #[error("agent gRPC server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signal(std::io::Error),
}

/// One loaded agent configuration: registry, compiled-policy cache, limits.
pub struct Agent {
    name: String,
    config_version: String,
    registry: Registry,
    cache: RwLock<HashMap<String, Arc<dyn CompiledPolicy>>>,
    limits: Limits,
    /// `agent_core.server.request_timeout_ms`.
    request_timeout_ms: u64,
    max_body: usize,
    metrics: AgentMetrics,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("name", &self.name)
            .field("config_version", &self.config_version)
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

fn phase_of(value: i32) -> Phase {
    if value == proto::PolicyPhase::Response as i32 {
        Phase::Response
    } else {
        Phase::Request
    }
}

/// The span attribute for a wire status code.
fn decision_name(code: i32) -> &'static str {
    match proto::StatusCode::try_from(code) {
        Ok(proto::StatusCode::Ok) => "ok",
        Ok(proto::StatusCode::PolicyDenied) => "denied",
        Ok(proto::StatusCode::PolicyError) => "error",
        Ok(proto::StatusCode::Timeout) => "timeout",
        Err(_) => "unknown",
    }
}

fn to_wire(instruction: Instruction) -> proto::Instruction {
    use proto::instruction::Payload;
    use proto::InstructionType as T;
    let (kind, payload) = match instruction {
        Instruction::SetHeader { key, value } => (
            T::SetHeader,
            Some(Payload::Header(proto::HeaderInstruction { key, value })),
        ),
        Instruction::RemoveHeader(key) => (
            T::RemoveHeader,
            Some(Payload::Header(proto::HeaderInstruction {
                key,
                value: String::new(),
            })),
        ),
        Instruction::SetBody(body) => (
            T::SetBody,
            Some(Payload::Body(proto::BodyInstruction { body })),
        ),
        Instruction::SetState { key, value } => (
            T::SetState,
            Some(Payload::State(proto::StateInstruction { key, value })),
        ),
        Instruction::Immediate(response) => (
            T::ImmediateResponse,
            Some(Payload::ImmediateResponse(proto::ImmediateResponse {
                status_code: i32::from(response.status),
                headers: response.headers.into_iter().collect(),
                body: response.body,
            })),
        ),
        Instruction::Continue => (
            T::Continue,
            Some(Payload::ContinueRequest(proto::ContinueRequest {})),
        ),
    };
    proto::Instruction {
        r#type: kind as i32,
        payload,
    }
}

fn status_response(
    request_id: String,
    code: proto::StatusCode,
    message: String,
    immediate: Option<Instruction>,
) -> proto::PolicyResponse {
    proto::PolicyResponse {
        request_id,
        instructions: immediate.into_iter().map(to_wire).collect(),
        status: Some(proto::ResponseStatus {
            code: code as i32,
            policy_name: String::new(),
        }),
        message,
        metadata: HashMap::new(),
        call_id: 0,
    }
}

impl Agent {
    /// Builds an agent from a validated configuration.
    pub fn new(
        config: &AgentConfig,
        config_version: String,
        metrics: AgentMetrics,
    ) -> Result<Self, AgentError> {
        let registry =
            Registry::builtin(config).map_err(|e| AgentConfigError::Invalid(e.to_string()))?;
        let core = &config.agent_core;
        Ok(Self {
            name: core.name.clone(),
            config_version,
            registry,
            cache: RwLock::new(HashMap::new()),
            limits: Limits {
                max_state_size_bytes: core.resource_limits.max_state_size_bytes,
                fail_on_unknown: core.policies.fail_on_unknown,
                deadline: None,
            },
            request_timeout_ms: core.server.request_timeout_ms,
            max_body: core.resource_limits.max_body_size_bytes,
            metrics,
        })
    }

    /// The loaded configuration's version.
    pub fn config_version(&self) -> &str {
        &self.config_version
    }

    /// The discovery answer (spec section 3.3).
    pub fn config_response(&self) -> proto::GetAgentConfigResponse {
        let supported_policies = self
            .registry
            .descriptors()
            .into_iter()
            .map(|d| proto::PolicyInfo {
                name: d.name.to_owned(),
                version: d.version.to_owned(),
                description: d.description.to_owned(),
                metadata_schema: d.metadata_schema.to_string(),
                supported_phases: d
                    .phases
                    .iter()
                    .map(|p| match p {
                        Phase::Request => proto::PolicyPhase::Request as i32,
                        Phase::Response => proto::PolicyPhase::Response as i32,
                    })
                    .collect(),
                requires_body: d.requires_body,
                body_flags: d.body_flags.iter().map(|f| (*f).to_owned()).collect(),
            })
            .collect();
        proto::GetAgentConfigResponse {
            agent_name: self.name.clone(),
            agent_version: AGENT_VERSION.to_owned(),
            supported_policies,
            agent_metadata: [("implementation".to_owned(), "policyhub-extproc".to_owned())]
                .into_iter()
                .collect(),
            config_version: self.config_version.clone(),
        }
    }

    fn resolve(&self, policy: &proto::Policy) -> Result<Arc<dyn CompiledPolicy>, PolicyError> {
        let key = if policy.instance_key.is_empty() {
            let mut entries: Vec<_> = policy.metadata.iter().collect();
            entries.sort();
            format!("{}|{entries:?}", policy.name)
        } else {
            policy.instance_key.clone()
        };
        if let Some(found) = self
            .cache
            .read()
            .ok()
            .and_then(|cache| cache.get(&key).cloned())
        {
            return Ok(found);
        }
        let kind = self
            .registry
            .get(&policy.name)
            .ok_or_else(|| PolicyError::Unknown(policy.name.clone()))?;
        let metadata = policies::decode_metadata(&policy.metadata)?;
        let compiled = kind.compile_instance(&metadata, &policy.instance_key)?;
        if let Ok(mut cache) = self.cache.write() {
            if cache.len() >= MAX_CACHED_POLICIES {
                cache.clear();
            }
            cache.insert(key, Arc::clone(&compiled));
        }
        Ok(compiled)
    }

    /// Every compiled-in policy's health ([`policies::PolicyKind::health`]).
    pub fn policy_health(&self) -> Vec<proto::PolicyHealth> {
        self.registry
            .health()
            .into_iter()
            .map(|(name, health)| proto::PolicyHealth {
                name: name.to_owned(),
                healthy: health.is_ok(),
                reason: health.err().unwrap_or_default(),
            })
            .collect()
    }

    /// Runs one request's chain: first the policies' I/O ([`CompiledPolicy::prepare`]), then
    /// the chain itself, synchronously. Never fails: problems become statuses and immediate
    /// responses. The answer carries the request's `call_id`.
    pub async fn execute(&self, request: proto::PolicyRequest) -> proto::PolicyResponse {
        let call_id = request.call_id;
        let mut answer = self.run(request).await;
        answer.call_id = call_id;
        answer
    }

    async fn run(&self, request: proto::PolicyRequest) -> proto::PolicyResponse {
        let phase = phase_of(request.phase);
        if request.deadline_ms <= 0 {
            return status_response(
                request.request_id,
                proto::StatusCode::Timeout,
                "deadline already passed".to_owned(),
                None,
            );
        }
        let rc = request.context.unwrap_or_default();
        let response = match phase {
            Phase::Request => None,
            Phase::Response => {
                let r = request.response.unwrap_or_default();
                Some(ResponseData {
                    headers: r.headers,
                    body: r.body,
                    status_code: r.status_code,
                })
            }
        };
        let body_len = response.as_ref().map_or(rc.body.len(), |r| r.body.len());
        if body_len > self.max_body {
            self.metrics
                .failures
                .get_or_create(&PolicyReason {
                    policy: String::new(),
                    reason: "body_too_large".to_owned(),
                })
                .inc();
            return status_response(
                request.request_id,
                proto::StatusCode::PolicyError,
                "body exceeds max_body_size_bytes".to_owned(),
                Some(Instruction::Immediate(
                    chain::ImmediateResponse::json_error(413, "payload too large"),
                )),
            );
        }
        let mut ctx = Context {
            request_id: request.request_id.clone(),
            headers: rc.headers,
            body: rc.body,
            method: rc.method,
            path: rc.path,
            scheme: rc.scheme,
            authority: rc.authority,
            query_params: rc.query_params,
            client_ip: rc.client_ip,
            response,
            state: HashMap::new(),
        };
        let started = Instant::now();
        // The request's time: the agent's request_timeout_ms, or the kernel's deadline when
        // that is sooner.
        let allowed = Duration::from_millis(
            request
                .deadline_ms
                .unsigned_abs()
                .min(self.request_timeout_ms),
        );
        let steps: Vec<Step> = request
            .policies
            .iter()
            .map(|p| Step {
                name: p.name.clone(),
                on_failure: OnFailure::parse(&p.on_failure).unwrap_or_default(),
                policy: self.resolve(p),
                shadow: p.shadow,
                when: p
                    .when
                    .as_ref()
                    .map_or_else(Condition::default, |w| Condition {
                        methods: w.methods.clone(),
                        path_prefixes: w.path_prefixes.clone(),
                        headers: w
                            .headers
                            .iter()
                            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                            .collect(),
                    }),
            })
            .collect();
        // I/O gets half of that: past it the chain runs with what it has (an unknown JWT key
        // is a 401) instead of the kernel timing out (503 or `fail_open`).
        let budget = allowed / 2;
        for step in &steps {
            if let Some(pending) = step.policy.as_ref().ok().and_then(|p| p.prepare(&ctx)) {
                if tokio::time::timeout(budget, pending).await.is_err() {
                    tracing::warn!(request_id = %request.request_id, policy.name = %step.name, "policy I/O did not finish within half the deadline");
                }
            }
        }
        let limits = Limits {
            deadline: Some(started + allowed),
            ..self.limits
        };
        let mut result = chain::run_chain(&steps, &mut ctx, limits);
        self.record(&result, &ctx);
        let would_stop: Vec<String> = result
            .steps
            .iter()
            .filter(|s| s.shadow && s.status != "ok")
            .map(|s| format!("{}:{}", s.policy, s.status))
            .collect();
        if !would_stop.is_empty() {
            result
                .metadata
                .insert(SHADOW_METADATA.to_owned(), would_stop.join(","));
        }
        tracing::debug!(
            request_id = %request.request_id,
            status = ?result.status,
            policy.name = %result.policy_name,
            elapsed_us = started.elapsed().as_micros() as u64,
            "chain executed"
        );
        let code = match result.status {
            ChainStatus::Ok => proto::StatusCode::Ok,
            ChainStatus::Denied => proto::StatusCode::PolicyDenied,
            ChainStatus::Error => proto::StatusCode::PolicyError,
            ChainStatus::Timeout => proto::StatusCode::Timeout,
        };
        proto::PolicyResponse {
            request_id: request.request_id,
            instructions: result.instructions.into_iter().map(to_wire).collect(),
            status: Some(proto::ResponseStatus {
                code: code as i32,
                policy_name: result.policy_name,
            }),
            message: result.message,
            metadata: result.metadata,
            call_id: 0,
        }
    }

    fn record(&self, result: &chain::ChainResult, ctx: &Context) {
        for step in &result.steps {
            // A dry run's outcome had no effect: it is counted apart (its failures too).
            let executions = if step.shadow {
                &self.metrics.shadow_executions
            } else {
                &self.metrics.executions
            };
            executions
                .get_or_create(&PolicyStatus {
                    policy: step.policy.clone(),
                    status: step.status.to_owned(),
                })
                .inc();
            self.metrics
                .duration
                .get_or_create(&PolicyLabel {
                    policy: step.policy.clone(),
                })
                .observe(step.seconds);
            if let Some(reason) = step.reason.filter(|_| !step.shadow) {
                self.metrics
                    .failures
                    .get_or_create(&PolicyReason {
                        policy: step.policy.clone(),
                        reason: reason.to_owned(),
                    })
                    .inc();
            }
        }
        let (headers, body) = match &ctx.response {
            Some(r) => (&r.headers, r.body.len()),
            None => (&ctx.headers, ctx.body.len()),
        };
        let header_bytes: usize = headers.iter().map(|(k, v)| k.len() + v.len()).sum();
        for (kind, size) in [
            ("headers", header_bytes),
            ("body", body),
            ("state", ctx.state_size()),
        ] {
            self.metrics
                .context_size
                .get_or_create(&SizeType {
                    r#type: kind.to_owned(),
                })
                .observe(size as f64);
        }
    }
}

/// A running agent: its socket server and admin endpoint.
pub struct RunningAgent {
    current: Arc<RwLock<Arc<Agent>>>,
    metrics: AgentMetrics,
    socket_path: PathBuf,
    admin_addr: Option<SocketAddr>,
    shutdown: tokio::sync::watch::Sender<bool>,
    server: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
}

impl RunningAgent {
    /// Socket the agent listens on.
    pub fn socket_path(&self) -> &Path {
        &self.socket_path
    }

    /// Address of `/metrics` and `/health/*`, when enabled.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// The configuration version in use.
    pub fn config_version(&self) -> String {
        self.current
            .read()
            .map(|agent| agent.config_version.clone())
            .unwrap_or_default()
    }

    /// Swaps in a new configuration (already validated) once its remote keys are fetched.
    /// In-flight requests finish on the old one.
    pub async fn reload(&self, config: &AgentConfig, version: String) -> Result<(), AgentError> {
        if config.agent_core.socket_path != self.socket_path {
            tracing::warn!("agent_core.socket_path changed; the new path applies after a restart");
        }
        let agent = Arc::new(Agent::new(config, version.clone(), self.metrics.clone())?);
        agent.registry.start().await;
        if let Ok(mut current) = self.current.write() {
            *current = agent;
        }
        self.metrics.config_info.clear();
        self.metrics
            .config_info
            .get_or_create(&VersionLabel {
                version: version.clone(),
            })
            .set(1);
        tracing::info!(config.version = %version, "agent configuration reloaded");
        Ok(())
    }

    /// Stops serving and removes the socket.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.server.await;
        let _ = std::fs::remove_file(&self.socket_path);
    }
}

/// Starts an agent: binds the socket (mode 0600) and, when enabled, the admin endpoint.
pub async fn start(config: &AgentConfig, version: String) -> Result<RunningAgent, AgentError> {
    let mut registry = MetricsRegistry::default();
    let metrics = AgentMetrics::new(&mut registry);
    metrics
        .config_info
        .get_or_create(&VersionLabel {
            version: version.clone(),
        })
        .set(1);
    let agent = Arc::new(Agent::new(config, version, metrics.clone())?);
    agent.registry.start().await;
    let current = Arc::new(RwLock::new(agent));
    registry.register_collector(Box::new(metrics::PolicyHealthGauge(Arc::clone(&current))));
    let core = &config.agent_core;
    let socket_path = core.socket_path.clone();
    let listener = crate::uds::bind_private(&socket_path).map_err(|source| AgentError::Listen {
        path: socket_path.clone(),
        source,
    })?;
    let (shutdown, shutdown_rx) = tokio::sync::watch::channel(false);
    let admin_addr = if core.observability.metrics_enabled {
        let path = socket_path.clone();
        let ready: crate::telemetry::Readiness = Arc::new(move || {
            if path.exists() {
                Ok(())
            } else {
                Err("socket missing".to_owned())
            }
        });
        Some(
            crate::telemetry::serve_admin(
                &core.observability.metrics_address,
                core.observability.metrics_port,
                Arc::new(registry),
                ready,
                shutdown_rx.clone(),
            )
            .await?,
        )
    } else {
        None
    };
    let server = server::spawn(
        Arc::clone(&current),
        core.server.max_concurrent_requests,
        listener,
        shutdown_rx,
    );
    tracing::info!(socket = %socket_path.display(), agent.name = %core.name, "policy agent listening");
    Ok(RunningAgent {
        current,
        metrics,
        socket_path,
        admin_addr,
        shutdown,
        server,
    })
}

/// Runs the agent until SIGTERM or SIGINT; SIGHUP reloads the configuration file.
pub async fn run(config_path: &Path) -> Result<(), AgentError> {
    use tokio::signal::unix::{signal, SignalKind};
    let (config, version) = AgentConfig::load(config_path)?;
    let observability = &config.agent_core.observability;
    let telemetry = crate::telemetry::init(
        "policy-agent",
        &observability.log_level,
        &observability.tracing,
    )?;
    let running = start(&config, version.clone()).await?;
    tracing::info!(config.version = %version, "policy agent started");
    let mut hangup = signal(SignalKind::hangup()).map_err(AgentError::Signal)?;
    let mut terminate = signal(SignalKind::terminate()).map_err(AgentError::Signal)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(AgentError::Signal)?;
    loop {
        tokio::select! {
            _ = hangup.recv() => {
                let reloaded = match AgentConfig::load(config_path) {
                    Ok((config, version)) => running.reload(&config, version).await,
                    Err(error) => Err(error.into()),
                };
                if let Err(error) = &reloaded {
                    tracing::error!(%error, "reload failed; keeping the previous configuration");
                }
                running
                    .metrics
                    .config_reloads
                    .get_or_create(&metrics::StatusLabel {
                        status: if reloaded.is_ok() { "success" } else { "failure" }.to_owned(),
                    })
                    .inc();
            }
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    tracing::info!("policy agent stopping");
    running.shutdown().await;
    telemetry.shutdown().await;
    Ok(())
}
