//! REST API routes and handlers.

use std::collections::HashMap;
use std::io::Read;
use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use flowtypes::{Counts, ValidationPayload};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use store::{Role, Session, SummaryRow};

use crate::auth::{self, ClusterCaller, Principal};
use crate::{now, AppError, AppState};

pub fn router(state: AppState) -> Router {
    let limit = state.body_limit;
    Router::new()
        .route("/health/live", get(|| async { "ok" }))
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/api/openapi.json", get(|| async { Json(openapi()) }))
        .route("/api/auth/signup", post(signup))
        .route("/api/auth/login", post(login))
        .route("/api/auth/logout", post(logout))
        .route("/api/tokens", post(create_api_token))
        .route("/api/clusters", get(list_clusters).post(create_cluster))
        .route("/api/clusters/{id}", delete(delete_cluster))
        .route(
            "/api/clusters/{id}/tokens",
            get(list_cluster_tokens).post(issue_cluster_token),
        )
        .route(
            "/api/clusters/{id}/tokens/{token_id}",
            delete(revoke_cluster_token),
        )
        .route("/api/validation/summary", get(summary))
        .route("/api/validation/coverage-gaps", get(coverage_gaps))
        .route("/api/validation/blocked-flows", get(blocked_flows))
        .route("/api/validation/events", get(events))
        .route("/api/operator/validation", post(ingest))
        .merge(crate::ui::router())
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// Parses a JSON body; errors name the failing field.
fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, AppError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            AppError::BadRequest(format!("invalid JSON body: {inner}"))
        } else {
            AppError::BadRequest(format!("field `{path}`: {inner}"))
        }
    })
}

async fn ready(State(state): State<AppState>) -> Response {
    match state.store.ping().await {
        Ok(()) => "ready".into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("database: {e}")).into_response(),
    }
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignupRequest {
    email: String,
    password: String,
    organization: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    email: String,
    password: String,
}

/// Starts a session: sets the cookie and returns the CSRF token for later writes.
pub(crate) async fn start_session(
    state: &AppState,
    user_id: &str,
    org_id: &str,
) -> Result<Response, AppError> {
    let sid = auth::new_secret("phs_");
    let csrf = auth::new_secret("");
    let expires_at = now() + 12 * 3600;
    let session = Session {
        user_id: user_id.into(),
        org_id: org_id.into(),
        csrf: csrf.clone(),
        expires_at,
    };
    state
        .store
        .create_session(&auth::secret_hash(&sid), &session)
        .await?;
    let cookie = format!(
        "{}={sid}; Path=/; HttpOnly; SameSite=Strict; Max-Age=43200",
        auth::SESSION_COOKIE
    );
    Ok((
        [(header::SET_COOKIE, cookie)],
        Json(json!({"userId": user_id, "orgId": org_id, "csrfToken": csrf})),
    )
        .into_response())
}

async fn signup(State(state): State<AppState>, body: Bytes) -> Result<Response, AppError> {
    let req: SignupRequest = parse(&body)?;
    if !req.email.contains('@') {
        return Err(AppError::BadRequest(
            "field `email`: not an email address".into(),
        ));
    }
    if req.password.len() < 8 {
        return Err(AppError::BadRequest(
            "field `password`: at least 8 characters".into(),
        ));
    }
    if req.organization.trim().is_empty() {
        return Err(AppError::BadRequest(
            "field `organization`: must not be empty".into(),
        ));
    }
    let t = now();
    let user = state
        .store
        .create_user(&req.email, &auth::hash_password(&req.password)?, t)
        .await?;
    let org = state.store.create_org(&req.organization, t).await?;
    state
        .store
        .add_member(&org.id, &user.id, Role::Owner)
        .await?;
    state
        .store
        .audit(&org.id, &user.id, "org.create", &org.name, t)
        .await?;
    let mut resp = start_session(&state, &user.id, &org.id).await?;
    *resp.status_mut() = StatusCode::CREATED;
    Ok(resp)
}

async fn login(State(state): State<AppState>, body: Bytes) -> Result<Response, AppError> {
    let req: LoginRequest = parse(&body)?;
    let (user_id, org_id) = authenticate(&state, &req.email, &req.password).await?;
    start_session(&state, &user_id, &org_id).await
}

/// Checks a password; returns the user and the first organization they belong to.
pub(crate) async fn authenticate(
    state: &AppState,
    email: &str,
    password: &str,
) -> Result<(String, String), AppError> {
    let user = state.store.user_by_email(email).await?;
    let Some(user) = user.filter(|u| auth::verify_password(password, &u.password_hash)) else {
        return Err(AppError::Unauthorized);
    };
    let orgs = state.store.orgs_of(&user.id).await?;
    let (org, _) = orgs.first().ok_or(AppError::Forbidden(
        "the account belongs to no organization".into(),
    ))?;
    Ok((user.id, org.id.clone()))
}

async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, AppError> {
    let clear = end_session(&state, &headers).await?;
    Ok((clear, StatusCode::NO_CONTENT).into_response())
}

/// Deletes the session of the request, if any; the response clears the cookie.
pub(crate) async fn end_session(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<[(header::HeaderName, String); 1], AppError> {
    if let Some(sid) = auth::cookie_value(headers, auth::SESSION_COOKIE) {
        state.store.delete_session(&auth::secret_hash(sid)).await?;
    }
    Ok([(
        header::SET_COOKIE,
        format!(
            "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0",
            auth::SESSION_COOKIE
        ),
    )])
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewApiToken {
    name: String,
    #[serde(default = "default_token_role")]
    role: Role,
}

fn default_token_role() -> Role {
    Role::Member
}

async fn create_api_token(
    State(state): State<AppState>,
    who: Principal,
    body: Bytes,
) -> Result<Response, AppError> {
    who.require_manage()?;
    let req: NewApiToken = parse(&body)?;
    if req.role < who.role {
        return Err(AppError::Forbidden(
            "a token cannot have more rights than its creator".into(),
        ));
    }
    let secret = auth::new_secret("ph_");
    let info = state
        .store
        .create_api_token(
            &who.org_id,
            &req.name,
            &auth::secret_hash(&secret),
            req.role,
            now(),
        )
        .await?;
    state
        .store
        .audit(
            &who.org_id,
            &who.actor,
            "api_token.create",
            &req.name,
            now(),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": info.id, "name": info.name, "token": secret})),
    )
        .into_response())
}

async fn list_clusters(
    State(state): State<AppState>,
    who: Principal,
) -> Result<Json<Value>, AppError> {
    Ok(Json(
        json!({"clusters": state.store.list_clusters(&who.org_id).await?}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewCluster {
    name: String,
}

async fn create_cluster(
    State(state): State<AppState>,
    who: Principal,
    body: Bytes,
) -> Result<Response, AppError> {
    who.require_manage()?;
    let req: NewCluster = parse(&body)?;
    let valid = !req.name.is_empty()
        && req.name.len() <= 63
        && req
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if !valid {
        return Err(AppError::BadRequest(
            "field `name`: 1-63 characters of letters, digits, '-', '_' or '.'".into(),
        ));
    }
    let cluster = state
        .store
        .create_cluster(&who.org_id, &req.name, now())
        .await?;
    state
        .store
        .audit(
            &who.org_id,
            &who.actor,
            "cluster.create",
            &cluster.name,
            now(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(cluster)).into_response())
}

/// Issues a collector token for a cluster of the caller's organization (owner, admin),
/// audited; the secret is returned once and stored only as a hash.
pub(crate) async fn new_cluster_token(
    state: &AppState,
    who: &Principal,
    id: &str,
) -> Result<(store::Cluster, store::TokenInfo, String), AppError> {
    who.require_manage()?;
    let cluster = owned_cluster(state, who, id).await?;
    let secret = auth::new_secret("phc_");
    let info = state
        .store
        .issue_cluster_token(
            &cluster.id,
            &auth::secret_hash(&secret),
            &cluster.name,
            now(),
        )
        .await?;
    state
        .store
        .audit(
            &who.org_id,
            &who.actor,
            "cluster_token.issue",
            &cluster.name,
            now(),
        )
        .await?;
    Ok((cluster, info, secret))
}

/// The cluster if it belongs to the caller's organization; 404 otherwise.
pub(crate) async fn owned_cluster(
    state: &AppState,
    who: &Principal,
    id: &str,
) -> Result<store::Cluster, AppError> {
    state
        .store
        .cluster(&who.org_id, id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("cluster {id}")))
}

async fn delete_cluster(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    who.require_manage()?;
    let cluster = owned_cluster(&state, &who, &id).await?;
    state.store.delete_cluster(&who.org_id, &id).await?;
    state
        .store
        .audit(
            &who.org_id,
            &who.actor,
            "cluster.delete",
            &cluster.name,
            now(),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_cluster_tokens(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    owned_cluster(&state, &who, &id).await?;
    Ok(Json(
        json!({"tokens": state.store.list_cluster_tokens(&who.org_id, &id).await?}),
    ))
}

async fn issue_cluster_token(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let (_, info, secret) = new_cluster_token(&state, &who, &id).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": info.id, "token": secret})),
    )
        .into_response())
}

async fn revoke_cluster_token(
    State(state): State<AppState>,
    who: Principal,
    Path((id, token_id)): Path<(String, String)>,
) -> Result<StatusCode, AppError> {
    revoke_token(&state, &who, &id, &token_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revokes a collector token of a cluster of the caller's organization (owner, admin), audited.
pub(crate) async fn revoke_token(
    state: &AppState,
    who: &Principal,
    id: &str,
    token_id: &str,
) -> Result<(), AppError> {
    who.require_manage()?;
    let cluster = owned_cluster(state, who, id).await?;
    if !state
        .store
        .revoke_cluster_token(&who.org_id, id, token_id, now())
        .await?
    {
        return Err(AppError::NotFound(format!("token {token_id}")));
    }
    state
        .store
        .audit(
            &who.org_id,
            &who.actor,
            "cluster_token.revoke",
            &cluster.name,
            now(),
        )
        .await?;
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RangeQuery {
    pub cluster_id: String,
    /// Unix seconds; default: 24 hours before `end`.
    pub start: Option<i64>,
    /// Unix seconds; default: now.
    pub end: Option<i64>,
    pub limit: Option<usize>,
}

async fn rows(
    state: &AppState,
    who: &Principal,
    q: &RangeQuery,
) -> Result<Vec<(SummaryRow, flowtypes::ValidationSummary)>, AppError> {
    owned_cluster(state, who, &q.cluster_id).await?;
    let end = q.end.unwrap_or_else(now);
    let start = q.start.unwrap_or(end - 24 * 3600);
    if start > end {
        return Err(AppError::BadRequest("`start` is after `end`".into()));
    }
    let rows = state
        .store
        .summaries(&who.org_id, &q.cluster_id, start, end)
        .await?;
    rows.into_iter()
        .map(|r| {
            let doc: flowtypes::ValidationSummary =
                serde_json::from_str(&r.document).map_err(|e| AppError::Internal(e.to_string()))?;
            Ok((r, doc))
        })
        .collect()
}

/// Everything a dashboard shows for one cluster and time range.
pub(crate) struct Dashboard {
    pub totals: Counts,
    /// (hour, counts), oldest first.
    pub timeline: Vec<(i64, Counts)>,
    /// ((source, destination, protocol, port), count), largest first.
    pub gaps: Vec<((String, String, String, u16), u64)>,
    /// ((source, destination, policy), count), largest first.
    pub blocked: Vec<((String, String, String), u64)>,
}

pub(crate) async fn dashboard(
    state: &AppState,
    who: &Principal,
    q: &RangeQuery,
) -> Result<Dashboard, AppError> {
    let mut totals = Counts::default();
    let mut timeline: std::collections::BTreeMap<i64, Counts> = Default::default();
    let mut gaps: HashMap<(String, String, String, u16), u64> = HashMap::new();
    let mut blocked: HashMap<(String, String, String), u64> = HashMap::new();
    for (row, doc) in rows(state, who, q).await? {
        totals.add(&doc.counts);
        timeline.entry(row.hour).or_default().add(&doc.counts);
        for g in doc.coverage_gaps {
            *gaps
                .entry((g.source, g.destination, g.protocol, g.port))
                .or_default() += g.count;
        }
        for b in doc.top_blocked {
            *blocked
                .entry((b.source, b.destination, b.policy))
                .or_default() += b.count;
        }
    }
    fn ranked<K: Ord>(map: HashMap<K, u64>) -> Vec<(K, u64)> {
        let mut list: Vec<(K, u64)> = map.into_iter().collect();
        list.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        list
    }
    Ok(Dashboard {
        totals,
        timeline: timeline.into_iter().collect(),
        gaps: ranked(gaps),
        blocked: ranked(blocked),
    })
}

async fn summary(
    State(state): State<AppState>,
    who: Principal,
    Query(q): Query<RangeQuery>,
) -> Result<Json<Value>, AppError> {
    let d = dashboard(&state, &who, &q).await?;
    let timeline: Vec<Value> = d
        .timeline
        .iter()
        .map(|(hour, c)| json!({"hour": hour, "allowedCount": c.allowed_count, "blockedCount": c.blocked_count, "noPolicyCount": c.no_policy_count}))
        .collect();
    Ok(Json(
        json!({"clusterId": q.cluster_id, "totals": d.totals, "timeline": timeline}),
    ))
}

async fn coverage_gaps(
    State(state): State<AppState>,
    who: Principal,
    Query(q): Query<RangeQuery>,
) -> Result<Json<Value>, AppError> {
    let limit = q.limit.unwrap_or(20).min(1000);
    let gaps: Vec<Value> = dashboard(&state, &who, &q)
        .await?
        .gaps
        .into_iter()
        .take(limit)
        .map(|((source, destination, protocol, port), count)| json!({"source": source, "destination": destination, "protocol": protocol, "port": port, "count": count}))
        .collect();
    Ok(Json(
        json!({"clusterId": q.cluster_id, "coverageGaps": gaps}),
    ))
}

async fn blocked_flows(
    State(state): State<AppState>,
    who: Principal,
    Query(q): Query<RangeQuery>,
) -> Result<Json<Value>, AppError> {
    let limit = q.limit.unwrap_or(50).min(1000);
    let flows: Vec<Value> = dashboard(&state, &who, &q)
        .await?
        .blocked
        .into_iter()
        .take(limit)
        .map(|((source, destination, policy), count)| json!({"source": source, "destination": destination, "policy": policy, "count": count}))
        .collect();
    Ok(Json(
        json!({"clusterId": q.cluster_id, "blockedFlows": flows}),
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventsQuery {
    cluster_id: String,
    limit: Option<i64>,
    /// Only events of this discrepancy (`ENFORCEMENT_GAP`, `UNEXPECTED_DROP`, ...).
    discrepancy: Option<String>,
}

/// The sampled judgements collectors sent (newest first, within the event TTL).
async fn events(
    State(state): State<AppState>,
    who: Principal,
    Query(q): Query<EventsQuery>,
) -> Result<Json<Value>, AppError> {
    owned_cluster(&state, &who, &q.cluster_id).await?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    // Events are stored as their compact JSON; a known discrepancy name is matched in the
    // query (before the limit), an unknown one matches nothing.
    let containing = match q.discrepancy.as_deref() {
        None => String::new(),
        Some(d) if flowtypes::Discrepancy::ALL.iter().any(|x| x.as_str() == d) => {
            format!("\"discrepancy\":\"{d}\"")
        }
        Some(_) => return Ok(Json(json!({"clusterId": q.cluster_id, "events": []}))),
    };
    let docs = state
        .store
        .events(&who.org_id, &q.cluster_id, &containing, limit)
        .await?;
    let events: Vec<Value> = docs
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .collect();
    Ok(Json(json!({"clusterId": q.cluster_id, "events": events})))
}

/// Unix seconds of an RFC 3339 UTC time such as `2025-03-14T09:00:00Z`.
pub fn parse_utc(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || !text.ends_with('Z')
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| text.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let days = civil::to_days(y, u32::try_from(m).ok()?, u32::try_from(d).ok()?);
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

/// Collector ingestion: the payload `policyhub validate --output json` emits, optionally
/// gzip-compressed. Summaries are upserted per (cluster, hour, source) and events are keyed
/// by (cluster, source, document), so a retried post never double-counts nor stores an event
/// twice; events are kept for the event TTL.
async fn ingest(
    State(state): State<AppState>,
    ClusterCaller(cluster): ClusterCaller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    let reject = |e: AppError| {
        state
            .metrics
            .ingest_rejected
            .fetch_add(1, Ordering::Relaxed);
        e
    };
    let gzip = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    let body: Vec<u8> = if gzip {
        let mut out = Vec::new();
        let mut reader = flate2::read::GzDecoder::new(&body[..]).take(state.body_limit as u64 + 1);
        reader
            .read_to_end(&mut out)
            .map_err(|e| reject(AppError::BadRequest(format!("gzip body: {e}"))))?;
        if out.len() > state.body_limit {
            return Err(reject(AppError::TooLarge(state.body_limit)));
        }
        out
    } else {
        body.to_vec()
    };
    let payload: ValidationPayload =
        parse(&body).map_err(|e| reject(flattened_field(&body).unwrap_or(e)))?;
    if !payload.is_supported() {
        return Err(reject(AppError::BadRequest(format!(
            "field `schemaVersion`: {} is not supported (want {})",
            payload.schema_version,
            flowtypes::SCHEMA_VERSION
        ))));
    }
    let t = now();
    let mut hours = Vec::with_capacity(payload.summaries.len());
    for (i, s) in payload.summaries.iter().enumerate() {
        let hour = parse_utc(&s.hour).ok_or_else(|| {
            reject(AppError::BadRequest(format!(
                "field `summaries[{i}].hour`: {:?} is not an RFC 3339 UTC time",
                s.hour
            )))
        })?;
        hours.push(hour);
    }
    // Rows of one reporter: a retried post replaces its summaries and adds no event twice.
    let source = payload.source.as_ref().unwrap_or(&payload.cluster);
    for (s, hour) in payload.summaries.iter().zip(hours) {
        let row = SummaryRow {
            hour,
            source: source.clone(),
            allowed: s.counts.allowed_count as i64,
            blocked: s.counts.blocked_count as i64,
            no_policy: s.counts.no_policy_count as i64,
            document: serde_json::to_string(s).map_err(|e| AppError::Internal(e.to_string()))?,
        };
        state.store.upsert_summary(&cluster.id, &row, t).await?;
    }
    let events: Vec<(i64, String)> = payload
        .events
        .iter()
        .map(|e| {
            (
                parse_utc(&e.timestamp).unwrap_or(t),
                serde_json::to_string(e).unwrap_or_default(),
            )
        })
        .collect();
    if !events.is_empty() {
        state
            .store
            .insert_events(&cluster.id, source, &events, t, state.event_ttl)
            .await?;
    }
    state
        .metrics
        .ingested_payloads
        .fetch_add(1, Ordering::Relaxed);
    state
        .metrics
        .ingested_summaries
        .fetch_add(payload.summaries.len() as u64, Ordering::Relaxed);
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"summaries": payload.summaries.len(), "events": events.len()})),
    )
        .into_response())
}

/// Summary counts are flattened into the summary object, where the path of a parse error
/// stops; this finds the exact field (`summaries[0].allowedCount`).
fn flattened_field(body: &[u8]) -> Option<AppError> {
    let v: Value = serde_json::from_slice(body).ok()?;
    v.get("summaries")?
        .as_array()?
        .iter()
        .enumerate()
        .find_map(|(i, s)| {
            serde_path_to_error::deserialize::<_, Counts>(s)
                .err()
                .map(|e| {
                    AppError::BadRequest(format!(
                        "field `summaries[{i}].{}`: {}",
                        e.path(),
                        e.inner()
                    ))
                })
        })
}

/// The OpenAPI 3.1 description of the API.
pub fn openapi() -> Value {
    let op = |summary: &str, auth: &str| json!({"summary": summary, "security": [{auth: []}], "responses": {"200": {"description": "OK"}, "401": {"description": "missing, wrong or revoked credentials"}, "404": {"description": "not found in your organization"}}});
    let range = json!([
        {"name": "clusterId", "in": "query", "required": true, "schema": {"type": "string"}},
        {"name": "start", "in": "query", "schema": {"type": "integer", "description": "Unix seconds"}},
        {"name": "end", "in": "query", "schema": {"type": "integer", "description": "Unix seconds"}},
        {"name": "limit", "in": "query", "schema": {"type": "integer"}}
    ]);
    let mut summary = op("Verdict totals and hourly timeline", "session");
    summary["parameters"] = range.clone();
    let mut gaps = op("Top coverage gaps (default limit 20)", "session");
    gaps["parameters"] = range.clone();
    let mut blocked = op("Top blocked flows (default limit 50)", "session");
    blocked["parameters"] = range;
    let mut events = op(
        "Sampled judgements, newest first (default limit 100)",
        "session",
    );
    events["parameters"] = json!([
        {"name": "clusterId", "in": "query", "required": true, "schema": {"type": "string"}},
        {"name": "limit", "in": "query", "schema": {"type": "integer"}},
        {"name": "discrepancy", "in": "query", "schema": {"type": "string", "enum": ["MATCH", "ENFORCEMENT_GAP", "UNEXPECTED_DROP", "UNOBSERVED"]}}
    ]);
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Policy Hub", "version": env!("CARGO_PKG_VERSION")},
        "components": {"securitySchemes": {
            "session": {"type": "apiKey", "in": "cookie", "name": auth::SESSION_COOKIE},
            "apiToken": {"type": "http", "scheme": "bearer"},
            "clusterToken": {"type": "http", "scheme": "bearer"}
        }},
        "paths": {
            "/api/auth/signup": {"post": {"summary": "Create an account and its organization", "responses": {"201": {"description": "created"}, "400": {"description": "invalid field"}}}},
            "/api/auth/login": {"post": {"summary": "Start a session", "responses": {"200": {"description": "session cookie set"}, "401": {"description": "wrong credentials"}}}},
            "/api/auth/logout": {"post": {"summary": "End the session", "responses": {"204": {"description": "done"}}}},
            "/api/tokens": {"post": op("Issue an API token (owner, admin)", "session")},
            "/api/clusters": {"get": op("List clusters", "session"), "post": op("Create a cluster (owner, admin)", "session")},
            "/api/clusters/{id}": {"delete": op("Delete a cluster (owner, admin)", "session")},
            "/api/clusters/{id}/tokens": {"get": op("List cluster tokens", "session"), "post": op("Issue a cluster token (owner, admin)", "session")},
            "/api/clusters/{id}/tokens/{tokenId}": {"delete": op("Revoke a cluster token (owner, admin)", "session")},
            "/api/validation/summary": {"get": summary},
            "/api/validation/coverage-gaps": {"get": gaps},
            "/api/validation/blocked-flows": {"get": blocked},
            "/api/validation/events": {"get": events},
            "/api/operator/validation": {"post": {"summary": "Collector ingestion: the `policyhub validate --output json` payload (gzip accepted); idempotent per cluster and hour", "security": [{"clusterToken": []}], "responses": {"202": {"description": "accepted"}, "400": {"description": "malformed payload, naming the field"}, "401": {"description": "missing, wrong or revoked cluster token"}, "413": {"description": "body over the limit"}}}},
            "/health/live": {"get": {"summary": "Liveness", "responses": {"200": {"description": "alive"}}}},
            "/health/ready": {"get": {"summary": "Readiness (database reachable)", "responses": {"200": {"description": "ready"}, "503": {"description": "database unreachable"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text exposition"}}}}
        }
    })
}
