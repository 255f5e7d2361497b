//! `watch_cluster` against recorded API server responses: initial lists, watch events
//! (add, label change, delete), a `410 Gone` that forces a relist, and a CRD that is not
//! installed. The final inventory must equal `recorded/final-snapshot.yaml`.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::stream;
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use inventory::{watch_cluster, Inventory, SharedInventory, WatchOptions};
use netpol::{Endpoint, Engine, Protocol, Verdict};
use tokio::sync::watch;

type Body = UnsyncBoxBody<Bytes, Infallible>;

fn recorded(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/recorded")
        .join(path)
}

/// Answers API requests from `tests/recorded/<request path>/`: the n-th list request gets
/// `list-<n>.json` (or the last one there is), a watch from resourceVersion R gets
/// `watch-R.jsonl` once and then stays open without events, like an idle watch. A path
/// without a folder is a resource the server does not serve: 404 with a Status.
#[derive(Default)]
struct ApiServer {
    lists: Mutex<HashMap<String, usize>>,
    watched: Mutex<HashSet<PathBuf>>,
    requests: Mutex<Vec<String>>,
}

impl ApiServer {
    fn respond(&self, req: &Request<kube::client::Body>) -> Response<Body> {
        self.requests.lock().unwrap().push(req.uri().to_string());
        let path = req.uri().path().trim_start_matches('/');
        let query: HashMap<&str, &str> = req
            .uri()
            .query()
            .unwrap_or_default()
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .collect();
        let dir = recorded(path);
        if !dir.is_dir() {
            let status = r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"the server could not find the requested resource","reason":"NotFound","details":{},"code":404}"#;
            return reply(StatusCode::NOT_FOUND, full(status.into()));
        }
        if query.get("watch") == Some(&"true") {
            let rv = query.get("resourceVersion").copied().unwrap_or_default();
            let file = dir.join(format!("watch-{rv}.jsonl"));
            if file.exists() && self.watched.lock().unwrap().insert(file.clone()) {
                let text = std::fs::read_to_string(&file).unwrap();
                let lines: Vec<Result<Frame<Bytes>, Infallible>> = text
                    .lines()
                    .map(|line| Ok(Frame::data(Bytes::from(format!("{line}\n")))))
                    .collect();
                return reply(
                    StatusCode::OK,
                    StreamBody::new(stream::iter(lines)).boxed_unsync(),
                );
            }
            let idle = stream::pending::<Result<Frame<Bytes>, Infallible>>();
            return reply(StatusCode::OK, StreamBody::new(idle).boxed_unsync());
        }
        let n = {
            let mut lists = self.lists.lock().unwrap();
            let n = lists.entry(path.to_string()).or_default();
            *n += 1;
            *n
        };
        let file = (1..=n)
            .rev()
            .map(|i| dir.join(format!("list-{i}.json")))
            .find(|f| f.exists())
            .unwrap();
        reply(StatusCode::OK, full(std::fs::read(file).unwrap().into()))
    }

    fn requests_to(&self, path: &str) -> Vec<String> {
        let requests = self.requests.lock().unwrap();
        requests
            .iter()
            .filter(|r| r.starts_with(&format!("{path}?")))
            .cloned()
            .collect()
    }
}

fn full(bytes: Bytes) -> Body {
    Full::new(bytes).boxed_unsync()
}

fn reply(status: StatusCode, body: Body) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(body)
        .unwrap()
}

fn client(server: Arc<ApiServer>) -> kube::Client {
    let service = tower::service_fn(move |req: Request<kube::client::Body>| {
        let response = server.respond(&req);
        async move { Ok::<_, Infallible>(response) }
    });
    kube::Client::new(service, "default")
}

fn verdict(engine: &Engine, src: &str, dst: &str, port: u16) -> Verdict {
    let pod = |key: &str| {
        Endpoint::Pod(
            engine
                .inventory()
                .pod_index(key)
                .unwrap_or_else(|| panic!("no pod {key}")),
        )
    };
    engine
        .decide(&pod(src), &pod(dst), Protocol::Tcp, port)
        .verdict
}

const BATCH: &str = "shop/batch-7d9f";
const DB: &str = "shop/db-0";
const WEB: &str = "shop/web-5c8d7b-abcde";
const PROMETHEUS: &str = "monitoring/prometheus-0";

#[tokio::test]
async fn watches_follow_recorded_api_responses_to_the_final_snapshot() {
    let server = Arc::new(ApiServer::default());
    let shared = SharedInventory::default();
    let (changed, mut generations) = watch::channel(0);
    let debounce = Duration::from_millis(100);
    let options = WatchOptions {
        debounce,
        missing_retry: Duration::from_millis(200),
    };
    let sent = Arc::new(Mutex::new(Vec::new()));
    let listener = {
        let (sent, mut generations) = (sent.clone(), generations.clone());
        tokio::spawn(async move {
            while generations.changed().await.is_ok() {
                sent.lock().unwrap().push(Instant::now());
            }
        })
    };
    let task = tokio::spawn(watch_cluster(
        client(server.clone()),
        shared.clone(),
        changed,
        options,
    ));

    let (expected, skipped) = Inventory::load_files(&[recorded("final-snapshot.yaml")]).unwrap();
    assert!(skipped.is_empty(), "{skipped:?}");
    let banp = "/apis/policy.networking.k8s.io/v1alpha1/baselineadminnetworkpolicies";
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let done = shared.read().documents().eq(expected.documents());
        if done && server.requests_to(banp).len() >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "inventory never reached the final snapshot:\n{}",
            shared.read().to_yaml().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // One change per list with objects (namespaces, pods, network policies, ANP, CNP; the
    // empty CCNP list and the 404 kind change nothing), per watch event (namespace added;
    // pod added, relabelled, deleted; policy deleted, added) and the pod relist that drops
    // the pod added before the 410: every event was applied, none twice.
    let generation = shared.read().generation();
    assert_eq!(generation, 12);
    tokio::time::timeout(
        Duration::from_secs(5),
        generations.wait_for(|g| *g == generation),
    )
    .await
    .expect("the debounced notification carries the final generation")
    .unwrap();

    // Notifications are at least `debounce` apart, so bursts (the initial lists) are one.
    let sent = sent.lock().unwrap().clone();
    assert!(
        !sent.is_empty() && sent.len() < 12,
        "{} notifications",
        sent.len()
    );
    assert!(sent.windows(2).all(|w| w[1] - w[0] >= debounce), "{sent:?}");
    listener.abort();

    // The requests were the API conventions': paged lists, watches from the list's
    // resourceVersion, a relist after 410, and the 404 kind listed again later.
    let pods = server.requests_to("/api/v1/pods");
    let lists: Vec<_> = pods.iter().filter(|r| !r.contains("watch=true")).collect();
    assert_eq!(lists.len(), 2, "{pods:?}");
    assert!(lists.iter().all(|r| r.contains("limit=500")), "{pods:?}");
    assert!(pods
        .iter()
        .any(|r| r.contains("watch=true") && r.contains("resourceVersion=200")));
    assert!(pods
        .iter()
        .any(|r| r.contains("watch=true") && r.contains("resourceVersion=300")));
    let namespaces = server.requests_to("/api/v1/namespaces");
    assert!(
        namespaces
            .iter()
            .any(|r| r.contains("watch=true") && r.contains("resourceVersion=160")),
        "resumed from the bookmark: {namespaces:?}"
    );

    let live = shared.read().engine(netpol::Options::default()).unwrap();
    let snapshot = expected.engine(netpol::Options::default()).unwrap();
    let flows = [
        (BATCH, DB, 5432, Verdict::Allowed),
        (WEB, DB, 5432, Verdict::Blocked),
        (BATCH, WEB, 8080, Verdict::Blocked),
        (PROMETHEUS, WEB, 8080, Verdict::Allowed),
        (PROMETHEUS, DB, 5432, Verdict::Blocked),
        (DB, BATCH, 80, Verdict::Blocked),
        (DB, PROMETHEUS, 9090, Verdict::NoPolicy),
    ];
    for (src, dst, port, want) in flows {
        assert_eq!(
            verdict(&live, src, dst, port),
            want,
            "{src} -> {dst}:{port} (watched)"
        );
        assert_eq!(
            verdict(&snapshot, src, dst, port),
            want,
            "{src} -> {dst}:{port} (snapshot)"
        );
    }
    let local = shared.read().local_pod_ips("node-a");
    let want: HashSet<std::net::IpAddr> = ["10.0.1.30", "10.0.1.11", "10.0.1.10", "fd00:10::a"]
        .map(|ip| ip.parse().unwrap())
        .into();
    assert_eq!(local, want);

    // Before the watch events, the label change and the deleted policy gave other answers.
    let first_lists: Vec<PathBuf> = [
        "api/v1/namespaces/list-1.json",
        "api/v1/pods/list-1.json",
        "apis/networking.k8s.io/v1/networkpolicies/list-1.json",
        "apis/policy.networking.k8s.io/v1alpha1/adminnetworkpolicies/list-1.json",
        "apis/cilium.io/v2/ciliumnetworkpolicies/list-1.json",
    ]
    .map(recorded)
    .into();
    let (initial, skipped) = Inventory::load_files(&first_lists).unwrap();
    assert!(skipped.is_empty(), "{skipped:?}");
    let initial = initial.engine(netpol::Options::default()).unwrap();
    assert_eq!(verdict(&initial, BATCH, DB, 5432), Verdict::Blocked);
    assert_eq!(verdict(&initial, BATCH, WEB, 8080), Verdict::Allowed);

    task.abort();
}
