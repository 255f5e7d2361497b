//! The Envoy `ExternalProcessor` service: one task per ext_proc stream, route selection,
//! the agent call, and conversion of agent instructions into Envoy mutations.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use envoy_types::pb::envoy::config::core::v3::{
    header_value_option::HeaderAppendAction, HeaderValue, HeaderValueOption,
};
use envoy_types::pb::envoy::extensions::filters::http::ext_proc::v3::{
    processing_mode, ProcessingMode,
};
use envoy_types::pb::envoy::r#type::v3::HttpStatus;
use envoy_types::pb::envoy::service::ext_proc::v3::{
    body_mutation, common_response::ResponseStatus, external_processor_server::ExternalProcessor,
    processing_request, processing_response, BodyMutation, BodyResponse, CommonResponse,
    HeaderMutation, HeadersResponse, HttpHeaders, ImmediateResponse, ProcessingRequest,
    ProcessingResponse, TrailersResponse,
};
use envoy_types::pb::google::protobuf::{value::Kind, Struct};
use std::pin::Pin;

use prost::bytes::Bytes;

use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use super::agents::CallError;
use super::metrics::{AgentLabel, RequestLabels};
use super::routes::{Chain, RoutePlan};
use super::wire::{encoded, PolicyCall};
use super::{Kernel, KernelState};
use crate::agent::chain::Phase;
use crate::proto;

/// The attribute Envoy sends when `request_attributes: ["xds.route_name"]` is configured.
pub const ROUTE_ATTRIBUTE: &str = "xds.route_name";
const SOURCE_ATTRIBUTE: &str = "source.address";

pub(super) struct ExtProcService {
    pub(super) kernel: Arc<Kernel>,
}

#[tonic::async_trait]
impl ExternalProcessor for ExtProcService {
    type ProcessStream = Pin<Box<dyn Stream<Item = Result<ProcessingResponse, Status>> + Send>>;

    async fn process(
        &self,
        request: Request<Streaming<ProcessingRequest>>,
    ) -> Result<Response<Self::ProcessStream>, Status> {
        let inbound = request.into_inner();
        let kernel = Arc::clone(&self.kernel);
        // Answers are produced in order, one per message, as the stream is polled: no task or
        // channel per stream.
        let answers = futures_util::stream::unfold(
            (inbound, StreamState::default(), kernel),
            |(mut inbound, mut state, kernel)| async move {
                let message = match inbound.message().await {
                    Ok(Some(message)) => message,
                    Ok(None) => return None,
                    Err(status) => {
                        tracing::debug!(%status, "ext_proc stream ended with an error");
                        return None;
                    }
                };
                // Boxed: the stream's state stays small, so moving it between messages is
                // cheap.
                let answer = Box::pin(state.handle(&kernel, message)).await;
                Some((Ok(answer), (inbound, state, kernel)))
            },
        );
        Ok(Response::new(Box::pin(answers)))
    }
}

/// What the kernel tells Envoy for one phase.
#[derive(Debug, PartialEq)]
enum Answer {
    Continue {
        headers: Option<HeaderMutation>,
        body: Option<Vec<u8>>,
    },
    Reply(ImmediateResponse),
}

impl Answer {
    fn pass() -> Self {
        Self::Continue {
            headers: None,
            body: None,
        }
    }
}

struct StreamState {
    /// `ext_proc.request`: the stream from request headers until it closes.
    span: tracing::Span,
    snapshot: Option<Arc<KernelState>>,
    plan: Option<Arc<RoutePlan>>,
    request_id: String,
    request: proto::RequestContext,
    /// `request`, encoded at the first agent call (it does not change after that).
    encoded_request: Option<Bytes>,
    pending_request: bool,
    response: Option<proto::ResponseContext>,
    pending_response: bool,
    /// This request's entry in the request metrics, written when the stream ends.
    tally: Option<Tally>,
}

impl Default for StreamState {
    fn default() -> Self {
        Self {
            span: tracing::Span::none(),
            snapshot: None,
            plan: None,
            request_id: String::new(),
            request: proto::RequestContext::default(),
            encoded_request: None,
            pending_request: false,
            response: None,
            pending_response: false,
            tally: None,
        }
    }
}

fn header_text(header: &HeaderValue) -> String {
    if header.raw_value.is_empty() {
        header.value.clone()
    } else {
        String::from_utf8_lossy(&header.raw_value).into_owned()
    }
}

fn headers_of(headers: &HttpHeaders) -> HashMap<String, String> {
    headers
        .headers
        .as_ref()
        .map(|map| {
            map.headers
                .iter()
                .map(|h| (h.key.to_ascii_lowercase(), header_text(h)))
                .collect()
        })
        .unwrap_or_default()
}

fn attribute<'a>(attributes: &'a HashMap<String, Struct>, name: &str) -> Option<&'a str> {
    attributes
        .values()
        .find_map(|s| match s.fields.get(name)?.kind.as_ref()? {
            Kind::StringValue(text) if !text.is_empty() => Some(text.as_str()),
            _ => None,
        })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query_params(path: &str) -> HashMap<String, String> {
    let Some((_, query)) = path.split_once('?') else {
        return HashMap::new();
    };
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// The client address: Envoy's `source.address`, or with `trusted_hops` > 0 the address
/// that many entries from the right of `X-Forwarded-For` (what the farthest trusted proxy
/// saw), when the header has that many entries and that one is an address. Never the
/// leftmost entry by default: a client writes that one itself.
fn client_ip(
    attributes: &HashMap<String, Struct>,
    headers: &HashMap<String, String>,
    trusted_hops: u32,
) -> String {
    let forwarded = (trusted_hops > 0)
        .then(|| headers.get("x-forwarded-for"))
        .flatten()
        .and_then(|list| list.rsplit(',').nth(trusted_hops as usize - 1))
        .and_then(|entry| ip_of(entry.trim()));
    if let Some(ip) = forwarded {
        return ip;
    }
    attribute(attributes, SOURCE_ATTRIBUTE)
        .map(|address| ip_of(address).unwrap_or_else(|| address.to_owned()))
        .unwrap_or_default()
}

/// The IP of `1.2.3.4`, `1.2.3.4:80`, `::1` or `[::1]:80`.
fn ip_of(text: &str) -> Option<String> {
    text.parse::<IpAddr>()
        .or_else(|_| text.parse::<SocketAddr>().map(|a| a.ip()))
        .ok()
        .map(|ip| ip.to_string())
}

fn request_context(
    headers: &HttpHeaders,
    attributes: &HashMap<String, Struct>,
    trusted_hops: u32,
) -> proto::RequestContext {
    let mut map = headers_of(headers);
    let path = map.remove(":path").unwrap_or_default();
    let client_ip = client_ip(attributes, &map, trusted_hops);
    proto::RequestContext {
        method: map.remove(":method").unwrap_or_default(),
        scheme: map.remove(":scheme").unwrap_or_default(),
        authority: map.remove(":authority").unwrap_or_default(),
        query_params: query_params(&path),
        path,
        client_ip,
        body: Vec::new(),
        headers: map,
    }
}

/// The `:status` of response headers.
fn upstream_status(headers: &HttpHeaders) -> Option<u16> {
    headers
        .headers
        .as_ref()?
        .headers
        .iter()
        .find(|h| h.key == ":status")
        .and_then(|h| header_text(h).parse().ok())
}

fn response_context(headers: &HttpHeaders) -> proto::ResponseContext {
    let mut map = headers_of(headers);
    let status_code = map
        .remove(":status")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    proto::ResponseContext {
        headers: map,
        body: Vec::new(),
        status_code,
    }
}

fn mode_for(plan: Option<&RoutePlan>) -> ProcessingMode {
    use processing_mode::{BodySendMode, HeaderSendMode};
    let needs = |chain: Option<&Chain>| chain.is_some_and(|c| c.needs_body);
    let request = plan.and_then(|p| p.request.as_ref());
    let response = plan.and_then(|p| p.response.as_ref());
    let body = |needed: bool| if needed { BodySendMode::Buffered } else { BodySendMode::None } as i32;
    ProcessingMode {
        request_header_mode: HeaderSendMode::Default as i32,
        response_header_mode: if response.is_some() {
            HeaderSendMode::Send
        } else {
            HeaderSendMode::Skip
        } as i32,
        request_body_mode: body(needs(request)),
        response_body_mode: body(needs(response)),
        request_trailer_mode: HeaderSendMode::Skip as i32,
        response_trailer_mode: HeaderSendMode::Skip as i32,
    }
}

fn set_header(key: &str, value: &str) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: key.to_owned(),
            value: String::new(),
            raw_value: value.as_bytes().to_vec(),
        }),
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        ..HeaderValueOption::default()
    }
}

/// An immediate JSON error reply.
fn error_reply(status: u16, message: &str, details: &str) -> ImmediateResponse {
    ImmediateResponse {
        status: Some(HttpStatus {
            code: i32::from(status),
        }),
        headers: Some(HeaderMutation {
            set_headers: vec![set_header("content-type", "application/json")],
            remove_headers: Vec::new(),
        }),
        body: serde_json::json!({ "error": message })
            .to_string()
            .into_bytes(),
        grpc_status: None,
        details: details.to_owned(),
    }
}

fn valid_header_name(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().enumerate().all(|(i, b)| {
            b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b) || (i == 0 && b == b':')
        })
}

fn valid_header_value(value: &str) -> bool {
    !value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0)
}

/// Converts an agent answer into what Envoy gets. `Err` means the answer is unusable.
fn convert(answer: proto::PolicyResponse) -> Result<Result<Answer, CallError>, String> {
    use proto::instruction::Payload;
    use proto::InstructionType as T;
    let status = answer.status.ok_or("missing status")?;
    let code = proto::StatusCode::try_from(status.code)
        .map_err(|_| format!("unknown status code {}", status.code))?;
    if code == proto::StatusCode::Timeout {
        return Ok(Err(CallError::Timeout));
    }
    let mut headers: Vec<(String, Option<String>)> = Vec::new();
    let mut body = None;
    let mut immediate = None;
    for instruction in answer.instructions {
        let kind = T::try_from(instruction.r#type)
            .map_err(|_| format!("unknown instruction type {}", instruction.r#type))?;
        match (kind, instruction.payload) {
            (T::SetHeader | T::RemoveHeader, Some(Payload::Header(h))) => {
                let key = h.key.to_ascii_lowercase();
                if !valid_header_name(&key) || !valid_header_value(&h.value) {
                    return Err(format!("invalid header `{}`", h.key.escape_debug()));
                }
                let value = (kind == T::SetHeader).then_some(h.value);
                match headers.iter_mut().find(|(k, _)| *k == key) {
                    Some(slot) => slot.1 = value,
                    None => headers.push((key, value)),
                }
            }
            (T::SetBody, Some(Payload::Body(b))) => body = Some(b.body),
            (T::ImmediateResponse, Some(Payload::ImmediateResponse(r))) => immediate = Some(r),
            (T::SetState, Some(Payload::State(_))) | (T::Continue, _) => {}
            (kind, _) => return Err(format!("instruction {kind:?} has the wrong payload")),
        }
    }
    if let Some(reply) = immediate {
        if !(200..=599).contains(&reply.status_code) {
            return Err(format!(
                "immediate response status {} out of range",
                reply.status_code
            ));
        }
        let mut set_headers = Vec::with_capacity(reply.headers.len());
        for (key, value) in &reply.headers {
            if !valid_header_name(key) || key.starts_with(':') || !valid_header_value(value) {
                return Err(format!(
                    "invalid immediate response header `{}`",
                    key.escape_debug()
                ));
            }
            set_headers.push(set_header(&key.to_ascii_lowercase(), value));
        }
        return Ok(Ok(Answer::Reply(ImmediateResponse {
            status: Some(HttpStatus {
                code: reply.status_code,
            }),
            headers: Some(HeaderMutation {
                set_headers,
                remove_headers: Vec::new(),
            }),
            body: reply.body,
            grpc_status: None,
            details: format!("policy:{}", status.policy_name),
        })));
    }
    match code {
        proto::StatusCode::PolicyDenied => {
            return Ok(Ok(Answer::Reply(error_reply(
                403,
                "forbidden",
                "policy_denied",
            ))))
        }
        proto::StatusCode::PolicyError => {
            return Ok(Ok(Answer::Reply(error_reply(
                500,
                "policy error",
                "policy_error",
            ))))
        }
        _ => {}
    }
    let mutation = (!headers.is_empty()).then(|| {
        let mut mutation = HeaderMutation::default();
        for (key, value) in headers {
            match value {
                Some(value) => mutation.set_headers.push(set_header(&key, &value)),
                None => mutation.remove_headers.push(key),
            }
        }
        mutation
    });
    Ok(Ok(Answer::Continue {
        headers: mutation,
        body,
    }))
}

/// Wraps an answer for the message Envoy is waiting for.
fn wrap(phase: Which, answer: Answer, mode: Option<ProcessingMode>) -> ProcessingResponse {
    use processing_response::Response as R;
    let response = match answer {
        Answer::Reply(reply) => R::ImmediateResponse(reply),
        Answer::Continue { headers, body } => {
            let is_body_phase = matches!(phase, Which::RequestBody | Which::ResponseBody);
            let mut header_mutation = headers;
            if let (Some(new_body), true) = (&body, is_body_phase) {
                header_mutation
                    .get_or_insert_with(HeaderMutation::default)
                    .set_headers
                    .push(set_header("content-length", &new_body.len().to_string()));
            }
            let common = CommonResponse {
                status: if body.is_some() && !is_body_phase {
                    ResponseStatus::ContinueAndReplace as i32
                } else {
                    ResponseStatus::Continue as i32
                },
                header_mutation,
                body_mutation: body.map(|b| BodyMutation {
                    mutation: Some(body_mutation::Mutation::Body(b)),
                }),
                trailers: None,
                clear_route_cache: false,
            };
            match phase {
                Which::RequestHeaders => R::RequestHeaders(HeadersResponse {
                    response: Some(common),
                }),
                Which::ResponseHeaders => R::ResponseHeaders(HeadersResponse {
                    response: Some(common),
                }),
                Which::RequestBody => R::RequestBody(BodyResponse {
                    response: Some(common),
                }),
                Which::ResponseBody => R::ResponseBody(BodyResponse {
                    response: Some(common),
                }),
            }
        }
    };
    ProcessingResponse {
        response: Some(response),
        mode_override: mode,
        ..ProcessingResponse::default()
    }
}

#[derive(Clone, Copy, Debug)]
enum Which {
    RequestHeaders,
    RequestBody,
    ResponseHeaders,
    ResponseBody,
}

impl StreamState {
    async fn handle(
        &mut self,
        kernel: &Arc<Kernel>,
        message: ProcessingRequest,
    ) -> ProcessingResponse {
        use processing_request::Request as Q;
        let attributes = message.attributes;
        match message.request {
            Some(Q::RequestHeaders(headers)) => {
                self.request_headers(kernel, &headers, &attributes).await
            }
            Some(Q::RequestBody(body)) => {
                if self.pending_request {
                    self.pending_request = false;
                    self.request.body = body.body;
                    let answer = self.evaluate(kernel, Phase::Request).await;
                    wrap(Which::RequestBody, answer, None)
                } else {
                    wrap(Which::RequestBody, Answer::pass(), None)
                }
            }
            Some(Q::ResponseHeaders(headers)) => self.response_headers(kernel, &headers).await,
            Some(Q::ResponseBody(body)) => {
                if self.pending_response {
                    self.pending_response = false;
                    if let Some(response) = self.response.as_mut() {
                        response.body = body.body;
                    }
                    let answer = self.evaluate(kernel, Phase::Response).await;
                    wrap(Which::ResponseBody, answer, None)
                } else {
                    wrap(Which::ResponseBody, Answer::pass(), None)
                }
            }
            Some(Q::RequestTrailers(_)) => ProcessingResponse {
                response: Some(processing_response::Response::RequestTrailers(
                    TrailersResponse::default(),
                )),
                ..ProcessingResponse::default()
            },
            Some(Q::ResponseTrailers(_)) => ProcessingResponse {
                response: Some(processing_response::Response::ResponseTrailers(
                    TrailersResponse::default(),
                )),
                ..ProcessingResponse::default()
            },
            None => wrap(Which::RequestHeaders, Answer::pass(), None),
        }
    }

    async fn request_headers(
        &mut self,
        kernel: &Arc<Kernel>,
        headers: &HttpHeaders,
        attributes: &HashMap<String, Struct>,
    ) -> ProcessingResponse {
        let snapshot = kernel.snapshot();
        self.request = request_context(
            headers,
            attributes,
            snapshot.config.policy_kernel.trust_forwarded_for,
        );
        let route_name = attribute(attributes, ROUTE_ATTRIBUTE)
            .map(str::to_owned)
            .or_else(|| {
                let header = snapshot.config.policy_kernel.route_header.as_ref()?;
                self.request
                    .headers
                    .get(&header.to_ascii_lowercase())
                    .cloned()
            });
        self.request_id = match self.request.headers.get("x-request-id") {
            Some(id) if !id.is_empty() => id.clone(),
            _ => kernel.next_request_id(),
        };
        let plan = snapshot.table.select(route_name.as_deref());
        self.span = tracing::debug_span!(
            "ext_proc.request",
            otel.kind = "server",
            request_id = %self.request_id,
            route = plan.as_ref().map_or("none", |p| p.name.as_str()),
            http.method = %self.request.method,
            config.version = %snapshot.version,
            decision = tracing::field::Empty,
        );
        // Continue Envoy's trace when it sent a `traceparent` header.
        crate::telemetry::continue_trace(&self.span, &self.request.headers);
        let mode = Some(mode_for(plan.as_deref()));
        self.plan = plan;
        self.tally = Some(Tally {
            kernel: Arc::clone(kernel),
            snapshot: Arc::clone(&snapshot),
            plan: self.plan.clone(),
            status: None,
            seconds: None,
            request_id: self.request_id.clone(),
            http_status: None,
            shadow: None,
        });
        self.snapshot = Some(snapshot);
        let Some(plan) = self.plan.clone() else {
            self.settle("no_policy", None);
            return wrap(Which::RequestHeaders, Answer::pass(), mode);
        };
        match &plan.request {
            None if plan.invalid.is_none() => {
                self.settle("no_policy", None);
                wrap(Which::RequestHeaders, Answer::pass(), mode)
            }
            Some(chain) if chain.needs_body && !headers.end_of_stream && plan.invalid.is_none() => {
                self.pending_request = true;
                wrap(Which::RequestHeaders, Answer::pass(), mode)
            }
            _ => {
                let answer = self.evaluate(kernel, Phase::Request).await;
                wrap(Which::RequestHeaders, answer, mode)
            }
        }
    }

    async fn response_headers(
        &mut self,
        kernel: &Kernel,
        headers: &HttpHeaders,
    ) -> ProcessingResponse {
        if let Some(tally) = self.tally.as_mut() {
            tally.http_status = upstream_status(headers);
        }
        let Some(plan) = self.plan.clone() else {
            return wrap(Which::ResponseHeaders, Answer::pass(), None);
        };
        let Some(chain) = &plan.response else {
            return wrap(Which::ResponseHeaders, Answer::pass(), None);
        };
        self.response = Some(response_context(headers));
        if chain.needs_body && !headers.end_of_stream {
            self.pending_response = true;
            return wrap(Which::ResponseHeaders, Answer::pass(), None);
        }
        let answer = self.evaluate(kernel, Phase::Response).await;
        wrap(Which::ResponseHeaders, answer, None)
    }

    /// Runs the chain of `phase` for the matched route, with the error table of spec 3.5.
    async fn evaluate(&mut self, kernel: &Kernel, phase: Phase) -> Answer {
        let (Some(plan), Some(snapshot)) = (self.plan.clone(), self.snapshot.clone()) else {
            return Answer::pass();
        };
        let span = tracing::debug_span!(
            parent: &self.span,
            "ext_proc.phase",
            phase = ?phase,
            route = %plan.name,
            agent = %plan.agent,
            decision = tracing::field::Empty,
        );
        let started = Instant::now();
        let (answer, status) = self
            .call_agent(kernel, &snapshot, &plan, phase)
            .instrument(span.clone())
            .await;
        span.record("decision", status);
        self.span.record("decision", status);
        self.settle(status, Some(started.elapsed().as_secs_f64()));
        if let (Answer::Reply(reply), Some(tally)) = (&answer, self.tally.as_mut()) {
            tally.http_status = reply
                .status
                .as_ref()
                .and_then(|s| u16::try_from(s.code).ok());
        }
        answer
    }

    async fn call_agent(
        &mut self,
        kernel: &Kernel,
        snapshot: &KernelState,
        plan: &RoutePlan,
        phase: Phase,
    ) -> (Answer, &'static str) {
        if let Some(reason) = &plan.invalid {
            tracing::error!(request_id = %self.request_id, route = %plan.name, %reason, "request on an invalid route denied");
            return (
                Answer::Reply(error_reply(500, "route policy invalid", "invalid_route")),
                "invalid_route",
            );
        }
        let chain = match phase {
            Phase::Request => plan.request.as_ref(),
            Phase::Response => plan.response.as_ref(),
        };
        let Some(chain) = chain else {
            return (Answer::pass(), "no_policy");
        };
        let Some((agent, conn)) = snapshot.agents.get(&plan.agent) else {
            return (
                Answer::Reply(error_reply(500, "no agent", "no_agent")),
                "error",
            );
        };
        let context = self
            .encoded_request
            .get_or_insert_with(|| encoded(&self.request))
            .clone();
        let mut request = PolicyCall {
            request_id: self.request_id.clone(),
            policies: chain.policies.to_vec(),
            context,
            deadline_ms: agent.timeout_ms as i64,
            phase: match phase {
                Phase::Request => proto::PolicyPhase::Request as i32,
                Phase::Response => proto::PolicyPhase::Response as i32,
            },
            response: match phase {
                Phase::Request => None,
                Phase::Response => self.response.take(),
            },
            trace_context: HashMap::new(),
            call_id: 0,
        };
        let call = tracing::debug_span!("agent.call", otel.kind = "client", agent = %agent.name);
        crate::telemetry::inject_trace(&call, &mut request.trace_context);
        let failure = match conn.execute(agent, request).instrument(call).await {
            Ok(answer) => {
                self.note_shadow(&answer);
                let code = answer.status.as_ref().map(|s| s.code);
                match convert(answer) {
                    Ok(Ok(answer)) => {
                        let status = match (&answer, code) {
                            (Answer::Reply(_), Some(c))
                                if c == proto::StatusCode::PolicyError as i32 =>
                            {
                                "error"
                            }
                            (Answer::Reply(_), _) => "denied",
                            _ => "ok",
                        };
                        return (answer, status);
                    }
                    Ok(Err(timeout)) => timeout,
                    Err(reason) => CallError::Invalid(reason),
                }
            }
            Err(error) => error,
        };
        match failure {
            CallError::Invalid(reason) => {
                tracing::error!(request_id = %self.request_id, agent = %agent.name, %reason, "invalid agent response");
                (
                    Answer::Reply(error_reply(500, "internal error", "invalid_agent_response")),
                    "error",
                )
            }
            other => {
                if other == CallError::Timeout {
                    kernel
                        .metrics
                        .agent_timeouts
                        .get_or_create(&AgentLabel {
                            agent: agent.name.clone(),
                        })
                        .inc();
                    tracing::warn!(request_id = %self.request_id, agent = %agent.name, "agent timed out");
                } else {
                    tracing::error!(request_id = %self.request_id, agent = %agent.name, error = %other, "agent unavailable");
                }
                if agent.fail_open {
                    (self.without_identity(&chain.identity_headers), "fail_open")
                } else {
                    (
                        Answer::Reply(error_reply(
                            503,
                            "policy agent unavailable",
                            "agent_unavailable",
                        )),
                        "fail_closed",
                    )
                }
            }
        }
    }
}

/// One HTTP request in the request metrics: `policy_kernel_requests_total` once, with the
/// status of the last phase that ran, and `policy_kernel_request_duration_seconds` with the
/// time its phases took, when its ext_proc stream ends (the stream state is dropped, also
/// when Envoy resets the stream).
struct Tally {
    kernel: Arc<Kernel>,
    /// The configuration the request ran with (its version is logged).
    snapshot: Arc<KernelState>,
    /// None: no route and no default policy.
    plan: Option<Arc<RoutePlan>>,
    /// None until a phase is decided (a request whose body never came is not counted).
    status: Option<&'static str>,
    /// Time of the phases that called (or tried to call) the agent.
    seconds: Option<f64>,
    request_id: String,
    /// The status of the kernel's immediate response, else the upstream's when the kernel saw
    /// the response headers.
    http_status: Option<u16>,
    /// Shadow policies that would have stopped the request (`ipFilter:denied`), per the agent.
    shadow: Option<String>,
}

/// The comma-separated policy names of a chain (empty: no chain).
fn chain_names(chain: Option<&super::routes::Chain>) -> &str {
    chain.map_or("", |c| &c.names)
}

impl Drop for Tally {
    /// Counts the request and logs it: one info line per request (spec 7.2) with route,
    /// chains, decision, HTTP status, kernel time, request id, configuration version and the
    /// would-be denials of shadow policies; never headers, so no credential or cookie can
    /// reach the log.
    fn drop(&mut self) {
        let Some(status) = self.status else {
            return;
        };
        let plan = self.plan.as_deref();
        tracing::info!(
            request_id = %self.request_id,
            route = plan.map_or("none", |p| p.name.as_str()),
            chain = chain_names(plan.and_then(|p| p.request.as_ref())),
            response_chain = chain_names(plan.and_then(|p| p.response.as_ref())),
            decision = status,
            status = self.http_status,
            latency_ms = self.seconds.unwrap_or(0.0) * 1000.0,
            config.version = %self.snapshot.version,
            shadow = self.shadow.as_deref(),
            "request"
        );
        let metrics = &self.kernel.metrics;
        match &self.plan {
            Some(plan) => {
                plan.series.count(metrics, &plan.name, &plan.agent, status);
                if let Some(seconds) = self.seconds {
                    plan.series
                        .observe(metrics, &plan.name, &plan.agent, seconds);
                }
            }
            None => self.kernel.count("none", "", status),
        }
    }
}

impl StreamState {
    /// Records the decision of a phase: the request counts with the last one.
    fn settle(&mut self, status: &'static str, seconds: Option<f64>) {
        if let Some(tally) = self.tally.as_mut() {
            tally.status = Some(status);
            if let Some(seconds) = seconds {
                *tally.seconds.get_or_insert(0.0) += seconds;
            }
        }
    }

    /// Keeps what the agent says shadow policies would have done, for the request's log line
    /// (bounded: it comes from another process).
    fn note_shadow(&mut self, answer: &proto::PolicyResponse) {
        const MAX: usize = 512;
        let (Some(tally), Some(text)) = (
            self.tally.as_mut(),
            answer.metadata.get(crate::agent::SHADOW_METADATA),
        ) else {
            return;
        };
        let mut end = text.len().min(MAX);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let shadow = tally.shadow.get_or_insert_with(String::new);
        if !shadow.is_empty() {
            shadow.push(',');
        }
        shadow.push_str(&text[..end]);
    }

    /// Lets the request through without the agent: the identity headers its chain would
    /// have removed are removed here (only a policy may set them). Response chains have none.
    fn without_identity(&self, identity_headers: &[String]) -> Answer {
        let remove_headers: Vec<String> = identity_headers
            .iter()
            .filter(|h| self.request.headers.contains_key(*h))
            .cloned()
            .collect();
        Answer::Continue {
            headers: (!remove_headers.is_empty()).then(|| HeaderMutation {
                set_headers: Vec::new(),
                remove_headers,
            }),
            body: None,
        }
    }
}

impl Kernel {
    fn count(&self, route: &str, agent: &str, status: &str) {
        self.metrics
            .requests
            .get_or_create(&RequestLabels {
                route: route.to_owned(),
                agent: agent.to_owned(),
                status: status.to_owned(),
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(
        kind: proto::InstructionType,
        payload: proto::instruction::Payload,
    ) -> proto::Instruction {
        proto::Instruction {
            r#type: kind as i32,
            payload: Some(payload),
        }
    }

    fn answer(
        code: proto::StatusCode,
        instructions: Vec<proto::Instruction>,
    ) -> proto::PolicyResponse {
        proto::PolicyResponse {
            request_id: "r".into(),
            instructions,
            status: Some(proto::ResponseStatus {
                code: code as i32,
                policy_name: "p".into(),
            }),
            ..Default::default()
        }
    }

    fn header(key: &str, value: &str) -> proto::instruction::Payload {
        proto::instruction::Payload::Header(proto::HeaderInstruction {
            key: key.into(),
            value: value.into(),
        })
    }

    #[test]
    fn header_instructions_fold_into_one_mutation() {
        use proto::InstructionType as T;
        let converted = convert(answer(
            proto::StatusCode::Ok,
            vec![
                wire(T::SetHeader, header("X-A", "1")),
                wire(T::SetHeader, header("x-b", "2")),
                wire(T::RemoveHeader, header("x-b", "")),
                wire(T::SetHeader, header("x-a", "3")),
            ],
        ))
        .unwrap()
        .unwrap();
        let Answer::Continue {
            headers: Some(m),
            body: None,
        } = converted
        else {
            panic!("expected a mutation");
        };
        assert_eq!(m.set_headers.len(), 1);
        assert_eq!(m.set_headers[0].header.as_ref().unwrap().raw_value, b"3");
        assert_eq!(m.remove_headers, vec!["x-b".to_owned()]);
    }

    #[test]
    fn immediate_response_wins_and_is_checked() {
        use proto::InstructionType as T;
        let reply = |status| {
            wire(
                T::ImmediateResponse,
                proto::instruction::Payload::ImmediateResponse(proto::ImmediateResponse {
                    status_code: status,
                    headers: [("www-authenticate".to_owned(), "API-Key".to_owned())]
                        .into_iter()
                        .collect(),
                    body: b"{}".to_vec(),
                }),
            )
        };
        let converted = convert(answer(proto::StatusCode::PolicyDenied, vec![reply(401)]))
            .unwrap()
            .unwrap();
        let Answer::Reply(r) = converted else {
            panic!("expected a reply")
        };
        assert_eq!(r.status.unwrap().code, 401);
        assert!(convert(answer(proto::StatusCode::PolicyDenied, vec![reply(42)])).is_err());
    }

    #[test]
    fn bad_answers_are_invalid() {
        use proto::InstructionType as T;
        assert!(convert(answer(
            proto::StatusCode::Ok,
            vec![wire(T::SetHeader, header("bad header", "v"))]
        ))
        .is_err());
        assert!(convert(answer(
            proto::StatusCode::Ok,
            vec![wire(T::SetHeader, header("x", "a\r\nb"))]
        ))
        .is_err());
        assert!(convert(proto::PolicyResponse::default()).is_err());
        assert_eq!(
            convert(answer(proto::StatusCode::Timeout, vec![])).unwrap(),
            Err(CallError::Timeout)
        );
    }

    #[test]
    fn denied_without_reply_is_403() {
        let Ok(Ok(Answer::Reply(r))) = convert(answer(proto::StatusCode::PolicyDenied, vec![]))
        else {
            panic!("expected a reply");
        };
        assert_eq!(r.status.unwrap().code, 403);
    }

    #[test]
    fn query_and_client_ip_are_extracted() {
        let params = query_params("/a?x=1&name=J%C3%BCrgen+K&flag");
        assert_eq!(params["x"], "1");
        assert_eq!(params["name"], "Jürgen K");
        assert_eq!(params["flag"], "");
        let source = |address: &str| {
            let mut s = Struct::default();
            s.fields.insert(
                SOURCE_ATTRIBUTE.into(),
                envoy_types::pb::google::protobuf::Value {
                    kind: Some(Kind::StringValue(address.into())),
                },
            );
            HashMap::from([("envoy.filters.http.ext_proc".to_owned(), s)])
        };
        let xff = |list: &str| HashMap::from([("x-forwarded-for".to_owned(), list.to_owned())]);
        let none = HashMap::new();
        let unknown_source = HashMap::new;
        let chain = xff("6.6.6.6, 10.0.0.7, 10.0.0.8");
        // (attributes, headers, trusted hops, client address)
        let cases = [
            (source("[::1]:4000"), &none, 0, "::1"),
            (source("10.1.1.1:5000"), &chain, 0, "10.1.1.1"),
            // Without a source address and no trusted hops: no address, never the leftmost.
            (unknown_source(), &chain, 0, ""),
            (source("10.1.1.1:5000"), &chain, 1, "10.0.0.8"),
            (source("10.1.1.1:5000"), &chain, 2, "10.0.0.7"),
            (unknown_source(), &chain, 3, "6.6.6.6"),
            // Fewer entries than hops, or an entry that is no address: the source address.
            (source("10.1.1.1:5000"), &chain, 4, "10.1.1.1"),
            (source("10.1.1.1:5000"), &xff("x, not-an-ip"), 1, "10.1.1.1"),
            (
                unknown_source(),
                &xff("[2001:db8::1]:443"),
                1,
                "2001:db8::1",
            ),
        ];
        for (attrs, headers, hops, want) in cases {
            assert_eq!(client_ip(&attrs, headers, hops), want, "{headers:?} {hops}");
        }
    }
}
