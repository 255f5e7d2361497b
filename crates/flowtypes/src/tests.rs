use super::*;

fn sample() -> ValidationPayload {
    let mut p = ValidationPayload::new("prod");
    let mut counts = Counts::default();
    counts.record(Verdict::Allowed, Discrepancy::Match);
    counts.record(Verdict::Blocked, Discrepancy::EnforcementGap);
    counts.record(Verdict::NoPolicy, Discrepancy::Unobserved);
    p.summaries.push(ValidationSummary {
        hour: "2025-03-14T09:00:00Z".into(),
        counts,
        coverage_gaps: vec![CoverageGap {
            source: "shop/web".into(),
            destination: "shop/db".into(),
            protocol: "TCP".into(),
            port: 5432,
            count: 1,
            count_error: 0,
        }],
        top_blocked: vec![BlockedFlow {
            source: "shop/web".into(),
            destination: "reserved:world".into(),
            policy: "NetworkPolicy shop/deny".into(),
            count: 1,
            count_error: 0,
        }],
        top_exact: true,
    });
    p
}

#[test]
fn json_form_is_camel_case_with_schema_version() {
    let json = serde_json::to_value(sample()).unwrap();
    assert_eq!(json["schemaVersion"], 1);
    let s = &json["summaries"][0];
    assert_eq!(s["allowedCount"], 1);
    assert_eq!(s["blockedCount"], 1);
    assert_eq!(s["noPolicyCount"], 1);
    assert_eq!(s["discrepancies"]["enforcementGap"], 1);
    assert_eq!(s["discrepancies"]["match"], 1);
    assert_eq!(s["coverageGaps"][0]["port"], 5432);
    assert_eq!(s["topBlocked"][0]["policy"], "NetworkPolicy shop/deny");
}

#[test]
fn round_trips() {
    let p = sample();
    let text = serde_json::to_string(&p).unwrap();
    let back: ValidationPayload = serde_json::from_str(&text).unwrap();
    assert_eq!(back, p);
    assert!(back.is_supported());
    assert_eq!(back.totals().judged(), 3);
}

#[test]
fn unknown_versions_are_not_supported() {
    let mut p = sample();
    p.schema_version = 2;
    assert!(!p.is_supported());
}
