//! The snapshot source: `kubectl get -A -o yaml` (or JSON) files, reloaded when they change.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde_json::Value;
use tokio::sync::watch;

use crate::error::Error;
use crate::store::{log_skipped, notify, Inventory, SharedInventory};

impl Inventory {
    /// Adds every object of a snapshot text (multi-document YAML or JSON, `kind: List` and
    /// `*List` kinds unpacked; workloads stand in for their pods, as in `policyhub
    /// validate`); `file` names it in errors. A text that does not parse is an
    /// error and adds nothing; objects that cannot be kept (other kinds, no name, rejected
    /// by the engine) are skipped and returned, each with its document number.
    pub fn load_str(&mut self, text: &str, file: &str) -> Result<Vec<Error>, Error> {
        let documents = netpol::manifest::documents(text, file).map_err(Error::Syntax)?;
        let mut skipped = Vec::new();
        for (i, doc) in documents.into_iter().enumerate() {
            for obj in unpack(doc) {
                let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
                let result = if crate::store::WORKLOAD_KINDS.contains(&kind) {
                    self.apply_workload(obj)
                } else {
                    self.apply(obj).map(|_| ())
                };
                if let Err(e) = result {
                    skipped.push(Error::InDocument {
                        file: file.to_string(),
                        document: i + 1,
                        source: Box::new(e),
                    });
                }
            }
        }
        Ok(skipped)
    }

    /// Reads snapshot files into a new inventory (see [`load_str`](Inventory::load_str)).
    pub fn load_files(paths: &[PathBuf]) -> Result<(Inventory, Vec<Error>), Error> {
        let texts = paths
            .iter()
            .map(|path| {
                std::fs::read_to_string(path).map_err(|source| Error::Read {
                    path: path.clone(),
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        parse(paths, &texts)
    }
}

/// Keeps `inventory` equal to the objects in `paths`, checking every `poll` whether a
/// file's modification time, size or content changed. A new version that cannot be read or
/// does not parse is logged (file, document, line and column) and the previous inventory
/// kept; objects skipped are logged. `changed` receives the inventory's generation after
/// each reload that changed it. Returns when every receiver of `changed` is gone.
pub async fn watch_files(
    paths: Vec<PathBuf>,
    inventory: SharedInventory,
    changed: watch::Sender<u64>,
    poll: Duration,
) {
    let mut ticker = tokio::time::interval(poll);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen = None;
    let mut loaded = None;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = changed.closed() => return,
        }
        let stamps = stamps(&paths).await;
        // A file rewritten within one tick of the file system's clock keeps its time; a
        // recent time is therefore checked by content until it is old enough to trust.
        if seen.as_ref() == Some(&stamps) && !stamps.iter().flatten().any(|(t, _)| recent(*t)) {
            continue;
        }
        seen = Some(stamps);
        let texts = match read_all(&paths).await {
            Ok(texts) => texts,
            Err(e) => {
                tracing::error!(error = %e, "snapshot unreadable; keeping the previous inventory");
                continue;
            }
        };
        let digest = digest(&texts);
        if loaded == Some(digest) {
            continue;
        }
        loaded = Some(digest);
        match parse(&paths, &texts) {
            Ok((fresh, skipped)) => {
                log_skipped(&skipped);
                let generation = {
                    let mut inventory = inventory.write();
                    inventory.replace_all(fresh);
                    inventory.generation()
                };
                tracing::info!(inventory.generation = generation, "snapshot loaded");
                notify(&changed, generation);
            }
            Err(e) => {
                tracing::error!(error = %e, "snapshot does not parse; keeping the previous inventory");
            }
        }
    }
}

/// Lists and `*List` kinds become their items; the items of a typed list (`PodList`, as
/// the API server returns them) that lack `kind` and `apiVersion` take them from the list.
fn unpack(doc: Value) -> Vec<Value> {
    let Value::Object(mut map) = doc else {
        return match doc {
            Value::Null => Vec::new(),
            other => vec![other],
        };
    };
    let list_kind = map.get("kind").and_then(Value::as_str).unwrap_or_default();
    let Some(item_kind) = list_kind.strip_suffix("List").map(str::to_string) else {
        return vec![Value::Object(map)];
    };
    let Some(Value::Array(items)) = map.remove("items") else {
        return vec![Value::Object(map)];
    };
    let api_version = map.get("apiVersion").cloned();
    let mut out = Vec::with_capacity(items.len());
    for mut item in items {
        if let (Value::Object(obj), false) = (&mut item, item_kind.is_empty()) {
            if !obj.contains_key("kind") {
                obj.insert("kind".into(), item_kind.clone().into());
                if let Some(v) = &api_version {
                    obj.entry("apiVersion").or_insert_with(|| v.clone());
                }
            }
        }
        out.extend(unpack(item));
    }
    out
}

/// Modification time and size of each file (`None` where it cannot be read).
async fn stamps(paths: &[PathBuf]) -> Vec<Option<(SystemTime, u64)>> {
    let mut out = Vec::with_capacity(paths.len());
    for path in paths {
        let meta = tokio::fs::metadata(path).await.ok();
        out.push(meta.and_then(|m| Some((m.modified().ok()?, m.len()))));
    }
    out
}

async fn read_all(paths: &[PathBuf]) -> Result<Vec<String>, Error> {
    let mut texts = Vec::with_capacity(paths.len());
    for path in paths {
        let text = tokio::fs::read_to_string(path)
            .await
            .map_err(|source| Error::Read {
                path: path.clone(),
                source,
            })?;
        texts.push(text);
    }
    Ok(texts)
}

fn recent(modified: SystemTime) -> bool {
    modified
        .elapsed()
        .map_or(true, |age| age < Duration::from_secs(2))
}

fn digest(texts: &[String]) -> u64 {
    let mut hasher = DefaultHasher::new();
    texts.hash(&mut hasher);
    hasher.finish()
}

fn parse(paths: &[PathBuf], texts: &[String]) -> Result<(Inventory, Vec<Error>), Error> {
    let mut inventory = Inventory::default();
    let mut skipped = Vec::new();
    for (path, text) in paths.iter().zip(texts) {
        skipped.extend(inventory.load_str(text, &path.display().to_string())?);
    }
    Ok((inventory, skipped))
}
