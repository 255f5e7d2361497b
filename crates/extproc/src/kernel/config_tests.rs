use super::*;

const SPEC_EXAMPLE: &str = include_str!("../../../../deploy/policy-engine/kernel-config.yaml");

#[test]
fn deployed_example_is_valid_against_the_builtin_policies() {
    let config = KernelConfig::from_yaml(SPEC_EXAMPLE).unwrap();
    assert_eq!(config.policy_kernel.server.port, 9001);
    assert!(config.check_policies(&PolicyCatalog::builtin()).is_empty());
}

#[test]
fn structural_errors_are_all_reported() {
    let error = KernelConfig::from_yaml(
        r#"
policy_kernel:
  trust_forwarded_for: 99
  agents:
    - name: a
      socket_path: /tmp/a.sock
      timeout_ms: 9000
    - name: a
      socket_path: /tmp/b.sock
  route_policies:
    - route_name: r
      agent: missing
      request_policy_chain:
        - policy: apiKeyAuth
          on_failure: explode
"#,
    )
    .unwrap_err()
    .to_string();
    for needle in [
        "timeout_ms",
        "used twice",
        "names no configured agent",
        "on_failure",
        "trust_forwarded_for",
    ] {
        assert!(error.contains(needle), "{needle} missing in {error}");
    }
}

#[test]
fn unknown_fields_are_rejected() {
    let error =
        KernelConfig::from_yaml("policy_kernel:\n  agents: []\n  routes: []\n").unwrap_err();
    assert!(error.to_string().contains("routes"), "{error}");
}

#[test]
fn policies_are_checked_against_a_catalog() {
    let config = KernelConfig::from_yaml(
        r#"
policy_kernel:
  agents:
    - name: a
      socket_path: /tmp/a.sock
  route_policies:
    - route_name: r
      request_policy_chain:
        - policy: rateLimit
          metadata: { burst: 0 }
        - policy: noSuchPolicy
      response_policy_chain:
        - policy: apiKeyAuth
"#,
    )
    .unwrap();
    let problems = config.check_policies(&PolicyCatalog::builtin()).join("\n");
    for needle in [
        "requests_per_second",
        "minimum",
        "noSuchPolicy",
        "Response phase",
    ] {
        assert!(problems.contains(needle), "{needle} missing in {problems}");
    }
}

#[test]
fn builtin_catalog_compiles_metadata_beyond_the_schema() {
    let config = KernelConfig::from_yaml(
        r#"
policy_kernel:
  agents:
    - name: a
      socket_path: /tmp/a.sock
  route_policies:
    - route_name: r
      request_policy_chain:
        - policy: ipFilter
          metadata: { deny: ["10.0.0.0/8", "2001:db8::1/32"] }
        - policy: rateLimit
          metadata: { requests_per_second: 1, key: "cookie" }
        - policy: rateLimit
          metadata: { requests_per_second: 1, store: redis }
        - policy: ipFilter
          metadata: { allow: ["192.0.2.0/24"] }
"#,
    )
    .unwrap();
    let problems = config.check_policies(&PolicyCatalog::builtin());
    assert_eq!(problems.len(), 1, "{problems:?}");
    let problem = &problems[0];
    assert!(
        problem.contains("`2001:db8::1/32` has bits set"),
        "{problem}"
    );
    assert!(problem.contains("key must be client_ip"), "{problem}");
    // store: redis needs an agent setting, not other metadata: the route itself is fine.
    assert!(!problem.contains("redis"), "{problem}");
}

#[test]
fn conditions_are_strict() {
    let error = KernelConfig::from_yaml(
        r#"
policy_kernel:
  agents: [{name: a, socket_path: /tmp/a.sock}]
  route_policies:
    - route_name: r
      request_policy_chain:
        - policy: allowAll
          when: {}
        - policy: allowAll
          when: {methods: [get, ""], path_prefixes: [admin, "/a?b"], headers: {"bad name": x}}
        - policy: allowAll
          when: {methods: [POST], path_prefixes: [/admin/], headers: {X-Tenant: acme}}
"#,
    )
    .unwrap_err()
    .to_string();
    for needle in [
        "request_policy_chain[0].when needs methods, path_prefixes or headers",
        "when.methods[0] `get` must be an uppercase HTTP method",
        "when.methods[1] `` must be",
        "when.path_prefixes[0] `admin` must start with /",
        "when.path_prefixes[1] `/a?b`",
        "when.headers `bad name` is not a header name",
    ] {
        assert!(error.contains(needle), "{needle} missing in {error}");
    }
    assert!(!error.contains("[2].when"), "{error}");
    let unknown = KernelConfig::from_yaml(
        "policy_kernel:\n  agents: [{name: a, socket_path: /tmp/a.sock}]\n  route_policies:\n    - route_name: r\n      request_policy_chain:\n        - policy: allowAll\n          when: {method: GET}\n",
    )
    .unwrap_err();
    assert!(unknown.to_string().contains("method"), "{unknown}");
}
