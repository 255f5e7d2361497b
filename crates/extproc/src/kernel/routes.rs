//! Route table: route name → chains, checked against the policies an agent advertises.

use std::collections::HashMap;
use std::sync::Arc;

use prost::bytes::Bytes;
use serde_json::Value;

use super::config::{ChainEntry, KernelConfig};
use super::metrics::RouteSeries;
use super::wire::encoded;
use crate::agent::chain::Phase;
use crate::agent::policies::{PolicyError, Registry};
use crate::proto;

/// What the kernel knows about one policy of an agent.
#[derive(Clone, Debug)]
pub struct CatalogEntry {
    /// JSON schema of the metadata.
    pub schema: Value,
    /// Phases the policy runs in.
    pub phases: Vec<Phase>,
    /// Always needs the body.
    pub requires_body: bool,
    /// Boolean metadata keys that make it need the body.
    pub body_flags: Vec<String>,
}

/// The policies one agent supports.
#[derive(Clone, Debug, Default)]
pub struct PolicyCatalog {
    /// Policy name → entry.
    pub policies: HashMap<String, CatalogEntry>,
    /// The compiled-in policies themselves, when this is their catalog: metadata that fits
    /// the schema is also compiled, so `--validate` reports what only the policy checks (a
    /// malformed CIDR block of `ipFilter`).
    compile_with: Option<Registry>,
}

impl PolicyCatalog {
    /// From an agent's `GetAgentConfig` answer. A schema that is not JSON is treated as `{}`.
    pub fn from_agent(response: &proto::GetAgentConfigResponse) -> Self {
        let policies = response
            .supported_policies
            .iter()
            .map(|info| {
                let phases = info
                    .supported_phases
                    .iter()
                    .map(|p| {
                        if *p == proto::PolicyPhase::Response as i32 {
                            Phase::Response
                        } else {
                            Phase::Request
                        }
                    })
                    .collect();
                let entry = CatalogEntry {
                    schema: serde_json::from_str(&info.metadata_schema)
                        .unwrap_or(Value::Object(Default::default())),
                    phases,
                    requires_body: info.requires_body,
                    body_flags: info.body_flags.clone(),
                };
                (info.name.clone(), entry)
            })
            .collect();
        Self {
            policies,
            compile_with: None,
        }
    }

    /// The policies compiled into this crate's agent (used by `--validate` and before an agent
    /// has answered).
    pub fn builtin() -> Self {
        let registry = builtin_registry();
        Self {
            compile_with: Some(registry.clone()),
            ..Self::of_registry(&registry)
        }
    }

    fn of_registry(registry: &Registry) -> Self {
        let policies = registry
            .descriptors()
            .into_iter()
            .map(|d| {
                (
                    d.name.to_owned(),
                    CatalogEntry {
                        schema: d.metadata_schema,
                        phases: d.phases.to_vec(),
                        requires_body: d.requires_body,
                        body_flags: d.body_flags.iter().map(|f| (*f).to_owned()).collect(),
                    },
                )
            })
            .collect();
        Self {
            policies,
            compile_with: None,
        }
    }

    /// Checks a chain: every policy exists, runs in `phase`, and its metadata fits the schema.
    pub fn check_chain(&self, chain: &[ChainEntry], phase: Phase) -> Result<(), String> {
        let mut problems = Vec::new();
        for entry in chain {
            let Some(info) = self.policies.get(&entry.policy) else {
                problems.push(format!(
                    "policy `{}` is not supported by the agent",
                    entry.policy
                ));
                continue;
            };
            if !info.phases.contains(&phase) {
                problems.push(format!(
                    "policy `{}` does not run in the {phase:?} phase",
                    entry.policy
                ));
            }
            let metadata: serde_json::Map<String, Value> =
                entry.metadata.clone().into_iter().collect();
            let schema_errors =
                crate::schema::validate(&Value::Object(metadata.clone()), &info.schema);
            let compiled = match (&self.compile_with, schema_errors.is_empty()) {
                (Some(registry), true) => registry
                    .get(&entry.policy)
                    .map(|kind| kind.compile(&metadata)),
                _ => None,
            };
            for error in schema_errors {
                problems.push(format!("policy `{}` metadata {error}", entry.policy));
            }
            // Only metadata problems: the built-in registry has default settings (no keys).
            if let Some(Err(PolicyError::Metadata(error))) = compiled {
                problems.push(format!("policy `{}` metadata: {error}", entry.policy));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    fn needs_body(&self, chain: &[ChainEntry]) -> bool {
        chain.iter().any(|entry| {
            self.policies.get(&entry.policy).is_some_and(|info| {
                info.requires_body
                    || info.body_flags.iter().any(|flag| {
                        entry
                            .metadata
                            .get(flag)
                            .and_then(Value::as_bool)
                            .unwrap_or(false)
                    })
            })
        })
    }
}

/// The policies compiled into this crate's agent, with default agent settings (no keys).
fn builtin_registry() -> Registry {
    Registry::builtin(&crate::agent::AgentConfig {
        agent_core: crate::agent::config::AgentCore::default(),
    })
    .unwrap_or_default()
}

/// The headers the chain's built-in policies write as identity
/// ([`crate::agent::policies::CompiledPolicy::identity_headers`]). The agent removes them from
/// the client's request; the kernel removes them itself when it lets a request through
/// without the agent (`fail_open`).
fn identity_headers(chain: &[ChainEntry], registry: &Registry) -> Arc<[String]> {
    let mut headers: Vec<String> = chain
        .iter()
        .filter_map(|entry| {
            let metadata = entry.metadata.clone().into_iter().collect();
            registry.get(&entry.policy)?.compile(&metadata).ok()
        })
        .flat_map(|policy| policy.identity_headers().to_vec())
        .collect();
    headers.sort();
    headers.dedup();
    headers.into()
}

/// A chain ready to send: wire policies (metadata encoded once) and whether it needs the body.
#[derive(Clone, Debug)]
pub struct Chain {
    /// Policies in order, each an encoded `proto::Policy`.
    pub policies: Arc<[Bytes]>,
    /// The policy names, comma-separated (the `chain` field of the request log line).
    pub names: Arc<str>,
    /// Ask Envoy to buffer the body of this phase.
    pub needs_body: bool,
    /// Headers the chain's policies write as identity (request phase; see
    /// [`identity_headers`]).
    pub identity_headers: Arc<[String]>,
}

/// Everything the kernel needs for one route.
#[derive(Clone, Debug)]
pub struct RoutePlan {
    /// Route name (metric label); `default` for the default policy.
    pub name: String,
    /// Agent name.
    pub agent: String,
    /// Request phase chain (None when empty).
    pub request: Option<Chain>,
    /// Response phase chain (None when empty).
    pub response: Option<Chain>,
    /// Why the route is invalid; such routes fail closed (500).
    pub invalid: Option<String>,
    /// The route's metric series.
    pub series: RouteSeries,
}

/// Route name → plan, plus the default.
#[derive(Clone, Debug, Default)]
pub struct RouteTable {
    routes: HashMap<String, Arc<RoutePlan>>,
    default: Option<Arc<RoutePlan>>,
}

fn encode_chain(
    route: &str,
    phase: Phase,
    chain: &[ChainEntry],
    catalog: &PolicyCatalog,
    registry: &Registry,
) -> Option<Chain> {
    if chain.is_empty() {
        return None;
    }
    let policies = chain
        .iter()
        .enumerate()
        .map(|(index, entry)| {
            let metadata: HashMap<String, String> = entry
                .metadata
                .iter()
                .map(|(k, v)| (k.clone(), v.to_string()))
                .collect();
            let mut sorted: Vec<_> = metadata.iter().collect();
            sorted.sort();
            let identity = format!("{route}|{phase:?}|{index}|{}|{sorted:?}", entry.policy);
            encoded(&proto::Policy {
                name: entry.policy.clone(),
                metadata,
                on_failure: entry.on_failure.clone().unwrap_or_default(),
                instance_key: crate::config_version(&identity),
                shadow: entry.shadow,
                when: entry.when.as_ref().map(|when| proto::Condition {
                    methods: when.methods.clone(),
                    path_prefixes: when.path_prefixes.clone(),
                    headers: when
                        .headers
                        .iter()
                        .map(|(name, value)| (name.to_ascii_lowercase(), value.clone()))
                        .collect(),
                }),
            })
        })
        .collect();
    let names: Vec<&str> = chain.iter().map(|entry| entry.policy.as_str()).collect();
    Some(Chain {
        policies,
        names: names.join(",").into(),
        needs_body: catalog.needs_body(chain),
        identity_headers: match phase {
            Phase::Request => identity_headers(chain, registry),
            Phase::Response => Arc::new([]),
        },
    })
}

impl RouteTable {
    /// Builds the table. `catalogs` holds what each registered agent advertised; routes of an
    /// agent that has not answered yet are not checked (and use the built-in catalog to decide
    /// on bodies) until it does.
    pub fn build(config: &KernelConfig, catalogs: &HashMap<String, Arc<PolicyCatalog>>) -> Self {
        let registry = builtin_registry();
        let builtin = PolicyCatalog::of_registry(&registry);
        let plan = |name: &str,
                    agent: Option<&String>,
                    shadow: bool,
                    request: &[ChainEntry],
                    response: &[ChainEntry]| {
            // A route in shadow mode runs every entry of its chains as a dry run.
            let mark = |chain: &[ChainEntry]| -> Vec<ChainEntry> {
                chain
                    .iter()
                    .cloned()
                    .map(|mut entry| {
                        entry.shadow |= shadow;
                        entry
                    })
                    .collect()
            };
            let (request, response) = (&mark(request)[..], &mark(response)[..]);
            let agent = config
                .agent_for(agent)
                .map(|a| a.name.clone())
                .unwrap_or_default();
            let (catalog, checked) = match catalogs.get(&agent) {
                Some(catalog) => (catalog.as_ref(), true),
                None => (&builtin, false),
            };
            let invalid = if checked {
                let problems: Vec<String> =
                    [(request, Phase::Request), (response, Phase::Response)]
                        .into_iter()
                        .filter_map(|(chain, phase)| catalog.check_chain(chain, phase).err())
                        .collect();
                (!problems.is_empty()).then(|| problems.join("; "))
            } else {
                None
            };
            if let Some(reason) = &invalid {
                tracing::error!(route = name, agent = %agent, %reason, "route marked invalid; its requests are denied");
            }
            Arc::new(RoutePlan {
                name: name.to_owned(),
                request: encode_chain(name, Phase::Request, request, catalog, &registry),
                response: encode_chain(name, Phase::Response, response, catalog, &registry),
                agent,
                invalid,
                series: RouteSeries::default(),
            })
        };
        let k = &config.policy_kernel;
        let routes = k
            .route_policies
            .iter()
            .map(|r| {
                (
                    r.route_name.clone(),
                    plan(
                        &r.route_name,
                        r.agent.as_ref(),
                        r.shadow,
                        &r.request_policy_chain,
                        &r.response_policy_chain,
                    ),
                )
            })
            .collect();
        let default = k.default_policy.as_ref().map(|d| {
            plan(
                "default",
                d.agent.as_ref(),
                d.shadow,
                &d.request_policy_chain,
                &d.response_policy_chain,
            )
        });
        Self { routes, default }
    }

    /// The plan for a route name, falling back to the default.
    pub fn select(&self, route_name: Option<&str>) -> Option<Arc<RoutePlan>> {
        route_name
            .and_then(|name| self.routes.get(name))
            .or(self.default.as_ref())
            .cloned()
    }

    /// Invalid routes and their reasons.
    pub fn invalid_routes(&self) -> Vec<(String, String)> {
        self.routes
            .values()
            .chain(self.default.iter())
            .filter_map(|p| p.invalid.clone().map(|reason| (p.name.clone(), reason)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(with_default: bool) -> KernelConfig {
        let default = if with_default {
            "  default_policy:\n    request_policy_chain: [{policy: allowAll}]\n"
        } else {
            ""
        };
        KernelConfig::from_yaml(&format!(
            r#"policy_kernel:
  agents: [{{name: a, socket_path: /tmp/a.sock}}, {{name: b, socket_path: /tmp/b.sock}}]
  route_policies:
    - route_name: users
      request_policy_chain: [{{policy: apiKeyAuth}}]
      response_policy_chain: [{{policy: responseBodyTransform, metadata: {{remove_fields: [x]}}}}]
    - route_name: audit
      agent: b
      response_policy_chain: [{{policy: auditLog, metadata: {{log_response_body: true}}}}]
    - route_name: odd
      request_policy_chain: [{{policy: notThere}}]
{default}"#
        ))
        .unwrap()
    }

    fn catalogs() -> HashMap<String, Arc<PolicyCatalog>> {
        HashMap::from([("a".to_owned(), Arc::new(PolicyCatalog::builtin()))])
    }

    #[test]
    fn selects_routes_then_default_then_nothing() {
        let table = RouteTable::build(&config(true), &catalogs());
        assert_eq!(table.select(Some("users")).unwrap().name, "users");
        assert_eq!(table.select(Some("other")).unwrap().name, "default");
        assert_eq!(table.select(None).unwrap().name, "default");
        let table = RouteTable::build(&config(false), &catalogs());
        assert!(table.select(Some("other")).is_none());
    }

    #[test]
    fn body_needs_follow_policies_and_flags() {
        let table = RouteTable::build(&config(false), &catalogs());
        let users = table.select(Some("users")).unwrap();
        assert!(!users.request.as_ref().unwrap().needs_body);
        assert!(users.response.as_ref().unwrap().needs_body);
        let audit = table.select(Some("audit")).unwrap();
        assert_eq!(audit.agent, "b");
        assert!(audit.request.is_none());
        assert!(
            audit.response.as_ref().unwrap().needs_body,
            "log_response_body flag"
        );
    }

    #[test]
    fn unsupported_policies_invalidate_only_checked_routes() {
        let table = RouteTable::build(&config(false), &catalogs());
        let invalid = table.invalid_routes();
        assert_eq!(invalid.len(), 1, "{invalid:?}");
        assert_eq!(invalid[0].0, "odd");
        // Agent b has not answered: its route is not judged yet.
        assert!(table.select(Some("audit")).unwrap().invalid.is_none());
    }

    #[test]
    fn instance_keys_are_stable_and_distinct() {
        let first = RouteTable::build(&config(false), &catalogs());
        let again = RouteTable::build(&config(false), &catalogs());
        let first_policy = |chain: Option<&Chain>| {
            <proto::Policy as prost::Message>::decode(chain.unwrap().policies[0].as_ref()).unwrap()
        };
        let key = |t: &RouteTable, r: &str| {
            first_policy(t.select(Some(r)).unwrap().request.as_ref()).instance_key
        };
        assert_eq!(key(&first, "users"), key(&again, "users"));
        assert_ne!(key(&first, "users"), key(&first, "odd"));
        let users = first.select(Some("users")).unwrap();
        let metadata = first_policy(users.response.as_ref()).metadata;
        assert_eq!(metadata["remove_fields"], r#"["x"]"#);
    }
}
