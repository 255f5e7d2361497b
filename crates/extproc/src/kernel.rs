//! The policy kernel: Envoy's ext_proc server, route table, agent registry and health checks.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};
use std::time::Duration;

use envoy_types::pb::envoy::service::ext_proc::v3::external_processor_server::ExternalProcessorServer;
use prometheus_client::registry::Registry as MetricsRegistry;

use crate::telemetry::TelemetryError;

pub mod agents;
pub mod config;
pub mod envoy_lint;
mod extproc;
mod lane;
pub mod metrics;
pub mod routes;
pub mod wire;

pub use config::{KernelConfig, KernelConfigError};
pub use extproc::ROUTE_ATTRIBUTE;

use agents::AgentConn;
use metrics::{AgentLabel, KernelMetrics, StatusLabel, VersionLabel};
use routes::RouteTable;

/// Timeout of `GetAgentConfig`.
const DISCOVERY_TIMEOUT: Duration = Duration::from_millis(1000);

/// Why the kernel could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] KernelConfigError),
    /// The ext_proc listener could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// Address.
        addr: String,
        /// Cause.
        source: std::io::Error,
    },
    /// Metrics or logs could not be set up.
    #[error(transparent)]
    Telemetry(#[from] TelemetryError),
    /// The gRPC server failed.
    #[error("ext_proc server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signal(std::io::Error),
}

/// One configuration in force: routes and agents. Streams hold the snapshot they started with,
/// so a reload never changes a request midway.
pub struct KernelState {
    /// The configuration.
    pub config: Arc<KernelConfig>,
    /// Its version (content hash).
    pub version: String,
    /// Compiled routes.
    pub table: RouteTable,
    /// Agent name → (settings, connection).
    pub agents: HashMap<String, (config::AgentConfig, Arc<AgentConn>)>,
}

/// The kernel: current state and metrics.
pub struct Kernel {
    state: RwLock<Arc<KernelState>>,
    /// Held from reading the state to installing its successor, so a health check's rebuild
    /// never installs a table built from a state that a reload or start replaced meanwhile.
    updating: Mutex<()>,
    metrics: KernelMetrics,
    request_counter: AtomicU64,
    weak_self: Weak<Kernel>,
}

impl Kernel {
    /// The configuration in force.
    pub fn snapshot(&self) -> Arc<KernelState> {
        match self.state.read() {
            Ok(state) => Arc::clone(&state),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    fn lock_updates(&self) -> MutexGuard<'_, ()> {
        self.updating
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn next_request_id(&self) -> String {
        format!(
            "pk-{:x}",
            self.request_counter.fetch_add(1, Ordering::Relaxed)
        )
    }

    fn build_state(
        &self,
        config: KernelConfig,
        version: String,
        previous: Option<&KernelState>,
    ) -> KernelState {
        let mut agents = HashMap::new();
        for agent in &config.policy_kernel.agents {
            let reused = previous.and_then(|p| {
                p.agents
                    .values()
                    .find(|(old, _)| {
                        old.socket_path == agent.socket_path && old.connections == agent.connections
                    })
                    .map(|(_, conn)| Arc::clone(conn))
            });
            let conn = match reused {
                Some(conn) => conn,
                None => {
                    let conn = Arc::new(AgentConn::new(agent));
                    self.spawn_health_check(agent.name.clone(), &conn);
                    conn
                }
            };
            conn.health_interval_ms
                .store(agent.health_check_interval_ms, Ordering::Relaxed);
            agents.insert(agent.name.clone(), (agent.clone(), conn));
        }
        let catalogs = agents
            .iter()
            .filter_map(|(name, (_, conn))| conn.catalog().map(|c| (name.clone(), c)))
            .collect();
        let table = RouteTable::build(&config, &catalogs);
        KernelState {
            config: Arc::new(config),
            version,
            table,
            agents,
        }
    }

    fn install(&self, state: KernelState) {
        self.metrics.config_info.clear();
        self.metrics
            .config_info
            .get_or_create(&VersionLabel {
                version: state.version.clone(),
            })
            .set(1);
        let state = Arc::new(state);
        match self.state.write() {
            Ok(mut slot) => *slot = state,
            Err(poisoned) => *poisoned.into_inner() = state,
        }
    }

    /// Rebuilds the route table after an agent (re)registered.
    fn rebuild(&self) {
        let _updating = self.lock_updates();
        let current = self.snapshot();
        let catalogs = current
            .agents
            .iter()
            .filter_map(|(name, (_, conn))| conn.catalog().map(|c| (name.clone(), c)))
            .collect();
        let table = RouteTable::build(&current.config, &catalogs);
        self.install(KernelState {
            config: Arc::clone(&current.config),
            version: current.version.clone(),
            table,
            agents: current.agents.clone(),
        });
    }

    /// Applies a validated configuration; in-flight streams keep the previous one. A
    /// configuration that makes a route invalid against a registered agent's policies (a
    /// policy, phase or metadata that agent does not support) is refused: the previous one
    /// stays, and the reload counts as a failure.
    pub fn reload(&self, config: KernelConfig, version: String) -> Result<(), KernelConfigError> {
        let updating = self.lock_updates();
        let previous = self.snapshot();
        let state = self.build_state(config, version.clone(), Some(&previous));
        let already_invalid = previous.table.invalid_routes();
        let mut newly_invalid: Vec<String> = state
            .table
            .invalid_routes()
            .into_iter()
            .filter(|route| !already_invalid.contains(route))
            .map(|(route, reason)| format!("route `{route}` would be invalid: {reason}"))
            .collect();
        if !newly_invalid.is_empty() {
            drop(updating);
            newly_invalid.sort();
            let error = KernelConfigError::Invalid(newly_invalid);
            self.reload_failed(&error);
            return Err(error);
        }
        if previous.config.policy_kernel.server.address != state.config.policy_kernel.server.address
            || previous.config.policy_kernel.server.port != state.config.policy_kernel.server.port
        {
            tracing::warn!(
                "policy_kernel.server changed; the new listener applies after a restart"
            );
        }
        self.install(state);
        drop(updating);
        self.metrics
            .config_reloads
            .get_or_create(&StatusLabel {
                status: "success".to_owned(),
            })
            .inc();
        tracing::info!(config.version = %version, "kernel configuration reloaded");
        Ok(())
    }

    fn reload_failed(&self, error: &dyn std::error::Error) {
        self.metrics
            .config_reloads
            .get_or_create(&StatusLabel {
                status: "failure".to_owned(),
            })
            .inc();
        tracing::error!(%error, "configuration reload failed; keeping the previous configuration");
    }

    /// Ready when every agent is healthy and registered and no route is invalid.
    pub fn readiness(&self) -> Result<(), String> {
        let state = self.snapshot();
        let mut problems = Vec::new();
        for (name, (_, conn)) in &state.agents {
            if !conn.is_healthy() || conn.catalog().is_none() {
                problems.push(format!("agent {name} unreachable"));
            }
        }
        for (route, reason) in state.table.invalid_routes() {
            problems.push(format!("route {route} invalid: {reason}"));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            problems.sort();
            Err(problems.join("; "))
        }
    }

    /// Sets `policy_kernel_policy_health` from an agent's health answer and logs each change.
    fn record_policy_health(
        &self,
        agent: &str,
        conn: &AgentConn,
        policies: &[crate::proto::PolicyHealth],
    ) {
        for policy in policies {
            self.metrics
                .policy_health
                .get_or_create(&metrics::AgentPolicy {
                    agent: agent.to_owned(),
                    policy: policy.name.clone(),
                })
                .set(i64::from(policy.healthy));
        }
        for change in conn.record_policy_health(policies) {
            if change.healthy {
                tracing::info!(agent, policy.name = %change.name, "policy healthy again");
            } else {
                tracing::warn!(agent, policy.name = %change.name, reason = %change.reason, "policy unhealthy");
            }
        }
    }

    fn spawn_health_check(&self, name: String, conn: &Arc<AgentConn>) {
        let kernel = self.weak_self.clone();
        let conn = Arc::downgrade(conn);
        tokio::spawn(async move {
            loop {
                let (Some(kernel), Some(conn)) = (kernel.upgrade(), conn.upgrade()) else {
                    break;
                };
                let gauge = kernel
                    .metrics
                    .agent_health
                    .get_or_create(&AgentLabel {
                        agent: name.clone(),
                    })
                    .clone();
                match conn.probe().await {
                    Some(answer) => {
                        let agent_version = answer.config_version;
                        let was_healthy = conn.set_healthy(true);
                        gauge.set(1);
                        kernel.record_policy_health(&name, &conn, &answer.policies);
                        let stale = conn.catalog().is_none()
                            || agent_version != conn.agent_config_version();
                        if !was_healthy || stale {
                            match conn.discover(DISCOVERY_TIMEOUT).await {
                                Ok(answer) => {
                                    tracing::info!(
                                        agent = %name,
                                        agent.version = %answer.agent_version,
                                        agent.config_version = %answer.config_version,
                                        policies = answer.supported_policies.len(),
                                        "agent registered"
                                    );
                                    kernel.rebuild();
                                }
                                Err(error) => {
                                    tracing::error!(agent = %name, %error, "GetAgentConfig failed")
                                }
                            }
                        }
                    }
                    None => {
                        if conn.set_healthy(false) {
                            tracing::error!(agent = %name, "agent unhealthy");
                        }
                        gauge.set(0);
                    }
                }
                let interval = conn.health_interval_ms.load(Ordering::Relaxed);
                drop((kernel, conn));
                tokio::time::sleep(Duration::from_millis(interval)).await;
            }
        });
    }
}

/// A running kernel.
pub struct RunningKernel {
    kernel: Arc<Kernel>,
    addr: SocketAddr,
    admin_addr: SocketAddr,
    shutdown: tokio::sync::watch::Sender<bool>,
    server: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
}

impl RunningKernel {
    /// The ext_proc listener address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The admin endpoint address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// The kernel.
    pub fn kernel(&self) -> &Arc<Kernel> {
        &self.kernel
    }

    /// Applies a validated configuration (see [`Kernel::reload`]).
    pub fn reload(&self, config: KernelConfig, version: String) -> Result<(), KernelConfigError> {
        self.kernel.reload(config, version)
    }

    /// Waits until [`Kernel::readiness`] holds, up to `limit`.
    pub async fn wait_ready(&self, limit: Duration) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match self.kernel.readiness() {
                Ok(()) => return Ok(()),
                Err(reason) if tokio::time::Instant::now() >= deadline => return Err(reason),
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }

    /// Stops serving.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.server.await;
    }
}

/// Starts the kernel: binds the ext_proc listener and the admin endpoint, starts health checks
/// (which discover agents as soon as they answer).
pub async fn start(config: KernelConfig, version: String) -> Result<RunningKernel, KernelError> {
    let mut registry = MetricsRegistry::default();
    let metrics = KernelMetrics::new(&mut registry);
    let server_config = config.policy_kernel.server.clone();
    let observability = config.policy_kernel.observability.clone();
    let kernel = Arc::new_cyclic(|weak| Kernel {
        state: RwLock::new(Arc::new(KernelState {
            config: Arc::new(config.clone()),
            version: version.clone(),
            table: RouteTable::default(),
            agents: HashMap::new(),
        })),
        updating: Mutex::new(()),
        metrics,
        request_counter: AtomicU64::new(0),
        weak_self: weak.clone(),
    });
    let updating = kernel.lock_updates();
    let state = kernel.build_state(config, version.clone(), None);
    kernel.install(state);
    drop(updating);

    let addr = format!("{}:{}", server_config.address, server_config.port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|source| KernelError::Listen {
            addr: addr.clone(),
            source,
        })?;
    let local = listener
        .local_addr()
        .map_err(|source| KernelError::Listen { addr, source })?;
    let (shutdown, shutdown_rx) = tokio::sync::watch::channel(false);
    let ready_kernel = Arc::downgrade(&kernel);
    let admin_addr = crate::telemetry::serve_admin(
        &observability.metrics_address,
        observability.metrics_port,
        Arc::new(registry),
        Arc::new(move || match ready_kernel.upgrade() {
            Some(kernel) => kernel.readiness(),
            None => Err("kernel stopped".to_owned()),
        }),
        shutdown_rx.clone(),
    )
    .await?;
    let service = extproc::ExtProcService {
        kernel: Arc::clone(&kernel),
    };
    let mut stop = shutdown_rx;
    // Set per accepted socket: the builder's `tcp_nodelay` does not reach an external incoming.
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let server = tokio::spawn(async move {
        tonic::transport::Server::builder()
            .max_concurrent_streams(server_config.max_concurrent_streams)
            .add_service(ExternalProcessorServer::new(service))
            .serve_with_incoming_shutdown(incoming, async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await
    });
    tracing::info!(addr = %local, admin = %admin_addr, config.version = %version, "policy kernel listening");
    Ok(RunningKernel {
        kernel,
        addr: local,
        admin_addr,
        shutdown,
        server,
    })
}

/// Checks a kernel configuration offline: structure, then every chain against the policies
/// compiled into this crate's agent. Returns the problems (empty when valid).
pub fn validate_file(path: &Path) -> Result<Vec<String>, KernelConfigError> {
    let (config, _) = KernelConfig::load(path)?;
    Ok(config.check_policies(&routes::PolicyCatalog::builtin()))
}

/// Checks a kernel configuration against Envoy's (see [`envoy_lint::lint`]). Returns the
/// warnings (empty when the route names agree).
pub fn lint_envoy_file(
    config_path: &Path,
    envoy_path: &Path,
) -> Result<Vec<String>, KernelConfigError> {
    let (config, _) = KernelConfig::load(config_path)?;
    let envoy = std::fs::read_to_string(envoy_path).map_err(|source| KernelConfigError::Read {
        path: envoy_path.to_owned(),
        source,
    })?;
    envoy_lint::lint(&config, &envoy)
}

/// Runs the kernel until SIGTERM or SIGINT; SIGHUP reloads the configuration file.
pub async fn run(config_path: PathBuf) -> Result<(), KernelError> {
    use tokio::signal::unix::{signal, SignalKind};
    let (config, version) = KernelConfig::load(&config_path)?;
    let observability = &config.policy_kernel.observability;
    let telemetry = crate::telemetry::init(
        "policy-kernel",
        &observability.log_level,
        &observability.tracing,
    )?;
    let running = start(config, version).await?;
    let mut hangup = signal(SignalKind::hangup()).map_err(KernelError::Signal)?;
    let mut terminate = signal(SignalKind::terminate()).map_err(KernelError::Signal)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(KernelError::Signal)?;
    loop {
        tokio::select! {
            _ = hangup.recv() => match KernelConfig::load(&config_path) {
                // A refused configuration is counted and logged by `reload`.
                Ok((config, version)) => { let _ = running.reload(config, version); }
                Err(error) => running.kernel.reload_failed(&error),
            },
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    tracing::info!("policy kernel stopping");
    running.shutdown().await;
    telemetry.shutdown().await;
    Ok(())
}
