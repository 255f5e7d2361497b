//! A real hub for the collector's tests: `hub::serve` over SQLite on a loopback port, in a
//! runtime of its own so that stopping it closes every connection, as a crashed hub would.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use collector::metrics::Metrics;
use collector::pipeline::{Observation, Snapshot, SnapshotSender, Snapshots};
use collector::report::{HubConfig, Token};
use collector::source::Source;
use collector::Settings;
use flowtypes::Counts;
use tokio::sync::watch;

/// web (10.0.0.1) and db (10.0.0.2); db takes TCP 5432 from web only.
pub const WEB_DB: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: shop, labels: {app: web}}
status: {podIP: 10.0.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: db-1, namespace: shop, labels: {app: db}}
status: {podIP: 10.0.0.2}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db, namespace: shop}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress: [{from: [{podSelector: {matchLabels: {app: web}}}], ports: [{port: 5432}]}]
"#;

/// The judge's inventory for [`WEB_DB`] (every pod local); keep the sender alive.
pub fn web_db_snapshot() -> (SnapshotSender, Snapshots) {
    let mut bundle = netpol::Bundle::default();
    bundle.load_str(WEB_DB, "snapshot.yaml").unwrap();
    let engine = netpol::Engine::new(bundle.inventory, bundle.policies, Default::default());
    watch::channel(Some(Arc::new(Snapshot {
        engine: Arc::new(engine),
        local_ips: None,
        generation: 1,
    })))
}

/// Quick flushes and retries, spooling under `dir`.
pub fn settings(hub_url: &str, tenant: &Tenant, dir: &Path) -> Settings {
    Settings {
        node: "node-a".into(),
        hub: HubConfig {
            url: hub_url.to_string(),
            token: Token::Fixed(tenant.cluster_token.clone()),
            backoff_initial: Duration::from_millis(50),
            backoff_max: Duration::from_millis(300),
            timeout: Duration::from_secs(5),
        },
        spool_dir: dir.join("spool"),
        spool_max_bytes: 16 << 20,
        flush_interval: Duration::from_millis(100),
        keep_hours: 3,
        drain: Duration::from_secs(20),
        validation: flow::Config {
            cluster: "lab".into(),
            ..Default::default()
        },
        queue: 1024,
    }
}

/// Credentials of the test organization.
pub struct Tenant {
    pub org_id: String,
    pub cluster_id: String,
    /// For the collector.
    pub cluster_token: String,
    pub cluster_token_id: String,
    /// For reading the API.
    pub api_token: String,
}

/// Creates the organization, its cluster and tokens in a fresh database.
pub async fn tenant(db: &Path) -> Tenant {
    let store = store::Store::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let now = hub::now();
    let org = store.create_org("test", now).await.unwrap();
    let cluster = store.create_cluster(&org.id, "lab", now).await.unwrap();
    let cluster_token = hub::auth::new_secret("phc_");
    let issued = store
        .issue_cluster_token(
            &cluster.id,
            &hub::auth::secret_hash(&cluster_token),
            "collector",
            now,
        )
        .await
        .unwrap();
    let api_token = hub::auth::new_secret("pha_");
    store
        .create_api_token(
            &org.id,
            "reader",
            &hub::auth::secret_hash(&api_token),
            store::Role::Viewer,
            now,
        )
        .await
        .unwrap();
    Tenant {
        org_id: org.id,
        cluster_id: cluster.id,
        cluster_token,
        cluster_token_id: issued.id,
        api_token,
    }
}

pub struct Hub {
    pub addr: SocketAddr,
    db: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Hub {
    /// Serves the database on `addr` (port 0: any free port).
    pub fn start(db: &Path, addr: SocketAddr) -> Hub {
        let (ready, ready_rx) = mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let url = format!("sqlite://{}", db.display());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let store = store::Store::connect(&url).await.unwrap();
                let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
                ready.send(listener.local_addr().unwrap()).unwrap();
                tokio::select! {
                    _ = hub::serve(listener, hub::AppState::new(store)) => {}
                    _ = stopped => {}
                }
            });
            rt.shutdown_background();
        });
        let addr = ready_rx.recv().unwrap();
        Hub {
            addr,
            db: db.to_path_buf(),
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops serving: the port refuses connections until [`Hub::restart`].
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        *self = Hub::start(&self.db.clone(), self.addr);
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `GET /api/validation/summary` over the last two days: the totals and, per hour (unix
/// seconds), the allowed and blocked counts.
pub async fn summary(hub_url: &str, tenant: &Tenant) -> (Counts, Vec<(i64, u64, u64)>) {
    let now = hub::now();
    let url = format!(
        "{hub_url}/api/validation/summary?clusterId={}&start={}&end={}",
        tenant.cluster_id,
        now - 2 * 86_400,
        now + 3600
    );
    let bytes = reqwest::Client::new()
        .get(url)
        .bearer_auth(&tenant.api_token)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let totals: Counts = serde_json::from_value(body["totals"].clone()).unwrap();
    let timeline = body["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["hour"].as_i64().unwrap(),
                h["allowedCount"].as_u64().unwrap(),
                h["blockedCount"].as_u64().unwrap(),
            )
        })
        .collect();
    (totals, timeline)
}

/// Lines the test hands over, as a source would read them.
pub struct Feed(pub Mutex<Option<Receiver<Vec<u8>>>>);

impl Source for Feed {
    fn name(&self) -> &'static str {
        "feed"
    }
    fn run(
        self: Box<Self>,
        out: SyncSender<Observation>,
        _stop: Arc<AtomicBool>,
        _metrics: Arc<Metrics>,
    ) -> anyhow::Result<()> {
        let rx = self.0.lock().unwrap().take().unwrap();
        for line in rx {
            if out.send(Observation::Line(line)).is_err() {
                break;
            }
        }
        Ok(())
    }
}

/// web → db on `port` (5432 allowed, anything else blocked) at unix time `t`.
pub fn line(t: i64, port: u16) -> Vec<u8> {
    format!(
        r#"{{"flow":{{"time":"{}","IP":{{"source":"10.0.0.1","destination":"10.0.0.2"}},"l4":{{"TCP":{{"source_port":40000,"destination_port":{port}}}}},"verdict":"FORWARDED","event_type":{{"type":4}},"trace_observation_point":"TO_ENDPOINT"}}}}"#,
        flow::synth::rfc3339(t, 0)
    )
    .into_bytes()
}

pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..200 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Runs the collector on [`WEB_DB`] with `settings`, judging the lines sent on the returned
/// sender; it ends when the sender is dropped.
pub fn run_collector(
    settings: Settings,
) -> (
    mpsc::Sender<Vec<u8>>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
    Arc<Metrics>,
) {
    let (inventory, snapshots) = web_db_snapshot();
    let metrics = Arc::new(Metrics::default());
    let (feed, rx) = mpsc::channel();
    let run = tokio::spawn({
        let metrics = metrics.clone();
        async move {
            // The inventory stays current for the whole run.
            let _inventory = inventory;
            collector::run(
                settings,
                Box::new(Feed(Mutex::new(Some(rx)))),
                snapshots,
                metrics,
                std::future::pending(),
            )
            .await
        }
    });
    (feed, run, metrics)
}
