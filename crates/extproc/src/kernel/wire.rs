//! `PolicyRequest` as the kernel writes it. A message field and a `bytes` field are the same
//! on the wire, so the chain's policies (encoded once per configuration) and the request
//! context (encoded once per HTTP request, sent in both phases) travel as shared, already
//! encoded bytes; the agent decodes a plain `PolicyRequest`.

use std::collections::HashMap;

use prost::bytes::Bytes;
use prost::Message;

use crate::proto;

/// One agent call: `PolicyRequest` with fields 2 and 3 pre-encoded.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PolicyCall {
    /// `PolicyRequest.request_id`.
    #[prost(string, tag = "1")]
    pub request_id: String,
    /// `PolicyRequest.policies`: each an encoded `Policy`.
    #[prost(bytes = "bytes", repeated, tag = "2")]
    pub policies: Vec<Bytes>,
    /// `PolicyRequest.context`: an encoded `RequestContext`.
    #[prost(bytes = "bytes", tag = "3")]
    pub context: Bytes,
    /// `PolicyRequest.deadline_ms`.
    #[prost(int64, tag = "4")]
    pub deadline_ms: i64,
    /// `PolicyRequest.phase`.
    #[prost(enumeration = "proto::PolicyPhase", tag = "5")]
    pub phase: i32,
    /// `PolicyRequest.response`.
    #[prost(message, optional, tag = "6")]
    pub response: Option<proto::ResponseContext>,
    /// `PolicyRequest.trace_context`.
    #[prost(map = "string, string", tag = "7")]
    pub trace_context: HashMap<String, String>,
    /// `PolicyRequest.call_id`.
    #[prost(uint64, tag = "8")]
    pub call_id: u64,
}

/// A message's encoding, to be shared.
pub fn encoded(message: &impl Message) -> Bytes {
    Bytes::from(message.encode_to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_reads_a_call_as_the_policy_request_it_stands_for() {
        let policy = proto::Policy {
            name: "rateLimit".into(),
            metadata: HashMap::from([("burst".into(), "5".into())]),
            on_failure: "continue".into(),
            instance_key: "k1".into(),
            shadow: true,
            when: Some(proto::Condition {
                methods: vec!["POST".into()],
                ..Default::default()
            }),
        };
        let context = proto::RequestContext {
            headers: HashMap::from([("x-api-key".into(), "k".into())]),
            method: "GET".into(),
            path: "/a?b=1".into(),
            query_params: HashMap::from([("b".into(), "1".into())]),
            client_ip: "10.0.0.1".into(),
            ..Default::default()
        };
        let response = proto::ResponseContext {
            status_code: 200,
            ..Default::default()
        };
        let call = PolicyCall {
            request_id: "r1".into(),
            policies: vec![encoded(&policy), encoded(&proto::Policy::default())],
            context: encoded(&context),
            deadline_ms: 300,
            phase: proto::PolicyPhase::Response as i32,
            response: Some(response.clone()),
            trace_context: HashMap::from([("traceparent".into(), "00-ab-cd-01".into())]),
            call_id: 7,
        };
        let read = proto::PolicyRequest::decode(call.encode_to_vec().as_slice()).unwrap();
        assert_eq!(
            read,
            proto::PolicyRequest {
                request_id: "r1".into(),
                policies: vec![policy, proto::Policy::default()],
                context: Some(context),
                deadline_ms: 300,
                phase: proto::PolicyPhase::Response as i32,
                response: Some(response),
                trace_context: call.trace_context.clone(),
                call_id: 7,
            }
        );
        // An empty context is left out, which the agent reads as the default context.
        let bare = PolicyCall {
            context: encoded(&proto::RequestContext::default()),
            ..call
        };
        let read = proto::PolicyRequest::decode(bare.encode_to_vec().as_slice()).unwrap();
        assert_eq!(
            read.context.unwrap_or_default(),
            proto::RequestContext::default()
        );
    }
}
