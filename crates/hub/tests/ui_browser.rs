//! The web UI in a real headless Chromium driven through chromedriver (Debian packages
//! `chromium`, `chromium-driver`, installed by scripts/setup.d/browser.sh): sign in, open a
//! cluster's dashboard, check that the chart and the tables show the stored numbers.
//! In CI (`CI=true`) a missing browser fails the test instead of skipping it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// One HTTP/1.1 exchange; returns the JSON body (read by Content-Length or chunks, as
/// chromedriver keeps connections open).
fn http(port: u16, method: &str, path: &str, body: Option<&Value>) -> Value {
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
    let mut raw: Vec<u8> = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let start = end + 4;
            let length = head.lines().find_map(|l| {
                l.strip_prefix("content-length:")
                    .and_then(|v| v.trim().parse::<usize>().ok())
            });
            let chunked = head.contains("transfer-encoding: chunked");
            let complete = match length {
                Some(n) => raw.len() >= start + n,
                None if chunked => raw[start..].windows(5).any(|w| w == b"0\r\n\r\n"),
                None => false,
            };
            if complete {
                let body = &raw[start..];
                let text = if chunked {
                    dechunk(body)
                } else {
                    String::from_utf8_lossy(&body[..length.unwrap_or(body.len())]).into_owned()
                };
                return serde_json::from_str(&text).unwrap_or(Value::Null);
            }
        }
        let n = s.read(&mut buf).expect("read from chromedriver");
        if n == 0 {
            let text = String::from_utf8_lossy(&raw).into_owned();
            return serde_json::from_str(text.split_once("\r\n\r\n").map_or("", |x| x.1))
                .unwrap_or(Value::Null);
        }
        raw.extend_from_slice(&buf[..n]);
    }
}

fn dechunk(mut body: &[u8]) -> String {
    let mut out = Vec::new();
    while let Some(pos) = body.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&body[..pos]).trim(), 16).unwrap_or(0);
        if size == 0 || body.len() < pos + 2 + size {
            break;
        }
        out.extend_from_slice(&body[pos + 2..pos + 2 + size]);
        body = &body[(pos + 4 + size).min(body.len())..];
    }
    String::from_utf8_lossy(&out).into_owned()
}

struct Driver {
    child: Child,
    port: u16,
    session: String,
}

impl Driver {
    fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = std::env::temp_dir().join(format!("ph-chromium-{}", std::process::id()));
        let caps = json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {"binary": CHROMIUM, "args": [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            format!("--user-data-dir={}", profile.display())
        ]}}}});
        let v = http(port, "POST", "/session", Some(&caps));
        let session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_string();
        Driver {
            child,
            port,
            session,
        }
    }

    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        http(
            self.port,
            method,
            &format!("/session/{}{path}", self.session),
            body.as_ref(),
        )["value"]
            .clone()
    }

    fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({"url": url})));
    }

    fn find_all(&self, css: &str) -> Vec<String> {
        let v = self.cmd(
            "POST",
            "/elements",
            Some(json!({"using": "css selector", "value": css})),
        );
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e.as_object()?.values().next()?.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn find(&self, css: &str) -> String {
        self.find_all(css)
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no element {css}: {}", self.cmd("GET", "/source", None)))
    }

    fn text(&self, css: &str) -> String {
        let e = self.find(css);
        self.cmd("GET", &format!("/element/{e}/text"), None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css);
        self.cmd(
            "POST",
            &format!("/element/{e}/value"),
            Some(json!({"text": text})),
        );
    }

    /// Waits until the page's URL ends with `suffix` (a click does not wait for navigation).
    fn wait_for_url(&self, suffix: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let url = self.cmd("GET", "/url", None);
            if url.as_str().is_some_and(|u| u.ends_with(suffix)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "still at {url}, waiting for {suffix}: {}",
                self.cmd("GET", "/source", None)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn click(&self, css: &str) {
        let e = self.find(css);
        self.cmd("POST", &format!("/element/{e}/click"), Some(json!({})));
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.cmd("DELETE", "", None);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn summary(hour: &str, allowed: u64, blocked: u64, gap_count: u64) -> String {
    json!({
        "hour": hour, "allowedCount": allowed, "blockedCount": blocked, "noPolicyCount": 7,
        "discrepancies": {"match": 3, "enforcementGap": 2, "unexpectedDrop": 1, "unobserved": 0, "policyNameMismatch": 0},
        "coverageGaps": [{"source": "pmoves/agent-zero", "destination": "pmoves/postgres", "protocol": "TCP", "port": 5432, "count": gap_count}],
        "topBlocked": [{"source": "pmoves/langextract", "destination": "pmoves/neo4j", "policy": "pmoves/neo4j-policy", "count": blocked}],
        "topExact": true
    })
    .to_string()
}

#[test]
fn dashboard_in_a_real_browser() {
    if !(std::path::Path::new(CHROMIUM).exists() && std::path::Path::new(CHROMEDRIVER).exists()) {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "Chromium and chromedriver are required in CI (scripts/setup.d/browser.sh)"
        );
        eprintln!("SKIPPED browser test: install chromium and chromium-driver");
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (addr, cluster_id) = rt.block_on(async {
        let dir = std::env::temp_dir().join(format!("ph-ui-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = store::Store::connect(&format!("sqlite://{}", dir.join("hub.db").display()))
            .await
            .unwrap();
        let org = store.create_org("acme", 1).await.unwrap();
        let user = store
            .create_user(
                "ops@acme.test",
                &hub::auth::hash_password("correct horse").unwrap(),
                1,
            )
            .await
            .unwrap();
        store
            .add_member(&org.id, &user.id, store::Role::Owner)
            .await
            .unwrap();
        let cluster = store
            .create_cluster(&org.id, "pmoves-prod", 1)
            .await
            .unwrap();
        let t = hub::now();
        let h1 = t - t % 3600 - 3600;
        let h2 = h1 - 3600;
        for (hour, allowed, blocked, gap) in [(h1, 120, 9, 4), (h2, 80, 6, 5)] {
            let doc = summary("ignored", allowed, blocked, gap);
            let row = store::SummaryRow {
                hour,
                source: "node-a".into(),
                allowed: allowed as i64,
                blocked: blocked as i64,
                no_policy: 7,
                document: doc,
            };
            store.upsert_summary(&cluster.id, &row, t).await.unwrap();
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(
            async move { axum::serve(listener, hub::app(hub::AppState::new(store))).await },
        );
        (addr, cluster.id)
    });
    let base = format!("http://{addr}");
    let d = Driver::start();
    // A wrong password stays on the login page with an error.
    d.goto(&format!("{base}/login"));
    d.type_into("#email", "ops@acme.test");
    d.type_into("#password", "wrong");
    d.click("#submit");
    let deadline = Instant::now() + Duration::from_secs(15);
    while d.find_all("#error").is_empty() {
        assert!(
            Instant::now() < deadline,
            "no error shown after a wrong password"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(d.text("#error").contains("Wrong email or password"));
    d.type_into("#email", "ops@acme.test");
    d.type_into("#password", "correct horse");
    d.click("#submit");
    d.wait_for_url("/clusters");
    assert_eq!(d.text("#clusters a"), "pmoves-prod");
    d.click("#clusters a");
    d.wait_for_url(&format!("/clusters/{cluster_id}"));
    // The numbers stored: 200 allowed, 15 blocked, 14 without policy over two hours.
    assert_eq!(d.text("#allowed-count"), "200");
    assert_eq!(d.text("#blocked-count"), "15");
    assert_eq!(d.text("#nopolicy-count"), "14");
    assert_eq!(
        d.find_all("#verdict-pie path").len(),
        3,
        "one pie slice per verdict"
    );
    assert_eq!(
        d.find_all("#verdict-timeline rect").len(),
        6,
        "two hours, three verdicts each"
    );
    let gap_row = d.text("#coverage-gaps tr:nth-child(2)");
    assert!(
        gap_row.contains("pmoves/postgres") && gap_row.ends_with('9'),
        "{gap_row}"
    );
    let blocked_row = d.text("#blocked-flows tr:nth-child(2)");
    assert!(
        blocked_row.contains("pmoves/neo4j-policy") && blocked_row.ends_with("15"),
        "{blocked_row}"
    );
    assert!(
        d.text("#discrepancies").contains('4'),
        "enforcement gaps summed"
    );
    // Issuing a collector token from the dashboard shows it once.
    d.click("#new-token");
    d.wait_for_url("/tokens");
    assert!(d.text("#token").starts_with("phc_"));
    // Back on the dashboard the token is listed as active, and can be revoked.
    d.goto(&format!("{base}/clusters/{cluster_id}"));
    assert_eq!(d.text("#tokens .token-state"), "active");
    d.click("#tokens .revoke");
    let deadline = Instant::now() + Duration::from_secs(15);
    while d.find_all("#tokens .revoke").len() == 1 {
        assert!(Instant::now() < deadline, "token not revoked");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(d.text("#tokens .token-state"), "revoked");
}
