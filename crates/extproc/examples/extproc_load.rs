//! A load client that speaks Envoy's ext_proc protocol directly to a policy kernel: many
//! concurrent streams, one stream per simulated HTTP request (as Envoy does), request headers
//! and, when the request is allowed, response headers.
//!
//! ```text
//! cargo run --release --example extproc_load -- --target 127.0.0.1:9001 --route users \
//!     --concurrency 64 --duration 20 --header x-api-key=alice-key --hs256-secret "$SECRET"
//! ```
//! `--rate N` paces the client to N requests/s (soak tests); otherwise it runs closed-loop.
//! `--http PATH` sends plain HTTP/1.1 keep-alive requests to `--target` instead (to measure
//! through Envoy, with and without the ext_proc filter); `extproc_load upstream ADDR` serves a
//! small JSON answer on ADDR as the upstream of such runs. `extproc_load otlp-sink ADDR` is an
//! OTLP/gRPC collector that only counts spans (printed on SIGINT), for runs with tracing on.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue};
use envoy_types::pb::envoy::service::ext_proc::v3::external_processor_client::ExternalProcessorClient;
use envoy_types::pb::envoy::service::ext_proc::v3::{
    processing_request, processing_response, HttpHeaders, ProcessingRequest,
};
use envoy_types::pb::google::protobuf::{value::Kind, Struct, Value};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

#[derive(Debug)]
struct Options {
    target: String,
    route: String,
    concurrency: usize,
    connections: usize,
    duration: Duration,
    headers: Vec<(String, String)>,
    hs256_secret: Option<String>,
    response_phase: bool,
    rate: Option<f64>,
    threads: usize,
    distinct_ips: u32,
    http_path: Option<String>,
}

fn parse() -> Result<Options, String> {
    let mut o = Options {
        target: "127.0.0.1:9001".into(),
        route: "users".into(),
        concurrency: 64,
        connections: 4,
        duration: Duration::from_secs(10),
        headers: Vec::new(),
        hs256_secret: None,
        response_phase: true,
        rate: None,
        threads: 2,
        distinct_ips: 1000,
        http_path: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--target" => o.target = value()?,
            "--route" => o.route = value()?,
            "--concurrency" => o.concurrency = value()?.parse().map_err(|e| format!("{e}"))?,
            "--connections" => o.connections = value()?.parse().map_err(|e| format!("{e}"))?,
            "--duration" => {
                o.duration = Duration::from_secs_f64(value()?.parse().map_err(|e| format!("{e}"))?)
            }
            "--header" => {
                let v = value()?;
                let (k, v) = v.split_once('=').ok_or("--header takes name=value")?;
                o.headers.push((k.to_ascii_lowercase(), v.to_owned()));
            }
            "--hs256-secret" => o.hs256_secret = Some(value()?),
            "--no-response-phase" => o.response_phase = false,
            "--rate" => o.rate = Some(value()?.parse().map_err(|e| format!("{e}"))?),
            "--threads" => o.threads = value()?.parse().map_err(|e| format!("{e}"))?,
            "--http" => o.http_path = Some(value()?),
            "--distinct-ips" => o.distinct_ips = value()?.parse().map_err(|e| format!("{e}"))?,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(o)
}

fn hs256_token(secret: &str) -> Result<String, String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs();
    let claims = serde_json::json!({
        "iss": "https://auth.example.com", "aud": "api-service", "sub": "load-user",
        "roles": ["admin"], "exp": now + 3600
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| e.to_string())
}

fn string_value(text: String) -> Value {
    Value {
        kind: Some(Kind::StringValue(text)),
    }
}

fn request_headers(o: &Options, headers: &[(String, String)], seq: u64) -> ProcessingRequest {
    let mut attrs = Struct::default();
    attrs
        .fields
        .insert("xds.route_name".into(), string_value(o.route.clone()));
    let ip = seq % u64::from(o.distinct_ips.max(1));
    attrs.fields.insert(
        "source.address".into(),
        string_value(format!(
            "10.{}.{}.{}:40000",
            (ip >> 16) & 255,
            (ip >> 8) & 255,
            ip & 255
        )),
    );
    let mut list: Vec<HeaderValue> = [
        (":method", "GET"),
        (":path", "/api/v1/users/7?x=1"),
        (":authority", "svc"),
        (":scheme", "http"),
    ]
    .iter()
    .map(|(k, v)| HeaderValue {
        key: (*k).into(),
        value: String::new(),
        raw_value: v.as_bytes().to_vec(),
    })
    .collect();
    list.extend(headers.iter().map(|(k, v)| HeaderValue {
        key: k.clone(),
        value: String::new(),
        raw_value: v.as_bytes().to_vec(),
    }));
    list.push(HeaderValue {
        key: "x-request-id".into(),
        value: String::new(),
        raw_value: format!("load-{seq}").into_bytes(),
    });
    ProcessingRequest {
        attributes: HashMap::from([("envoy.filters.http.ext_proc".to_owned(), attrs)]),
        request: Some(processing_request::Request::RequestHeaders(HttpHeaders {
            headers: Some(HeaderMap { headers: list }),
            end_of_stream: true,
            ..HttpHeaders::default()
        })),
        ..ProcessingRequest::default()
    }
}

fn response_headers() -> ProcessingRequest {
    let headers = [(":status", "200"), ("content-type", "application/json")]
        .iter()
        .map(|(k, v)| HeaderValue {
            key: (*k).into(),
            value: String::new(),
            raw_value: v.as_bytes().to_vec(),
        })
        .collect();
    ProcessingRequest {
        request: Some(processing_request::Request::ResponseHeaders(HttpHeaders {
            headers: Some(HeaderMap { headers }),
            end_of_stream: true,
            ..HttpHeaders::default()
        })),
        ..ProcessingRequest::default()
    }
}

/// One simulated HTTP request; returns the outcome label.
async fn one(
    client: &mut ExternalProcessorClient<Channel>,
    o: &Options,
    headers: &[(String, String)],
    seq: u64,
) -> Result<String, String> {
    let (tx, rx) = mpsc::channel(2);
    tx.send(request_headers(o, headers, seq))
        .await
        .map_err(|e| e.to_string())?;
    let mut inbound = client
        .process(ReceiverStream::new(rx))
        .await
        .map_err(|e| e.to_string())?
        .into_inner();
    let first = inbound
        .message()
        .await
        .map_err(|e| e.to_string())?
        .ok_or("stream closed")?;
    if let Some(processing_response::Response::ImmediateResponse(r)) = &first.response {
        return Ok(format!(
            "immediate_{}",
            r.status.as_ref().map_or(0, |s| s.code)
        ));
    }
    let wants_response = first
        .mode_override
        .as_ref()
        .is_none_or(|m| m.response_header_mode != 2);
    if o.response_phase && wants_response {
        tx.send(response_headers())
            .await
            .map_err(|e| e.to_string())?;
        inbound
            .message()
            .await
            .map_err(|e| e.to_string())?
            .ok_or("stream closed")?;
    }
    Ok("continue".to_owned())
}

/// One HTTP/1.1 keep-alive connection.
struct HttpConn {
    stream: tokio::io::BufReader<tokio::net::TcpStream>,
    request: Vec<u8>,
}

impl HttpConn {
    async fn open(o: &Options, headers: &[(String, String)], path: &str) -> Result<Self, String> {
        let stream = tokio::net::TcpStream::connect(&o.target)
            .await
            .map_err(|e| e.to_string())?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let mut request = format!("GET {path} HTTP/1.1\r\nHost: svc\r\n");
        for (k, v) in headers {
            request.push_str(&format!("{k}: {v}\r\n"));
        }
        request.push_str("\r\n");
        Ok(Self {
            stream: tokio::io::BufReader::new(stream),
            request: request.into_bytes(),
        })
    }

    /// Sends the request and reads the whole response; returns the status.
    async fn get(&mut self) -> Result<u16, String> {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
        self.stream
            .get_mut()
            .write_all(&self.request)
            .await
            .map_err(|e| e.to_string())?;
        let mut line = String::new();
        self.stream
            .read_line(&mut line)
            .await
            .map_err(|e| e.to_string())?;
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or("bad status line")?;
        let (mut length, mut chunked) = (0usize, false);
        loop {
            line.clear();
            self.stream
                .read_line(&mut line)
                .await
                .map_err(|e| e.to_string())?;
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let lower = header.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            } else if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
                chunked = true;
            }
        }
        if chunked {
            loop {
                line.clear();
                self.stream
                    .read_line(&mut line)
                    .await
                    .map_err(|e| e.to_string())?;
                let size = usize::from_str_radix(line.trim(), 16).map_err(|e| e.to_string())?;
                let mut chunk = vec![0; size + 2];
                self.stream
                    .read_exact(&mut chunk)
                    .await
                    .map_err(|e| e.to_string())?;
                if size == 0 {
                    break;
                }
            }
        } else {
            let mut body = vec![0; length];
            self.stream
                .read_exact(&mut body)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(status)
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// `upstream ADDR`: a minimal JSON upstream for HTTP runs through Envoy.
fn serve_upstream(addr: &str) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| e.to_string())?;
        let app = axum::Router::new()
            .fallback(|| async { axum::Json(serde_json::json!({"ok": true, "internal_id": 1})) });
        axum::serve(listener, app).await.map_err(|e| e.to_string())
    })
}

/// Counts the spans exported to it.
#[derive(Clone, Default)]
struct SpanSink(Arc<std::sync::atomic::AtomicU64>);

#[tonic::async_trait]
impl opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceService
    for SpanSink
{
    async fn export(
        &self,
        request: tonic::Request<
            opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest,
        >,
    ) -> Result<
        tonic::Response<
            opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse,
        >,
        tonic::Status,
    > {
        let spans: usize = request
            .get_ref()
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        self.0.fetch_add(spans as u64, Ordering::Relaxed);
        Ok(tonic::Response::new(Default::default()))
    }
}

/// `otlp-sink ADDR`: an OTLP/gRPC collector that counts spans until SIGINT.
fn serve_otlp_sink(addr: &str) -> Result<(), String> {
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceServiceServer;
    let addr = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let sink = SpanSink::default();
    runtime.block_on(async {
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(sink.clone()))
            .serve_with_shutdown(addr, async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .map_err(|e| e.to_string())
    })?;
    println!("otlp_spans={}", sink.0.load(Ordering::Relaxed));
    Ok(())
}

fn main() -> Result<(), String> {
    let mut raw = std::env::args().skip(1);
    match raw.next().as_deref() {
        Some("upstream") => {
            return serve_upstream(&raw.next().unwrap_or_else(|| "127.0.0.1:18080".to_owned()))
        }
        Some("otlp-sink") => {
            return serve_otlp_sink(&raw.next().unwrap_or_else(|| "127.0.0.1:19317".to_owned()))
        }
        _ => {}
    }
    let o = Arc::new(parse()?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(o.threads.max(1))
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let mut headers = o.headers.clone();
        if let Some(secret) = &o.hs256_secret {
            headers.push(("authorization".into(), format!("Bearer {}", hs256_token(secret)?)));
        }
        let headers = Arc::new(headers);
        let mut clients = Vec::new();
        for _ in 0..if o.http_path.is_some() { 0 } else { o.connections.max(1) } {
            let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", o.target))
                .map_err(|e| e.to_string())?
                .tcp_nodelay(true)
                .connect()
                .await
                .map_err(|e| format!("connect {}: {e}", o.target))?;
            clients.push(ExternalProcessorClient::new(channel));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        // Fixed-rate mode: each worker sends at rate/concurrency per second.
        let per_worker_interval = o.rate.map(|r| Duration::from_secs_f64(o.concurrency as f64 / r));
        let mut workers = Vec::new();
        for w in 0..o.concurrency {
            let mut client = clients.get(w % clients.len().max(1)).cloned();
            let (o, headers, stop) = (Arc::clone(&o), Arc::clone(&headers), Arc::clone(&stop));
            workers.push(tokio::spawn(async move {
                let mut http = match &o.http_path {
                    Some(path) => Some(HttpConn::open(&o, &headers, path).await?),
                    None => None,
                };
                let mut latencies = Vec::with_capacity(100_000);
                let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
                let mut seq = w as u64;
                let mut next = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    if let Some(interval) = per_worker_interval {
                        next += interval;
                        tokio::time::sleep_until(next.into()).await;
                    }
                    let t = Instant::now();
                    let result = match (http.as_mut(), client.as_mut()) {
                        (Some(conn), _) => conn.get().await.map(|status| format!("http_{status}")),
                        (None, Some(client)) => one(client, &o, &headers, seq).await,
                        (None, None) => Err("no client".to_owned()),
                    };
                    let label = result.unwrap_or_else(|_| "error".to_owned());
                    latencies.push(t.elapsed());
                    *outcomes.entry(label).or_default() += 1;
                    seq += o.concurrency as u64;
                }
                Ok::<_, String>((latencies, outcomes))
            }));
        }
        tokio::time::sleep(o.duration).await;
        stop.store(true, Ordering::Relaxed);
        let mut latencies = Vec::new();
        let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
        for worker in workers {
            let (l, out) = worker.await.map_err(|e| e.to_string())??;
            latencies.extend(l);
            for (k, v) in out {
                *outcomes.entry(k).or_default() += v;
            }
        }
        let elapsed = started.elapsed().as_secs_f64();
        latencies.sort();
        let total = latencies.len();
        println!(
            "requests={total} elapsed_s={elapsed:.2} rps={:.0} p50_ms={:.3} p90_ms={:.3} p99_ms={:.3} max_ms={:.3} outcomes={outcomes:?}",
            total as f64 / elapsed,
            percentile(&latencies, 0.50).as_secs_f64() * 1e3,
            percentile(&latencies, 0.90).as_secs_f64() * 1e3,
            percentile(&latencies, 0.99).as_secs_f64() * 1e3,
            latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        );
        Ok(())
    })
}
