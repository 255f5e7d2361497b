//! What the agent reads from the socket: any bytes that decode as a `PolicyRequest` run
//! through the agent (every built-in policy registered) and get an answer for the same
//! request and call, with a status.
#![no_main]

use std::sync::OnceLock;

use extproc::agent::metrics::AgentMetrics;
use extproc::agent::{Agent, AgentConfig};
use extproc::proto;
use libfuzzer_sys::fuzz_target;
use prost::Message;

const CONFIG: &str = "agent_core:
  name: fuzz
  socket_path: /tmp/policyhub-fuzz-agent.sock
  policy_settings:
    apiKeyAuth: {keys_env: POLICYHUB_FUZZ_KEYS}
    jwtValidation: {hs256_secret_env: POLICYHUB_FUZZ_SECRET}
";

fn agent() -> &'static (Agent, tokio::runtime::Runtime) {
    static AGENT: OnceLock<(Agent, tokio::runtime::Runtime)> = OnceLock::new();
    AGENT.get_or_init(|| {
        std::env::set_var("POLICYHUB_FUZZ_KEYS", "alice:alice-key");
        std::env::set_var("POLICYHUB_FUZZ_SECRET", "fuzz-secret-fuzz-secret-fuzz-secret-01");
        let config = AgentConfig::from_yaml(CONFIG).expect("the fuzz agent's configuration");
        let metrics = AgentMetrics::new(&mut Default::default());
        let agent = Agent::new(&config, "fuzz".into(), metrics).expect("the fuzz agent");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        (agent, runtime)
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(request) = proto::PolicyRequest::decode(data) else {
        return;
    };
    let (agent, runtime) = agent();
    let (request_id, call_id) = (request.request_id.clone(), request.call_id);
    let answer = runtime.block_on(agent.execute(request));
    assert_eq!(answer.request_id, request_id);
    assert_eq!(answer.call_id, call_id);
    assert!(answer.status.is_some(), "every answer has a status");
});
