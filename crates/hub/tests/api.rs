//! The API through the router, without a socket (`app(state).oneshot(request)`).

use std::io::Write;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

async fn app() -> Router {
    let dir = std::env::temp_dir().join(format!("ph-hub-{}", uuid()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = store::Store::connect(&format!("sqlite://{}", dir.join("hub.db").display()))
        .await
        .unwrap();
    let mut state = hub::AppState::new(store);
    state.body_limit = 64 * 1024;
    hub::app(state)
}

fn uuid() -> String {
    format!("{}-{:?}", std::process::id(), std::time::Instant::now())
        .replace(|c: char| !c.is_ascii_alphanumeric(), "")
}

/// Who is calling: a session (cookie + CSRF token) or a bearer token.
#[derive(Clone, Default)]
struct Auth {
    cookie: Option<String>,
    csrf: Option<String>,
    bearer: Option<String>,
}

async fn call(
    app: &Router,
    method: &str,
    uri: &str,
    auth: &Auth,
    body: Option<Value>,
) -> (StatusCode, Value, Option<String>) {
    let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    call_raw(app, method, uri, auth, bytes, None).await
}

async fn call_raw(
    app: &Router,
    method: &str,
    uri: &str,
    auth: &Auth,
    body: Vec<u8>,
    encoding: Option<&str>,
) -> (StatusCode, Value, Option<String>) {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(c) = &auth.cookie {
        req = req.header(header::COOKIE, c);
    }
    if let Some(t) = &auth.csrf {
        req = req.header("x-csrf-token", t);
    }
    if let Some(b) = &auth.bearer {
        req = req.header(header::AUTHORIZATION, format!("Bearer {b}"));
    }
    if let Some(e) = encoding {
        req = req.header(header::CONTENT_ENCODING, e);
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let cookie = resp
        .headers()
        .get(header::SET_COOKIE)
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string());
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, value, cookie)
}

async fn signup(app: &Router, email: &str, org: &str) -> Auth {
    let (status, body, cookie) = call(
        app,
        "POST",
        "/api/auth/signup",
        &Auth::default(),
        Some(json!({"email": email, "password": "correct horse", "organization": org})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    Auth {
        cookie,
        csrf: body["csrfToken"].as_str().map(str::to_string),
        bearer: None,
    }
}

fn payload(hour: &str, allowed: u64) -> Value {
    json!({
        "schemaVersion": 1,
        "cluster": "node-a",
        "summaries": [{
            "hour": hour,
            "allowedCount": allowed, "blockedCount": 3, "noPolicyCount": 5,
            "discrepancies": {"match": 7, "enforcementGap": 1, "unexpectedDrop": 0, "unobserved": 0, "policyNameMismatch": 0},
            "coverageGaps": [{"source": "shop/web", "destination": "shop/db", "protocol": "TCP", "port": 5432, "count": 5}],
            "topBlocked": [{"source": "shop/web", "destination": "shop/api", "policy": "shop/default-deny", "count": 3}],
            "topExact": true
        }],
        "events": []
    })
}

/// Signs up, creates a cluster and a cluster token: (owner auth, cluster id, token).
async fn setup(app: &Router) -> (Auth, String, String) {
    let owner = signup(app, "owner@acme.test", "acme").await;
    let (status, cluster, _) = call(
        app,
        "POST",
        "/api/clusters",
        &owner,
        Some(json!({"name": "prod"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{cluster}");
    let id = cluster["id"].as_str().unwrap().to_string();
    let (status, tok, _) = call(
        app,
        "POST",
        &format!("/api/clusters/{id}/tokens"),
        &owner,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{tok}");
    (owner, id, tok["token"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn ingestion_is_idempotent_and_feeds_the_dashboard_api() {
    let app = app().await;
    let (owner, id, token) = setup(&app).await;
    let collector = Auth {
        bearer: Some(token),
        ..Default::default()
    };
    let mut with_event = payload("2026-11-23T10:00:00Z", 40);
    with_event["events"] = json!([{
        "timestamp": "2026-11-23T10:15:00.123Z", "verdict": "BLOCKED",
        "discrepancy": "ENFORCEMENT_GAP", "srcNamespace": "shop", "srcLabels": ["app=web"],
        "dstNamespace": "shop", "dstLabels": ["app=db"], "dstPort": 5432, "protocol": "TCP"
    }]);
    for _ in 0..2 {
        // A retried post must not double-count, nor store its events twice.
        let (status, body, _) = call(
            &app,
            "POST",
            "/api/operator/validation",
            &collector,
            Some(with_event.clone()),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    let (status, events, _) = call(
        &app,
        "GET",
        &format!("/api/validation/events?clusterId={id}"),
        &owner,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{events}");
    assert_eq!(events["events"].as_array().unwrap().len(), 1, "{events}");
    assert_eq!(events["events"][0]["dstPort"], 5432);
    // gzip works too.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(payload("2026-11-23T11:00:00Z", 2).to_string().as_bytes())
        .unwrap();
    let (status, _, _) = call_raw(
        &app,
        "POST",
        "/api/operator/validation",
        &collector,
        gz.finish().unwrap(),
        Some("gzip"),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);

    let range = "start=1795424400&end=1795435200"; // 2026-11-23T09:00Z .. 12:00Z
    let (status, s, _) = call(
        &app,
        "GET",
        &format!("/api/validation/summary?clusterId={id}&{range}"),
        &owner,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{s}");
    assert_eq!(s["totals"]["allowedCount"], 42);
    assert_eq!(s["totals"]["blockedCount"], 6);
    assert_eq!(s["timeline"].as_array().unwrap().len(), 2);
    let (_, gaps, _) = call(
        &app,
        "GET",
        &format!("/api/validation/coverage-gaps?clusterId={id}&{range}"),
        &owner,
        None,
    )
    .await;
    assert_eq!(gaps["coverageGaps"][0]["count"], 10);
    let (_, blocked, _) = call(
        &app,
        "GET",
        &format!("/api/validation/blocked-flows?clusterId={id}&{range}&limit=1"),
        &owner,
        None,
    )
    .await;
    assert_eq!(blocked["blockedFlows"].as_array().unwrap().len(), 1);
    assert_eq!(blocked["blockedFlows"][0]["policy"], "shop/default-deny");
}

#[tokio::test]
async fn bad_input_gets_precise_errors() {
    let app = app().await;
    let (owner, id, token) = setup(&app).await;
    let collector = Auth {
        bearer: Some(token.clone()),
        ..Default::default()
    };
    // Malformed JSON names the field.
    let mut bad = payload("2026-11-23T10:00:00Z", 1);
    bad["summaries"][0]["allowedCount"] = json!("many");
    let (status, body, _) = call(
        &app,
        "POST",
        "/api/operator/validation",
        &collector,
        Some(bad),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("summaries[0].allowedCount"),
        "{body}"
    );
    let (status, body, _) = call(
        &app,
        "POST",
        "/api/operator/validation",
        &collector,
        Some(payload("yesterday", 1)),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("summaries[0].hour"),
        "{body}"
    );
    // Over the body limit.
    let (status, _, _) = call_raw(
        &app,
        "POST",
        "/api/operator/validation",
        &collector,
        vec![b' '; 70 * 1024],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    // Missing, wrong and revoked tokens.
    let (status, _, _) = call(
        &app,
        "POST",
        "/api/operator/validation",
        &Auth::default(),
        Some(payload("2026-11-23T10:00:00Z", 1)),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let wrong = Auth {
        bearer: Some("phc_nope".into()),
        ..Default::default()
    };
    let (status, _, _) = call(
        &app,
        "POST",
        "/api/operator/validation",
        &wrong,
        Some(payload("2026-11-23T10:00:00Z", 1)),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, tokens, _) = call(
        &app,
        "GET",
        &format!("/api/clusters/{id}/tokens"),
        &owner,
        None,
    )
    .await;
    let token_id = tokens["tokens"][0]["id"].as_str().unwrap();
    let (status, _, _) = call(
        &app,
        "DELETE",
        &format!("/api/clusters/{id}/tokens/{token_id}"),
        &owner,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = call(
        &app,
        "POST",
        "/api/operator/validation",
        &collector,
        Some(payload("2026-11-23T10:00:00Z", 1)),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Unknown cluster.
    let (status, _, _) = call(
        &app,
        "GET",
        "/api/validation/summary?clusterId=nope",
        &owner,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A cookie write without the CSRF token is refused.
    let no_csrf = Auth {
        csrf: None,
        ..owner.clone()
    };
    let (status, _, _) = call(
        &app,
        "POST",
        "/api/clusters",
        &no_csrf,
        Some(json!({"name": "x"})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn tenants_are_isolated_and_roles_enforced() {
    let app = app().await;
    let (owner, id, _) = setup(&app).await;
    let intruder = signup(&app, "eve@other.test", "other").await;
    for (method, uri) in [
        ("GET", format!("/api/validation/summary?clusterId={id}")),
        ("GET", format!("/api/clusters/{id}/tokens")),
        ("DELETE", format!("/api/clusters/{id}")),
    ] {
        let (status, _, _) = call(&app, method, &uri, &intruder, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {uri}");
    }
    let (_, list, _) = call(&app, "GET", "/api/clusters", &intruder, None).await;
    assert_eq!(list["clusters"].as_array().unwrap().len(), 0);
    // A viewer token reads but cannot manage.
    let (status, tok, _) = call(
        &app,
        "POST",
        "/api/tokens",
        &owner,
        Some(json!({"name": "dash", "role": "viewer"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{tok}");
    let viewer = Auth {
        bearer: tok["token"].as_str().map(str::to_string),
        ..Default::default()
    };
    let (status, list, _) = call(&app, "GET", "/api/clusters", &viewer, None).await;
    assert_eq!(
        (status, list["clusters"].as_array().unwrap().len()),
        (StatusCode::OK, 1)
    );
    let (status, _, _) = call(
        &app,
        "POST",
        &format!("/api/clusters/{id}/tokens"),
        &viewer,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = call(
        &app,
        "POST",
        "/api/tokens",
        &viewer,
        Some(json!({"name": "x"})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn concurrent_collectors_lose_nothing() {
    let app = app().await;
    let (owner, id, token) = setup(&app).await;
    let collector = Auth {
        bearer: Some(token),
        ..Default::default()
    };
    let mut tasks = Vec::new();
    for i in 0..200u64 {
        let (app, collector) = (app.clone(), collector.clone());
        tasks.push(tokio::spawn(async move {
            // 200 distinct hours, i+1 allowed flows each.
            let hour = format!("2026-11-{:02}T{:02}:00:00Z", 1 + i / 24, i % 24);
            call(
                &app,
                "POST",
                "/api/operator/validation",
                &collector,
                Some(payload(&hour, i + 1)),
            )
            .await
            .0
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::ACCEPTED);
    }
    let (_, s, _) = call(
        &app,
        "GET",
        &format!("/api/validation/summary?clusterId={id}&start=0&end=4000000000"),
        &owner,
        None,
    )
    .await;
    assert_eq!(s["totals"]["allowedCount"], 200 * 201 / 2);
    assert_eq!(s["timeline"].as_array().unwrap().len(), 200);
}

#[tokio::test]
async fn health_metrics_and_openapi() {
    let app = app().await;
    let anon = Auth::default();
    assert_eq!(
        call(&app, "GET", "/health/live", &anon, None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        call(&app, "GET", "/health/ready", &anon, None).await.0,
        StatusCode::OK
    );
    let (_, doc, _) = call(&app, "GET", "/api/openapi.json", &anon, None).await;
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/api/operator/validation"]["post"].is_object());
    let (_, text, _) = call(&app, "GET", "/metrics", &anon, None).await;
    assert!(text
        .as_str()
        .unwrap()
        .contains("# TYPE policyhub_hub_ingested_payloads_total counter"));
    assert_eq!(
        call(&app, "GET", "/api/clusters", &anon, None).await.0,
        StatusCode::UNAUTHORIZED
    );
}
