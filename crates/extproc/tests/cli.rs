//! The binaries' check mode: `policy-kernel --validate --envoy-config` on the shipped files
//! and on a pair whose route names disagree.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn deploy(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy/policy-engine")
        .join(name)
}

fn kernel_check(config: &Path, envoy: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_policy-kernel"))
        .arg(format!("--config={}", config.display()))
        .args(["--validate", "--envoy-config"])
        .arg(envoy)
        .output()
        .unwrap()
}

#[test]
fn shipped_kernel_and_envoy_configs_agree() {
    let out = kernel_check(&deploy("kernel-config.yaml"), &deploy("envoy.yaml"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("its routes match"));
}

#[test]
fn disagreeing_route_names_are_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kernel.yaml");
    let shipped = std::fs::read_to_string(deploy("kernel-config.yaml")).unwrap();
    assert!(shipped.contains("route_name: \"users\""));
    std::fs::write(
        &config,
        shipped.replace("route_name: \"users\"", "route_name: \"/api/v1/users\""),
    )
    .unwrap();
    let out = kernel_check(&config, &deploy("envoy.yaml"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let warnings: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        warnings,
        [
            "policy-kernel: warning: Envoy route `users` has no chain in route_policies: its requests get default_policy",
            "policy-kernel: warning: route_policies names `/api/v1/users`, which is no Envoy route: its chains never run",
        ]
    );

    let missing = kernel_check(&config, &dir.path().join("no-such-envoy.yaml"));
    assert_eq!(missing.status.code(), Some(78));
    let agent = Command::new(env!("CARGO_BIN_EXE_policy-agent"))
        .args(["--envoy-config", "x"])
        .output()
        .unwrap();
    assert_eq!(agent.status.code(), Some(64));
}

/// `--validate` compiles the built-in policies' metadata: a malformed CIDR block of `ipFilter`
/// is refused before deployment (exit 78, the entry named), a well-formed list passes.
#[test]
fn validate_refuses_malformed_ip_filter_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kernel.yaml");
    let write = |allow: &str| {
        std::fs::write(
            &config,
            format!(
                "policy_kernel:\n  agents: [{{name: a, socket_path: /tmp/a.sock}}]\n  route_policies:\n    - route_name: office\n      request_policy_chain:\n        - policy: ipFilter\n          metadata: {{allow: [{allow}]}}\n"
            ),
        )
        .unwrap();
        Command::new(env!("CARGO_BIN_EXE_policy-kernel"))
            .arg(format!("--config={}", config.display()))
            .arg("--validate")
            .output()
            .unwrap()
    };
    let good = write("\"10.0.0.0/8\", \"2001:db8::/32\"");
    assert_eq!(
        good.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    let bad = write("\"10.1.0.0/8\"");
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(78), "{stderr}");
    assert!(
        stderr.lines().any(|l| l.trim()
            == "route `office` request chain: policy `ipFilter` metadata: allow: `10.1.0.0/8` has bits set past its /8 prefix"),
        "{stderr}"
    );
}
