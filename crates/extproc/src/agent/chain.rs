//! Sequential execution of a policy chain with context updates (spec section 4.1.3 and 4.1.4).
//!
//! This module is pure: it knows nothing of gRPC or Envoy. The server converts the wire
//! messages into a [`Context`] and a list of [`Step`]s and converts the [`ChainResult`] back.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use super::policies::{CompiledPolicy, PolicyError};

/// The phase a chain runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Request headers (and body when asked for).
    Request,
    /// Response headers (and body when asked for).
    Response,
}

/// What a policy does when it fails (returns an error, as opposed to denying).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OnFailure {
    /// Stop the chain and deny the request with 500 (the default: fail closed).
    #[default]
    Deny,
    /// Log and run the next policy.
    Continue,
    /// Stop the chain and let the request through with the instructions gathered so far.
    SkipRemaining,
}

impl OnFailure {
    /// Parses the wire value; the empty string means the default.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "" | "deny" => Some(Self::Deny),
            "continue" => Some(Self::Continue),
            "skip_remaining" => Some(Self::SkipRemaining),
            _ => None,
        }
    }
}

/// The response a policy wants Envoy to send instead of forwarding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImmediateResponse {
    /// HTTP status code.
    pub status: u16,
    /// Headers of the response.
    pub headers: Vec<(String, String)>,
    /// Body of the response.
    pub body: Vec<u8>,
}

impl ImmediateResponse {
    /// A JSON error body `{"error": message}` with the given status.
    pub fn json_error(status: u16, message: &str) -> Self {
        let body = serde_json::json!({ "error": message })
            .to_string()
            .into_bytes();
        Self {
            status,
            headers: vec![("content-type".to_owned(), "application/json".to_owned())],
            body,
        }
    }

    /// Adds a header.
    #[must_use]
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// One instruction of a policy, applied to the context and forwarded to the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Instruction {
    /// Add or replace a header (of the request or the response, by phase).
    SetHeader {
        /// Header name (lowercase).
        key: String,
        /// Header value.
        value: String,
    },
    /// Remove a header.
    RemoveHeader(String),
    /// Replace the body of the current phase.
    SetBody(Vec<u8>),
    /// Set a chain-local state value that later policies can read.
    SetState {
        /// State key.
        key: String,
        /// State value.
        value: String,
    },
    /// Answer the client directly (terminal).
    Immediate(ImmediateResponse),
    /// Nothing to do.
    Continue,
}

/// The decision of one policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Go on with the chain.
    Allow,
    /// Stop the chain: the request is denied (normally with an immediate response).
    Deny,
}

/// What a policy returns when it ran.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Allow or deny.
    pub decision: Decision,
    /// Instructions, applied in order.
    pub instructions: Vec<Instruction>,
    /// Human-readable reason (never a secret).
    pub message: String,
    /// Extra key/values reported to the kernel.
    pub metadata: Vec<(String, String)>,
}

impl Outcome {
    /// Allow without instructions.
    pub fn allow() -> Self {
        Self::allow_with(Vec::new())
    }

    /// Allow with instructions.
    pub fn allow_with(instructions: Vec<Instruction>) -> Self {
        Self {
            decision: Decision::Allow,
            instructions,
            message: String::new(),
            metadata: Vec::new(),
        }
    }

    /// Deny with an immediate response.
    pub fn deny(message: &str, response: ImmediateResponse) -> Self {
        Self {
            decision: Decision::Deny,
            instructions: vec![Instruction::Immediate(response)],
            message: message.to_owned(),
            metadata: Vec::new(),
        }
    }
}

/// The response side of a context (response phase only).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResponseData {
    /// Response headers, lowercase names.
    pub headers: HashMap<String, String>,
    /// Response body (when buffered).
    pub body: Vec<u8>,
    /// HTTP status code.
    pub status_code: i32,
}

/// The request context a chain reads and updates.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Context {
    /// Request id for correlation.
    pub request_id: String,
    /// Request headers, lowercase names.
    pub headers: HashMap<String, String>,
    /// Request body (when buffered).
    pub body: Vec<u8>,
    /// HTTP method.
    pub method: String,
    /// Path including the query string.
    pub path: String,
    /// Scheme.
    pub scheme: String,
    /// Authority (host).
    pub authority: String,
    /// Decoded query parameters.
    pub query_params: HashMap<String, String>,
    /// Client IP address.
    pub client_ip: String,
    /// Present in the response phase.
    pub response: Option<ResponseData>,
    /// Chain-local state written by `SET_STATE`.
    pub state: HashMap<String, String>,
}

impl Context {
    /// The phase this context is in.
    pub fn phase(&self) -> Phase {
        if self.response.is_some() {
            Phase::Response
        } else {
            Phase::Request
        }
    }

    /// Total bytes held in state.
    pub fn state_size(&self) -> usize {
        self.state.iter().map(|(k, v)| k.len() + v.len()).sum()
    }

    /// Applies an instruction to the context (spec section 4.1.4).
    pub fn apply(&mut self, instruction: &Instruction) {
        let (headers, body) = match self.response.as_mut() {
            Some(response) => (&mut response.headers, &mut response.body),
            None => (&mut self.headers, &mut self.body),
        };
        match instruction {
            Instruction::SetHeader { key, value } => {
                headers.insert(key.to_ascii_lowercase(), value.clone());
            }
            Instruction::RemoveHeader(key) => {
                headers.remove(&key.to_ascii_lowercase());
            }
            Instruction::SetBody(new_body) => body.clone_from(new_body),
            Instruction::SetState { key, value } => {
                self.state.insert(key.clone(), value.clone());
            }
            Instruction::Immediate(_) | Instruction::Continue => {}
        }
    }
}

/// When a chain entry applies: every part given must match; an empty part matches all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Condition {
    /// HTTP methods, any of.
    pub methods: Vec<String>,
    /// Prefixes of the path without its query string, any of.
    pub path_prefixes: Vec<String>,
    /// Request headers (lowercase names) with their exact values, all of.
    pub headers: Vec<(String, String)>,
}

impl Condition {
    /// Whether the request of `ctx` (as earlier policies left it) matches.
    pub fn matches(&self, ctx: &Context) -> bool {
        let path = ctx
            .path
            .split_once('?')
            .map_or(ctx.path.as_str(), |(p, _)| p);
        (self.methods.is_empty() || self.methods.contains(&ctx.method))
            && (self.path_prefixes.is_empty()
                || self
                    .path_prefixes
                    .iter()
                    .any(|p| path.starts_with(p.as_str())))
            && self
                .headers
                .iter()
                .all(|(name, value)| ctx.headers.get(name) == Some(value))
    }
}

/// One entry of a chain as the agent resolved it.
pub struct Step {
    /// Policy name as configured.
    pub name: String,
    /// Failure handling.
    pub on_failure: OnFailure,
    /// The compiled policy, or why it is not available.
    pub policy: Result<Arc<dyn CompiledPolicy>, PolicyError>,
    /// Dry run: the policy is evaluated and its outcome reported, but its instructions are
    /// dropped and it never stops the chain (no denial, no failure).
    pub shadow: bool,
    /// The step runs only when the request matches; otherwise it is passed over unrecorded.
    pub when: Condition,
}

/// Overall status of a chain (mirrors the wire `StatusCode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChainStatus {
    /// Every policy allowed (or a failure was skipped).
    Ok,
    /// A policy denied.
    Denied,
    /// A policy failed with `on_failure: deny`, or an unknown policy with `fail_on_unknown`.
    Error,
    /// The deadline ([`Limits::deadline`]) passed before the chain finished.
    Timeout,
}

/// Limits enforced while a chain runs.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest state, in bytes, a chain may build.
    pub max_state_size_bytes: usize,
    /// Unknown policies fail the request instead of being skipped.
    pub fail_on_unknown: bool,
    /// No policy starts after this instant: the chain ends with [`ChainStatus::Timeout`]
    /// (the agent's `request_timeout_ms`, or the kernel's deadline when sooner).
    pub deadline: Option<Instant>,
}

/// How one policy of the chain ended, for metrics and logs.
#[derive(Clone, Debug, PartialEq)]
pub struct StepReport {
    /// Policy name.
    pub policy: String,
    /// `ok`, `denied`, `error`, `unknown`.
    pub status: &'static str,
    /// Failure reason (a short, bounded code) when status is `error`.
    pub reason: Option<&'static str>,
    /// Time the policy took.
    pub seconds: f64,
    /// A dry run: `status` is what the policy would have done; it had no effect.
    pub shadow: bool,
}

/// Result of a chain.
#[derive(Clone, Debug, PartialEq)]
pub struct ChainResult {
    /// Instructions of every policy that ran, in order.
    pub instructions: Vec<Instruction>,
    /// Overall status.
    pub status: ChainStatus,
    /// The policy that decided the status (empty when all allowed).
    pub policy_name: String,
    /// Reason.
    pub message: String,
    /// Metadata reported by policies.
    pub metadata: HashMap<String, String>,
    /// Per-policy reports.
    pub steps: Vec<StepReport>,
}

fn error_response() -> Instruction {
    Instruction::Immediate(ImmediateResponse::json_error(500, "policy error"))
}

/// Runs `steps` in order against `ctx` (spec section 4.1.3).
pub fn run_chain(steps: &[Step], ctx: &mut Context, limits: Limits) -> ChainResult {
    let mut result = ChainResult {
        instructions: Vec::new(),
        status: ChainStatus::Ok,
        policy_name: String::new(),
        message: String::new(),
        metadata: HashMap::new(),
        steps: Vec::with_capacity(steps.len()),
    };
    if ctx.phase() == Phase::Request {
        strip_identity_headers(steps, ctx, &mut result);
    }
    for step in steps {
        if !step.when.matches(ctx) {
            tracing::debug!(request_id = %ctx.request_id, policy.name = %step.name, "condition not met: policy passed over");
            continue;
        }
        if limits
            .deadline
            .is_some_and(|deadline| Instant::now() >= deadline)
        {
            if step.shadow {
                // A dry run never answers for the request, not even with a timeout.
                tracing::warn!(request_id = %ctx.request_id, policy.name = %step.name, shadow = true, "chain deadline passed: shadow policy not evaluated");
                continue;
            }
            tracing::warn!(request_id = %ctx.request_id, policy.name = %step.name, "chain deadline passed before this policy");
            result.status = ChainStatus::Timeout;
            result.policy_name.clone_from(&step.name);
            result.message = "request timeout exceeded".to_owned();
            break;
        }
        let span = tracing::debug_span!(
            "policy.execute",
            policy.name = %step.name,
            decision = tracing::field::Empty
        )
        .entered();
        let stop = if step.shadow {
            run_shadow(step, ctx, &mut result);
            false
        } else {
            run_step(step, ctx, limits, &mut result)
        };
        if let Some(report) = result.steps.last() {
            span.record("decision", report.status);
        }
        if stop {
            break;
        }
    }
    result
}

/// Removes from the request every header a policy of the chain writes as identity, before
/// any policy runs: whatever the client sent under those names never reaches a later policy
/// or the upstream, whether or not the policy is `required` and whether or not it
/// authenticates the request.
fn strip_identity_headers(steps: &[Step], ctx: &mut Context, result: &mut ChainResult) {
    let declared = steps
        .iter()
        .filter_map(|step| step.policy.as_ref().ok())
        .flat_map(|policy| policy.identity_headers());
    for header in declared {
        if ctx.headers.contains_key(header) {
            let remove = Instruction::RemoveHeader(header.clone());
            ctx.apply(&remove);
            result.instructions.push(remove);
        }
    }
}

/// Evaluates a shadow (dry-run) policy on the context as it stands and records what it would
/// have done, with a log line (`shadow: true`); the context and the answer stay untouched.
fn run_shadow(step: &Step, ctx: &Context, result: &mut ChainResult) {
    let started = Instant::now();
    let evaluated = step
        .policy
        .as_ref()
        .map_err(Clone::clone)
        .and_then(|p| p.execute(ctx));
    let (status, reason, message) = match evaluated {
        Ok(outcome) => {
            let terminal = outcome.decision == Decision::Deny
                || outcome
                    .instructions
                    .iter()
                    .any(|i| matches!(i, Instruction::Immediate(_)));
            if terminal {
                ("denied", None, outcome.message)
            } else {
                ("ok", None, String::new())
            }
        }
        Err(error) => {
            let status = if matches!(error, PolicyError::Unknown(_)) {
                "unknown"
            } else {
                "error"
            };
            (status, Some(error.reason()), error.to_string())
        }
    };
    if status == "ok" {
        tracing::debug!(request_id = %ctx.request_id, policy.name = %step.name, shadow = true, decision = status, "shadow policy evaluated");
    } else {
        tracing::info!(request_id = %ctx.request_id, policy.name = %step.name, shadow = true, decision = status, %message, "shadow policy would have stopped the request");
    }
    result.steps.push(StepReport {
        policy: step.name.clone(),
        status,
        reason,
        seconds: started.elapsed().as_secs_f64(),
        shadow: true,
    });
}

/// Runs one policy and records it in `result`; returns true when the chain stops.
fn run_step(step: &Step, ctx: &mut Context, limits: Limits, result: &mut ChainResult) -> bool {
    let started = Instant::now();
    let policy = match &step.policy {
        Ok(policy) => policy,
        Err(PolicyError::Unknown(_)) => {
            result.steps.push(StepReport {
                policy: step.name.clone(),
                status: "unknown",
                reason: Some("unknown_policy"),
                seconds: 0.0,
                shadow: false,
            });
            if limits.fail_on_unknown {
                tracing::error!(policy.name = %step.name, "unknown policy, failing the request");
                result.status = ChainStatus::Error;
                result.policy_name.clone_from(&step.name);
                result.message = format!("unknown policy {}", step.name);
                result.instructions.push(error_response());
                return true;
            }
            tracing::warn!(policy.name = %step.name, "unknown policy skipped");
            return false;
        }
        Err(error) => return handle_failure(step, error, 0.0, result),
    };
    let outcome = policy.execute(ctx).and_then(|outcome| {
        let mut probe_state = 0usize;
        for instruction in &outcome.instructions {
            if let Instruction::SetState { key, value } = instruction {
                probe_state += key.len() + value.len();
            }
        }
        if ctx.state_size() + probe_state > limits.max_state_size_bytes {
            return Err(PolicyError::Limit("state size limit exceeded".to_owned()));
        }
        Ok(outcome)
    });
    let seconds = started.elapsed().as_secs_f64();
    match outcome {
        Ok(outcome) => {
            for instruction in &outcome.instructions {
                ctx.apply(instruction);
            }
            let terminal = outcome.decision == Decision::Deny
                || outcome
                    .instructions
                    .iter()
                    .any(|i| matches!(i, Instruction::Immediate(_)));
            result.instructions.extend(outcome.instructions);
            result.metadata.extend(outcome.metadata);
            result.steps.push(StepReport {
                policy: step.name.clone(),
                status: if terminal { "denied" } else { "ok" },
                reason: None,
                seconds,
                shadow: false,
            });
            if terminal {
                result.status = ChainStatus::Denied;
                result.policy_name.clone_from(&step.name);
                result.message = outcome.message;
            }
            terminal
        }
        Err(error) => handle_failure(step, &error, seconds, result),
    }
}

/// Records a failed step; returns true when the chain stops.
fn handle_failure(
    step: &Step,
    error: &PolicyError,
    seconds: f64,
    result: &mut ChainResult,
) -> bool {
    result.steps.push(StepReport {
        policy: step.name.clone(),
        status: "error",
        reason: Some(error.reason()),
        seconds,
        shadow: false,
    });
    tracing::error!(policy.name = %step.name, error = %error, on_failure = ?step.on_failure, "policy failed");
    match step.on_failure {
        OnFailure::Deny => {
            result.status = ChainStatus::Error;
            result.policy_name.clone_from(&step.name);
            result.message = error.to_string();
            result.instructions.push(error_response());
            true
        }
        OnFailure::Continue => false,
        OnFailure::SkipRemaining => {
            result.policy_name.clone_from(&step.name);
            result.message = error.to_string();
            true
        }
    }
}

#[cfg(test)]
#[path = "chain_tests.rs"]
mod tests;
