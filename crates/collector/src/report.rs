//! Reporting to the hub: every payload is written to a bounded on-disk spool first, then
//! posted from the spool, oldest first, gzip-compressed with the cluster token, to
//! `POST /api/operator/validation`. A batch leaves the spool only when the hub accepted it
//! (or rejected it as malformed: then it is kept under `rejected/`). Failures are retried
//! with exponential backoff and full jitter. When the spool is over its byte limit the
//! oldest batches go first and [`Metrics::spool_dropped`] counts them.
//!
//! Posting a batch twice is harmless: the hub replaces a summary of the same (cluster, hour,
//! source), and the collector posts whole-hour summaries.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flowtypes::ValidationPayload;
use tokio::sync::Notify;

use crate::metrics::Metrics;

/// Batches on disk, named by a sequence number: `00000000000000000042.json.gz`.
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    /// (sequence, size in bytes), oldest first.
    batches: Vec<(u64, u64)>,
    next: u64,
    metrics: Arc<Metrics>,
}

const SUFFIX: &str = ".json.gz";

impl Spool {
    /// Opens (creating) the spool directory and picks up batches a previous run left.
    pub fn open(dir: &Path, max_bytes: u64, metrics: Arc<Metrics>) -> io::Result<Spool> {
        std::fs::create_dir_all(dir)?;
        let mut batches = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(seq) = name
                .to_str()
                .and_then(|n| n.strip_suffix(SUFFIX))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            batches.push((seq, entry.metadata()?.len()));
        }
        batches.sort_unstable();
        let next = batches.last().map_or(0, |b| b.0 + 1);
        let spool = Spool {
            dir: dir.to_path_buf(),
            max_bytes,
            batches,
            next,
            metrics,
        };
        spool.publish();
        Ok(spool)
    }

    fn path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{seq:020}{SUFFIX}"))
    }

    fn publish(&self) {
        let bytes: u64 = self.batches.iter().map(|b| b.1).sum();
        self.metrics
            .spool_batches
            .store(self.batches.len() as u64, Ordering::Relaxed);
        self.metrics.spool_bytes.store(bytes, Ordering::Relaxed);
    }

    /// Writes a payload as the newest batch (atomically: a temporary file renamed), then
    /// drops the oldest batches while the spool is over its limit (never the new one).
    pub fn push(&mut self, payload: &ValidationPayload) -> io::Result<()> {
        let json = serde_json::to_vec(payload)?;
        let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&json)?;
        let body = gz.finish()?;
        let seq = self.next;
        self.next += 1;
        let tmp = self.dir.join(format!(".{seq}.tmp"));
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&body)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, self.path(seq))?;
        self.batches.push((seq, body.len() as u64));
        let mut total: u64 = self.batches.iter().map(|b| b.1).sum();
        while total > self.max_bytes && self.batches.len() > 1 {
            let (old, size) = self.batches.remove(0);
            let _ = std::fs::remove_file(self.path(old));
            total -= size;
            self.metrics.spool_dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(batch = old, "spool full: dropped the oldest batch");
        }
        self.publish();
        Ok(())
    }

    /// The oldest batch: its sequence number and gzip body.
    pub fn oldest(&self) -> io::Result<Option<(u64, Vec<u8>)>> {
        let Some(&(seq, _)) = self.batches.first() else {
            return Ok(None);
        };
        Ok(Some((seq, std::fs::read(self.path(seq))?)))
    }

    /// Removes a batch the hub accepted.
    pub fn remove(&mut self, seq: u64) -> io::Result<()> {
        self.batches.retain(|b| b.0 != seq);
        let result = std::fs::remove_file(self.path(seq));
        self.publish();
        match result {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Moves a batch the hub refused as malformed to `rejected/`, where it stays for a
    /// person to look at.
    pub fn reject(&mut self, seq: u64) -> io::Result<()> {
        let dir = self.dir.join("rejected");
        std::fs::create_dir_all(&dir)?;
        std::fs::rename(self.path(seq), dir.join(format!("{seq:020}{SUFFIX}")))?;
        self.batches.retain(|b| b.0 != seq);
        self.publish();
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.batches.len()
    }

    pub fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }
}

/// Reads a spooled batch back (for tests and `rejected/` inspection).
pub fn decode(body: &[u8]) -> io::Result<ValidationPayload> {
    let mut json = Vec::new();
    GzDecoder::new(body).read_to_end(&mut json)?;
    Ok(serde_json::from_slice(&json)?)
}

/// The cluster token (`phc_...`).
#[derive(Debug, Clone)]
pub enum Token {
    /// Given once.
    Fixed(String),
    /// Read from this file before each post, so that a rotated Secret (the kubelet replaces
    /// the mounted file) takes effect without a restart.
    File(PathBuf),
}

impl Token {
    /// The token to send now.
    pub fn current(&self) -> Result<String, String> {
        match self {
            Token::Fixed(token) => Ok(token.clone()),
            Token::File(path) => match std::fs::read_to_string(path) {
                Ok(text) if !text.trim().is_empty() => Ok(text.trim().to_string()),
                Ok(_) => Err(format!("the token file {} is empty", path.display())),
                Err(e) => Err(format!("reading the token file {}: {e}", path.display())),
            },
        }
    }
}

/// Where and how batches are posted.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// The hub's base URL (`https://hub.example.com`).
    pub url: String,
    pub token: Token,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub timeout: Duration,
}

/// What posting one batch came to.
enum Posted {
    Accepted,
    /// The hub will never take it (400, 413): kept aside.
    Refused(String),
    /// Try again later (connection error, 5xx, 401 while a token is being rotated, 429).
    Retry(String),
}

/// Posts spooled batches until `stop` is notified and the spool is empty or `drain`
/// has passed since the stop.
pub struct Reporter {
    spool: Arc<Mutex<Spool>>,
    hub: HubConfig,
    client: reqwest::Client,
    metrics: Arc<Metrics>,
    /// Rings when a batch was spooled.
    pub wake: Arc<Notify>,
}

impl Reporter {
    pub fn new(
        spool: Arc<Mutex<Spool>>,
        hub: HubConfig,
        metrics: Arc<Metrics>,
    ) -> reqwest::Result<Self> {
        let client = reqwest::Client::builder().timeout(hub.timeout).build()?;
        Ok(Reporter {
            spool,
            hub,
            client,
            metrics,
            wake: Arc::new(Notify::new()),
        })
    }

    async fn post(&self, body: Vec<u8>) -> Posted {
        let url = format!(
            "{}/api/operator/validation",
            self.hub.url.trim_end_matches('/')
        );
        let token = match self.hub.token.current() {
            Ok(token) => token,
            Err(e) => return Posted::Retry(e),
        };
        let response = self
            .client
            .post(&url)
            .bearer_auth(token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::CONTENT_ENCODING, "gzip")
            .body(body)
            .send()
            .await;
        match response {
            Err(e) => Posted::Retry(format!("{url}: {e}")),
            Ok(r) if r.status().is_success() => Posted::Accepted,
            Ok(r) => {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                let message = format!("{url}: {status}: {}", text.trim());
                if status == reqwest::StatusCode::BAD_REQUEST
                    || status == reqwest::StatusCode::PAYLOAD_TOO_LARGE
                {
                    Posted::Refused(message)
                } else {
                    Posted::Retry(message)
                }
            }
        }
    }

    /// Sends what the spool holds; returns when it is empty, or after a failed attempt
    /// with the delay to wait before the next one.
    async fn drain_once(&self, failures: &mut u32) -> Option<Duration> {
        loop {
            let next = self.spool.lock().map_err(|_| ()).ok()?.oldest();
            let (seq, body) = match next {
                Ok(Some(b)) => b,
                Ok(None) => return None,
                Err(e) => {
                    tracing::error!(error = %e, "reading the spool");
                    return Some(self.hub.backoff_max);
                }
            };
            let outcome = self.post(body).await;
            let mut spool = self.spool.lock().ok()?;
            match outcome {
                Posted::Accepted => {
                    *failures = 0;
                    self.metrics.reports_sent.fetch_add(1, Ordering::Relaxed);
                    if let Err(e) = spool.remove(seq) {
                        tracing::error!(error = %e, batch = seq, "removing a sent batch");
                    }
                }
                Posted::Refused(message) => {
                    self.metrics
                        .reports_rejected
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::error!(batch = seq, %message, "the hub refused a batch; kept under rejected/");
                    if let Err(e) = spool.reject(seq) {
                        tracing::error!(error = %e, batch = seq, "moving a refused batch");
                        return Some(self.hub.backoff_max);
                    }
                }
                Posted::Retry(message) => {
                    self.metrics.report_failures.fetch_add(1, Ordering::Relaxed);
                    *failures += 1;
                    let delay = backoff(self.hub.backoff_initial, self.hub.backoff_max, *failures);
                    tracing::warn!(batch = seq, %message, retry_in_ms = delay.as_millis() as u64, "posting to the hub failed");
                    return Some(delay);
                }
            }
        }
    }

    /// Runs until `stop` resolves, then goes on draining for at most `drain`.
    pub async fn run(&self, stop: impl std::future::Future<Output = ()>, drain: Duration) {
        tokio::pin!(stop);
        let mut failures = 0;
        loop {
            let wait = self.drain_once(&mut failures).await;
            let sleep = async {
                match wait {
                    Some(d) => tokio::time::sleep(d).await,
                    None => self.wake.notified().await,
                }
            };
            tokio::select! {
                _ = &mut stop => break,
                _ = sleep => {}
            }
        }
        let deadline = tokio::time::Instant::now() + drain;
        loop {
            let Some(delay) = self.drain_once(&mut failures).await else {
                return;
            };
            if tokio::time::Instant::now() + delay > deadline {
                let left = self.spool.lock().map(|s| s.len()).unwrap_or(0);
                tracing::warn!(
                    batches = left,
                    "stopping with batches spooled; they are sent on the next start"
                );
                return;
            }
            tokio::time::sleep(delay).await;
        }
    }
}

/// Exponential backoff with full jitter: a random delay up to `initial * 2^(failures-1)`,
/// capped at `max`, and never below a tenth of `initial`.
pub fn backoff(initial: Duration, max: Duration, failures: u32) -> Duration {
    let shift = failures.saturating_sub(1).min(20);
    let ceiling = initial.saturating_mul(1 << shift).min(max);
    let floor = initial / 10;
    floor + ceiling.saturating_sub(floor).mul_f64(fastrand::f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spool_survives_reopen_and_drops_the_oldest_when_full() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(Metrics::default());
        let mut spool = Spool::open(dir.path(), u64::MAX, metrics.clone()).unwrap();
        for i in 0..3 {
            spool
                .push(&ValidationPayload::new(format!("c{i}")))
                .unwrap();
        }
        let size = std::fs::metadata(dir.path().join(format!("{:020}{SUFFIX}", 0)))
            .unwrap()
            .len();
        drop(spool);
        // A new run finds the three batches, oldest first, and numbers on after them.
        let mut spool = Spool::open(dir.path(), size * 3 + size / 2, metrics.clone()).unwrap();
        assert_eq!(spool.len(), 3);
        let (seq, body) = spool.oldest().unwrap().unwrap();
        assert_eq!((seq, decode(&body).unwrap().cluster.as_str()), (0, "c0"));
        spool.push(&ValidationPayload::new("c3")).unwrap();
        // Four batches do not fit in three and a half: the oldest went.
        assert_eq!(spool.len(), 3);
        assert_eq!(metrics.spool_dropped.load(Ordering::Relaxed), 1);
        let (seq, body) = spool.oldest().unwrap().unwrap();
        assert_eq!((seq, decode(&body).unwrap().cluster.as_str()), (1, "c1"));
        spool.remove(1).unwrap();
        spool.reject(2).unwrap();
        assert_eq!(spool.oldest().unwrap().unwrap().0, 3);
        assert!(dir
            .path()
            .join(format!("rejected/{:020}{SUFFIX}", 2))
            .exists());
        assert_eq!(metrics.spool_batches.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let (i, m) = (Duration::from_millis(100), Duration::from_secs(5));
        for failures in 1..40 {
            let d = backoff(i, m, failures);
            let cap = (i * 2u32.pow(failures.saturating_sub(1).min(20))).min(m);
            assert!(d >= i / 10 && d <= cap, "{failures}: {d:?} > {cap:?}");
        }
        let samples: std::collections::HashSet<Duration> =
            (0..20).map(|_| backoff(i, m, 10)).collect();
        assert!(samples.len() > 1, "jitter");
    }
}
