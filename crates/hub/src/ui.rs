//! The web UI, rendered on the server (no front-end build, no script): login, clusters,
//! the validation dashboard (verdict pie and timeline as SVG, coverage gaps, blocked flows,
//! discrepancies) and cluster tokens. Forms carry the session's CSRF token.

use std::fmt::Write;

use axum::extract::{Form, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use flowtypes::Counts;
use serde::Deserialize;

use crate::api::{self, RangeQuery};
use crate::auth::{self, Principal};
use crate::{now, AppError, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/clusters") }))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/clusters", get(clusters).post(create_cluster))
        .route("/clusters/{id}", get(cluster_page))
        .route("/clusters/{id}/tokens", post(issue_token))
        .route(
            "/clusters/{id}/tokens/{token_id}/revoke",
            post(revoke_token),
        )
}

/// Escapes text for HTML.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{} · Policy Hub</title><style>\
         body{{font-family:system-ui,sans-serif;margin:2rem;color:#222}}table{{border-collapse:collapse;margin:1rem 0}}\
         td,th{{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}}th{{background:#f3f3f3}}\
         .cards{{display:flex;gap:1rem}}.card{{border:1px solid #ddd;padding:.8rem 1.2rem;border-radius:6px}}\
         .num{{font-size:1.6rem;font-weight:600}}.allowed{{color:#2e7d32}}.blocked{{color:#c62828}}.nopolicy{{color:#ef6c00}}\
         </style></head><body><h1>{}</h1>{}</body></html>",
        esc(title),
        esc(title),
        body
    ))
}

async fn login_page() -> Html<String> {
    page("Sign in", &login_form(""))
}

fn login_form(error: &str) -> String {
    let error = if error.is_empty() {
        String::new()
    } else {
        format!("<p class=\"blocked\" id=\"error\">{}</p>", esc(error))
    };
    format!(
        "{error}<form method=\"post\" action=\"/login\"><p><label>Email <input id=\"email\" name=\"email\" type=\"email\" required></label></p>\
         <p><label>Password <input id=\"password\" name=\"password\" type=\"password\" required></label></p>\
         <p><button id=\"submit\" type=\"submit\">Sign in</button></p></form>"
    )
}

#[derive(Deserialize)]
struct LoginForm {
    email: String,
    password: String,
}

async fn login(
    State(state): State<AppState>,
    Form(f): Form<LoginForm>,
) -> Result<Response, AppError> {
    match api::authenticate(&state, &f.email, &f.password).await {
        Ok((user_id, org_id)) => {
            let resp = api::start_session(&state, &user_id, &org_id).await?;
            let cookie = resp.headers().get(header::SET_COOKIE).cloned();
            let mut redirect = Redirect::to("/clusters").into_response();
            if let Some(c) = cookie {
                redirect.headers_mut().insert(header::SET_COOKIE, c);
            }
            Ok(redirect)
        }
        Err(AppError::Unauthorized) => Ok((
            StatusCode::UNAUTHORIZED,
            page("Sign in", &login_form("Wrong email or password.")),
        )
            .into_response()),
        Err(e) => Err(e),
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
    #[serde(default)]
    name: String,
}

/// The signed-in user, or a redirect to the login page.
async fn signed_in(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Result<(Principal, String), Response>, AppError> {
    Ok(auth::browser_session(headers, state)
        .await?
        .ok_or_else(|| Redirect::to("/login").into_response()))
}

/// The signed-in user of a form post whose CSRF field matches the session.
async fn form_user(
    state: &AppState,
    headers: &HeaderMap,
    csrf: &str,
) -> Result<Principal, AppError> {
    match auth::browser_session(headers, state).await? {
        Some((who, token)) if token == csrf => Ok(who),
        Some(_) => Err(AppError::Forbidden("missing or wrong CSRF token".into())),
        None => Err(AppError::Unauthorized),
    }
}

async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Result<Response, AppError> {
    form_user(&state, &headers, &f.csrf).await?;
    let clear = api::end_session(&state, &headers).await?;
    Ok((clear, Redirect::to("/login")).into_response())
}

fn csrf_field(csrf: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(csrf)
    )
}

async fn clusters(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, AppError> {
    let (who, csrf) = match signed_in(&state, &headers).await? {
        Ok(x) => x,
        Err(redirect) => return Ok(redirect),
    };
    let mut body = String::from("<table id=\"clusters\"><tr><th>Cluster</th><th>Created</th></tr>");
    for c in state.store.list_clusters(&who.org_id).await? {
        let _ = write!(
            body,
            "<tr><td><a href=\"/clusters/{}\">{}</a></td><td>{}</td></tr>",
            esc(&c.id),
            esc(&c.name),
            c.created_at
        );
    }
    body.push_str("</table>");
    if who.role.can_manage() {
        let _ = write!(body, "<form method=\"post\" action=\"/clusters\">{}<input name=\"name\" placeholder=\"cluster name\" required> <button type=\"submit\">Add cluster</button></form>", csrf_field(&csrf));
    }
    let _ = write!(body, "<form method=\"post\" action=\"/logout\">{}<button type=\"submit\">Sign out</button></form>", csrf_field(&csrf));
    Ok(page("Clusters", &body).into_response())
}

async fn create_cluster(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Result<Response, AppError> {
    let who = form_user(&state, &headers, &f.csrf).await?;
    who.require_manage()?;
    let c = state
        .store
        .create_cluster(&who.org_id, f.name.trim(), now())
        .await?;
    state
        .store
        .audit(&who.org_id, &who.actor, "cluster.create", &c.name, now())
        .await?;
    Ok(Redirect::to(&format!("/clusters/{}", c.id)).into_response())
}

async fn issue_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, AppError> {
    let who = form_user(&state, &headers, &f.csrf).await?;
    let (cluster, _, secret) = api::new_cluster_token(&state, &who, &id).await?;
    let body = format!(
        "<p>Copy this token now; it is not shown again.</p><pre id=\"token\">{}</pre><p><a href=\"/clusters/{}\">Back to the dashboard</a></p>",
        esc(&secret),
        esc(&cluster.id)
    );
    Ok(page(&format!("New token for {}", cluster.name), &body).into_response())
}

async fn revoke_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, token_id)): Path<(String, String)>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, AppError> {
    let who = form_user(&state, &headers, &f.csrf).await?;
    api::revoke_token(&state, &who, &id, &token_id).await?;
    Ok(Redirect::to(&format!("/clusters/{id}")).into_response())
}

#[derive(Deserialize)]
struct DashboardQuery {
    /// Hours back from now (default one week).
    hours: Option<i64>,
    end: Option<i64>,
}

async fn cluster_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<DashboardQuery>,
) -> Result<Response, AppError> {
    let (who, csrf) = match signed_in(&state, &headers).await? {
        Ok(x) => x,
        Err(redirect) => return Ok(redirect),
    };
    let cluster = api::owned_cluster(&state, &who, &id).await?;
    let end = q.end.unwrap_or_else(now);
    let start = end - q.hours.unwrap_or(168).clamp(1, 24 * 366) * 3600;
    let d = api::dashboard(
        &state,
        &who,
        &RangeQuery {
            cluster_id: id.clone(),
            start: Some(start),
            end: Some(end),
            limit: None,
        },
    )
    .await?;
    let t = &d.totals;
    let mut body = format!(
        "<div class=\"cards\"><div class=\"card\">Allowed<div class=\"num allowed\" id=\"allowed-count\">{}</div></div>\
         <div class=\"card\">Blocked<div class=\"num blocked\" id=\"blocked-count\">{}</div></div>\
         <div class=\"card\">No policy<div class=\"num nopolicy\" id=\"nopolicy-count\">{}</div></div></div>",
        t.allowed_count, t.blocked_count, t.no_policy_count
    );
    body.push_str(&pie(t));
    body.push_str(&timeline(&d.timeline));
    let dc = &t.discrepancies;
    let _ = write!(
        body,
        "<h2>Discrepancies</h2><table id=\"discrepancies\"><tr><th>Match</th><th>Enforcement gap</th><th>Unexpected drop</th><th>Unobserved</th><th>Policy name mismatch</th></tr>\
         <tr><td>{}</td><td class=\"blocked\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr></table>",
        dc.matched, dc.enforcement_gap, dc.unexpected_drop, dc.unobserved, dc.policy_name_mismatch
    );
    body.push_str("<h2>Coverage gaps</h2><table id=\"coverage-gaps\"><tr><th>Source</th><th>Destination</th><th>Port</th><th>Flows</th></tr>");
    for ((src, dst, proto, port), count) in d.gaps.iter().take(20) {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}/{port}</td><td>{count}</td></tr>",
            esc(src),
            esc(dst),
            esc(proto)
        );
    }
    body.push_str("</table><h2>Blocked flows</h2><table id=\"blocked-flows\"><tr><th>Source</th><th>Destination</th><th>Policy</th><th>Flows</th></tr>");
    for ((src, dst, policy), count) in d.blocked.iter().take(50) {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{count}</td></tr>",
            esc(src),
            esc(dst),
            esc(policy)
        );
    }
    body.push_str("</table>");
    if who.role.can_manage() {
        let _ = write!(body, "<h2>Collector tokens</h2><table id=\"tokens\"><tr><th>Token</th><th>Issued</th><th>State</th><th></th></tr>");
        for t in state.store.list_cluster_tokens(&who.org_id, &id).await? {
            let revoke = if t.revoked_at.is_some() {
                String::new()
            } else {
                format!(
                    "<form method=\"post\" action=\"/clusters/{}/tokens/{}/revoke\">{}<button type=\"submit\" class=\"revoke\">Revoke</button></form>",
                    esc(&id),
                    esc(&t.id),
                    csrf_field(&csrf)
                )
            };
            let state_text = if t.revoked_at.is_some() {
                "revoked"
            } else {
                "active"
            };
            let _ = write!(body, "<tr><td>{}</td><td>{}</td><td class=\"token-state\">{state_text}</td><td>{revoke}</td></tr>", esc(&t.id), t.created_at);
        }
        let _ = write!(body, "</table><form method=\"post\" action=\"/clusters/{}/tokens\">{}<button type=\"submit\" id=\"new-token\">Issue a token</button></form>", esc(&id), csrf_field(&csrf));
    }
    body.push_str("<p><a href=\"/clusters\">All clusters</a></p>");
    Ok(page(&format!("Cluster {}", cluster.name), &body).into_response())
}

/// Verdict pie chart as SVG.
fn pie(t: &Counts) -> String {
    let parts = [
        (t.allowed_count, "#2e7d32", "allowed"),
        (t.blocked_count, "#c62828", "blocked"),
        (t.no_policy_count, "#ef6c00", "no policy"),
    ];
    let total: u64 = parts.iter().map(|p| p.0).sum();
    let mut svg = String::from("<svg id=\"verdict-pie\" width=\"200\" height=\"200\" viewBox=\"-1 -1 2 2\" style=\"transform:rotate(-90deg)\">");
    if total == 0 {
        svg.push_str("<circle r=\"1\" fill=\"#eee\"/>");
    }
    let mut angle = 0.0f64;
    for (n, color, label) in parts {
        if n == 0 {
            continue;
        }
        let share = n as f64 / total as f64;
        if share >= 0.9999 {
            let _ = write!(
                svg,
                "<circle r=\"1\" fill=\"{color}\"><title>{label}: {n}</title></circle>"
            );
            continue;
        }
        let (x0, y0) = (angle.cos(), angle.sin());
        angle += share * std::f64::consts::TAU;
        let (x1, y1) = (angle.cos(), angle.sin());
        let large = u8::from(share > 0.5);
        let _ = write!(svg, "<path d=\"M0 0 L{x0:.4} {y0:.4} A1 1 0 {large} 1 {x1:.4} {y1:.4} Z\" fill=\"{color}\" data-count=\"{n}\"><title>{label}: {n}</title></path>");
    }
    svg.push_str("</svg>");
    svg
}

/// Hourly verdict timeline as stacked SVG bars.
fn timeline(hours: &[(i64, Counts)]) -> String {
    let (w, h) = (720.0f64, 160.0f64);
    let max = hours
        .iter()
        .map(|(_, c)| c.judged())
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let bar = if hours.is_empty() {
        w
    } else {
        w / hours.len() as f64
    };
    let mut svg = format!(
        "<h2>Verdicts per hour</h2><svg id=\"verdict-timeline\" width=\"{w}\" height=\"{h}\">"
    );
    for (i, (hour, c)) in hours.iter().enumerate() {
        let mut y = h;
        for (n, color) in [
            (c.allowed_count, "#2e7d32"),
            (c.blocked_count, "#c62828"),
            (c.no_policy_count, "#ef6c00"),
        ] {
            let height = n as f64 / max * h;
            y -= height;
            let _ = write!(svg, "<rect x=\"{:.2}\" y=\"{y:.2}\" width=\"{:.2}\" height=\"{height:.2}\" fill=\"{color}\"><title>{hour}: {n}</title></rect>", i as f64 * bar, (bar - 1.0).max(0.5));
        }
    }
    svg.push_str("</svg>");
    svg
}
