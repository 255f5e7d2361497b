//! `policyhub serve`: the hub.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080", env = "POLICYHUB_LISTEN")]
    listen: String,
    /// `postgres://...` for PostgreSQL; by default an embedded SQLite in --data-dir.
    #[arg(long, env = "POLICYHUB_DATABASE_URL")]
    database_url: Option<String>,
    /// Where the embedded SQLite database lives.
    #[arg(long, default_value = "policyhub-data", env = "POLICYHUB_DATA_DIR")]
    data_dir: PathBuf,
}

pub fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let url = match args.database_url {
        Some(url) => url,
        None => {
            std::fs::create_dir_all(&args.data_dir)
                .with_context(|| format!("creating {}", args.data_dir.display()))?;
            format!("sqlite://{}", args.data_dir.join("hub.db").display())
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let store = store::Store::connect(&url)
            .await
            .with_context(|| format!("opening the database {url}"))?;
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        tracing::info!(listen = %args.listen, database = ?store.backend(), "policyhub hub serving");
        hub::serve(listener, hub::AppState::new(store)).await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// Login of the demo organization.
const DEMO_EMAIL: &str = "demo@policyhub.local";
const DEMO_PASSWORD: &str = "policyhub-demo";

#[derive(Args)]
pub struct DemoArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// Where the demo's SQLite database is created (replaced on every run).
    #[arg(long, default_value = "policyhub-demo")]
    data_dir: PathBuf,
    /// Flows to synthesize over the week.
    #[arg(long, default_value_t = 200_000)]
    flows: u64,
    /// Prepare the data and exit instead of serving.
    #[arg(long)]
    no_serve: bool,
}

/// The hub with a week of validation data for the 30-service PMOVES deployment: tier-mode
/// policies generated from its service matrix, flows synthesized for it, validated, and
/// posted through the collector ingestion route.
pub fn demo(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let db = args.data_dir.join("hub.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
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
    let payload = flow::validate(
        &engine,
        flow::Config {
            cluster: "pmoves".into(),
            ..Default::default()
        },
        &lines[..],
    )?;
    let totals = payload.totals();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let store = store::Store::connect(&format!("sqlite://{}", db.display())).await?;
        let org = store.create_org("demo", now).await?;
        let user = store.create_user(DEMO_EMAIL, &hub::auth::hash_password(DEMO_PASSWORD)?, now).await?;
        store.add_member(&org.id, &user.id, store::Role::Owner).await?;
        let cluster = store.create_cluster(&org.id, "pmoves", now).await?;
        let token = hub::auth::new_secret("phc_");
        store.issue_cluster_token(&cluster.id, &hub::auth::secret_hash(&token), "demo", now).await?;
        let state = hub::AppState::new(store);
        // The same route a collector posts to.
        let request = axum::http::Request::post("/api/operator/validation")
            .header(axum::http::header::AUTHORIZATION, format!("Bearer {token}"))
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
        if args.no_serve {
            return Ok(ExitCode::SUCCESS);
        }
        let listener = tokio::net::TcpListener::bind(&args.listen).await.with_context(|| format!("listening on {}", args.listen))?;
        println!("Policy Hub demo: open http://{}/login and sign in as {DEMO_EMAIL} / {DEMO_PASSWORD} (Ctrl-C stops)", args.listen);
        hub::serve(listener, state).await?;
        Ok(ExitCode::SUCCESS)
    })
}
