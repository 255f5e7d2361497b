//! `policyhub serve`, `policyhub migrate` and `policyhub demo`: the hub.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

/// Which database the hub uses.
#[derive(Args)]
pub struct DatabaseArgs {
    /// `postgres://...` for PostgreSQL; by default an embedded SQLite in --data-dir.
    #[arg(long, env = "POLICYHUB_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Where the embedded SQLite database lives.
    #[arg(long, default_value = "policyhub-data", env = "POLICYHUB_DATA_DIR")]
    data_dir: PathBuf,
}

impl DatabaseArgs {
    /// Opens the database (creating the SQLite directory when needed) and applies the
    /// pending migrations: under PostgreSQL's advisory lock, so replicas starting together
    /// migrate once.
    async fn open(&self) -> anyhow::Result<store::Store> {
        let url = match &self.database_url {
            Some(url) => url.clone(),
            None => {
                std::fs::create_dir_all(&self.data_dir)
                    .with_context(|| format!("creating {}", self.data_dir.display()))?;
                format!("sqlite://{}", self.data_dir.join("hub.db").display())
            }
        };
        store::Store::connect(&url)
            .await
            .with_context(|| format!("opening the database {}", redact(&url)))
    }
}

/// `url` with its password replaced by `***`, for messages and logs. The user part ends at
/// the last `@` before the query, so a password holding `@` or `/` is hidden whole (a path
/// holding `@` hides more than needed, never less).
pub fn redact(url: &str) -> String {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let query = url[start..].find('?').map_or(url.len(), |i| start + i);
    let Some(at) = url[start..query].rfind('@').map(|i| start + i) else {
        return url.to_string();
    };
    match url[start..at].find(':') {
        Some(colon) => format!("{}:***{}", &url[..start + colon], &url[at..]),
        None => url.to_string(),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080", env = "POLICYHUB_LISTEN")]
    listen: String,
    #[command(flatten)]
    database: DatabaseArgs,
}

pub fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    runtime()?.block_on(async {
        let store = args.database.open().await?;
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        tracing::info!(listen = %args.listen, database = ?store.backend(), "policyhub hub serving");
        hub::serve(listener, hub::AppState::new(store)).await?;
        Ok(ExitCode::SUCCESS)
    })
}

#[derive(Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    database: DatabaseArgs,
}

/// Applies the pending migrations and exits (a deployment's step before `serve`).
pub fn migrate(args: MigrateArgs) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let store = args.database.open().await?;
        println!("database schema up to date ({:?})", store.backend());
        Ok(ExitCode::SUCCESS)
    })
}

/// Login of the demo organization.
const DEMO_EMAIL: &str = "demo@policyhub.local";
const DEMO_PASSWORD: &str = "policyhub-demo";
/// The demo's cluster (and the cluster name its flows are reported under).
const DEMO_CLUSTER: &str = "pmoves";

#[derive(Args)]
pub struct DemoArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// Where the demo's SQLite database is created (replaced on every run).
    #[arg(long, default_value = "policyhub-demo")]
    data_dir: PathBuf,
    /// Seed this database (`postgres://...`) instead of a fresh SQLite in --data-dir. A
    /// database seeded before keeps its data: only a new cluster token is issued.
    #[arg(long)]
    database_url: Option<String>,
    /// Write what a collector needs to replay the week into this directory
    /// (`snapshot.yaml`, `flows.jsonl`, the cluster token in `token`) instead of ingesting
    /// the flows here. `flows.jsonl` is empty when the database was seeded before.
    #[arg(long)]
    export: Option<PathBuf>,
    /// Flows to synthesize over the week.
    #[arg(long, default_value_t = 200_000)]
    flows: u64,
    /// Prepare the data and exit instead of serving.
    #[arg(long)]
    no_serve: bool,
}

/// The demo's organization, user and cluster, and a fresh token of that cluster.
struct Seeded {
    token: String,
    /// False when the database held the demo before (its data is kept).
    new: bool,
}

async fn seed(store: &store::Store, now: i64) -> anyhow::Result<Seeded> {
    let token = hub::auth::new_secret("phc_");
    let hash = hub::auth::secret_hash(&token);
    if let Some(user) = store.user_by_email(DEMO_EMAIL).await? {
        let orgs = store.orgs_of(&user.id).await?;
        let (org, _) = orgs
            .first()
            .context("the demo user belongs to no organization")?;
        let clusters = store.list_clusters(&org.id).await?;
        let cluster = clusters
            .iter()
            .find(|c| c.name == DEMO_CLUSTER)
            .context("the demo organization has no pmoves cluster")?;
        store
            .issue_cluster_token(&cluster.id, &hash, "demo", now)
            .await?;
        return Ok(Seeded { token, new: false });
    }
    let org = store.create_org("demo", now).await?;
    let password = hub::auth::hash_password(DEMO_PASSWORD)?;
    let user = store.create_user(DEMO_EMAIL, &password, now).await?;
    store
        .add_member(&org.id, &user.id, store::Role::Owner)
        .await?;
    let cluster = store.create_cluster(&org.id, DEMO_CLUSTER, now).await?;
    store
        .issue_cluster_token(&cluster.id, &hash, "demo", now)
        .await?;
    Ok(Seeded { token, new: true })
}

/// The demo cluster as `kubectl get -A -o yaml` would print it: its namespaces, one pod
/// per service and the generated policies (what a collector's `--snapshot` reads).
fn snapshot_yaml(
    catalog: &segment::Catalog,
    policies: &[serde_json::Value],
) -> anyhow::Result<String> {
    let inventory = segment::verify::inventory_bundle(catalog).inventory;
    let namespaces = inventory.namespaces.values().map(|ns| {
        serde_json::json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": ns.name, "labels": ns.labels}})
    });
    let pods = inventory.pods.iter().map(|pod| {
        let ports: Vec<_> = pod
            .ports
            .iter()
            .map(|p| serde_json::json!({"containerPort": p.port, "protocol": p.protocol.to_string()}))
            .collect();
        serde_json::json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": pod.name, "namespace": pod.namespace, "labels": pod.labels},
            "spec": {"containers": [{"name": "app", "image": pod.name, "ports": ports}]}})
    });
    let items: Vec<_> = namespaces
        .chain(pods)
        .chain(policies.iter().cloned())
        .collect();
    Ok(yaml_serde::to_string(
        &serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items}),
    )?)
}

fn write_export(dir: &Path, snapshot: &str, flows: &[u8], token: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let write = |name: &str, data: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, data).with_context(|| format!("writing {}", path.display()))
    };
    write("snapshot.yaml", snapshot.as_bytes())?;
    write("flows.jsonl", flows)?;
    // The token is readable by its owner only from the moment it exists.
    let path = dir.join("token");
    let _ = std::fs::remove_file(&path);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    std::io::Write::write_all(
        &mut options
            .open(&path)
            .with_context(|| format!("writing {}", path.display()))?,
        token.as_bytes(),
    )?;
    Ok(())
}

/// The hub with a week of validation data for the 30-service PMOVES deployment: tier-mode
/// policies generated from its service matrix, flows synthesized for it, validated, and
/// posted through the collector ingestion route (or exported for a collector to replay).
pub fn demo(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let url = match &args.database_url {
        Some(url) => url.clone(),
        None => {
            let db = args.data_dir.join("hub.db");
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
            }
            std::fs::create_dir_all(&args.data_dir)
                .with_context(|| format!("creating {}", args.data_dir.display()))?;
            format!("sqlite://{}", db.display())
        }
    };
    let catalog = segment::Catalog::parse(
        include_str!("../../../examples/pmoves/services.yaml"),
        "examples/pmoves/services.yaml",
        false,
    )?;
    let generated =
        segment::generate::generate(&catalog, segment::Mode::Tier, segment::Format::Kubernetes)?;
    let engine = segment::verify::engine(&catalog, &generated.policies)?;
    let now = hub::now();
    let config = flow::synth::Config {
        count: args.flows,
        seed: 7,
        blocked_share: 0.12,
        no_policy_share: 0.05,
        gap_share: 0.01,
        drop_share: 0.005,
        hours: 168,
        start: now - now % 3600 - 168 * 3600,
    };
    let mut lines = Vec::new();
    flow::synth::synth(&engine, &config, &mut lines)?;

    runtime()?.block_on(async {
        let store = store::Store::connect(&url)
            .await
            .with_context(|| format!("opening the database {}", redact(&url)))?;
        let seeded = seed(&store, now).await?;
        let state = hub::AppState::new(store);
        if let Some(dir) = &args.export {
            let flows: &[u8] = if seeded.new { &lines } else { &[] };
            write_export(dir, &snapshot_yaml(&catalog, &generated.policies)?, flows, &seeded.token)?;
            println!(
                "wrote {dir}/snapshot.yaml, {dir}/flows.jsonl ({} bytes) and the cluster token {dir}/token; replay with: policyhub-collector --source file --file {dir}/flows.jsonl --snapshot {dir}/snapshot.yaml --cluster {DEMO_CLUSTER} --token-file {dir}/token --hub-url <hub>",
                flows.len(),
                dir = dir.display()
            );
        } else if seeded.new {
            let payload = flow::validate(
                &engine,
                flow::Config {
                    cluster: DEMO_CLUSTER.into(),
                    ..Default::default()
                },
                &lines[..],
            )?;
            let totals = payload.totals();
            // The same route a collector posts to.
            let request = axum::http::Request::post("/api/operator/validation")
                .header(axum::http::header::AUTHORIZATION, format!("Bearer {}", seeded.token))
                .header(axum::http::header::CONTENT_TYPE, "application/json")
                .body(axum::body::Body::from(serde_json::to_vec(&payload)?))?;
            use tower::ServiceExt;
            let response = hub::app(state.clone()).oneshot(request).await?;
            anyhow::ensure!(response.status() == axum::http::StatusCode::ACCEPTED, "ingestion answered {}", response.status());
            println!(
                "ingested a week of PMOVES flows: {} flows judged, {} allowed, {} blocked, {} without policy, {} enforcement gaps",
                totals.judged(),
                totals.allowed_count,
                totals.blocked_count,
                totals.no_policy_count,
                totals.discrepancies.enforcement_gap
            );
        } else {
            println!("the database already holds the demo: its data is kept");
        }
        if args.no_serve {
            return Ok(ExitCode::SUCCESS);
        }
        let listener = tokio::net::TcpListener::bind(&args.listen).await.with_context(|| format!("listening on {}", args.listen))?;
        println!("Policy Hub demo: open http://{}/login and sign in as {DEMO_EMAIL} / {DEMO_PASSWORD} (Ctrl-C stops)", args.listen);
        hub::serve(listener, state).await?;
        Ok(ExitCode::SUCCESS)
    })
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redact_hides_only_the_password() {
        assert_eq!(
            redact("postgres://policyhub:s3cr@t/x@db:5432/policyhub?sslmode=require"),
            "postgres://policyhub:***@db:5432/policyhub?sslmode=require"
        );
        assert_eq!(
            redact("postgres://policyhub@db/policyhub"),
            "postgres://policyhub@db/policyhub"
        );
        assert_eq!(redact("sqlite://data/hub.db"), "sqlite://data/hub.db");
        assert_eq!(
            redact("postgres://db/x?user=a@b"),
            "postgres://db/x?user=a@b"
        );
    }
}
