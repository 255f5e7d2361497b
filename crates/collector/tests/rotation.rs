//! The cluster token is rotated while the collector runs: the old token is revoked at the
//! hub, posts fail with 401 and batches wait in the spool, then the new token appears in the
//! token file (as the kubelet updates a mounted Secret) and every count arrives, without a
//! restart.

mod common;

use std::sync::atomic::Ordering;

use collector::metrics::Metrics;
use collector::report::Token;
use common::{eventually, line};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_token_file_is_used_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hub.db");
    let tenant = common::tenant(&db).await;
    let hub = common::Hub::start(&db, "127.0.0.1:0".parse().unwrap());
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{}\n", tenant.cluster_token)).unwrap();

    let mut settings = common::settings(&hub.url(), &tenant, dir.path());
    settings.hub.token = Token::File(token_file.clone());
    let (feed, run, metrics) = common::run_collector(settings);
    let now = hub::now();
    let hour = now - now % 3600;
    let sent = |m: &Metrics| m.reports_sent.load(Ordering::Relaxed);
    let failures = |m: &Metrics| m.report_failures.load(Ordering::Relaxed);

    for i in 0..50 {
        feed.send(line(hour + i, 5432)).unwrap();
    }
    eventually("a report with the first token", || sent(&metrics) >= 1).await;

    // The first token is revoked: posts are refused with 401 and kept for later.
    let store = store::Store::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let revoked = store
        .revoke_cluster_token(
            &tenant.org_id,
            &tenant.cluster_id,
            &tenant.cluster_token_id,
            hub::now(),
        )
        .await
        .unwrap();
    assert!(revoked);
    let sent_before = sent(&metrics);
    for i in 0..30 {
        feed.send(line(hour + 100 + i, 22)).unwrap();
    }
    eventually("a refused post", || failures(&metrics) >= 1).await;
    assert_eq!(
        sent(&metrics),
        sent_before,
        "nothing is accepted with a revoked token"
    );

    // The new token replaces the file atomically, as the kubelet does.
    let rotated = hub::auth::new_secret("phc_");
    store
        .issue_cluster_token(
            &tenant.cluster_id,
            &hub::auth::secret_hash(&rotated),
            "rotated",
            hub::now(),
        )
        .await
        .unwrap();
    let staging = dir.path().join("token.new");
    std::fs::write(&staging, &rotated).unwrap();
    std::fs::rename(&staging, &token_file).unwrap();
    eventually("the spool to empty with the new token", || {
        sent(&metrics) > sent_before && metrics.spool_batches.load(Ordering::Relaxed) == 0
    })
    .await;
    drop(feed);
    run.await.unwrap().unwrap();

    let (totals, _) = common::summary(&hub.url(), &tenant).await;
    assert_eq!(totals.allowed_count, 50);
    assert_eq!(totals.blocked_count, 30);
    assert_eq!(metrics.reports_rejected.load(Ordering::Relaxed), 0);
}
