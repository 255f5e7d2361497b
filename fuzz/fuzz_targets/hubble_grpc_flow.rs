//! Arbitrary bytes decoded as a Hubble `GetFlowsResponse` (protobuf) and rendered with
//! `flow_to_json`: rendering never panics, and every line it writes is read back by the
//! consumer's parser as a flow.
#![no_main]

use hubble_client::proto::observer::GetFlowsResponse;
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Ok(resp) = GetFlowsResponse::decode(data) else {
        return;
    };
    if let Some(line) = hubble_client::flow_to_json(&resp) {
        match flow::hubble::parse_line(&line) {
            Ok(Some(_)) => {}
            other => panic!(
                "{other:?} for line {}",
                String::from_utf8_lossy(&line)
            ),
        }
    }
});
