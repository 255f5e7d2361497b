//! One repository test suite, run on SQLite and on PostgreSQL (scripts/setup.d/postgres.sh
//! starts it; `POLICYHUB_TEST_POSTGRES_URL` overrides the address). In CI a missing
//! PostgreSQL fails the test instead of skipping it.

use store::{Role, Session, Store, SummaryRow};

const DEFAULT_PG: &str = "postgres://policyhub:policyhub@127.0.0.1:5432/policyhub_test";

/// A fresh PostgreSQL database for one test run, dropped afterwards by the caller.
async fn postgres() -> Option<(Store, String)> {
    let base =
        std::env::var("POLICYHUB_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_PG.to_string());
    sqlx::any::install_default_drivers();
    let admin = match sqlx::AnyPool::connect(&base).await {
        Ok(p) => p,
        Err(e) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "PostgreSQL at {base} is required in CI: {e}"
            );
            eprintln!("SKIPPED PostgreSQL run: {e} (run scripts/setup.d/postgres.sh)");
            return None;
        }
    };
    let name = format!("ph_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await
        .unwrap();
    let url = format!("{}/{name}", base.rsplit_once('/').unwrap().0);
    Some((Store::connect(&url).await.unwrap(), name))
}

async fn drop_pg(name: &str) {
    let base =
        std::env::var("POLICYHUB_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_PG.to_string());
    let admin = sqlx::AnyPool::connect(&base).await.unwrap();
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE {name} WITH (FORCE)"
    )))
    .execute(&admin)
    .await;
}

fn summary(hour: i64, source: &str, allowed: i64) -> SummaryRow {
    SummaryRow {
        hour,
        source: source.into(),
        allowed,
        blocked: 2,
        no_policy: 3,
        document: format!("{{\"allowed\":{allowed}}}"),
    }
}

/// The suite every backend must pass.
async fn suite(store: &Store) {
    // Users and memberships.
    let acme = store.create_org("acme", 1).await.unwrap();
    let other = store.create_org("other", 1).await.unwrap();
    let alice = store
        .create_user("alice@acme.test", "hash-a", 1)
        .await
        .unwrap();
    let bob = store
        .create_user("bob@other.test", "hash-b", 1)
        .await
        .unwrap();
    assert!(matches!(
        store.create_user("alice@acme.test", "x", 2).await,
        Err(store::Error::Conflict(_))
    ));
    store
        .add_member(&acme.id, &alice.id, Role::Owner)
        .await
        .unwrap();
    store
        .add_member(&other.id, &bob.id, Role::Viewer)
        .await
        .unwrap();
    assert_eq!(
        store.role_of(&acme.id, &alice.id).await.unwrap(),
        Some(Role::Owner)
    );
    assert_eq!(store.role_of(&acme.id, &bob.id).await.unwrap(), None);
    assert_eq!(
        store
            .user_by_email("alice@acme.test")
            .await
            .unwrap()
            .unwrap()
            .password_hash,
        "hash-a"
    );
    assert_eq!(store.orgs_of(&bob.id).await.unwrap()[0].1, Role::Viewer);

    // Sessions expire.
    let s = Session {
        user_id: alice.id.clone(),
        org_id: acme.id.clone(),
        csrf: "c".into(),
        expires_at: 100,
    };
    store.create_session("sess-hash", &s).await.unwrap();
    assert_eq!(store.session("sess-hash", 99).await.unwrap(), Some(s));
    assert_eq!(store.session("sess-hash", 100).await.unwrap(), None);
    store.delete_session("sess-hash").await.unwrap();
    assert_eq!(store.session("sess-hash", 1).await.unwrap(), None);

    // API tokens.
    store
        .create_api_token(&acme.id, "ci", "api-hash", Role::Member, 5)
        .await
        .unwrap();
    assert_eq!(
        store.api_token("api-hash").await.unwrap(),
        Some((acme.id.clone(), Role::Member))
    );
    assert_eq!(store.api_token("nope").await.unwrap(), None);

    // Clusters are scoped to their organization.
    let prod = store.create_cluster(&acme.id, "prod", 10).await.unwrap();
    assert!(matches!(
        store.create_cluster(&acme.id, "prod", 11).await,
        Err(store::Error::Conflict(_))
    ));
    store.create_cluster(&other.id, "prod", 11).await.unwrap();
    assert_eq!(
        store.list_clusters(&acme.id).await.unwrap(),
        vec![prod.clone()]
    );
    assert_eq!(
        store.cluster(&acme.id, &prod.id).await.unwrap(),
        Some(prod.clone())
    );
    assert_eq!(
        store.cluster(&other.id, &prod.id).await.unwrap(),
        None,
        "cross-tenant read"
    );

    // Cluster tokens: issue, look up, revoke (only from the owning organization).
    let tok = store
        .issue_cluster_token(&prod.id, "ct-hash", "collector", 20)
        .await
        .unwrap();
    assert_eq!(
        store
            .cluster_by_token("ct-hash")
            .await
            .unwrap()
            .map(|c| c.id),
        Some(prod.id.clone())
    );
    assert!(
        !store
            .revoke_cluster_token(&other.id, &prod.id, &tok.id, 21)
            .await
            .unwrap(),
        "cross-tenant revoke"
    );
    assert!(store
        .revoke_cluster_token(&acme.id, &prod.id, &tok.id, 21)
        .await
        .unwrap());
    assert_eq!(store.cluster_by_token("ct-hash").await.unwrap(), None);
    assert_eq!(
        store.list_cluster_tokens(&acme.id, &prod.id).await.unwrap()[0].revoked_at,
        Some(21)
    );

    // Summaries: a retried post replaces its row; sources add up; range and tenant scoped.
    store
        .upsert_summary(&prod.id, &summary(3600, "node-a", 10), 30)
        .await
        .unwrap();
    store
        .upsert_summary(&prod.id, &summary(3600, "node-a", 10), 31)
        .await
        .unwrap();
    store
        .upsert_summary(&prod.id, &summary(3600, "node-b", 5), 31)
        .await
        .unwrap();
    store
        .upsert_summary(&prod.id, &summary(7200, "node-a", 7), 32)
        .await
        .unwrap();
    let rows = store.summaries(&acme.id, &prod.id, 0, 7200).await.unwrap();
    assert_eq!(rows.iter().map(|r| r.allowed).sum::<i64>(), 15);
    assert_eq!(rows.len(), 2);
    assert_eq!(
        store
            .summaries(&acme.id, &prod.id, 0, 10_000)
            .await
            .unwrap()
            .len(),
        3
    );
    assert!(
        store
            .summaries(&other.id, &prod.id, 0, 10_000)
            .await
            .unwrap()
            .is_empty(),
        "cross-tenant summaries"
    );

    // Events expire with their TTL; a retried post stores nothing twice, while the same
    // document from another source is another event.
    let events = [(40, "{\"n\":1}".into()), (41, "{\"n\":2}".into())];
    for _ in 0..2 {
        store
            .insert_events(&prod.id, "node-a/run-1", &events, 50, 100)
            .await
            .unwrap();
    }
    assert_eq!(
        store.events(&acme.id, &prod.id, "", 10).await.unwrap(),
        vec!["{\"n\":2}", "{\"n\":1}"]
    );
    store
        .insert_events(&prod.id, "node-b/run-1", &events[..1], 50, 100)
        .await
        .unwrap();
    assert_eq!(
        store
            .events(&acme.id, &prod.id, "\"n\":1", 10)
            .await
            .unwrap(),
        vec!["{\"n\":1}", "{\"n\":1}"]
    );
    // The filter applies before the limit: the older matching event still comes back.
    assert_eq!(
        store
            .events(&acme.id, &prod.id, "\"n\":1", 1)
            .await
            .unwrap(),
        vec!["{\"n\":1}"]
    );
    assert!(store
        .events(&other.id, &prod.id, "", 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.expire_events(149).await.unwrap(), 0);
    assert_eq!(store.expire_events(150).await.unwrap(), 3);

    // Audit log.
    store
        .audit(&acme.id, "alice@acme.test", "cluster.create", "prod", 60)
        .await
        .unwrap();
    assert_eq!(
        store.audit_log(&acme.id, 10).await.unwrap()[0].action,
        "cluster.create"
    );
    assert!(store.audit_log(&other.id, 10).await.unwrap().is_empty());

    // Deleting a cluster removes its data; other tenants cannot delete it.
    assert!(!store.delete_cluster(&other.id, &prod.id).await.unwrap());
    assert!(store.delete_cluster(&acme.id, &prod.id).await.unwrap());
    assert!(store
        .summaries(&acme.id, &prod.id, 0, 10_000)
        .await
        .unwrap()
        .is_empty());
    store.ping().await.unwrap();
}

#[tokio::test]
async fn sqlite_backend() {
    let dir = std::env::temp_dir().join(format!("ph-store-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = Store::connect(&format!("sqlite://{}", dir.join("hub.db").display()))
        .await
        .unwrap();
    assert_eq!(store.backend(), store::Backend::Sqlite);
    suite(&store).await;
    // Reopening applies no migration twice and keeps the data.
    drop(store);
    let again = Store::connect(&format!("sqlite://{}", dir.join("hub.db").display()))
        .await
        .unwrap();
    assert!(again
        .user_by_email("alice@acme.test")
        .await
        .unwrap()
        .is_some());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn postgres_backend() {
    let Some((store, name)) = postgres().await else {
        return;
    };
    assert_eq!(store.backend(), store::Backend::Postgres);
    suite(&store).await;
    drop(store);
    drop_pg(&name).await;
}
