//! `watch_files`: a snapshot file reloaded when it changes; a broken version is reported
//! with its file and line and the previous inventory kept.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use inventory::{watch_files, Inventory, SharedInventory};
use netpol::{Endpoint, Protocol, Verdict};
use tokio::sync::watch;
use tracing::instrument::WithSubscriber;

const V1: &str = "\
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web}}
status: {podIP: 10.0.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: shop, labels: {app: db}}
status: {podIP: 10.0.0.2}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db, namespace: shop}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress: [{from: [{podSelector: {matchLabels: {role: client}}}]}]
";

/// Logs written by the task under test.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

fn web_to_db(inventory: &Inventory) -> Verdict {
    let engine = inventory.engine(netpol::Options::default()).unwrap();
    let pod = |key| Endpoint::Pod(engine.inventory().pod_index(key).unwrap());
    engine
        .decide(&pod("shop/web"), &pod("shop/db"), Protocol::Tcp, 5432)
        .verdict
}

async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn next(generations: &mut watch::Receiver<u64>) {
    tokio::time::timeout(Duration::from_secs(10), generations.changed())
        .await
        .expect("a reload within 10 s")
        .unwrap();
}

#[tokio::test]
async fn snapshot_file_is_reloaded_and_a_broken_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cluster.yaml");
    std::fs::write(&path, V1).unwrap();
    let shared = SharedInventory::default();
    let (changed, mut generations) = watch::channel(0);
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .finish();
    let task = tokio::spawn(
        watch_files(
            vec![path.clone()],
            shared.clone(),
            changed,
            Duration::from_millis(10),
        )
        .with_subscriber(subscriber),
    );

    next(&mut generations).await;
    assert_eq!(shared.read().len(), 4);
    assert_eq!(web_to_db(&shared.read()), Verdict::Blocked);

    // A label change that the policy allows.
    let v2 = V1.replace("labels: {app: web}", "labels: {app: web, role: client}");
    std::fs::write(&path, &v2).unwrap();
    next(&mut generations).await;
    assert_eq!(web_to_db(&shared.read()), Verdict::Allowed);
    let before: Vec<String> = shared
        .read()
        .documents()
        .map(|(_, v)| v.to_string())
        .collect();
    let generation = shared.read().generation();

    // A broken version: line 13 has an unclosed flow mapping.
    let broken = v2.replace(
        "metadata: {name: db, namespace: shop, labels: {app: db}}",
        "metadata: {name: db, namespace: shop",
    );
    std::fs::write(&path, &broken).unwrap();
    eventually("the parse error to be logged", || {
        logs.text().contains("does not parse")
    })
    .await;
    let logged = logs.text();
    let line = logged
        .lines()
        .find(|l| l.contains("does not parse"))
        .unwrap();
    assert!(line.contains(&path.display().to_string()), "{line}");
    assert!(
        line.contains("document 3") && line.contains("line 13"),
        "{line}"
    );
    let after: Vec<String> = shared
        .read()
        .documents()
        .map(|(_, v)| v.to_string())
        .collect();
    assert_eq!(after, before, "the previous inventory is kept");
    assert_eq!(shared.read().generation(), generation);
    let direct = Inventory::load_files(std::slice::from_ref(&path)).unwrap_err();
    assert!(direct.to_string().contains("line 13"), "{direct}");

    // Fixed, and the policy now names another role.
    std::fs::write(&path, v2.replace("role: client}}}", "role: admin}}}")).unwrap();
    next(&mut generations).await;
    assert_eq!(web_to_db(&shared.read()), Verdict::Blocked);
    assert!(shared.read().generation() > generation);

    // A file touched without a change in content is not reloaded.
    let generation = shared.read().generation();
    let file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    file.set_modified(std::time::SystemTime::now()).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(shared.read().generation(), generation);

    task.abort();
}
