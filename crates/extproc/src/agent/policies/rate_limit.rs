//! `rateLimit`: a token bucket per key (client IP, a header, or the JWT subject).
//!
//! `store: memory` (default): each compiled instance (one route position) owns its buckets, so
//! routes do not share budgets. `store: redis`: the bucket lives in Redis and is updated
//! atomically by a Lua script using the Redis clock, so several kernels (each with its agent)
//! serving one route share one budget; the Redis key is derived from the chain entry's
//! instance key, which is identical on every kernel with the same configuration.
//! Denials answer 429 with `Retry-After` (whole seconds, rounded up).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{CompiledPolicy, Descriptor, PolicyError, PolicyKind, REQUEST};
use crate::agent::chain::{Context, ImmediateResponse, Outcome};
use crate::agent::config::RateLimitSettings;

/// The `rateLimit` policy kind, with the shared Redis store when one is configured.
#[derive(Default)]
pub struct RateLimit {
    redis: Option<Arc<RedisStore>>,
}

impl RateLimit {
    /// Connects lazily to the configured Redis (if any).
    pub fn from_settings(settings: &RateLimitSettings) -> Result<Self, PolicyError> {
        let redis = match &settings.redis_url {
            Some(url) => Some(Arc::new(RedisStore::new(url, settings.redis_timeout_ms)?)),
            None => None,
        };
        Ok(Self { redis })
    }
}

/// Atomic token bucket in Redis: `{allowed, seconds_to_wait}`.
const TOKEN_BUCKET_LUA: &str = r#"
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil then
  tokens = burst
  ts = now
end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local allowed = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {allowed, tostring(wait)}
"#;

/// A small pool of blocking Redis connections with short timeouts.
pub struct RedisStore {
    client: redis::Client,
    timeout: std::time::Duration,
    script: redis::Script,
    idle: Mutex<Vec<redis::Connection>>,
    /// Why the last Redis call failed (None after a success or before any call).
    last_error: Mutex<Option<String>>,
}

impl RedisStore {
    fn new(url: &str, timeout_ms: u64) -> Result<Self, PolicyError> {
        let client = redis::Client::open(url)
            .map_err(|e| PolicyError::Settings(format!("rateLimit redis_url: {e}")))?;
        Ok(Self {
            client,
            timeout: std::time::Duration::from_millis(timeout_ms),
            script: redis::Script::new(TOKEN_BUCKET_LUA),
            idle: Mutex::new(Vec::new()),
            last_error: Mutex::new(None),
        })
    }

    fn connection(&self) -> Result<redis::Connection, PolicyError> {
        if let Some(connection) = self.idle.lock().ok().and_then(|mut idle| idle.pop()) {
            return Ok(connection);
        }
        let connection = self
            .client
            .get_connection_with_timeout(self.timeout)
            .map_err(|e| PolicyError::Execution(format!("redis connect: {e}")))?;
        connection
            .set_read_timeout(Some(self.timeout))
            .and_then(|()| connection.set_write_timeout(Some(self.timeout)))
            .map_err(|e| PolicyError::Execution(format!("redis: {e}")))?;
        Ok(connection)
    }

    /// Takes one token from the bucket `key`; on refusal returns the seconds to wait. The
    /// outcome is kept for [`PolicyKind::health`].
    fn take(&self, key: &str, rate: f64, burst: f64) -> Result<Result<(), u64>, PolicyError> {
        let result = self.take_once(key, rate, burst);
        if let Ok(mut last) = self.last_error.lock() {
            *last = result.as_ref().err().map(ToString::to_string);
        }
        result
    }

    fn take_once(&self, key: &str, rate: f64, burst: f64) -> Result<Result<(), u64>, PolicyError> {
        let mut connection = self.connection()?;
        let (allowed, wait): (i64, String) = self
            .script
            .key(key)
            .arg(rate)
            .arg(burst)
            .invoke(&mut connection)
            .map_err(|e| PolicyError::Execution(format!("redis: {e}")))?;
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < 64 {
                idle.push(connection);
            }
        }
        if allowed == 1 {
            Ok(Ok(()))
        } else {
            let wait: f64 = wait.parse().unwrap_or(1.0);
            Ok(Err(wait.ceil().max(1.0) as u64))
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Metadata {
    requests_per_second: f64,
    #[serde(default)]
    burst: Option<u32>,
    #[serde(default = "default_key")]
    key: String,
    #[serde(default)]
    store: Option<String>,
}

fn default_key() -> String {
    "client_ip".to_owned()
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum KeySource {
    ClientIp,
    Header(String),
    JwtSubject,
}

impl PolicyKind for RateLimit {
    /// Unhealthy while the last call to the Redis store failed (in-memory buckets cannot).
    fn health(&self) -> Result<(), String> {
        let last = self
            .redis
            .as_ref()
            .and_then(|redis| redis.last_error.lock().ok().and_then(|e| e.clone()));
        match last {
            Some(error) => Err(format!("Redis store: {error}")),
            None => Ok(()),
        }
    }

    fn descriptor(&self) -> Descriptor {
        Descriptor {
            name: "rateLimit",
            version: "1.0.0",
            description: "Token-bucket rate limit keyed by client IP, a header or the JWT subject",
            metadata_schema: json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["requests_per_second"],
                "properties": {
                    "requests_per_second": {"type": "number", "exclusiveMinimum": 0},
                    "burst": {"type": "integer", "minimum": 1},
                    "key": {"type": "string", "minLength": 1},
                    "store": {"type": "string", "enum": ["memory", "redis"]}
                }
            }),
            phases: REQUEST,
            requires_body: false,
            body_flags: &[],
        }
    }

    fn compile(
        &self,
        metadata: &Map<String, Value>,
    ) -> Result<Arc<dyn CompiledPolicy>, PolicyError> {
        self.compile_instance(metadata, "")
    }

    fn compile_instance(
        &self,
        metadata: &Map<String, Value>,
        instance_key: &str,
    ) -> Result<Arc<dyn CompiledPolicy>, PolicyError> {
        let meta: Metadata = super::typed(&self.descriptor().metadata_schema, metadata)?;
        let source = match meta.key.as_str() {
            "client_ip" => KeySource::ClientIp,
            "jwt_sub" => KeySource::JwtSubject,
            other => match other.strip_prefix("header:") {
                Some(name) if !name.is_empty() => KeySource::Header(name.to_ascii_lowercase()),
                _ => {
                    return Err(PolicyError::Metadata(format!(
                        "key must be client_ip, jwt_sub or header:<name>, got `{other}`"
                    )))
                }
            },
        };
        let burst = meta
            .burst
            .map_or_else(|| meta.requests_per_second.ceil().max(1.0), f64::from);
        let store = match meta.store.as_deref() {
            Some("redis") => {
                // An agent setting is missing, not the route's metadata (so the kernel's
                // `--validate`, which compiles with default settings, accepts the route).
                let redis = self.redis.clone().ok_or_else(|| {
                    PolicyError::Settings(
                        "store: redis needs agent_core.policy_settings.rateLimit.redis_url"
                            .to_owned(),
                    )
                })?;
                let prefix = if instance_key.is_empty() {
                    crate::config_version(&format!("{metadata:?}"))
                } else {
                    instance_key.to_owned()
                };
                Store::Redis {
                    redis,
                    prefix: format!("policyhub:rl:{prefix}:"),
                }
            }
            _ => Store::Memory(TokenBuckets::new(meta.requests_per_second, burst)),
        };
        Ok(Arc::new(CompiledRateLimit {
            source,
            rate: meta.requests_per_second,
            burst,
            store,
        }))
    }
}

enum Store {
    Memory(TokenBuckets),
    Redis {
        redis: Arc<RedisStore>,
        prefix: String,
    },
}

struct CompiledRateLimit {
    source: KeySource,
    rate: f64,
    burst: f64,
    store: Store,
}

impl CompiledPolicy for CompiledRateLimit {
    fn execute(&self, ctx: &Context) -> Result<Outcome, PolicyError> {
        let key = match &self.source {
            KeySource::ClientIp => ctx.client_ip.as_str(),
            KeySource::Header(name) => ctx.headers.get(name).map_or("", String::as_str),
            KeySource::JwtSubject => ctx.state.get("jwt.sub").map_or("", String::as_str),
        };
        let verdict = match &self.store {
            Store::Memory(buckets) => buckets.take(key, Instant::now()),
            Store::Redis { redis, prefix } => {
                redis.take(&format!("{prefix}{key}"), self.rate, self.burst)?
            }
        };
        match verdict {
            Ok(()) => Ok(Outcome::allow()),
            Err(retry_after) => Ok(Outcome::deny(
                "rate limit exceeded",
                ImmediateResponse::json_error(429, "rate limit exceeded")
                    .with_header("retry-after", &retry_after.to_string()),
            )),
        }
    }
}

const SHARDS: usize = 16;
const MAX_KEYS_PER_SHARD: usize = 4096;

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Token buckets keyed by string, sharded to keep lock contention low.
pub struct TokenBuckets {
    rate: f64,
    burst: f64,
    shards: Vec<Mutex<HashMap<String, Bucket>>>,
}

impl TokenBuckets {
    /// `rate` tokens per second, at most `burst` stored.
    pub fn new(rate: f64, burst: f64) -> Self {
        Self {
            rate,
            burst,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    fn shard(&self, key: &str) -> &Mutex<HashMap<String, Bucket>> {
        let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        &self.shards[(hash % SHARDS as u64) as usize]
    }

    /// Takes one token at `now`; on refusal returns the seconds until one is available.
    pub fn take(&self, key: &str, now: Instant) -> Result<(), u64> {
        let Ok(mut shard) = self.shard(key).lock() else {
            return Ok(());
        };
        if shard.len() >= MAX_KEYS_PER_SHARD && !shard.contains_key(key) {
            let (rate, burst) = (self.rate, self.burst);
            shard.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.updated).as_secs_f64() * rate < burst
            });
        }
        let bucket = shard.entry(key.to_owned()).or_insert(Bucket {
            tokens: self.burst,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / self.rate;
            Err(wait.ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::agent::chain::{Decision, Instruction};

    #[test]
    fn burst_then_refusal_then_refill() {
        let buckets = TokenBuckets::new(2.0, 3.0);
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(buckets.take("a", start), Ok(()));
        }
        assert_eq!(buckets.take("a", start), Err(1));
        assert_eq!(buckets.take("b", start), Ok(()), "keys are independent");
        // 0.5 s at 2/s refills one token.
        assert_eq!(
            buckets.take("a", start + Duration::from_millis(500)),
            Ok(())
        );
        assert!(buckets
            .take("a", start + Duration::from_millis(500))
            .is_err());
        // Refill never exceeds the burst.
        let later = start + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(buckets.take("a", later), Ok(()));
        }
        assert!(buckets.take("a", later).is_err());
    }

    #[test]
    fn retry_after_rounds_up_for_slow_rates() {
        let buckets = TokenBuckets::new(0.1, 1.0);
        let start = Instant::now();
        assert_eq!(buckets.take("k", start), Ok(()));
        assert_eq!(buckets.take("k", start), Err(10));
    }

    #[test]
    fn policy_answers_429_with_retry_after() {
        let policy = RateLimit::default()
            .compile(
                json!({"requests_per_second": 1, "burst": 1, "key": "header:X-Tenant"})
                    .as_object()
                    .unwrap(),
            )
            .unwrap();
        let mut ctx = Context::default();
        ctx.headers.insert("x-tenant".into(), "t1".into());
        assert_eq!(policy.execute(&ctx).unwrap().decision, Decision::Allow);
        let denied = policy.execute(&ctx).unwrap();
        assert_eq!(denied.decision, Decision::Deny);
        let Instruction::Immediate(response) = &denied.instructions[0] else {
            panic!("expected an immediate response");
        };
        assert_eq!(response.status, 429);
        assert!(response
            .headers
            .contains(&("retry-after".into(), "1".into())));
    }

    #[test]
    fn bad_key_source_is_rejected() {
        let error = RateLimit::default()
            .compile(
                json!({"requests_per_second": 1, "key": "cookie"})
                    .as_object()
                    .unwrap(),
            )
            .err()
            .unwrap();
        assert!(matches!(error, PolicyError::Metadata(_)));
    }

    #[test]
    fn many_keys_do_not_grow_without_bound() {
        let buckets = TokenBuckets::new(1000.0, 1.0);
        let start = Instant::now();
        for i in 0..(SHARDS * MAX_KEYS_PER_SHARD * 2) {
            let _ = buckets.take(&format!("k{i}"), start + Duration::from_millis(i as u64));
        }
        let total: usize = buckets.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert!(total <= SHARDS * MAX_KEYS_PER_SHARD, "{total}");
    }

    #[test]
    fn a_failing_redis_store_makes_the_kind_unhealthy() {
        let kind = RateLimit::from_settings(&RateLimitSettings {
            redis_url: Some("redis://127.0.0.1:1".to_owned()),
            redis_timeout_ms: 50,
        })
        .unwrap();
        assert_eq!(kind.health(), Ok(()), "no call yet");
        let policy = kind
            .compile_instance(
                json!({"requests_per_second": 1, "store": "redis"})
                    .as_object()
                    .unwrap(),
                "k",
            )
            .unwrap();
        let ctx = Context {
            client_ip: "10.0.0.1".to_owned(),
            ..Context::default()
        };
        assert!(policy.execute(&ctx).is_err());
        let reason = kind.health().unwrap_err();
        assert!(reason.starts_with("Redis store: "), "{reason}");
        assert_eq!(RateLimit::default().health(), Ok(()), "memory buckets");
    }
}
