//! Hub benchmark: ingestion throughput (summaries/s through `/api/operator/validation`) and
//! dashboard latency with 90 days × 50 clusters of hourly summaries.
//!
//! `cargo run --release -p policyhub-hub --example hub_bench [-- postgres://...]`
//! (SQLite in a temporary directory by default).

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use serde_json::json;
use tower::ServiceExt;

fn summary(hour: i64, n: u64) -> serde_json::Value {
    json!({
        "hour": rfc3339(hour), "allowedCount": 1000 + n, "blockedCount": 40, "noPolicyCount": 120,
        "discrepancies": {"match": 900, "enforcementGap": 3, "unexpectedDrop": 1, "unobserved": 200, "policyNameMismatch": 0},
        "coverageGaps": (0..10).map(|i| json!({"source": format!("ns/app-{i}"), "destination": "ns/db", "protocol": "TCP", "port": 5432, "count": 10 + i})).collect::<Vec<_>>(),
        "topBlocked": (0..10).map(|i| json!({"source": format!("ns/job-{i}"), "destination": "ns/api", "policy": "ns/default-deny", "count": 5 + i})).collect::<Vec<_>>(),
        "topExact": true
    })
}

/// `YYYY-MM-DDTHH:00:00Z` of Unix seconds.
fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil::from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:00:00Z", rem / 3600)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let url = std::env::args().nth(1).unwrap_or_else(|| {
        let dir = std::env::temp_dir().join(format!("ph-hub-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        format!("sqlite://{}", dir.join("hub.db").display())
    });
    let store = store::Store::connect(&url).await.expect("database");
    println!("backend: {:?}", store.backend());
    let org = store.create_org("bench", 0).await.unwrap();
    let user = store
        .create_user(&format!("bench-{}@x.test", std::process::id()), "x", 0)
        .await
        .unwrap();
    store
        .add_member(&org.id, &user.id, store::Role::Owner)
        .await
        .unwrap();
    let app = hub::app(hub::AppState::new(store.clone()));
    let now = hub::now();
    let end = now - now % 3600;
    let start = end - 90 * 24 * 3600;

    // 50 clusters × 90 days of hourly summaries, posted 24 hours per payload.
    let mut clusters = Vec::new();
    let t0 = Instant::now();
    let mut posted = 0u64;
    for c in 0..50 {
        let cluster = store
            .create_cluster(&org.id, &format!("cluster-{c}"), 0)
            .await
            .unwrap();
        let token = format!("phc_bench_{c}");
        store
            .issue_cluster_token(&cluster.id, &hub::auth::secret_hash(&token), "bench", 0)
            .await
            .unwrap();
        let mut hour = start;
        while hour < end {
            let summaries: Vec<_> = (0..24)
                .map(|h| summary(hour + h * 3600, h as u64))
                .collect();
            let body = json!({"schemaVersion": 1, "cluster": "node-a", "summaries": summaries})
                .to_string();
            let req = Request::post("/api/operator/validation")
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body))
                .unwrap();
            let resp = app.clone().oneshot(req).await.unwrap();
            assert_eq!(resp.status(), StatusCode::ACCEPTED);
            posted += 24;
            hour += 24 * 3600;
        }
        clusters.push(cluster.id);
    }
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "ingestion: {posted} hourly summaries in {secs:.1} s = {:.0} summaries/s",
        posted as f64 / secs
    );

    // Dashboard: a signed-in user opens random clusters' pages (one week) and the 90-day API.
    let sid = "phs_bench_session";
    store
        .create_session(
            &hub::auth::secret_hash(sid),
            &store::Session {
                user_id: user.id.clone(),
                org_id: org.id.clone(),
                csrf: "c".into(),
                expires_at: now + 3600,
            },
        )
        .await
        .unwrap();
    for (label, path) in [
        ("dashboard page (7 days)", "page"),
        ("summary API (90 days)", "api"),
    ] {
        let mut times = Vec::new();
        for i in 0..200 {
            let id = &clusters[(i * 7) % clusters.len()];
            let uri = if path == "page" {
                format!("/clusters/{id}")
            } else {
                format!("/api/validation/summary?clusterId={id}&start={start}&end={end}")
            };
            let req = Request::get(uri)
                .header(header::COOKIE, format!("ph_session={sid}"))
                .body(Body::empty())
                .unwrap();
            let t = Instant::now();
            let resp = app.clone().oneshot(req).await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            let _ = axum::body::to_bytes(resp.into_body(), usize::MAX)
                .await
                .unwrap();
            times.push(t.elapsed());
        }
        times.sort();
        println!(
            "{label}: p50 {:?}, p95 {:?}, max {:?} over {} requests",
            percentile(&times, 0.5),
            percentile(&times, 0.95),
            times[times.len() - 1],
            times.len()
        );
    }
}
