//! Agent metrics (spec section 7.1); the names are a contract.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// `{policy, status}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PolicyStatus {
    /// Policy name.
    pub policy: String,
    /// `ok`, `denied`, `error`, `unknown`.
    pub status: String,
}

/// `{policy}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PolicyLabel {
    /// Policy name.
    pub policy: String,
}

/// `{policy, reason}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PolicyReason {
    /// Policy name.
    pub policy: String,
    /// Bounded failure code.
    pub reason: String,
}

/// `{type}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SizeType {
    /// `headers`, `body`, `state`.
    pub r#type: String,
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
    /// Configuration version (content hash).
    pub version: String,
}

/// `policy_agent_policy_health{policy}` (0 unhealthy, 1 healthy), read from the loaded
/// configuration's policies at each scrape.
#[derive(Debug)]
pub struct PolicyHealthGauge(pub std::sync::Arc<std::sync::RwLock<std::sync::Arc<super::Agent>>>);

impl prometheus_client::collector::Collector for PolicyHealthGauge {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::gauge::ConstGauge;
        use prometheus_client::metrics::MetricType;
        let Some(health) = self.0.read().ok().map(|agent| agent.policy_health()) else {
            return Ok(());
        };
        let mut family = encoder.encode_descriptor(
            "policy_agent_policy_health",
            "Policy health (0 unhealthy: keys missing or their source or store failing at last use; 1 healthy)",
            None,
            MetricType::Gauge,
        )?;
        for policy in health {
            let labels = PolicyLabel {
                policy: policy.name,
            };
            ConstGauge::new(i64::from(policy.healthy)).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// Every agent metric.
#[derive(Clone)]
pub struct AgentMetrics {
    /// `policy_agent_executions_total{policy, status}`.
    pub executions: Family<PolicyStatus, Counter>,
    /// `policy_agent_shadow_executions_total{policy, status}`: dry-run (shadow) evaluations by
    /// the status they would have had.
    pub shadow_executions: Family<PolicyStatus, Counter>,
    /// `policy_agent_execution_duration_seconds{policy}`.
    pub duration: Family<PolicyLabel, Histogram>,
    /// `policy_agent_policy_failures_total{policy, reason}`.
    pub failures: Family<PolicyReason, Counter>,
    /// `policy_agent_context_size_bytes{type}`.
    pub context_size: Family<SizeType, Histogram>,
    /// `policy_agent_config_reload_total{status}` (SIGHUP reloads).
    pub config_reloads: Family<StatusLabel, Counter>,
    /// `policy_agent_config_info{version}`: 1 for the loaded configuration.
    pub config_info: Family<VersionLabel, Gauge>,
}

impl AgentMetrics {
    /// Creates the metrics and registers them.
    pub fn new(registry: &mut Registry) -> Self {
        let metrics = Self {
            executions: Family::default(),
            shadow_executions: Family::default(),
            duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.000_01, 2.0, 18))
            }),
            failures: Family::default(),
            context_size: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(64.0, 4.0, 10))
            }),
            config_reloads: Family::default(),
            config_info: Family::default(),
        };
        // prometheus-client appends `_total` to counters.
        registry.register(
            "policy_agent_executions",
            "Policy executions by policy and result status",
            metrics.executions.clone(),
        );
        registry.register(
            "policy_agent_shadow_executions",
            "Shadow (dry-run) policy evaluations by policy and the status they would have had (ok, denied, error, unknown); they never change a request",
            metrics.shadow_executions.clone(),
        );
        registry.register(
            "policy_agent_execution_duration_seconds",
            "Time one policy took to execute",
            metrics.duration.clone(),
        );
        registry.register(
            "policy_agent_policy_failures",
            "Policy failures by policy and bounded reason",
            metrics.failures.clone(),
        );
        registry.register(
            "policy_agent_context_size_bytes",
            "Size of the request context by part (headers, body, state)",
            metrics.context_size.clone(),
        );
        registry.register(
            "policy_agent_config_reload",
            "Configuration reloads (SIGHUP) by result; a failed one keeps the previous configuration",
            metrics.config_reloads.clone(),
        );
        registry.register(
            "policy_agent_config_info",
            "Loaded agent configuration version (value is always 1)",
            metrics.config_info.clone(),
        );
        crate::telemetry::ProcessMemory::register(registry);
        metrics
    }
}
