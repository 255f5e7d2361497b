//! Agent calls multiplexed over one long-lived `ExecutePoliciesStream` call per channel: a
//! call costs one message each way instead of an HTTP/2 stream (headers, data, trailers).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::client::Grpc;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;
use tonic_prost::ProstCodec;

use super::wire::PolicyCall;
use crate::proto;
use crate::proto::policy_agent_client::PolicyAgentClient;

const UNARY: &str = "/policyhub.agent.v1.PolicyAgent/ExecutePolicies";
const STREAM: &str = "/policyhub.agent.v1.PolicyAgent/ExecutePoliciesStream";

/// Requests of one stream waiting to be written.
const SEND_BUFFER: usize = 1024;

/// Why a streamed call got no answer.
#[derive(Clone, Debug, PartialEq, Eq)]
enum LaneError {
    /// The agent does not implement `ExecutePoliciesStream`: use unary calls.
    Unsupported,
    /// The stream could not open or broke before the answer came.
    Broken(String),
}

/// One channel to the agent and the stream currently open on it.
pub struct Lane {
    channel: Channel,
    open: Mutex<Option<Arc<Stream>>>,
    unsupported: Arc<AtomicBool>,
    /// The stream has answered once: the agent has it.
    confirmed: AtomicBool,
    next_call: AtomicU64,
}

struct Stream {
    requests: mpsc::Sender<PolicyCall>,
    waiting: Mutex<Waiting>,
}

#[derive(Default)]
struct Waiting {
    calls: HashMap<u64, oneshot::Sender<proto::PolicyResponse>>,
    /// Why the stream ended; once set, no call waits on it any more.
    closed: Option<LaneError>,
}

impl Stream {
    fn waiting(&self) -> MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn close(&self, why: LaneError) {
        let mut waiting = self.waiting();
        waiting.closed = Some(why);
        // Dropping the senders wakes every waiting call.
        waiting.calls.clear();
    }

    fn error(&self) -> LaneError {
        self.waiting()
            .closed
            .clone()
            .unwrap_or_else(|| LaneError::Broken("stream closed".to_owned()))
    }
}

/// Removes a call's waiter when the call ends early (timeout, cancellation).
struct Forget<'a> {
    stream: &'a Stream,
    call: u64,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.stream.waiting().calls.remove(&self.call);
    }
}

impl Lane {
    /// A lane over `channel`; its stream opens on the first call.
    pub fn new(channel: Channel) -> Self {
        Self {
            channel,
            open: Mutex::new(None),
            unsupported: Arc::new(AtomicBool::new(false)),
            confirmed: AtomicBool::new(false),
            next_call: AtomicU64::new(1),
        }
    }

    /// A client of the lane's channel (discovery, health).
    pub fn client(&self) -> PolicyAgentClient<Channel> {
        PolicyAgentClient::new(self.channel.clone())
    }

    /// `ExecutePolicies`, the spec's unary call.
    async fn unary(&self, call: PolicyCall) -> Result<proto::PolicyResponse, tonic::Status> {
        let mut grpc = Grpc::new(self.channel.clone());
        grpc.ready()
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let path = PathAndQuery::from_static(UNARY);
        let codec = ProstCodec::<PolicyCall, proto::PolicyResponse>::default();
        Ok(grpc
            .unary(tonic::Request::new(call), path, codec)
            .await?
            .into_inner())
    }

    /// Runs one call: on the lane's stream, or as a unary `ExecutePolicies` once the agent
    /// answered that it has no stream.
    pub async fn execute(
        &self,
        request: PolicyCall,
    ) -> Result<proto::PolicyResponse, tonic::Status> {
        if self.unsupported.load(Ordering::Relaxed) {
            return self.unary(request).await;
        }
        // Until the stream has answered once, keep a copy for an agent without it.
        let copy = (!self.confirmed.load(Ordering::Relaxed)).then(|| request.clone());
        match (self.call(request).await, copy) {
            (Ok(answer), _) => Ok(answer),
            (Err(LaneError::Unsupported), Some(copy)) => self.unary(copy).await,
            (Err(LaneError::Unsupported), None) => Err(tonic::Status::unavailable(
                "the agent no longer has ExecutePoliciesStream",
            )),
            (Err(LaneError::Broken(reason)), _) => Err(tonic::Status::unavailable(reason)),
        }
    }

    /// Sends `request` on the lane's stream (opening one when there is none) and waits for
    /// the answer with the same `call_id`.
    async fn call(&self, mut request: PolicyCall) -> Result<proto::PolicyResponse, LaneError> {
        let stream = self.stream();
        let call = self.next_call.fetch_add(1, Ordering::Relaxed);
        request.call_id = call;
        let (answer, waiter) = oneshot::channel();
        {
            let mut waiting = stream.waiting();
            if waiting.closed.is_some() {
                drop(waiting);
                return Err(stream.error());
            }
            waiting.calls.insert(call, answer);
        }
        let _forget = Forget {
            stream: &stream,
            call,
        };
        if stream.requests.send(request).await.is_err() {
            return Err(stream.error());
        }
        let answer = waiter.await.map_err(|_| stream.error())?;
        self.confirmed.store(true, Ordering::Relaxed);
        Ok(answer)
    }

    /// The open stream, or a new one whose driver task is started here.
    fn stream(&self) -> Arc<Stream> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(stream) = open.as_ref() {
            // An agent without the stream is not asked again: a call that raced the answer
            // gets the closed stream, whose error sends it to the unary call.
            if stream.waiting().closed.is_none() || self.unsupported.load(Ordering::Relaxed) {
                return Arc::clone(stream);
            }
        }
        let (requests, outbound) = mpsc::channel(SEND_BUFFER);
        let stream = Arc::new(Stream {
            requests,
            waiting: Mutex::new(Waiting::default()),
        });
        *open = Some(Arc::clone(&stream));
        tokio::spawn(drive(
            self.channel.clone(),
            outbound,
            Arc::clone(&stream),
            Arc::clone(&self.unsupported),
        ));
        stream
    }
}

/// Opens the stream, hands each answer to its waiting call, and closes the stream with the
/// reason it ended (an agent without the stream turns `unsupported` on first).
async fn drive(
    channel: Channel,
    outbound: mpsc::Receiver<PolicyCall>,
    stream: Arc<Stream>,
    unsupported: Arc<AtomicBool>,
) {
    let broken = |status: tonic::Status| match status.code() {
        tonic::Code::Unimplemented => LaneError::Unsupported,
        _ => LaneError::Broken(status.message().to_owned()),
    };
    let mut grpc = Grpc::new(channel);
    let opened = match grpc.ready().await {
        Ok(()) => {
            let path = PathAndQuery::from_static(STREAM);
            let codec = ProstCodec::<PolicyCall, proto::PolicyResponse>::default();
            let calls = tonic::Request::new(ReceiverStream::new(outbound));
            grpc.streaming(calls, path, codec).await
        }
        Err(e) => Err(tonic::Status::unavailable(e.to_string())),
    };
    let why = match opened {
        Err(status) => broken(status),
        Ok(answers) => {
            let mut answers = answers.into_inner();
            loop {
                match answers.message().await {
                    Ok(Some(answer)) => {
                        let waiter = stream.waiting().calls.remove(&answer.call_id);
                        if let Some(waiter) = waiter {
                            let _ = waiter.send(answer);
                        }
                    }
                    Ok(None) => break LaneError::Broken("the agent ended the stream".to_owned()),
                    Err(status) => break broken(status),
                }
            }
        }
    };
    if why == LaneError::Unsupported {
        unsupported.store(true, Ordering::Relaxed);
    }
    stream.close(why);
}
