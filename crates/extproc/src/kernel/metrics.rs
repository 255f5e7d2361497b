//! Kernel metrics (spec section 7.1); the names are a contract.

use std::sync::OnceLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// `{route, agent, status}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Configured route name, `default`, or `none` (no policy applied).
    pub route: String,
    /// Agent name (empty when no agent was involved).
    pub agent: String,
    /// `ok`, `denied`, `error`, `fail_open`, `fail_closed`, `invalid_route`, `no_policy`.
    pub status: String,
}

/// Every `status` of `policy_kernel_requests_total`.
pub const STATUSES: [&str; 7] = [
    "ok",
    "denied",
    "error",
    "fail_open",
    "fail_closed",
    "invalid_route",
    "no_policy",
];

/// One route's series, looked up in the families on first use only: requests then update
/// them without hashing labels.
#[derive(Clone, Debug, Default)]
pub struct RouteSeries {
    requests: [OnceLock<Counter>; STATUSES.len()],
    duration: OnceLock<Histogram>,
}

impl RouteSeries {
    /// Counts one request of `route` (served by `agent`) with `status`.
    pub fn count(&self, metrics: &KernelMetrics, route: &str, agent: &str, status: &str) {
        let labels = || RequestLabels {
            route: route.to_owned(),
            agent: agent.to_owned(),
            status: status.to_owned(),
        };
        match STATUSES.iter().position(|known| *known == status) {
            Some(index) => self.requests[index]
                .get_or_init(|| metrics.requests.get_or_create(&labels()).clone())
                .inc(),
            None => metrics.requests.get_or_create(&labels()).inc(),
        };
    }

    /// Records the time one request of `route` took in the kernel.
    pub fn observe(&self, metrics: &KernelMetrics, route: &str, agent: &str, seconds: f64) {
        self.duration
            .get_or_init(|| {
                metrics
                    .duration
                    .get_or_create(&RouteAgent {
                        route: route.to_owned(),
                        agent: agent.to_owned(),
                    })
                    .clone()
            })
            .observe(seconds);
    }
}

/// `{route, agent}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteAgent {
    /// Route name.
    pub route: String,
    /// Agent name.
    pub agent: String,
}

/// `{agent}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AgentLabel {
    /// Agent name.
    pub agent: String,
}

/// `{agent, policy}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AgentPolicy {
    /// Agent name.
    pub agent: String,
    /// Policy name.
    pub policy: String,
}

/// `{status}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    /// `success` or `failure`.
    pub status: String,
}

/// `{version}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VersionLabel {
    /// Configuration version.
    pub version: String,
}

/// Every kernel metric.
#[derive(Clone)]
pub struct KernelMetrics {
    /// `policy_kernel_requests_total{route, agent, status}`.
    pub requests: Family<RequestLabels, Counter>,
    /// `policy_kernel_request_duration_seconds{route, agent}`.
    pub duration: Family<RouteAgent, Histogram>,
    /// `policy_kernel_agent_health{agent}`.
    pub agent_health: Family<AgentLabel, Gauge>,
    /// `policy_kernel_policy_health{agent, policy}`: what the agent's health answer says.
    pub policy_health: Family<AgentPolicy, Gauge>,
    /// `policy_kernel_agent_timeouts_total{agent}`.
    pub agent_timeouts: Family<AgentLabel, Counter>,
    /// `policy_kernel_config_reload_total{status}`.
    pub config_reloads: Family<StatusLabel, Counter>,
    /// `policy_kernel_config_info{version}`: 1 for the configuration in use.
    pub config_info: Family<VersionLabel, Gauge>,
}

impl KernelMetrics {
    /// Creates the metrics and registers them.
    pub fn new(registry: &mut Registry) -> Self {
        let metrics = Self {
            requests: Family::default(),
            duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.000_05, 2.0, 18))
            }),
            agent_health: Family::default(),
            policy_health: Family::default(),
            agent_timeouts: Family::default(),
            config_reloads: Family::default(),
            config_info: Family::default(),
        };
        // prometheus-client appends `_total` to counters.
        registry.register(
            "policy_kernel_requests",
            "HTTP requests handled (one ext_proc stream each), by route, agent and the outcome of their last phase",
            metrics.requests.clone(),
        );
        registry.register(
            "policy_kernel_request_duration_seconds",
            "Time the kernel spent on one HTTP request's phases, agent calls included",
            metrics.duration.clone(),
        );
        registry.register(
            "policy_kernel_agent_health",
            "Agent health (0 unhealthy, 1 healthy)",
            metrics.agent_health.clone(),
        );
        registry.register(
            "policy_kernel_policy_health",
            "Health of each policy as its agent reports it (0 unhealthy, 1 healthy)",
            metrics.policy_health.clone(),
        );
        registry.register(
            "policy_kernel_agent_timeouts",
            "Agent calls that ran past the agent timeout",
            metrics.agent_timeouts.clone(),
        );
        registry.register(
            "policy_kernel_config_reload",
            "Configuration reloads by result",
            metrics.config_reloads.clone(),
        );
        registry.register(
            "policy_kernel_config_info",
            "Kernel configuration version in use (value is always 1)",
            metrics.config_info.clone(),
        );
        crate::telemetry::ProcessMemory::register(registry);
        metrics
    }
}
