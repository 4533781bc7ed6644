//! The prior-authorization service around the engine: the request lifecycle over durable
//! records (SQLite by default, PostgreSQL with `DATABASE_URL`), clinician review of every
//! recommended denial and `review` outcome, authorizations with usage, an append-only
//! hash-chained audit log, and API keys with roles; reached through HTTP adapters (`/v1`,
//! the Da Vinci FHIR interfaces, the console).
//!
//! Layers: `lifecycle` (the workflow) over `store` (one module per aggregate); the adapters
//! `api`, `fhir` (with its notification worker `notify`) and `console` each translate to and
//! from the lifecycle through what `web` shares, and none imports another; this file wires
//! them into one router.

pub mod admission;
pub mod answers;
pub mod api;
pub mod chart;
pub mod connections;
pub mod console;
pub mod csv;
pub mod fhir;
pub mod history;
pub mod keys;
pub mod lifecycle;
pub mod notify;
pub mod ops;
pub mod pdf;
pub mod plans;
pub mod store;
pub mod trust;
pub mod web;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use priorauth_core::Engine;
pub use store::Store;
pub use web::AppState;

/// The service's router: every adapter's routes under one body limit and time limit, and
/// the framework's own errors answered as problem+json. Starts the PAS notification worker.
pub fn app(state: AppState) -> Router {
    // PAS notifications are delivered by the process that serves.
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(notify::run(state.clone()));
        runtime.spawn(web::audit_refusals(state.clone()));
    }
    Router::new()
        .merge(api::routes(&state))
        .merge(ops::routes())
        .merge(console::routes(&state))
        .route_layer(web::time_limit())
        // With the time limit inside its own error answers (OperationOutcomes).
        .merge(fhir::routes(&state))
        .layer(DefaultBodyLimit::max(web::BODY_LIMIT))
        // Outermost, so that it also sees the time limit's answer.
        .layer(axum::middleware::map_response(web::bare_errors_as_problems))
        .layer(axum::middleware::map_response(web::not_stored))
        .layer(axum::middleware::from_fn(web::close_after_refused_body))
        .with_state(state)
}

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
    // How FHIR codes become facts, and the payer's X12 denial reason codes: the bundled
    // config/fhir.toml, or a payer's own copy named by PRIORAUTH_FHIR_MAP.
    let fhir_text = match std::env::var("PRIORAUTH_FHIR_MAP")
        .ok()
        .filter(|p| !p.is_empty())
    {
        Some(path) => {
            std::fs::read_to_string(&path).map_err(|e| format!("PRIORAUTH_FHIR_MAP {path}: {e}"))?
        }
        None => priorauth_fhir::map::BUNDLED.to_string(),
    };
    let fhir = priorauth_fhir::map::Map::load(&fhir_text, &engine)
        .map_err(|e| format!("FHIR map: {e}"))?;
    let store = Store::connect(url).await.map_err(|e| e.to_string())?;
    let writer = store::writer::Writer::start(store.clone())
        .await
        .map_err(|e| e.to_string())?;
    Ok(AppState {
        service: lifecycle::Service {
            engine: Arc::new(engine),
            plans: Arc::new(plans),
            writer,
            store,
            notify: Arc::new(tokio::sync::Notify::new()),
            courses: Arc::default(),
        },
        fhir: Arc::new(fhir),
        chart: Arc::new(chart::Chart::from_env()),
        admission: Arc::new(admission::Admission::new(admission::Limits::from_env()?)),
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
    let limits = connections::ConnectionLimits::from_env().map_err(std::io::Error::other)?;
    serve_until(state, listener, limits, shutdown).await
}

/// Serves until `shutdown` completes, within `limits`: what `serve` runs, with the shutdown
/// given (the tests').
pub async fn serve_until(
    state: AppState,
    listener: tokio::net::TcpListener,
    limits: connections::ConnectionLimits,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    connections::serve(app(state), listener, limits, shutdown).await
}
