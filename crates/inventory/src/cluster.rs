//! The Kubernetes source: one kube-rs watcher per kind, feeding a [`SharedInventory`].

use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::watcher::{self, watcher, Event};
use kube::runtime::WatchStreamExt;
use kube::Client;
use serde_json::Value;
use tokio::sync::{watch, Notify};

use crate::kind::{Kind, ObjectKey};
use crate::store::{log_skipped, notify, SharedInventory};

/// How [`watch_cluster`] paces itself.
#[derive(Debug, Clone, Copy)]
pub struct WatchOptions {
    /// The least time between two `changed` notifications; changes within it are sent
    /// together at its end.
    pub debounce: Duration,
    /// How long to wait before listing a kind again after the API server answered 404
    /// (a CRD that is not installed).
    pub missing_retry: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            debounce: Duration::from_millis(250),
            missing_retry: Duration::from_secs(60),
        }
    }
}

/// Keeps `inventory` equal to what the API server holds of every [`Kind`], with one
/// watcher per kind (list, then watch from the list's resourceVersion; a relist after
/// `410 Gone` replaces that kind's objects, so objects deleted meanwhile disappear).
///
/// A kind the server does not serve (404: the CRD is not installed) is logged, emptied,
/// and listed again every `options.missing_retry` without holding back the others; other
/// errors are retried with kube-rs's default backoff. `changed` receives the inventory's
/// generation at most once per `options.debounce`. Returns when every receiver of
/// `changed` is gone.
pub async fn watch_cluster(
    client: Client,
    inventory: SharedInventory,
    changed: watch::Sender<u64>,
    options: WatchOptions,
) {
    let touched = Arc::new(Notify::new());
    let watches = futures::future::join_all(
        Kind::ALL
            .map(|kind| watch_kind(&client, kind, &inventory, &touched, options.missing_retry)),
    );
    let debounce = async {
        loop {
            touched.notified().await;
            tokio::time::sleep(options.debounce).await;
            notify(&changed, inventory.read().generation());
        }
    };
    tokio::select! {
        _ = watches => {}
        () = debounce => {}
        () = changed.closed() => {}
    }
}

async fn watch_kind(
    client: &Client,
    kind: Kind,
    inventory: &SharedInventory,
    touched: &Notify,
    missing_retry: Duration,
) {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &api_resource(kind));
    loop {
        let mut events = pin!(watcher(api.clone(), watcher::Config::default()).default_backoff());
        let mut relist: Option<Vec<Value>> = None;
        while let Some(event) = events.next().await {
            match event {
                Ok(event) => {
                    handle(kind, event, &mut relist, inventory);
                    touched.notify_one();
                }
                Err(e) if not_served(&e) => {
                    tracing::warn!(
                        resource.kind = kind.name(),
                        retry_s = missing_retry.as_secs_f64(),
                        "resource not served by the API server (CRD not installed?); retrying later"
                    );
                    inventory.write().replace_kind(kind, []);
                    touched.notify_one();
                    break;
                }
                Err(e) => {
                    tracing::warn!(resource.kind = kind.name(), error = %e, "watch failed; retrying")
                }
            }
        }
        tokio::time::sleep(missing_retry).await;
    }
}

/// Applies one watcher event; `relist` buffers the objects of a list until it is done.
fn handle(
    kind: Kind,
    event: Event<DynamicObject>,
    relist: &mut Option<Vec<Value>>,
    inventory: &SharedInventory,
) {
    match event {
        Event::Init => *relist = Some(Vec::new()),
        Event::InitApply(obj) => relist
            .get_or_insert_with(Vec::new)
            .extend(to_value(kind, obj)),
        Event::InitDone => {
            let objs = relist.take().unwrap_or_default();
            let skipped = inventory.write().replace_kind(kind, objs);
            log_skipped(&skipped);
        }
        Event::Apply(obj) => {
            if let Some(obj) = to_value(kind, obj) {
                if let Err(e) = inventory.write().apply(obj) {
                    log_skipped(&[e]);
                }
            }
        }
        Event::Delete(obj) => match obj.metadata.name.as_deref() {
            Some(name) => {
                let key = ObjectKey::new(kind, obj.metadata.namespace.as_deref(), name);
                inventory.write().delete(&key);
            }
            None => tracing::warn!(
                resource.kind = kind.name(),
                "deleted object without metadata.name ignored"
            ),
        },
    }
}

/// The object as JSON, with the apiVersion and kind that list items lack.
fn to_value(kind: Kind, obj: DynamicObject) -> Option<Value> {
    match serde_json::to_value(obj) {
        Ok(Value::Object(mut map)) => {
            map.entry("apiVersion")
                .or_insert_with(|| kind.api_version().into());
            map.entry("kind").or_insert_with(|| kind.name().into());
            Some(Value::Object(map))
        }
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(resource.kind = kind.name(), error = %e, "object not representable as JSON");
            None
        }
    }
}

fn not_served(e: &watcher::Error) -> bool {
    match e {
        watcher::Error::InitialListFailed(kube::Error::Api(status))
        | watcher::Error::WatchStartFailed(kube::Error::Api(status)) => status.code == 404,
        _ => false,
    }
}

fn api_resource(kind: Kind) -> ApiResource {
    ApiResource {
        group: kind.group().into(),
        version: kind.version().into(),
        api_version: kind.api_version(),
        kind: kind.name().into(),
        plural: kind.plural().into(),
    }
}
