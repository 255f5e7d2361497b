use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use ed25519_dalek::SigningKey;
use jsonwebtoken::{EncodingKey, Header};
use sha2::{Digest, Sha256};

use super::*;
use crate::agent::chain::Decision;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A fresh Ed25519 key pair: (signing key for tokens, public JWK JSON).
fn generate_key(kid: &str) -> (EncodingKey, Value) {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let seed: [u8; 32] = Sha256::digest(format!("{nanos}-{kid}-{:p}", &nanos)).into();
    let signing = SigningKey::from_bytes(&seed);
    let der = signing.to_pkcs8_der().unwrap();
    let x =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signing.verifying_key().to_bytes());
    let jwk =
        json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA", "use": "sig"});
    (EncodingKey::from_ed_der(der.as_bytes()), jwk)
}

fn sign(key: &EncodingKey, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

fn kind_with(jwks: &[Value], file: Option<PathBuf>) -> JwtValidation {
    let text = json!({ "keys": jwks }).to_string();
    let source = file.map_or(KeySource::None, KeySource::File);
    JwtValidation::with_keys(jwks_from_json(&text).unwrap(), None, source, 0)
}

fn bearer(token: &str) -> Context {
    let mut ctx = Context::default();
    ctx.headers
        .insert("authorization".into(), format!("Bearer {token}"));
    ctx
}

fn policy(kind: &JwtValidation) -> Arc<dyn CompiledPolicy> {
    let meta = json!({
        "issuer": "https://auth.example.com",
        "audience": "api-service",
        "leeway_seconds": 5,
        "claims_to_headers": {"sub": "X-Subject"}
    });
    kind.compile(meta.as_object().unwrap()).unwrap()
}

fn claims(exp_offset: i64, aud: &str) -> Value {
    json!({
        "iss": "https://auth.example.com",
        "aud": aud,
        "sub": "user-7",
        "roles": ["admin"],
        "exp": now().saturating_add_signed(exp_offset),
    })
}

fn message(outcome: &Outcome) -> &str {
    &outcome.message
}

#[test]
fn valid_token_is_allowed_and_exposes_claims() {
    let (key, jwk) = generate_key("k1");
    let kind = kind_with(&[jwk], None);
    let outcome = policy(&kind)
        .execute(&bearer(&sign(&key, "k1", &claims(300, "api-service"))))
        .unwrap();
    assert_eq!(outcome.decision, Decision::Allow, "{}", outcome.message);
    assert!(outcome.instructions.contains(&Instruction::SetHeader {
        key: "x-subject".into(),
        value: "user-7".into()
    }));
    assert!(outcome.instructions.contains(&Instruction::SetState {
        key: "jwt.sub".into(),
        value: "user-7".into()
    }));
}

#[test]
fn claims_to_headers_targets_are_identity_headers() {
    let kind = kind_with(&[], None);
    assert_eq!(policy(&kind).identity_headers(), ["x-subject"]);
    let optional = json!({"required": false});
    let plain = kind.compile(optional.as_object().unwrap()).unwrap();
    assert!(plain.identity_headers().is_empty());
}

#[test]
fn expired_token_is_rejected() {
    let (key, jwk) = generate_key("k1");
    let kind = kind_with(&[jwk], None);
    let outcome = policy(&kind)
        .execute(&bearer(&sign(&key, "k1", &claims(-120, "api-service"))))
        .unwrap();
    assert_eq!(outcome.decision, Decision::Deny);
    assert_eq!(message(&outcome), "token expired");
}

#[test]
fn leeway_accepts_a_just_expired_token() {
    let (key, jwk) = generate_key("k1");
    let kind = kind_with(&[jwk], None);
    let outcome = policy(&kind)
        .execute(&bearer(&sign(&key, "k1", &claims(-2, "api-service"))))
        .unwrap();
    assert_eq!(outcome.decision, Decision::Allow);
}

#[test]
fn wrong_audience_is_rejected() {
    let (key, jwk) = generate_key("k1");
    let kind = kind_with(&[jwk], None);
    let outcome = policy(&kind)
        .execute(&bearer(&sign(&key, "k1", &claims(300, "other"))))
        .unwrap();
    assert_eq!(message(&outcome), "wrong audience");
}

#[test]
fn unknown_kid_is_rejected() {
    let (_, jwk) = generate_key("k1");
    let (other, _) = generate_key("k2");
    let kind = kind_with(&[jwk], None);
    let outcome = policy(&kind)
        .execute(&bearer(&sign(&other, "k2", &claims(300, "api-service"))))
        .unwrap();
    assert_eq!(message(&outcome), "unknown signing key");
}

#[test]
fn forged_signature_is_rejected() {
    let (_, jwk) = generate_key("k1");
    let (other, _) = generate_key("k1-forger");
    let kind = kind_with(&[jwk], None);
    let outcome = policy(&kind)
        .execute(&bearer(&sign(&other, "k1", &claims(300, "api-service"))))
        .unwrap();
    assert_eq!(message(&outcome), "bad signature");
}

#[test]
fn unknown_kid_triggers_a_jwks_refresh() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    let (_, old) = generate_key("old");
    std::fs::write(&path, json!({"keys": [old]}).to_string()).unwrap();
    let kind = JwtValidation::from_settings(Some(&JwtSettings {
        jwks_file: Some(path.clone()),
        jwks_url: None,
        jwks_refresh_interval_ms: 300_000,
        jwks_fetch_timeout_ms: 1000,
        hs256_secret_env: None,
        min_refresh_interval_ms: 0,
    }))
    .unwrap();
    let (new_key, new) = generate_key("new");
    std::fs::write(&path, json!({"keys": [old, new]}).to_string()).unwrap();
    let outcome = policy(&kind)
        .execute(&bearer(&sign(&new_key, "new", &claims(300, "api-service"))))
        .unwrap();
    assert_eq!(outcome.decision, Decision::Allow, "{}", outcome.message);
}

#[test]
fn hs256_uses_the_shared_secret() {
    let secret = b"0123456789abcdef0123456789abcdef-secret";
    let kind = JwtValidation::with_keys(
        jwks_from_json(r#"{"keys": []}"#).unwrap(),
        Some(DecodingKey::from_secret(secret)),
        KeySource::None,
        0,
    );
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims(300, "api-service"),
        &EncodingKey::from_secret(secret),
    )
    .unwrap();
    let outcome = policy(&kind).execute(&bearer(&token)).unwrap();
    assert_eq!(outcome.decision, Decision::Allow, "{}", outcome.message);
}

#[test]
fn missing_and_garbage_tokens_are_401() {
    let kind = kind_with(&[], None);
    let p = policy(&kind);
    for ctx in [Context::default(), bearer("not.a.jwt")] {
        let outcome = p.execute(&ctx).unwrap();
        assert_eq!(outcome.decision, Decision::Deny);
    }
}
