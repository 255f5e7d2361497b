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
    }
}

fn unknown(name: &str) -> Step {
    Step {
        name: name.into(),
        on_failure: OnFailure::Deny,
        policy: Err(PolicyError::Unknown(name.into())),
    }
}

const LIMITS: Limits = Limits {
    max_state_size_bytes: 64,
    fail_on_unknown: false,
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
