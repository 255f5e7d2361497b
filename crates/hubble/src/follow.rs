//! The follow loop: `GetFlows` with `follow: true`, reconnecting with backoff after the stream
//! ends or fails, resuming from the last flow's time without repeating flows.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashSet;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use prost_types::Timestamp;
use tokio::sync::mpsc::Sender;

use crate::json::flow_to_json;
use crate::proto::flow::Flow;
use crate::proto::observer::get_flows_response::ResponseTypes;
use crate::proto::observer::observer_client::ObserverClient;
use crate::proto::observer::{GetFlowsRequest, GetFlowsResponse};
use crate::target::{error_chain, Connector};
use crate::{Config, Error, Stats};

/// Follows Hubble until `shutdown` resolves or `tx`'s receiver is dropped (both `Ok`), sending
/// each flow as one JSON line without its newline ([`flow_to_json`]).
///
/// Connection failures and stream ends are never returned: they are logged and retried with
/// exponential backoff and jitter, from `config.backoff_initial` up to `config.backoff_max`
/// (back to the initial delay once a response arrives). A resumed stream asks for flows
/// `since` the newest flow time received and drops the ones already sent. Only a target that
/// cannot be used at all (bad address, unreadable TLS file) is an error, before any attempt.
pub async fn follow(
    config: Config,
    stats: Arc<Stats>,
    tx: Sender<Vec<u8>>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let connector = Connector::new(&config.target).await?;
    let target = config.target.to_string();
    let mut cursor = Cursor::new(config.since.map(Timestamp::from));
    let mut backoff = Backoff::new(config.backoff_initial, config.backoff_max);
    let mut request = GetFlowsRequest {
        follow: true,
        whitelist: config.whitelist,
        blacklist: config.blacklist,
        ..GetFlowsRequest::default()
    };
    tokio::pin!(shutdown);
    loop {
        request.since = cursor.since();
        let ended = tokio::select! {
            biased;
            () = &mut shutdown => return Ok(()),
            ended = stream(&connector, &request, &mut cursor, &mut backoff, &stats, &tx) => ended,
        };
        let delay = backoff.next_delay();
        match ended {
            End::OutputClosed => return Ok(()),
            End::Closed => tracing::info!(
                hubble.target = %target,
                retry_in_ms = delay.as_millis() as u64,
                "hubble stream ended; reconnecting"
            ),
            End::Failed(error) => tracing::warn!(
                hubble.target = %target,
                error = %error,
                retry_in_ms = delay.as_millis() as u64,
                "hubble stream failed; reconnecting"
            ),
        }
        tokio::select! {
            biased;
            () = &mut shutdown => return Ok(()),
            () = tokio::time::sleep(delay) => {}
        }
        stats.reconnects.fetch_add(1, Relaxed);
    }
}

/// How one stream ended.
enum End {
    /// The server closed it.
    Closed,
    /// Connecting or reading failed.
    Failed(String),
    /// Nobody reads the output any more.
    OutputClosed,
}

/// One connection and one `GetFlows` stream, read to its end.
async fn stream(
    connector: &Connector,
    request: &GetFlowsRequest,
    cursor: &mut Cursor,
    backoff: &mut Backoff,
    stats: &Stats,
    tx: &Sender<Vec<u8>>,
) -> End {
    let channel = match connector.connect().await {
        Ok(channel) => channel,
        Err(e) => return End::Failed(e),
    };
    let mut responses = match ObserverClient::new(channel)
        .get_flows(request.clone())
        .await
    {
        Ok(response) => response.into_inner(),
        Err(status) => return End::Failed(error_chain(&status)),
    };
    cursor.resume();
    loop {
        let resp = match responses.message().await {
            Ok(Some(resp)) => resp,
            Ok(None) => return End::Closed,
            Err(status) => return End::Failed(error_chain(&status)),
        };
        backoff.reset();
        match &resp.response_types {
            Some(ResponseTypes::Flow(flow)) => {
                if !cursor.admit(flow, &resp) {
                    stats.duplicates.fetch_add(1, Relaxed);
                    continue;
                }
                let Some(line) = flow_to_json(&resp) else {
                    continue;
                };
                if tx.send(line).await.is_err() {
                    return End::OutputClosed;
                }
                stats.flows.fetch_add(1, Relaxed);
            }
            Some(ResponseTypes::LostEvents(lost)) => {
                stats.lost_events.fetch_add(lost.num_events_lost, Relaxed);
                tracing::warn!(
                    hubble.node = %resp.node_name,
                    lost.events = lost.num_events_lost,
                    lost.source = lost.source().as_str_name(),
                    "hubble lost events"
                );
            }
            Some(ResponseTypes::NodeStatus(status)) => tracing::info!(
                hubble.nodes = ?status.node_names,
                hubble.node_state = status.state_change().as_str_name(),
                message = %status.message,
                "hubble relay node status"
            ),
            None => {}
        }
    }
}

/// At most this many flows sharing the newest timestamp are remembered for de-duplication.
const MAX_SAME_TIME: usize = 4096;

/// The newest flow time received, and which flows carried it: after a reconnect the server
/// replays from that time (`since` is inclusive), and what was already sent is dropped.
struct Cursor {
    newest: Option<(i64, i32)>,
    at_newest: HashSet<FlowKey>,
    /// A resumed stream is replaying flows up to `newest`.
    replaying: bool,
}

#[derive(PartialEq, Eq, Hash)]
enum FlowKey {
    Uuid(String),
    /// Flows of agents that send no uuid: a hash of the whole message.
    Digest(u64),
}

impl Cursor {
    fn new(since: Option<Timestamp>) -> Self {
        Cursor {
            newest: since.map(|t| (t.seconds, t.nanos)),
            at_newest: HashSet::new(),
            replaying: false,
        }
    }

    /// The `since` of the next request.
    fn since(&self) -> Option<Timestamp> {
        self.newest
            .map(|(seconds, nanos)| Timestamp { seconds, nanos })
    }

    /// A new stream starts: it replays from `newest`.
    fn resume(&mut self) {
        self.replaying = self.newest.is_some();
    }

    /// Whether a flow is new; records it. Flows without a time pass and are not recorded.
    /// Replay stops at the first flow newer than `newest`; after that, older flows (Hubble
    /// Relay merges nodes and may deliver slightly out of order) pass.
    fn admit(&mut self, flow: &Flow, resp: &GetFlowsResponse) -> bool {
        let Some(t) = flow.time.as_ref().or(resp.time.as_ref()) else {
            return true;
        };
        let t = (t.seconds, t.nanos);
        match self.newest {
            Some(newest) if t < newest => !self.replaying,
            Some(newest) if t == newest => {
                let key = FlowKey::of(flow);
                if self.at_newest.contains(&key) {
                    return !self.replaying;
                }
                if self.at_newest.len() < MAX_SAME_TIME {
                    self.at_newest.insert(key);
                }
                true
            }
            _ => {
                self.newest = Some(t);
                self.at_newest.clear();
                self.at_newest.insert(FlowKey::of(flow));
                self.replaying = false;
                true
            }
        }
    }
}

impl FlowKey {
    fn of(flow: &Flow) -> Self {
        if flow.uuid.is_empty() {
            let mut h = DefaultHasher::new();
            flow.encode_to_vec().hash(&mut h);
            FlowKey::Digest(h.finish())
        } else {
            FlowKey::Uuid(flow.uuid.clone())
        }
    }
}

/// Exponential backoff with jitter: each delay is drawn from [d/2, d], d doubling up to `max`.
struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    fn new(initial: Duration, max: Duration) -> Self {
        let initial = initial.max(Duration::from_millis(1));
        let max = max.max(initial);
        Backoff {
            initial,
            max,
            next: initial,
        }
    }

    fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (d * 2).min(self.max);
        let half = d / 2;
        let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(fastrand::u64(0..=nanos))
    }

    fn reset(&mut self) {
        self.next = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(seconds: i64, uuid: &str) -> Flow {
        Flow {
            time: Some(Timestamp { seconds, nanos: 0 }),
            uuid: uuid.to_string(),
            ..Flow::default()
        }
    }

    #[test]
    fn a_resumed_stream_drops_what_was_sent_and_keeps_new_flows_at_the_same_time() {
        let resp = GetFlowsResponse::default();
        let mut c = Cursor::new(None);
        c.resume();
        assert!(c.admit(&flow(10, "a"), &resp));
        assert!(c.admit(&flow(11, "b"), &resp));
        assert!(c.admit(&flow(11, "c"), &resp));
        assert_eq!(
            c.since(),
            Some(Timestamp {
                seconds: 11,
                nanos: 0
            })
        );
        c.resume();
        assert!(!c.admit(&flow(10, "a"), &resp));
        assert!(!c.admit(&flow(11, "b"), &resp));
        assert!(c.admit(&flow(11, "d"), &resp), "same time, not seen");
        assert!(!c.admit(&flow(11, "c"), &resp));
        assert!(c.admit(&flow(12, "e"), &resp));
        // Replay is over: a late flow from another node passes.
        assert!(c.admit(&flow(11, "f"), &resp));
        // Flows without uuid are told apart by content; flows without time always pass.
        let mut anon = flow(12, "");
        anon.node_name = "n1".into();
        assert!(c.admit(&anon, &resp));
        c.resume();
        assert!(!c.admit(&anon, &resp));
        anon.node_name = "n2".into();
        assert!(c.admit(&anon, &resp));
        assert!(c.admit(&Flow::default(), &resp));
    }

    #[test]
    fn backoff_doubles_with_jitter_up_to_max_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let bounds = [(50, 100), (100, 200), (175, 350), (175, 350)];
        for (lo, hi) in bounds {
            let d = b.next_delay();
            assert!(
                d >= Duration::from_millis(lo) && d <= Duration::from_millis(hi),
                "{d:?} not in {lo}..={hi} ms"
            );
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
        let mut zero = Backoff::new(Duration::ZERO, Duration::ZERO);
        assert!(zero.next_delay() <= Duration::from_millis(1));
    }
}
