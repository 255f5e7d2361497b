//! The Hubble source: flows streamed by a gRPC `observer.Observer` server over a Unix
//! socket are judged and reach the hub.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use collector::metrics::Metrics;
use collector::source::HubbleSource;
use hubble_client::proto::flow::{
    layer4, CiliumEventType, Flow, Ip, Layer4, Tcp, TraceObservationPoint, Verdict,
};
use hubble_client::proto::observer::get_flows_response::ResponseTypes;
use hubble_client::proto::observer::observer_server::{Observer, ObserverServer};
use hubble_client::proto::observer::{GetFlowsRequest, GetFlowsResponse};
use tokio_stream::wrappers::{ReceiverStream, UnixListenerStream};
use tonic::{Request, Response, Status};

/// Streams its flows, then keeps the stream open as a quiet agent does.
struct Agent(Vec<GetFlowsResponse>);

#[tonic::async_trait]
impl Observer for Agent {
    type GetFlowsStream = ReceiverStream<Result<GetFlowsResponse, Status>>;

    async fn get_flows(
        &self,
        _: Request<GetFlowsRequest>,
    ) -> Result<Response<Self::GetFlowsStream>, Status> {
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let flows = self.0.clone();
        tokio::spawn(async move {
            for f in flows {
                if tx.send(Ok(f)).await.is_err() {
                    return;
                }
            }
            tx.closed().await;
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// web → db, delivered, on `port`, `i` milliseconds after `t`.
fn delivered(t: SystemTime, i: u32, port: u32) -> GetFlowsResponse {
    let at = t.duration_since(SystemTime::UNIX_EPOCH).unwrap() + Duration::from_millis(i.into());
    let time = Some(prost_types::Timestamp {
        seconds: at.as_secs() as i64,
        nanos: at.subsec_nanos() as i32,
    });
    GetFlowsResponse {
        node_name: "node-a".into(),
        time,
        response_types: Some(ResponseTypes::Flow(Flow {
            time,
            uuid: format!("flow-{i}"),
            verdict: Verdict::Forwarded as i32,
            ip: Some(Ip {
                source: "10.0.0.1".into(),
                destination: "10.0.0.2".into(),
                ..Default::default()
            }),
            l4: Some(Layer4 {
                protocol: Some(layer4::Protocol::Tcp(Tcp {
                    source_port: 40000 + i,
                    destination_port: port,
                })),
            }),
            event_type: Some(CiliumEventType {
                r#type: 4,
                sub_type: 0,
            }),
            trace_observation_point: TraceObservationPoint::ToEndpoint as i32,
            ..Default::default()
        })),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_flows_are_judged_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hub.db");
    let tenant = common::tenant(&db).await;
    let hub = common::Hub::start(&db, "127.0.0.1:0".parse().unwrap());

    let now = SystemTime::now();
    let mut flows: Vec<GetFlowsResponse> = (0..30).map(|i| delivered(now, i, 5432)).collect();
    flows.extend((30..40).map(|i| delivered(now, i, 22)));
    let socket = dir.path().join("hubble.sock");
    let listener = tokio::net::UnixListener::bind(&socket).unwrap();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(ObserverServer::new(Agent(flows)))
            .serve_with_incoming(UnixListenerStream::new(listener)),
    );

    let (_inventory, snapshots) = common::web_db_snapshot();
    let metrics = Arc::new(Metrics::default());
    let source = HubbleSource {
        config: hubble_client::Config {
            target: hubble_client::Target::Unix(socket),
            ..Default::default()
        },
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(collector::run(
        common::settings(&hub.url(), &tenant, dir.path()),
        Box::new(source),
        snapshots,
        metrics.clone(),
        async {
            let _ = stopped.await;
        },
    ));
    for _ in 0..200 {
        if metrics.observed.load(Ordering::Relaxed) == 40 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.send(()).unwrap();
    run.await.unwrap().unwrap();
    server.abort();

    let (totals, _) = common::summary(&hub.url(), &tenant).await;
    assert_eq!((totals.allowed_count, totals.blocked_count), (30, 10));
    assert_eq!(totals.discrepancies.enforcement_gap, 10);
}
