//! `--envoy-config`: checks that the kernel's route names and Envoy's agree.
//!
//! Envoy sends the name of the route it matched (`xds.route_name`); the kernel picks a chain by
//! that name. A route Envoy has but no chain names gets the default chain (or no policy), and
//! a chain naming a route Envoy lacks never runs; neither is an error to either program, so
//! this lint reads both files and says so.

use std::collections::BTreeSet;

use serde_json::Value;

use super::config::{KernelConfig, KernelConfigError};
use super::ROUTE_ATTRIBUTE;

/// What the Envoy configuration says about routes.
#[derive(Debug, Default)]
struct EnvoyRoutes {
    /// Route names of static route configurations.
    named: BTreeSet<String>,
    /// Where routes without a name are (`virtual host `all` route 2`).
    unnamed: Vec<String>,
    /// Some listener takes its routes from RDS.
    rds: bool,
    /// Some ext_proc filter is configured.
    ext_proc: bool,
    /// Some ext_proc filter sends the route name.
    sends_route_name: bool,
    /// HTTP connection managers (by `stat_prefix`) that route on the path as sent.
    unnormalized: Vec<String>,
}

fn walk(value: &Value, found: &mut EnvoyRoutes) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Array(hosts)) = map.get("virtual_hosts") {
                for host in hosts {
                    collect_routes(host, found);
                }
            }
            found.rds |= map.contains_key("rds");
            let filter_type = map.get("@type").and_then(Value::as_str).unwrap_or("");
            if filter_type.ends_with("http_connection_manager.v3.HttpConnectionManager") {
                let on = |key: &str| map.get(key).and_then(Value::as_bool) == Some(true);
                if !(on("normalize_path") && on("merge_slashes")) {
                    let name = map
                        .get("stat_prefix")
                        .and_then(Value::as_str)
                        .unwrap_or("?");
                    found.unnormalized.push(name.to_owned());
                }
            }
            if filter_type.ends_with("ext_proc.v3.ExternalProcessor") {
                found.ext_proc = true;
                found.sends_route_name |= map
                    .get("request_attributes")
                    .and_then(Value::as_array)
                    .is_some_and(|a| a.iter().any(|v| v.as_str() == Some(ROUTE_ATTRIBUTE)));
            }
            map.values().for_each(|v| walk(v, found));
        }
        Value::Array(items) => items.iter().for_each(|v| walk(v, found)),
        _ => {}
    }
}

fn collect_routes(host: &Value, found: &mut EnvoyRoutes) {
    let host_name = host.get("name").and_then(Value::as_str).unwrap_or("?");
    let routes = host.get("routes").and_then(Value::as_array);
    for (index, route) in routes.into_iter().flatten().enumerate() {
        match route.get("name").and_then(Value::as_str) {
            Some(name) if !name.is_empty() => {
                found.named.insert(name.to_owned());
            }
            _ => found
                .unnamed
                .push(format!("virtual host `{host_name}` route {index}")),
        }
    }
}

/// Warnings about `envoy_yaml` (Envoy's bootstrap configuration) against `config`: Envoy
/// routes no chain covers, chains naming routes Envoy does not have, routes without a name,
/// and an ext_proc filter that does not send the route name. Empty when they agree.
pub fn lint(config: &KernelConfig, envoy_yaml: &str) -> Result<Vec<String>, KernelConfigError> {
    let envoy: Value =
        yaml_serde::from_str(envoy_yaml).map_err(|e| KernelConfigError::Envoy(e.to_string()))?;
    let mut found = EnvoyRoutes::default();
    walk(&envoy, &mut found);
    let k = &config.policy_kernel;
    let fallback = if k.default_policy.is_some() {
        "its requests get default_policy"
    } else {
        "its requests pass without any policy"
    };
    let mut warnings = Vec::new();
    if !found.ext_proc {
        warnings.push("Envoy has no ext_proc filter: no request reaches the kernel".to_owned());
    } else if !found.sends_route_name {
        warnings.push(format!(
            "Envoy's ext_proc filter does not send `{ROUTE_ATTRIBUTE}` in request_attributes: every request is unnamed and {fallback}"
        ));
    }
    for manager in &found.unnormalized {
        warnings.push(format!(
            "Envoy's HTTP connection manager `{manager}` does not set normalize_path and merge_slashes: Envoy routes (and the kernel's path conditions see) /a/../b unresolved, which the application may read as another route"
        ));
    }
    if found.rds && found.named.is_empty() && found.unnamed.is_empty() {
        warnings.push("Envoy's routes come from RDS: route names cannot be checked".to_owned());
        return Ok(warnings);
    }
    let chains: BTreeSet<&str> = k
        .route_policies
        .iter()
        .map(|r| r.route_name.as_str())
        .collect();
    for name in &found.named {
        if !chains.contains(name.as_str()) {
            warnings.push(format!(
                "Envoy route `{name}` has no chain in route_policies: {fallback}"
            ));
        }
    }
    for place in &found.unnamed {
        warnings.push(format!(
            "Envoy {place} has no name: Envoy sends no route name and {fallback}"
        ));
    }
    for name in chains {
        if !found.named.contains(name) {
            warnings.push(format!(
                "route_policies names `{name}`, which is no Envoy route: its chains never run"
            ));
        }
    }
    Ok(warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED_KERNEL: &str =
        include_str!("../../../../deploy/policy-engine/kernel-config.yaml");
    const SHIPPED_ENVOY: &str = include_str!("../../../../deploy/policy-engine/envoy.yaml");

    fn kernel(routes: &[&str], default: bool) -> KernelConfig {
        let mut text =
            "policy_kernel:\n  agents: [{name: a, socket_path: /tmp/a.sock}]\n  route_policies:\n"
                .to_owned();
        for route in routes {
            text.push_str(&format!("    - route_name: \"{route}\"\n"));
        }
        if default {
            text.push_str("  default_policy: {request_policy_chain: [{policy: allowAll}]}\n");
        }
        KernelConfig::from_yaml(&text).unwrap()
    }

    #[test]
    fn shipped_files_agree() {
        let config = KernelConfig::from_yaml(SHIPPED_KERNEL).unwrap();
        assert_eq!(lint(&config, SHIPPED_ENVOY).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn mismatched_names_are_reported_both_ways() {
        // The names the kernel configuration once used: paths instead of Envoy's route names.
        let config = kernel(&["/api/v1/users", "/api/v1/admin", "admin"], true);
        let warnings = lint(&config, SHIPPED_ENVOY).unwrap();
        assert_eq!(
            warnings,
            [
                "Envoy route `catch-all` has no chain in route_policies: its requests get default_policy",
                "Envoy route `limited` has no chain in route_policies: its requests get default_policy",
                "Envoy route `users` has no chain in route_policies: its requests get default_policy",
                "route_policies names `/api/v1/admin`, which is no Envoy route: its chains never run",
                "route_policies names `/api/v1/users`, which is no Envoy route: its chains never run",
            ]
        );
        let without_default = kernel(&["users", "admin", "limited"], false);
        assert_eq!(
            lint(&without_default, SHIPPED_ENVOY).unwrap(),
            ["Envoy route `catch-all` has no chain in route_policies: its requests pass without any policy"]
        );
    }

    #[test]
    fn unnamed_routes_and_a_missing_route_attribute_are_reported() {
        let envoy = SHIPPED_ENVOY
            .replace("name: limited\n                          match:", "match:")
            .replace("\"xds.route_name\", ", "");
        let config = kernel(&["users", "admin", "catch-all"], true);
        let warnings = lint(&config, &envoy).unwrap();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings[0].contains("does not send `xds.route_name`"),
            "{warnings:?}"
        );
        assert!(
            warnings[1].starts_with("Envoy virtual host `all` route 2 has no name"),
            "{warnings:?}"
        );
    }

    #[test]
    fn unnormalized_paths_are_reported() {
        let config = KernelConfig::from_yaml(SHIPPED_KERNEL).unwrap();
        for (from, to) in [
            ("normalize_path: true", "normalize_path: false"),
            ("merge_slashes: true", "merge_slashes: false"),
        ] {
            assert!(SHIPPED_ENVOY.contains(from));
            let warnings = lint(&config, &SHIPPED_ENVOY.replace(from, to)).unwrap();
            assert_eq!(warnings.len(), 1, "{warnings:?}");
            assert!(
                warnings[0].starts_with("Envoy's HTTP connection manager `ingress` does not set normalize_path and merge_slashes"),
                "{warnings:?}"
            );
        }
    }

    #[test]
    fn rds_and_missing_ext_proc_are_reported() {
        let config = kernel(&["users"], true);
        let rds = "static_resources:\n  listeners:\n    - filter_chains:\n        - filters:\n            - typed_config:\n                rds: {route_config_name: r}\n";
        let warnings = lint(&config, rds).unwrap();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].contains("no ext_proc filter"));
        assert!(warnings[1].contains("RDS"));
        assert!(matches!(
            lint(&config, "a: [unclosed"),
            Err(KernelConfigError::Envoy(_))
        ));
    }
}
