//! `jwtValidation`: verifies a bearer JWT (RS256, ES256, HS256, EdDSA) and exposes its claims.
//!
//! Asymmetric keys come from a JWKS file or URL, cached and reloaded when a token names an
//! unknown `kid` (at most once per `min_refresh_interval_ms`); a URL is also fetched when the
//! configuration loads and every `jwks_refresh_interval_ms`, and a failed fetch keeps the
//! previous keys. The HS256 secret comes from an environment variable. Checks `exp`
//! (required), `nbf`, `iss` and `aud` with a leeway. The claims are stored in the chain state (`jwt.sub`, `jwt.claims`) for `roleCheck` and
//! `rateLimit`, and selected claims can be copied into request headers.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{CompiledPolicy, Descriptor, Pending, PolicyError, PolicyKind, REQUEST};
use crate::agent::chain::{Context, ImmediateResponse, Instruction, Outcome};
use crate::agent::config::JwtSettings;

/// The `jwtValidation` policy kind with its key store.
pub struct JwtValidation {
    keys: Arc<KeyStore>,
}

/// Largest JWKS document accepted from a URL.
const MAX_JWKS_BYTES: usize = 1 << 20;

struct KeyStore {
    source: KeySource,
    hs256: Option<DecodingKey>,
    min_refresh: Duration,
    jwks: RwLock<Jwks>,
    /// Why the last JWKS fetch failed (None after a success or before any fetch).
    last_error: RwLock<Option<String>>,
}

enum KeySource {
    None,
    File(PathBuf),
    Url(UrlSource),
}

struct UrlSource {
    url: String,
    client: reqwest::Client,
    timeout: Duration,
    period: Duration,
    /// One fetch at a time; requests waiting for it re-check before fetching again.
    fetching: tokio::sync::Mutex<()>,
}

struct Jwks {
    by_kid: HashMap<String, DecodingKey>,
    without_kid: Vec<DecodingKey>,
    refreshed_at: Instant,
}

fn load_jwks(path: &std::path::Path) -> Result<Jwks, PolicyError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        PolicyError::Settings(format!("jwtValidation jwks_file {}: {e}", path.display()))
    })?;
    jwks_from_json(&text)
}

fn jwks_from_json(text: &str) -> Result<Jwks, PolicyError> {
    let set: JwkSet = serde_json::from_str(text)
        .map_err(|e| PolicyError::Settings(format!("jwtValidation: bad JWKS: {e}")))?;
    let mut jwks = Jwks {
        by_kid: HashMap::new(),
        without_kid: Vec::new(),
        refreshed_at: Instant::now(),
    };
    for jwk in &set.keys {
        let key = DecodingKey::from_jwk(jwk)
            .map_err(|e| PolicyError::Settings(format!("jwtValidation: unusable JWK: {e}")))?;
        match &jwk.common.key_id {
            Some(kid) => {
                jwks.by_kid.insert(kid.clone(), key);
            }
            None => jwks.without_kid.push(key),
        }
    }
    Ok(jwks)
}

impl KeyStore {
    /// Finds the key for a token; re-reads a JWKS file once when the `kid` is unknown (a URL
    /// was refetched by [`CompiledPolicy::prepare`] before).
    fn key_for(&self, alg: Algorithm, kid: Option<&str>) -> Option<DecodingKey> {
        if alg == Algorithm::HS256 {
            return self.hs256.clone();
        }
        if let Some(key) = self.lookup(kid) {
            return Some(key);
        }
        let KeySource::File(path) = &self.source else {
            return None;
        };
        if !self.may_refresh() {
            return None;
        }
        match load_jwks(path) {
            Ok(fresh) => {
                if let Ok(mut jwks) = self.jwks.write() {
                    *jwks = fresh;
                }
                if let Ok(mut last) = self.last_error.write() {
                    *last = None;
                }
                tracing::info!(jwks.file = %path.display(), "JWKS refreshed after unknown kid");
            }
            Err(error) => {
                tracing::error!(%error, "JWKS refresh failed");
                if let Ok(mut jwks) = self.jwks.write() {
                    jwks.refreshed_at = Instant::now();
                }
                if let Ok(mut last) = self.last_error.write() {
                    *last = Some(error.to_string());
                }
            }
        }
        self.lookup(kid)
    }

    /// The rate limit of refreshes caused by unknown `kid`s.
    fn may_refresh(&self) -> bool {
        self.jwks
            .read()
            .is_ok_and(|jwks| jwks.refreshed_at.elapsed() >= self.min_refresh)
    }

    fn knows(&self, kid: &str) -> bool {
        self.jwks
            .read()
            .is_ok_and(|jwks| jwks.by_kid.contains_key(kid))
    }

    /// Fetches the JWKS URL; on failure the previous keys stay. The attempt counts for the rate
    /// limit from its start, so requests arriving meanwhile do not wait for it.
    async fn fetch(&self, source: &UrlSource, why: &'static str) {
        if let Ok(mut jwks) = self.jwks.write() {
            jwks.refreshed_at = Instant::now();
        }
        match download(source).await {
            Ok(fresh) => {
                let keys = fresh.by_kid.len() + fresh.without_kid.len();
                if let Ok(mut jwks) = self.jwks.write() {
                    *jwks = fresh;
                }
                if let Ok(mut last) = self.last_error.write() {
                    *last = None;
                }
                tracing::info!(jwks.url = %source.url, keys, why, "JWKS fetched");
            }
            Err(error) => {
                tracing::error!(jwks.url = %source.url, %error, why, "JWKS fetch failed; keeping the previous keys");
                if let Ok(mut last) = self.last_error.write() {
                    *last = Some(error);
                }
            }
        }
    }

    /// Refetches the URL for an unknown `kid`, unless another request just did.
    async fn refresh_for(&self, kid: &str) {
        let KeySource::Url(source) = &self.source else {
            return;
        };
        let _one = source.fetching.lock().await;
        if !self.knows(kid) && self.may_refresh() {
            self.fetch(source, "unknown kid").await;
        }
    }

    fn lookup(&self, kid: Option<&str>) -> Option<DecodingKey> {
        let jwks = self.jwks.read().ok()?;
        match kid {
            Some(kid) => jwks.by_kid.get(kid).cloned(),
            None if jwks.without_kid.len() == 1 && jwks.by_kid.is_empty() => {
                jwks.without_kid.first().cloned()
            }
            None if jwks.by_kid.len() == 1 && jwks.without_kid.is_empty() => {
                jwks.by_kid.values().next().cloned()
            }
            None => None,
        }
    }
}

async fn download(source: &UrlSource) -> Result<Jwks, String> {
    let mut response = source
        .client
        .get(&source.url)
        .timeout(source.timeout)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| e.to_string())?;
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > MAX_JWKS_BYTES {
            return Err(format!("JWKS larger than {MAX_JWKS_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    let text = String::from_utf8(body).map_err(|_| "JWKS is not UTF-8".to_owned())?;
    jwks_from_json(&text).map_err(|e| e.to_string())
}

/// Refetches the URL every period while the store is alive (its configuration is in use).
async fn refresh_periodically(store: Weak<KeyStore>, period: Duration) {
    loop {
        tokio::time::sleep(period).await;
        let Some(store) = store.upgrade() else {
            return;
        };
        if let KeySource::Url(source) = &store.source {
            let _one = source.fetching.lock().await;
            store.fetch(source, "periodic").await;
        }
    }
}

impl JwtValidation {
    /// Loads keys from the agent settings; a JWKS URL is fetched by [`PolicyKind::start`].
    pub fn from_settings(settings: Option<&JwtSettings>) -> Result<Self, PolicyError> {
        let Some(settings) = settings else {
            return Ok(Self::with_keys(empty_jwks(), None, KeySource::None, 0));
        };
        let (jwks, source) = match (&settings.jwks_file, &settings.jwks_url) {
            (Some(path), _) => (load_jwks(path)?, KeySource::File(path.clone())),
            (None, Some(url)) => {
                let client = reqwest::Client::builder()
                    .build()
                    .map_err(|e| PolicyError::Settings(format!("jwtValidation: {e}")))?;
                let source = UrlSource {
                    url: url.clone(),
                    client,
                    timeout: Duration::from_millis(settings.jwks_fetch_timeout_ms),
                    period: Duration::from_millis(settings.jwks_refresh_interval_ms),
                    fetching: tokio::sync::Mutex::new(()),
                };
                (empty_jwks(), KeySource::Url(source))
            }
            (None, None) => (empty_jwks(), KeySource::None),
        };
        let hs256 = match &settings.hs256_secret_env {
            Some(var) => {
                let secret = std::env::var(var).map_err(|_| {
                    PolicyError::Settings(format!(
                        "jwtValidation: environment variable {var} is not set"
                    ))
                })?;
                if secret.len() < 32 {
                    return Err(PolicyError::Settings(
                        "jwtValidation: the HS256 secret must be at least 32 bytes".to_owned(),
                    ));
                }
                Some(DecodingKey::from_secret(secret.as_bytes()))
            }
            None => None,
        };
        Ok(Self::with_keys(
            jwks,
            hs256,
            source,
            settings.min_refresh_interval_ms,
        ))
    }

    fn with_keys(
        jwks: Jwks,
        hs256: Option<DecodingKey>,
        source: KeySource,
        min_refresh_ms: u64,
    ) -> Self {
        Self {
            keys: Arc::new(KeyStore {
                source,
                hs256,
                min_refresh: Duration::from_millis(min_refresh_ms),
                jwks: RwLock::new(jwks),
                last_error: RwLock::new(None),
            }),
        }
    }
}

fn empty_jwks() -> Jwks {
    Jwks {
        by_kid: HashMap::new(),
        without_kid: Vec::new(),
        refreshed_at: Instant::now(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Metadata {
    #[serde(default)]
    issuer: Option<String>,
    #[serde(default)]
    audience: Option<Audience>,
    #[serde(default = "default_leeway")]
    leeway_seconds: u64,
    #[serde(default = "default_header")]
    header_name: String,
    #[serde(default = "default_true")]
    required: bool,
    #[serde(default)]
    algorithms: Option<Vec<String>>,
    #[serde(default)]
    claims_to_headers: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

fn default_leeway() -> u64 {
    60
}
fn default_header() -> String {
    "authorization".to_owned()
}
fn default_true() -> bool {
    true
}

fn parse_algorithm(name: &str) -> Option<Algorithm> {
    match name {
        "RS256" => Some(Algorithm::RS256),
        "ES256" => Some(Algorithm::ES256),
        "HS256" => Some(Algorithm::HS256),
        "EdDSA" => Some(Algorithm::EdDSA),
        _ => None,
    }
}

impl PolicyKind for JwtValidation {
    fn descriptor(&self) -> Descriptor {
        Descriptor {
            name: "jwtValidation",
            version: "1.0.0",
            description:
                "Validates a bearer JWT (RS256, ES256, HS256, EdDSA): signature, iss, aud, exp, nbf",
            metadata_schema: json!({
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "issuer": {"type": "string", "minLength": 1},
                    "audience": {"type": ["string", "array"], "items": {"type": "string"}},
                    "leeway_seconds": {"type": "integer", "minimum": 0, "maximum": 3600},
                    "header_name": {"type": "string", "minLength": 1},
                    "required": {"type": "boolean"},
                    "algorithms": {
                        "type": "array", "minItems": 1,
                        "items": {"type": "string", "enum": ["RS256", "ES256", "HS256", "EdDSA"]}
                    },
                    "claims_to_headers": {"type": "object", "additionalProperties": {"type": "string"}}
                }
            }),
            phases: REQUEST,
            requires_body: false,
            body_flags: &[],
        }
    }

    /// Unhealthy when the last JWKS fetch failed or no key can verify a token; healthy when
    /// the policy is not configured at all (no `jwtValidation` settings).
    fn health(&self) -> Result<(), String> {
        let keys = &self.keys;
        if matches!(keys.source, KeySource::None) && keys.hs256.is_none() {
            return Ok(());
        }
        if let Some(error) = keys.last_error.read().ok().and_then(|e| e.clone()) {
            return Err(format!("last JWKS fetch failed: {error}"));
        }
        let empty = keys
            .jwks
            .read()
            .map_or(true, |j| j.by_kid.is_empty() && j.without_kid.is_empty());
        if empty && keys.hs256.is_none() {
            return Err("no key to verify tokens with".to_owned());
        }
        Ok(())
    }

    fn start(&self) -> Option<Pending> {
        let KeySource::Url(source) = &self.keys.source else {
            return None;
        };
        let store = Arc::downgrade(&self.keys);
        let period = source.period;
        Some(Box::pin(async move {
            if let Some(keys) = store.upgrade() {
                if let KeySource::Url(source) = &keys.source {
                    let _one = source.fetching.lock().await;
                    keys.fetch(source, "load").await;
                }
            }
            tokio::spawn(refresh_periodically(store, period));
        }))
    }

    fn compile(
        &self,
        metadata: &Map<String, Value>,
    ) -> Result<Arc<dyn CompiledPolicy>, PolicyError> {
        let meta: Metadata = super::typed(&self.descriptor().metadata_schema, metadata)?;
        let algorithms = match &meta.algorithms {
            Some(names) => names.iter().filter_map(|n| parse_algorithm(n)).collect(),
            None => vec![
                Algorithm::RS256,
                Algorithm::ES256,
                Algorithm::HS256,
                Algorithm::EdDSA,
            ],
        };
        let claims_to_headers: Vec<(String, String)> = meta
            .claims_to_headers
            .into_iter()
            .map(|(claim, header)| (claim, header.to_ascii_lowercase()))
            .collect();
        let audience = match meta.audience {
            Some(Audience::One(one)) => vec![one],
            Some(Audience::Many(many)) => many,
            None => Vec::new(),
        };
        Ok(Arc::new(CompiledJwt {
            keys: Arc::clone(&self.keys),
            issuer: meta.issuer,
            audience,
            leeway: meta.leeway_seconds,
            header: meta.header_name.to_ascii_lowercase(),
            required: meta.required,
            algorithms,
            identity_headers: claims_to_headers.iter().map(|(_, h)| h.clone()).collect(),
            claims_to_headers,
        }))
    }
}

struct CompiledJwt {
    keys: Arc<KeyStore>,
    issuer: Option<String>,
    audience: Vec<String>,
    leeway: u64,
    header: String,
    required: bool,
    algorithms: Vec<Algorithm>,
    claims_to_headers: Vec<(String, String)>,
    /// The header names of `claims_to_headers`.
    identity_headers: Vec<String>,
}

fn unauthorized(message: &str) -> Outcome {
    Outcome::deny(
        message,
        ImmediateResponse::json_error(401, message)
            .with_header("www-authenticate", "Bearer error=\"invalid_token\""),
    )
}

impl CompiledJwt {
    fn token<'a>(&self, ctx: &'a Context) -> Option<&'a str> {
        let value = ctx.headers.get(&self.header)?.trim();
        if self.header == "authorization" {
            let (scheme, token) = value.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then_some(token.trim())
        } else {
            Some(value)
        }
    }

    fn verify(&self, token: &str) -> Result<Map<String, Value>, &'static str> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| "malformed token")?;
        if !self.algorithms.contains(&header.alg) {
            return Err("token algorithm not allowed");
        }
        let key = self
            .keys
            .key_for(header.alg, header.kid.as_deref())
            .ok_or("unknown signing key")?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = self.leeway;
        validation.validate_nbf = true;
        validation.required_spec_claims = ["exp".to_owned()].into_iter().collect();
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer]);
        }
        if self.audience.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&self.audience);
        }
        let data =
            jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation).map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                match e.kind() {
                    ErrorKind::ExpiredSignature => "token expired",
                    ErrorKind::ImmatureSignature => "token not yet valid",
                    ErrorKind::InvalidAudience => "wrong audience",
                    ErrorKind::InvalidIssuer => "wrong issuer",
                    ErrorKind::InvalidSignature => "bad signature",
                    ErrorKind::MissingRequiredClaim(_) => "missing required claim",
                    _ => "invalid token",
                }
            })?;
        Ok(data.claims)
    }
}

impl CompiledPolicy for CompiledJwt {
    fn prepare(&self, ctx: &Context) -> Option<Pending> {
        if !matches!(self.keys.source, KeySource::Url(_)) {
            return None;
        }
        let header = jsonwebtoken::decode_header(self.token(ctx)?).ok()?;
        let kid = header.kid?;
        if header.alg == Algorithm::HS256 || self.keys.knows(&kid) || !self.keys.may_refresh() {
            return None;
        }
        let keys = Arc::clone(&self.keys);
        // A task, so the fetch completes even when the agent stops waiting for it.
        let fetch = tokio::spawn(async move { keys.refresh_for(&kid).await });
        Some(Box::pin(async move {
            let _ = fetch.await;
        }))
    }

    fn identity_headers(&self) -> &[String] {
        &self.identity_headers
    }

    fn execute(&self, ctx: &Context) -> Result<Outcome, PolicyError> {
        let Some(token) = self.token(ctx) else {
            if self.required {
                return Ok(unauthorized("bearer token required"));
            }
            return Ok(Outcome::allow());
        };
        let claims = match self.verify(token) {
            Ok(claims) => claims,
            Err(reason) => {
                tracing::info!(request_id = %ctx.request_id, reason, "JWT rejected");
                return Ok(unauthorized(reason));
            }
        };
        let mut instructions = Vec::new();
        if let Some(sub) = claims.get("sub").and_then(Value::as_str) {
            instructions.push(Instruction::SetState {
                key: "jwt.sub".to_owned(),
                value: sub.to_owned(),
            });
        }
        for (claim, header) in &self.claims_to_headers {
            if let Some(value) = claims.get(claim) {
                let value = match value {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                instructions.push(Instruction::SetHeader {
                    key: header.clone(),
                    value,
                });
            }
        }
        instructions.push(Instruction::SetState {
            key: "jwt.claims".to_owned(),
            value: Value::Object(claims).to_string(),
        });
        let mut outcome = Outcome::allow_with(instructions);
        outcome
            .metadata
            .push(("auth_method".to_owned(), "jwt".to_owned()));
        Ok(outcome)
    }
}

#[cfg(test)]
#[path = "jwt_tests.rs"]
mod tests;
