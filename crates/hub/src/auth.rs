//! Passwords, tokens and the caller of a request.

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, Method};
use sha2::{Digest, Sha256};
use store::Role;

use crate::{AppError, AppState};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "ph_session";
/// The header carrying the CSRF token on cookie-authenticated writes.
pub const CSRF_HEADER: &str = "x-csrf-token";

pub fn hash_password(password: &str) -> Result<String, AppError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AppError::Internal(format!("hashing password: {e}")))
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A new random secret with a prefix saying what it is (`ph_`, `phc_`, `phs_`).
pub fn new_secret(prefix: &str) -> String {
    let mut bytes = [0u8; 24];
    OsRng.fill_bytes(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}

/// What is stored for a secret: its SHA-256.
pub fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// An authenticated user or API token, within one organization.
#[derive(Debug, Clone)]
pub struct Principal {
    pub org_id: String,
    pub role: Role,
    /// For the audit log: the user's id or `token`.
    pub actor: String,
}

impl Principal {
    pub fn require_manage(&self) -> Result<(), AppError> {
        if self.role.can_manage() {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!(
                "role {} cannot do this; owner or admin needed",
                self.role.as_str()
            )))
        }
    }
}

fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    cookie_value(&parts.headers, name)
}

/// A cookie's value from the request headers.
pub fn cookie_value<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| kv.trim().strip_prefix(name)?.strip_prefix('='))
}

/// The signed-in user of a browser request and the session's CSRF token (checked by the
/// caller against the form's field); None when there is no live session.
pub async fn browser_session(
    headers: &axum::http::HeaderMap,
    state: &AppState,
) -> Result<Option<(Principal, String)>, AppError> {
    let Some(sid) = cookie_value(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let Some(session) = state.store.session(&secret_hash(sid), crate::now()).await? else {
        return Ok(None);
    };
    let Some(role) = state
        .store
        .role_of(&session.org_id, &session.user_id)
        .await?
    else {
        return Ok(None);
    };
    Ok(Some((
        Principal {
            org_id: session.org_id,
            role,
            actor: session.user_id,
        },
        session.csrf,
    )))
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(token) = bearer(parts) {
            let (org_id, role) = state
                .store
                .api_token(&secret_hash(token))
                .await?
                .ok_or(AppError::Unauthorized)?;
            return Ok(Principal {
                org_id,
                role,
                actor: "token".into(),
            });
        }
        let sid = cookie(parts, SESSION_COOKIE).ok_or(AppError::Unauthorized)?;
        let session = state
            .store
            .session(&secret_hash(sid), crate::now())
            .await?
            .ok_or(AppError::Unauthorized)?;
        let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        if !safe {
            let sent = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
            if sent != Some(session.csrf.as_str()) {
                return Err(AppError::Forbidden("missing or wrong CSRF token".into()));
            }
        }
        let role = state
            .store
            .role_of(&session.org_id, &session.user_id)
            .await?
            .ok_or(AppError::Unauthorized)?;
        Ok(Principal {
            org_id: session.org_id,
            role,
            actor: session.user_id,
        })
    }
}

/// A collector, authenticated by its cluster token.
#[derive(Debug, Clone)]
pub struct ClusterCaller(pub store::Cluster);

impl FromRequestParts<AppState> for ClusterCaller {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(parts).ok_or(AppError::Unauthorized)?;
        let cluster = state.store.cluster_by_token(&secret_hash(token)).await?;
        match cluster {
            Some(c) => Ok(ClusterCaller(c)),
            None => {
                state
                    .metrics
                    .ingest_rejected
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Err(AppError::Unauthorized)
            }
        }
    }
}
