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
