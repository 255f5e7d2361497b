use serde_json::json;

use super::*;

fn check(resource: Value, pattern: Value) -> Result<(), Mismatch> {
    match_pattern(&resource, &pattern)
}

#[test]
fn scalar_operators() {
    assert!(validate_value(&json!(5), &json!(">3")));
    assert!(!validate_value(&json!(2), &json!(">3")));
    assert!(validate_value(&json!("2Gi"), &json!(">=1Gi")));
    assert!(!validate_value(&json!("512Mi"), &json!(">=1Gi")));
    assert!(validate_value(&json!("250m"), &json!("<1")));
    assert!(validate_value(&json!(8080), &json!("8000-9000")));
    assert!(!validate_value(&json!(80), &json!("8000-9000")));
    assert!(validate_value(&json!(80), &json!("8000!-9000")));
    assert!(validate_value(&json!("nginx:1.2"), &json!("!*:latest")));
    assert!(!validate_value(&json!("nginx:latest"), &json!("!*:latest")));
    assert!(validate_value(&json!("b"), &json!("a | b")));
    assert!(validate_value(&json!(5), &json!(">1 & <10")));
    assert!(!validate_value(&json!(50), &json!(">1 & <10")));
    assert!(validate_value(&json!("90s"), &json!(">1m")));
    assert!(validate_value(&json!("10"), &json!(10)));
    assert!(!validate_value(&Value::Null, &json!("!default")));
    assert!(validate_value(&Value::Null, &Value::Null));
    assert!(validate_value(&json!(false), &Value::Null));
}

#[test]
fn plain_keys_and_missing() {
    assert!(check(json!({"spec": {"a": 1}}), json!({"spec": {"a": 1}})).is_ok());
    let err = check(json!({"spec": {}}), json!({"spec": {"a": "?*"}})).unwrap_err();
    assert!(
        matches!(err, Mismatch::Fail { ref path, .. } if path == "/spec/a/"),
        "{err:?}"
    );
    assert!(check(json!({"spec": {}}), json!({"spec": {"a": "*"}})).is_err());
    assert!(check(json!({"spec": {"a": "x"}}), json!({"spec": {"a": "*"}})).is_ok());
}

#[test]
fn equality_and_negation_anchors() {
    let pat = json!({"spec": {"=(hostNetwork)": false}});
    assert!(check(json!({"spec": {}}), pat.clone()).is_ok());
    assert!(check(json!({"spec": {"hostNetwork": false}}), pat.clone()).is_ok());
    assert!(check(json!({"spec": {"hostNetwork": true}}), pat).is_err());
    let neg = json!({"spec": {"X(hostPath)": "null"}});
    assert!(check(json!({"spec": {}}), neg.clone()).is_ok());
    assert!(matches!(
        check(json!({"spec": {"hostPath": {}}}), neg),
        Err(Mismatch::Fail { .. })
    ));
}

#[test]
fn conditional_anchor_in_array() {
    let pat = json!({"spec": {"containers": [{"(name)": "nginx*", "image": "*:1.*"}]}});
    // condition holds, value fails
    assert!(matches!(
        check(
            json!({"spec": {"containers": [{"name": "nginx", "image": "nginx:2"}]}}),
            pat.clone()
        ),
        Err(Mismatch::Fail { .. })
    ));
    // condition holds for one element, the other is not applicable
    assert!(check(
        json!({"spec": {"containers": [{"name": "nginx", "image": "nginx:1.2"}, {"name": "x", "image": "y"}]}}),
        pat.clone()
    )
    .is_ok());
    // not applicable anywhere: skip
    assert!(matches!(
        check(
            json!({"spec": {"containers": [{"name": "x", "image": "y"}]}}),
            pat
        ),
        Err(Mismatch::Skip(_))
    ));
}

#[test]
fn global_anchor_gates_siblings() {
    let pat = json!({"spec": {
        "containers": [{"<(image)": "corp.io/*"}],
        "imagePullSecrets": [{"name": "regcred"}]
    }});
    let skip = check(
        json!({"spec": {"containers": [{"image": "nginx"}]}}),
        pat.clone(),
    );
    assert!(matches!(skip, Err(Mismatch::Skip(_))), "{skip:?}");
    let fail = check(
        json!({"spec": {"containers": [{"image": "corp.io/a"}]}}),
        pat.clone(),
    );
    assert!(matches!(fail, Err(Mismatch::Fail { .. })), "{fail:?}");
    assert!(check(
        json!({"spec": {"containers": [{"image": "corp.io/a"}], "imagePullSecrets": [{"name": "regcred"}]}}),
        pat
    )
    .is_ok());
}

#[test]
fn existence_anchor() {
    let pat = json!({"spec": {"^(containers)": [{"image": "nginx*"}]}});
    assert!(check(
        json!({"spec": {"containers": [{"image": "a"}, {"image": "nginx"}]}}),
        pat.clone()
    )
    .is_ok());
    assert!(check(json!({"spec": {"containers": [{"image": "a"}]}}), pat).is_err());
}

#[test]
fn wildcard_keys_expand() {
    let pat = json!({"metadata": {"labels": {"app.kubernetes.io/*": "?*"}}});
    assert!(check(
        json!({"metadata": {"labels": {"app.kubernetes.io/name": "x"}}}),
        pat.clone()
    )
    .is_ok());
    assert!(check(
        json!({"metadata": {"labels": {"app.kubernetes.io/name": ""}}}),
        pat.clone()
    )
    .is_err());
    assert!(check(json!({"metadata": {"labels": {"other": "x"}}}), pat).is_err());
}

#[test]
fn scalar_pattern_against_list_checks_each() {
    let pat = json!({"spec": {"ports": "<1024"}});
    assert!(check(json!({"spec": {"ports": [80, 443]}}), pat.clone()).is_ok());
    assert!(check(json!({"spec": {"ports": [80, 8080]}}), pat).is_err());
}

#[test]
fn anchors_parse() {
    assert_eq!(parse_anchor("(name)"), Some((Anchor::Condition, "name")));
    assert_eq!(parse_anchor("=(x)"), Some((Anchor::Equality, "x")));
    assert_eq!(parse_anchor("X(x)"), Some((Anchor::Negation, "x")));
    assert_eq!(parse_anchor("^(x)"), Some((Anchor::Existence, "x")));
    assert_eq!(parse_anchor("<(x)"), Some((Anchor::Global, "x")));
    assert_eq!(parse_anchor("Xname"), None);
    assert_eq!(parse_anchor("()"), None);
}
