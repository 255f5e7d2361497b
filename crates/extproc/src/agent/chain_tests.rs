//! Table tests of chain semantics: context updates, early termination, on_failure, unknown policies.

use std::sync::Arc;

use super::*;

/// A scripted policy: what it does is given by its variant.
enum Fake {
    SetHeader(&'static str, &'static str),
    /// Allows only when the header is present (checks context updates).
    RequireHeader(&'static str),
    Deny(u16),
    Fail,
    BigState,
    /// Takes this many milliseconds, then allows.
    Slow(u64),
}

impl CompiledPolicy for Fake {
    fn execute(&self, ctx: &Context) -> Result<Outcome, PolicyError> {
        match self {
            Fake::SetHeader(k, v) => Ok(Outcome::allow_with(vec![Instruction::SetHeader {
                key: (*k).into(),
                value: (*v).into(),
            }])),
            Fake::RequireHeader(k) if ctx.headers.contains_key(*k) => Ok(Outcome::allow()),
            Fake::RequireHeader(_) => Ok(Outcome::deny(
                "missing",
                ImmediateResponse::json_error(403, "missing"),
            )),
            Fake::Deny(status) => Ok(Outcome::deny(
                "no",
                ImmediateResponse::json_error(*status, "no"),
            )),
            Fake::Fail => Err(PolicyError::Execution("boom".into())),
            Fake::Slow(ms) => {
                std::thread::sleep(std::time::Duration::from_millis(*ms));
                Ok(Outcome::allow())
            }
            Fake::BigState => Ok(Outcome::allow_with(vec![Instruction::SetState {
                key: "k".into(),
                value: "x".repeat(100),
            }])),
        }
    }
}

fn step(name: &str, fake: Fake, on_failure: OnFailure) -> Step {
    Step {
        name: name.into(),
        on_failure,
        policy: Ok(Arc::new(fake)),
        shadow: false,
        when: Condition::default(),
    }
}

fn unknown(name: &str) -> Step {
    Step {
        name: name.into(),
        on_failure: OnFailure::Deny,
        policy: Err(PolicyError::Unknown(name.into())),
        shadow: false,
        when: Condition::default(),
    }
}

const LIMITS: Limits = Limits {
    max_state_size_bytes: 64,
    fail_on_unknown: false,
    deadline: None,
};

fn immediate_status(result: &ChainResult) -> Option<u16> {
    result.instructions.iter().find_map(|i| match i {
        Instruction::Immediate(r) => Some(r.status),
        _ => None,
    })
}

fn ran(result: &ChainResult) -> Vec<&str> {
    result.steps.iter().map(|s| s.policy.as_str()).collect()
}

#[test]
fn chain_semantics_table() {
    use OnFailure::{Continue, Deny, SkipRemaining};
    struct Case {
        name: &'static str,
        steps: Vec<Step>,
        limits: Limits,
        status: ChainStatus,
        immediate: Option<u16>,
        ran: Vec<&'static str>,
    }
    let strict = Limits {
        fail_on_unknown: true,
        ..LIMITS
    };
    let cases = vec![
        Case {
            name: "context update is visible to the next policy",
            steps: vec![
                step("a", Fake::SetHeader("x-user", "u"), Deny),
                step("b", Fake::RequireHeader("x-user"), Deny),
            ],
            limits: LIMITS,
            status: ChainStatus::Ok,
            immediate: None,
            ran: vec!["a", "b"],
        },
        Case {
            name: "deny stops the chain",
            steps: vec![
                step("a", Fake::Deny(401), Deny),
                step("b", Fake::SetHeader("x", "y"), Deny),
            ],
            limits: LIMITS,
            status: ChainStatus::Denied,
            immediate: Some(401),
            ran: vec!["a"],
        },
        Case {
            name: "on_failure deny answers 500",
            steps: vec![
                step("a", Fake::Fail, Deny),
                step("b", Fake::SetHeader("x", "y"), Deny),
            ],
            limits: LIMITS,
            status: ChainStatus::Error,
            immediate: Some(500),
            ran: vec!["a"],
        },
        Case {
            name: "on_failure continue runs the next policy",
            steps: vec![
                step("a", Fake::Fail, Continue),
                step("b", Fake::Deny(403), Deny),
            ],
            limits: LIMITS,
            status: ChainStatus::Denied,
            immediate: Some(403),
            ran: vec!["a", "b"],
        },
        Case {
            name: "on_failure skip_remaining lets the request through",
            steps: vec![
                step("a", Fake::Fail, SkipRemaining),
                step("b", Fake::Deny(403), Deny),
            ],
            limits: LIMITS,
            status: ChainStatus::Ok,
            immediate: None,
            ran: vec!["a"],
        },
        Case {
            name: "unknown policy is skipped by default",
            steps: vec![unknown("nope"), step("b", Fake::Deny(403), Deny)],
            limits: LIMITS,
            status: ChainStatus::Denied,
            immediate: Some(403),
            ran: vec!["nope", "b"],
        },
        Case {
            name: "unknown policy fails with fail_on_unknown",
            steps: vec![unknown("nope"), step("b", Fake::SetHeader("x", "y"), Deny)],
            limits: strict,
            status: ChainStatus::Error,
            immediate: Some(500),
            ran: vec!["nope"],
        },
        Case {
            name: "state size limit is a policy failure",
            steps: vec![step("a", Fake::BigState, Deny)],
            limits: LIMITS,
            status: ChainStatus::Error,
            immediate: Some(500),
            ran: vec!["a"],
        },
    ];
    for case in cases {
        let mut ctx = Context::default();
        let result = run_chain(&case.steps, &mut ctx, case.limits);
        assert_eq!(result.status, case.status, "{}", case.name);
        assert_eq!(immediate_status(&result), case.immediate, "{}", case.name);
        assert_eq!(ran(&result), case.ran, "{}", case.name);
    }
}

#[test]
fn response_phase_updates_response_headers() {
    let mut ctx = Context {
        response: Some(ResponseData::default()),
        ..Context::default()
    };
    ctx.apply(&Instruction::SetHeader {
        key: "X-A".into(),
        value: "1".into(),
    });
    ctx.apply(&Instruction::SetBody(b"new".to_vec()));
    let response = ctx.response.as_ref().unwrap();
    assert_eq!(response.headers.get("x-a").map(String::as_str), Some("1"));
    assert_eq!(response.body, b"new");
    assert!(ctx.headers.is_empty());
    ctx.apply(&Instruction::RemoveHeader("x-a".into()));
    assert!(ctx.response.as_ref().unwrap().headers.is_empty());
}

#[test]
fn on_failure_parses_wire_values() {
    assert_eq!(OnFailure::parse(""), Some(OnFailure::Deny));
    assert_eq!(
        OnFailure::parse("skip_remaining"),
        Some(OnFailure::SkipRemaining)
    );
    assert_eq!(OnFailure::parse("explode"), None);
}

/// apiKeyAuth as compiled by the agent, with one key for `alice`.
fn api_key_step(metadata: serde_json::Value) -> Step {
    use crate::agent::policies::{ApiKeyAuth, PolicyKind};
    let kind = ApiKeyAuth::from_pairs([("alice", "alice-key")]);
    Step {
        name: "apiKeyAuth".into(),
        on_failure: OnFailure::Deny,
        policy: kind.compile(metadata.as_object().unwrap()),
        shadow: false,
        when: Condition::default(),
    }
}

fn request_with(headers: &[(&str, &str)]) -> Context {
    let mut ctx = Context::default();
    for (k, v) in headers {
        ctx.headers.insert((*k).into(), (*v).into());
    }
    ctx
}

#[test]
fn client_identity_headers_are_removed_before_any_policy() {
    let optional = serde_json::json!({"required": false});
    let forged = ("x-user-id", "admin");

    // No key on an optional apiKeyAuth: allowed, but the forged identity is gone.
    let mut ctx = request_with(&[forged]);
    let result = run_chain(&[api_key_step(optional.clone())], &mut ctx, LIMITS);
    assert_eq!(result.status, ChainStatus::Ok);
    assert!(!ctx.headers.contains_key("x-user-id"), "{:?}", ctx.headers);
    assert_eq!(
        result.instructions,
        vec![Instruction::RemoveHeader("x-user-id".into())]
    );

    // A policy before apiKeyAuth does not see it either.
    let mut ctx = request_with(&[forged]);
    let steps = [
        step("reader", Fake::RequireHeader("x-user-id"), OnFailure::Deny),
        api_key_step(optional.clone()),
    ];
    let result = run_chain(&steps, &mut ctx, LIMITS);
    assert_eq!(immediate_status(&result), Some(403));

    // A wrong key is denied; a valid key replaces the forged value with the key's user.
    let mut ctx = request_with(&[forged, ("x-api-key", "wrong")]);
    let result = run_chain(&[api_key_step(optional.clone())], &mut ctx, LIMITS);
    assert_eq!(immediate_status(&result), Some(403));
    let mut ctx = request_with(&[forged, ("x-api-key", "alice-key")]);
    let result = run_chain(&[api_key_step(optional)], &mut ctx, LIMITS);
    assert_eq!(result.status, ChainStatus::Ok);
    assert_eq!(ctx.headers["x-user-id"], "alice");
    assert_eq!(
        result.instructions.first(),
        Some(&Instruction::RemoveHeader("x-user-id".into()))
    );

    // A custom identity header is removed too; an unrelated header stays.
    let mut ctx = request_with(&[("x-principal", "root"), ("x-user-id", "kept")]);
    let custom = serde_json::json!({"required": false, "user_id_header": "X-Principal"});
    run_chain(&[api_key_step(custom)], &mut ctx, LIMITS);
    assert!(!ctx.headers.contains_key("x-principal"));
    assert_eq!(ctx.headers["x-user-id"], "kept");
}

#[test]
fn no_policy_starts_after_the_deadline() {
    use std::time::{Duration, Instant};
    let steps = || {
        [
            step("slow", Fake::Slow(30), OnFailure::Deny),
            step("next", Fake::SetHeader("x", "y"), OnFailure::Deny),
        ]
    };
    let limits = Limits {
        deadline: Some(Instant::now() + Duration::from_millis(10)),
        ..LIMITS
    };
    let mut ctx = Context::default();
    let result = run_chain(&steps(), &mut ctx, limits);
    assert_eq!(result.status, ChainStatus::Timeout);
    assert_eq!(result.policy_name, "next");
    assert_eq!(ran(&result), ["slow"]);
    assert!(!ctx.headers.contains_key("x"));

    let roomy = Limits {
        deadline: Some(Instant::now() + Duration::from_secs(60)),
        ..LIMITS
    };
    let result = run_chain(&steps(), &mut Context::default(), roomy);
    assert_eq!(result.status, ChainStatus::Ok);
    assert_eq!(ran(&result), ["slow", "next"]);
}

fn shadow(step: Step) -> Step {
    Step {
        shadow: true,
        ..step
    }
}

#[test]
fn shadow_policies_are_evaluated_but_never_act() {
    let mut ctx = Context::default();
    let steps = [
        shadow(step("deny", Fake::Deny(403), OnFailure::Deny)),
        shadow(step("fail", Fake::Fail, OnFailure::Deny)),
        shadow(step(
            "set",
            Fake::SetHeader("x-shadow", "1"),
            OnFailure::Deny,
        )),
        // Sees the context without the shadow policy's header: it would have denied.
        shadow(step(
            "require",
            Fake::RequireHeader("x-shadow"),
            OnFailure::Deny,
        )),
        shadow(unknown("ghost")),
        step("real", Fake::SetHeader("x-real", "1"), OnFailure::Deny),
    ];
    let limits = Limits {
        fail_on_unknown: true,
        ..LIMITS
    };
    let result = run_chain(&steps, &mut ctx, limits);
    assert_eq!(result.status, ChainStatus::Ok);
    assert_eq!(
        result.instructions,
        [Instruction::SetHeader {
            key: "x-real".into(),
            value: "1".into()
        }]
    );
    assert!(!ctx.headers.contains_key("x-shadow"));
    let reports: Vec<(&str, &str, Option<&str>, bool)> = result
        .steps
        .iter()
        .map(|s| (s.policy.as_str(), s.status, s.reason, s.shadow))
        .collect();
    assert_eq!(
        reports,
        [
            ("deny", "denied", None, true),
            ("fail", "error", Some("execution_error"), true),
            ("set", "ok", None, true),
            ("require", "denied", None, true),
            ("ghost", "unknown", Some("unknown_policy"), true),
            ("real", "ok", None, false),
        ]
    );

    // A real policy after a shadow one still decides.
    let steps = [
        shadow(step("deny", Fake::Deny(403), OnFailure::Deny)),
        step("deny-for-real", Fake::Deny(401), OnFailure::Deny),
    ];
    let result = run_chain(&steps, &mut Context::default(), LIMITS);
    assert_eq!(result.status, ChainStatus::Denied);
    assert_eq!(result.policy_name, "deny-for-real");
    assert_eq!(immediate_status(&result), Some(401));
}

#[test]
fn a_passed_deadline_skips_shadow_policies_without_a_timeout() {
    let steps = [
        step("slow", Fake::Slow(20), OnFailure::Deny),
        shadow(step("deny", Fake::Deny(403), OnFailure::Deny)),
    ];
    let limits = Limits {
        deadline: Some(Instant::now() + std::time::Duration::from_millis(10)),
        ..LIMITS
    };
    let result = run_chain(&steps, &mut Context::default(), limits);
    assert_eq!(result.status, ChainStatus::Ok);
    assert_eq!(ran(&result), ["slow"]);
}

#[test]
fn conditions_choose_the_steps_that_run() {
    let when = |methods: &[&str], prefixes: &[&str], headers: &[(&str, &str)]| Condition {
        methods: methods.iter().map(|m| (*m).to_owned()).collect(),
        path_prefixes: prefixes.iter().map(|p| (*p).to_owned()).collect(),
        headers: headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    };
    let ctx = |method: &str, path: &str, headers: &[(&str, &str)]| Context {
        method: method.into(),
        path: path.into(),
        ..request_with(headers)
    };
    let c = when(
        &["POST", "PUT"],
        &["/admin/", "/ops"],
        &[("x-tenant", "acme")],
    );
    let acme = [("x-tenant", "acme")];
    assert!(c.matches(&ctx("POST", "/admin/users?x=1", &acme)));
    assert!(
        c.matches(&ctx("PUT", "/opsx", &acme)),
        "a plain string prefix"
    );
    assert!(!c.matches(&ctx("GET", "/admin/users", &acme)));
    assert!(
        !c.matches(&ctx("POST", "/public?/admin/", &acme)),
        "the query is not the path"
    );
    assert!(!c.matches(&ctx("POST", "/admin/", &[("x-tenant", "other")])));
    assert!(!c.matches(&ctx("POST", "/admin/", &[])));
    assert!(
        !c.matches(&ctx("post", "/admin/", &acme)),
        "methods are case-sensitive"
    );
    assert!(Condition::default().matches(&ctx("GET", "/", &[])));

    // In a chain: the deny applies to POST only; a passed-over step is not reported.
    let steps = [
        Step {
            when: when(&["POST"], &[], &[]),
            ..step("deny-posts", Fake::Deny(403), OnFailure::Deny)
        },
        step("set", Fake::SetHeader("x-ran", "1"), OnFailure::Deny),
    ];
    let get = run_chain(&steps, &mut ctx("GET", "/", &[]), LIMITS);
    assert_eq!((get.status, ran(&get)), (ChainStatus::Ok, vec!["set"]));
    let post = run_chain(&steps, &mut ctx("POST", "/", &[]), LIMITS);
    assert_eq!(post.status, ChainStatus::Denied);
    assert_eq!(ran(&post), ["deny-posts"]);
}
