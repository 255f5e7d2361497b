//! Pack tests: fixture clusters and the verdicts named flows must get once the pack is
//! applied, judged by the netpol evaluator.

use std::net::IpAddr;

use netpol::policy::Entity;
use netpol::{Bundle, Endpoint, Engine, Options, Protocol, Verdict};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::manifest::Pack;
use crate::params;
use crate::render::render_with;

/// A test file, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TestFile {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Merged over the pack's defaults.
    #[serde(default)]
    pub parameters: Value,
    /// Fixture manifests (namespaces, workloads, pods, existing policies) in the pack.
    pub cluster: Vec<String>,
    #[serde(default)]
    pub flows: Vec<ExpectedFlow>,
    /// Resources the pack's Kyverno policies must admit or refuse.
    #[serde(default)]
    pub admission: Vec<ExpectedAdmission>,
}

/// One resource (a file in the pack) and what the pack's admission policies must answer.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExpectedAdmission {
    pub resource: String,
    pub expect: Admission,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub why: String,
}

/// What admission answers for a resource: some rule fails it, rules pass it, or no rule
/// selects it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Admission {
    Pass,
    Fail,
    Skip,
}

/// One flow and the verdict it must get.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExpectedFlow {
    /// `namespace/pod`, `namespace/workload`, an IP address or an entity (`host`, `world`).
    pub from: String,
    pub to: String,
    #[serde(default = "tcp")]
    pub protocol: String,
    pub port: u16,
    pub expect: Expect,
    /// Why (free text, shown on failure).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub why: String,
}

/// The verdicts a test can expect (netpol's [`Verdict`], as written in test files).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Expect {
    Allowed,
    Blocked,
    NoPolicy,
}

impl From<Expect> for Verdict {
    fn from(e: Expect) -> Verdict {
        match e {
            Expect::Allowed => Verdict::Allowed,
            Expect::Blocked => Verdict::Blocked,
            Expect::NoPolicy => Verdict::NoPolicy,
        }
    }
}

fn tcp() -> String {
    "TCP".into()
}

/// The outcome of one test file.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TestResult {
    pub pack: String,
    pub test: String,
    pub passed: usize,
    pub failures: Vec<TestFailure>,
    /// Admission checks that got another answer: `resource: expected X, got Y (messages)`.
    pub admission_failures: Vec<String>,
}

/// A flow that got another verdict.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TestFailure {
    pub flow: ExpectedFlow,
    pub got: Verdict,
    /// The evaluator's explanation.
    pub reason: String,
}

impl std::fmt::Display for TestFailure {
    /// `from -> to PROTO/port: expected X, got Y — reason (expected because: why)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let flow = &self.flow;
        write!(
            f,
            "{} -> {} {}/{}: expected {}, got {} — {}",
            flow.from,
            flow.to,
            flow.protocol,
            flow.port,
            Verdict::from(flow.expect),
            self.got,
            self.reason
        )?;
        if !flow.why.is_empty() {
            write!(f, " (expected because: {})", flow.why)?;
        }
        Ok(())
    }
}

impl TestResult {
    pub fn ok(&self) -> bool {
        self.failures.is_empty() && self.admission_failures.is_empty()
    }
}

/// Runs every test of a pack. An unusable test (fixture or endpoint that does not resolve)
/// is an error, never a pass.
pub fn run_tests(pack: &Pack) -> Result<Vec<TestResult>> {
    pack.manifest
        .tests
        .iter()
        .map(|file| run_test(pack, file))
        .collect()
}

fn run_test(pack: &Pack, file: &str) -> Result<TestResult> {
    let text = pack.file(file, "pack.yaml")?;
    let test: TestFile = yaml_serde::from_str(text)
        .map_err(|e| crate::manifest::manifest_error(pack.slug(), file, e.to_string()))?;
    let fail = |message: String| Error::Test {
        pack: pack.slug().to_string(),
        test: test.name.clone(),
        message,
    };
    let mut parameters = pack.manifest.parameters.defaults.clone();
    if !test.parameters.is_null() {
        params::merge(&mut parameters, &test.parameters);
    }
    let parameters = params::merge_checked(pack, parameters)?;
    let rendered = render_with(pack, parameters)?;
    let mut admission_failures = Vec::new();
    let mut admitted = 0;
    for check in &test.admission {
        let docs = netpol::manifest::documents(pack.file(&check.resource, file)?, &check.resource)
            .map_err(|e| fail(e.to_string()))?;
        for doc in docs.iter().filter(|d| !d.is_null()) {
            let got = admit(&rendered.admission, doc).map_err(&fail)?;
            if got.0 == check.expect {
                admitted += 1;
            } else {
                admission_failures.push(format!(
                    "{}: expected {:?}, got {:?} ({})",
                    check.resource,
                    check.expect,
                    got.0,
                    got.1.join("; ")
                ));
            }
        }
    }
    let mut bundle = Bundle::default();
    for f in &test.cluster {
        bundle
            .load_str(pack.file(f, file)?, &format!("{}/{f}", pack.slug()))
            .map_err(|e| fail(e.to_string()))?;
    }
    let mut policies = bundle.policies;
    policies.extend(rendered.policies);
    let engine = Engine::new(bundle.inventory, policies, Options::default());
    let mut result = TestResult {
        pack: pack.slug().to_string(),
        test: test.name.clone(),
        passed: admitted,
        failures: Vec::new(),
        admission_failures,
    };
    for flow in &test.flows {
        let src = endpoint(&engine, &flow.from).map_err(&fail)?;
        let dst = endpoint(&engine, &flow.to).map_err(&fail)?;
        let protocol = Protocol::parse(&flow.protocol)
            .ok_or_else(|| fail(format!("unknown protocol {:?}", flow.protocol)))?;
        let decision = engine.decide(&src, &dst, protocol, flow.port);
        if decision.verdict == Verdict::from(flow.expect) {
            result.passed += 1;
        } else {
            result.failures.push(TestFailure {
                flow: flow.clone(),
                got: decision.verdict,
                reason: decision.reason,
            });
        }
    }
    Ok(result)
}

/// The answer of every admission policy for one resource, with the rules' messages. A rule
/// the evaluator cannot run is an error, never a pass.
fn admit(
    policies: &[kyverno::CompiledPolicy],
    resource: &Value,
) -> Result<(Admission, Vec<String>), String> {
    let mut answer = Admission::Skip;
    let mut messages = Vec::new();
    for policy in policies {
        for r in policy.evaluate(resource, &kyverno::Request::default()) {
            match r.status {
                kyverno::RuleStatus::Fail => answer = Admission::Fail,
                kyverno::RuleStatus::Pass if answer == Admission::Skip => answer = Admission::Pass,
                kyverno::RuleStatus::Error => {
                    return Err(format!(
                        "policy {} rule {}: {}",
                        policy.name(),
                        r.rule,
                        r.message
                    ))
                }
                _ => {}
            }
            if !r.message.is_empty() {
                messages.push(format!("{}/{}: {}", policy.name(), r.rule, r.message));
            }
        }
    }
    Ok((answer, messages))
}

/// A pod by `namespace/pod` or `namespace/workload`, an address, or an entity.
pub(crate) fn endpoint(engine: &Engine, text: &str) -> Result<Endpoint, String> {
    let inv = engine.inventory();
    if let Some(i) = inv.pod_index(text) {
        return Ok(Endpoint::Pod(i));
    }
    if let Some((ns, name)) = text.split_once('/') {
        if let Some(i) = inv
            .pods
            .iter()
            .position(|p| p.workload.namespace == ns && p.workload.name == name)
        {
            return Ok(Endpoint::Pod(i));
        }
        return Err(format!(
            "no pod or workload {text:?} in the fixture cluster"
        ));
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(engine.endpoint_for_ip(ip));
    }
    Entity::parse(text)
        .map(|e| Endpoint::Entity(e, None))
        .ok_or_else(|| format!("{text:?} is not a pod, workload, address or entity"))
}
