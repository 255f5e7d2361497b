//! Policy Hub's database layer. One schema and one repository over SQLite (the embedded
//! default: `sqlite://path/hub.db`) or PostgreSQL (`postgres://...`), through sqlx's `Any`
//! driver. Every query that reads tenant data takes the caller's organization, so one
//! organization can never read another's rows.
//!
//! Conventions: ids are UUID strings, times Unix seconds, JSON documents text; secrets
//! (session ids, API and cluster tokens) are stored only as hashes, computed by the caller.

use serde::{Deserialize, Serialize};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

/// What can go wrong talking to the database.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("{0} already exists")]
    Conflict(String),
    #[error("stored document is not valid JSON: {0}")]
    Document(#[from] serde_json::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Membership roles, from most to least powerful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Owner,
    Admin,
    Member,
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
            Role::Viewer => "viewer",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        [Role::Owner, Role::Admin, Role::Member, Role::Viewer]
            .into_iter()
            .find(|r| r.as_str() == s)
    }

    /// Whether this role may manage clusters and tokens (owner, admin).
    pub fn can_manage(self) -> bool {
        self <= Role::Admin
    }

    /// Whether this role may write (everything but viewer).
    pub fn can_write(self) -> bool {
        self <= Role::Member
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Organization {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: String,
    pub email: String,
    #[serde(skip)]
    pub password_hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cluster {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenInfo {
    pub id: String,
    pub name: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub user_id: String,
    pub org_id: String,
    pub csrf: String,
    pub expires_at: i64,
}

/// An hourly validation summary as stored: the counts as columns (for fast dashboards)
/// and the whole versioned summary document as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SummaryRow {
    pub hour: i64,
    pub source: String,
    pub allowed: i64,
    pub blocked: i64,
    pub no_policy: i64,
    pub document: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    pub actor: String,
    pub action: String,
    pub target: String,
    pub at: i64,
}

/// The repository.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Runs an INSERT; a unique-constraint violation becomes `Error::Conflict(what())`.
async fn insert_unique<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    pool: &AnyPool,
    what: impl FnOnce() -> String,
) -> Result<()> {
    match query.execute(pool).await {
        Err(e)
            if e.as_database_error()
                .is_some_and(|d| d.is_unique_violation()) =>
        {
            Err(Error::Conflict(what()))
        }
        other => other.map(|_| ()).map_err(Error::from),
    }
}

impl Store {
    /// Connects (creating a SQLite file when needed) and applies migrations.
    pub async fn connect(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        };
        let url = match backend {
            Backend::Sqlite if !url.contains("mode=") && !url.contains(":memory:") => {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}mode=rwc")
            }
            _ => url.to_string(),
        };
        // SQLite has one writer: a small pool with WAL keeps readers and the writer apart.
        let max = if backend == Backend::Sqlite { 4 } else { 16 };
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        sqlx::query("PRAGMA busy_timeout = 10000")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA foreign_keys = ON")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        if backend == Backend::Sqlite && !url.contains(":memory:") {
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await?;
        }
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Store { pool, backend })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Whether the database answers (readiness).
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    // --- organizations, users, memberships ---

    pub async fn create_org(&self, name: &str, now: i64) -> Result<Organization> {
        let id = new_id();
        sqlx::query("INSERT INTO organizations (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(&id)
            .bind(name)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(Organization {
            id,
            name: name.to_string(),
        })
    }

    pub async fn create_user(&self, email: &str, password_hash: &str, now: i64) -> Result<User> {
        let id = new_id();
        insert_unique(
            sqlx::query(
                "INSERT INTO users (id, email, password_hash, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(&id)
            .bind(email)
            .bind(password_hash)
            .bind(now),
            &self.pool,
            || format!("user {email}"),
        )
        .await?;
        Ok(User {
            id,
            email: email.to_string(),
            password_hash: password_hash.to_string(),
        })
    }

    pub async fn user_by_email(&self, email: &str) -> Result<Option<User>> {
        let row = sqlx::query("SELECT id, email, password_hash FROM users WHERE email = $1")
            .bind(email)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(User {
                id: r.try_get("id")?,
                email: r.try_get("email")?,
                password_hash: r.try_get("password_hash")?,
            })
        })
        .transpose()
    }

    pub async fn add_member(&self, org_id: &str, user_id: &str, role: Role) -> Result<()> {
        sqlx::query("INSERT INTO memberships (org_id, user_id, role) VALUES ($1, $2, $3)")
            .bind(org_id)
            .bind(user_id)
            .bind(role.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The user's role in the organization, if a member.
    pub async fn role_of(&self, org_id: &str, user_id: &str) -> Result<Option<Role>> {
        let row = sqlx::query("SELECT role FROM memberships WHERE org_id = $1 AND user_id = $2")
            .bind(org_id)
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row
            .and_then(|r| r.try_get::<String, _>("role").ok())
            .and_then(|r| Role::parse(&r)))
    }

    /// The organizations a user belongs to, with the role.
    pub async fn orgs_of(&self, user_id: &str) -> Result<Vec<(Organization, Role)>> {
        let rows = sqlx::query("SELECT o.id, o.name, m.role FROM organizations o JOIN memberships m ON m.org_id = o.id WHERE m.user_id = $1 ORDER BY o.name")
            .bind(user_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let role: String = r.try_get("role")?;
                Ok((
                    Organization {
                        id: r.try_get("id")?,
                        name: r.try_get("name")?,
                    },
                    Role::parse(&role).unwrap_or(Role::Viewer),
                ))
            })
            .collect()
    }

    // --- sessions ---

    pub async fn create_session(&self, id_hash: &str, session: &Session) -> Result<()> {
        sqlx::query("INSERT INTO sessions (id_hash, user_id, org_id, csrf, expires_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(id_hash)
            .bind(&session.user_id)
            .bind(&session.org_id)
            .bind(&session.csrf)
            .bind(session.expires_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A session that has not expired at `now`.
    pub async fn session(&self, id_hash: &str, now: i64) -> Result<Option<Session>> {
        let row = sqlx::query("SELECT user_id, org_id, csrf, expires_at FROM sessions WHERE id_hash = $1 AND expires_at > $2")
            .bind(id_hash)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(Session {
                user_id: r.try_get("user_id")?,
                org_id: r.try_get("org_id")?,
                csrf: r.try_get("csrf")?,
                expires_at: r.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    pub async fn delete_session(&self, id_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    // --- API tokens (organization-scoped) ---

    pub async fn create_api_token(
        &self,
        org_id: &str,
        name: &str,
        token_hash: &str,
        role: Role,
        now: i64,
    ) -> Result<TokenInfo> {
        let id = new_id();
        sqlx::query("INSERT INTO api_tokens (id, org_id, name, token_hash, role, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(&id)
            .bind(org_id)
            .bind(name)
            .bind(token_hash)
            .bind(role.as_str())
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(TokenInfo {
            id,
            name: name.to_string(),
            created_at: now,
            revoked_at: None,
        })
    }

    /// The organization and role of a live API token.
    pub async fn api_token(&self, token_hash: &str) -> Result<Option<(String, Role)>> {
        let row = sqlx::query(
            "SELECT org_id, role FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.and_then(|r| {
            let role: String = r.try_get("role").ok()?;
            Some((r.try_get("org_id").ok()?, Role::parse(&role)?))
        }))
    }

    // --- clusters and their tokens ---

    pub async fn create_cluster(&self, org_id: &str, name: &str, now: i64) -> Result<Cluster> {
        let id = new_id();
        insert_unique(
            sqlx::query(
                "INSERT INTO clusters (id, org_id, name, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(&id)
            .bind(org_id)
            .bind(name)
            .bind(now),
            &self.pool,
            || format!("cluster {name}"),
        )
        .await?;
        Ok(Cluster {
            id,
            org_id: org_id.to_string(),
            name: name.to_string(),
            created_at: now,
        })
    }

    pub async fn list_clusters(&self, org_id: &str) -> Result<Vec<Cluster>> {
        let rows = sqlx::query(
            "SELECT id, org_id, name, created_at FROM clusters WHERE org_id = $1 ORDER BY name",
        )
        .bind(org_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(cluster).collect()
    }

    /// The cluster, only if it belongs to `org_id`.
    pub async fn cluster(&self, org_id: &str, id: &str) -> Result<Option<Cluster>> {
        let row = sqlx::query(
            "SELECT id, org_id, name, created_at FROM clusters WHERE org_id = $1 AND id = $2",
        )
        .bind(org_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(cluster).transpose()
    }

    /// Deletes the cluster (and, by cascade, its tokens and data); false if not found in
    /// this organization.
    pub async fn delete_cluster(&self, org_id: &str, id: &str) -> Result<bool> {
        let res = sqlx::query("DELETE FROM clusters WHERE org_id = $1 AND id = $2")
            .bind(org_id)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(res.rows_affected() > 0)
    }

    pub async fn issue_cluster_token(
        &self,
        cluster_id: &str,
        token_hash: &str,
        name: &str,
        now: i64,
    ) -> Result<TokenInfo> {
        let id = new_id();
        sqlx::query("INSERT INTO cluster_tokens (id, cluster_id, token_hash, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&id)
            .bind(cluster_id)
            .bind(token_hash)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(TokenInfo {
            id,
            name: name.to_string(),
            created_at: now,
            revoked_at: None,
        })
    }

    pub async fn list_cluster_tokens(
        &self,
        org_id: &str,
        cluster_id: &str,
    ) -> Result<Vec<TokenInfo>> {
        let rows = sqlx::query("SELECT t.id, t.created_at, t.revoked_at FROM cluster_tokens t JOIN clusters c ON c.id = t.cluster_id WHERE c.org_id = $1 AND c.id = $2 ORDER BY t.created_at")
            .bind(org_id)
            .bind(cluster_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(TokenInfo {
                    id: r.try_get("id")?,
                    name: String::new(),
                    created_at: r.try_get("created_at")?,
                    revoked_at: r.try_get("revoked_at")?,
                })
            })
            .collect()
    }

    /// Revokes a cluster token of a cluster of `org_id`; false if not found.
    pub async fn revoke_cluster_token(
        &self,
        org_id: &str,
        cluster_id: &str,
        token_id: &str,
        now: i64,
    ) -> Result<bool> {
        let res = sqlx::query("UPDATE cluster_tokens SET revoked_at = $1 WHERE id = $2 AND cluster_id = $3 AND revoked_at IS NULL AND cluster_id IN (SELECT id FROM clusters WHERE org_id = $4)")
            .bind(now)
            .bind(token_id)
            .bind(cluster_id)
            .bind(org_id)
            .execute(&self.pool)
            .await?;
        Ok(res.rows_affected() > 0)
    }

    /// The cluster a live (not revoked) cluster token belongs to.
    pub async fn cluster_by_token(&self, token_hash: &str) -> Result<Option<Cluster>> {
        let row = sqlx::query("SELECT c.id, c.org_id, c.name, c.created_at FROM clusters c JOIN cluster_tokens t ON t.cluster_id = c.id WHERE t.token_hash = $1 AND t.revoked_at IS NULL")
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(cluster).transpose()
    }

    // --- validation data ---

    /// Inserts or replaces the summary of (cluster, hour, source): idempotent under retries.
    pub async fn upsert_summary(&self, cluster_id: &str, s: &SummaryRow, now: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO validation_summaries (cluster_id, hour, source, allowed, blocked, no_policy, document, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (cluster_id, hour, source) DO UPDATE SET allowed = excluded.allowed, blocked = excluded.blocked, \
             no_policy = excluded.no_policy, document = excluded.document, updated_at = excluded.updated_at",
        )
        .bind(cluster_id)
        .bind(s.hour)
        .bind(&s.source)
        .bind(s.allowed)
        .bind(s.blocked)
        .bind(s.no_policy)
        .bind(&s.document)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Summaries of a cluster of `org_id` with `start <= hour < end`, oldest first.
    pub async fn summaries(
        &self,
        org_id: &str,
        cluster_id: &str,
        start: i64,
        end: i64,
    ) -> Result<Vec<SummaryRow>> {
        let rows = sqlx::query(
            "SELECT s.hour, s.source, s.allowed, s.blocked, s.no_policy, s.document FROM validation_summaries s \
             JOIN clusters c ON c.id = s.cluster_id WHERE c.org_id = $1 AND s.cluster_id = $2 AND s.hour >= $3 AND s.hour < $4 ORDER BY s.hour, s.source",
        )
        .bind(org_id)
        .bind(cluster_id)
        .bind(start)
        .bind(end)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SummaryRow {
                    hour: r.try_get("hour")?,
                    source: r.try_get("source")?,
                    allowed: r.try_get("allowed")?,
                    blocked: r.try_get("blocked")?,
                    no_policy: r.try_get("no_policy")?,
                    document: r.try_get("document")?,
                })
            })
            .collect()
    }

    /// Stores events (JSON documents with their time) of one reporting `source` that expire
    /// `ttl` seconds after `now`. Idempotent: an event's id is derived from the cluster, the
    /// source and the document, so a retried post stores nothing twice.
    pub async fn insert_events(
        &self,
        cluster_id: &str,
        source: &str,
        events: &[(i64, String)],
        now: i64,
        ttl: i64,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for (time, doc) in events {
            let name = [cluster_id, source, doc].join("\0");
            let id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes());
            sqlx::query("INSERT INTO validation_events (id, cluster_id, time, document, expires_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING")
                .bind(id.to_string())
                .bind(cluster_id)
                .bind(*time)
                .bind(doc)
                .bind(now + ttl)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Recent events of a cluster of `org_id` whose document contains `containing` (a
    /// literal text without `%` or `_`; empty: every event), newest first. The filter runs
    /// before the limit, so `limit` matching events come back when there are that many.
    pub async fn events(
        &self,
        org_id: &str,
        cluster_id: &str,
        containing: &str,
        limit: i64,
    ) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT e.document FROM validation_events e JOIN clusters c ON c.id = e.cluster_id WHERE c.org_id = $1 AND e.cluster_id = $2 AND e.document LIKE $3 ORDER BY e.time DESC LIMIT $4")
            .bind(org_id)
            .bind(cluster_id)
            .bind(format!("%{containing}%"))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get("document")?)).collect()
    }

    /// The TTL job: removes events expired at `now`; returns how many.
    pub async fn expire_events(&self, now: i64) -> Result<u64> {
        let res = sqlx::query("DELETE FROM validation_events WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(res.rows_affected())
    }

    // --- audit log ---

    pub async fn audit(
        &self,
        org_id: &str,
        actor: &str,
        action: &str,
        target: &str,
        now: i64,
    ) -> Result<()> {
        sqlx::query("INSERT INTO audit_log (id, org_id, actor, action, target, at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(new_id())
            .bind(org_id)
            .bind(actor)
            .bind(action)
            .bind(target)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn audit_log(&self, org_id: &str, limit: i64) -> Result<Vec<AuditEntry>> {
        let rows = sqlx::query("SELECT actor, action, target, at FROM audit_log WHERE org_id = $1 ORDER BY at DESC, id LIMIT $2")
            .bind(org_id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditEntry {
                    actor: r.try_get("actor")?,
                    action: r.try_get("action")?,
                    target: r.try_get("target")?,
                    at: r.try_get("at")?,
                })
            })
            .collect()
    }
}

fn cluster(r: &AnyRow) -> Result<Cluster> {
    Ok(Cluster {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        name: r.try_get("name")?,
        created_at: r.try_get("created_at")?,
    })
}
