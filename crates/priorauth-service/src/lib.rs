//! The prior-authorization service around the engine: an HTTP API (axum) over durable
//! records (SQLite by default, PostgreSQL with `DATABASE_URL`), clinician review of every
//! recommended denial and `review` outcome, authorizations with usage, an append-only
//! hash-chained audit log, and API keys with roles.

pub mod api;
pub mod console;
pub mod fhir;
pub mod keys;
pub mod notify;
pub mod plans;
pub mod store;
pub mod writer;

use std::net::SocketAddr;
use std::sync::Arc;

pub use api::{AppState, app};
use priorauth_core::Engine;
pub use store::Store;

/// The database URL: `DATABASE_URL`, else an SQLite file in the working directory.
pub fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| store::DEFAULT_URL.to_string())
}

/// Builds the state from the engine, a plans file (None: the bundled one) and a database.
pub async fn state(
    engine: Engine,
    plans_text: Option<&str>,
    url: &str,
) -> Result<AppState, String> {
    let plans = plans::Plans::load(plans_text.unwrap_or(plans::BUNDLED), &engine)?;
    let fhir = priorauth_fhir::map::Map::load(priorauth_fhir::map::BUNDLED, &engine)
        .map_err(|e| e.to_string())?;
    let store = Store::connect(url).await.map_err(|e| e.to_string())?;
    Ok(AppState {
        engine: Arc::new(engine),
        plans: Arc::new(plans),
        writer: writer::Writer::start(store.clone()),
        store,
        fhir: Arc::new(fhir),
        notify: Arc::new(tokio::sync::Notify::new()),
    })
}

/// Serves until SIGINT or SIGTERM, then stops accepting and finishes the requests in flight.
pub async fn serve(state: AppState, listener: tokio::net::TcpListener) -> std::io::Result<()> {
    let shutdown = async {
        let interrupt = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let terminate = std::future::pending::<()>();
        tokio::select! {
            _ = interrupt => {},
            _ = terminate => {},
        }
    };
    axum::serve(
        listener,
        app(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
