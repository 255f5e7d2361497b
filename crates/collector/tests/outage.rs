//! The hub goes down in the middle of a run and comes back: every hour's counts arrive
//! once — none lost while the hub was away, none counted twice after it returned.

mod common;

use std::sync::atomic::Ordering;

use collector::metrics::Metrics;
use common::{eventually, line};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hour_arrives_once_across_a_hub_outage() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hub.db");
    let tenant = common::tenant(&db).await;
    let mut hub = common::Hub::start(&db, "127.0.0.1:0".parse().unwrap());

    let settings = common::settings(&hub.url(), &tenant, dir.path());
    let (feed, run, metrics) = common::run_collector(settings);

    // Two hours: the previous one and this one.
    let now = hub::now();
    let (h0, h1) = (now - now % 3600 - 3600, now - now % 3600);
    let mut expected = std::collections::BTreeMap::<i64, (u64, u64)>::new();
    let mut send = |hour: i64, n: u64, port: u16| {
        for i in 0..n {
            feed.send(line(hour + 60 + i as i64 % 600, port)).unwrap();
        }
        let e = expected.entry(hour).or_default();
        if port == 5432 {
            e.0 += n;
        } else {
            e.1 += n;
        }
    };

    send(h0, 300, 5432);
    send(h1, 40, 22);
    let sent = |m: &Metrics| m.reports_sent.load(Ordering::Relaxed);
    eventually("the first report", || sent(&metrics) >= 1).await;

    // The hub goes away; flows keep coming and batches pile up in the spool.
    hub.stop();
    send(h0, 100, 22);
    let failures = |m: &Metrics| m.report_failures.load(Ordering::Relaxed);
    eventually("a failed post", || failures(&metrics) >= 1).await;
    send(h1, 200, 5432);
    eventually("two batches spooled", || {
        metrics.spool_batches.load(Ordering::Relaxed) >= 2 && failures(&metrics) >= 2
    })
    .await;
    let sent_during_outage = sent(&metrics);

    hub.restart();
    send(h1, 60, 22);
    eventually("the spool to empty", || {
        sent(&metrics) > sent_during_outage + 1
            && metrics.spool_batches.load(Ordering::Relaxed) == 0
    })
    .await;
    drop(feed);
    run.await.unwrap().unwrap();

    let (totals, timeline) = common::summary(&hub.url(), &tenant).await;
    let got: Vec<(i64, u64, u64)> = timeline;
    let want: Vec<(i64, u64, u64)> = expected.iter().map(|(h, (a, b))| (*h, *a, *b)).collect();
    assert_eq!(got, want, "per-hour allowed and blocked counts at the hub");
    assert_eq!(totals.judged(), 700);
    assert_eq!(metrics.spool_dropped.load(Ordering::Relaxed), 0);
    assert_eq!(metrics.reports_rejected.load(Ordering::Relaxed), 0);
}
