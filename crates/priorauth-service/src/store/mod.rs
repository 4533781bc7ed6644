//! The database: SQLite (default, a file in the working directory) or PostgreSQL
//! (`DATABASE_URL=postgres://…`), through one code path (sqlx's `Any` driver) and one SQL
//! dialect both accept: `$n` parameters, `ON CONFLICT`, `RETURNING`, integers for flags and
//! times (milliseconds since the epoch), text for JSON.

pub mod audit;
pub mod authorizations;
pub mod notifications;
pub mod requests;
pub mod writer;

pub use audit::{AuditChain, AuditEntry, AuditRecord, AuditReport, audit, verify_audit};
use sha2::{Digest, Sha256};
use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;

/// The schema, applied in order on start. Each step runs once (`schema_migrations`).
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        r#"
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    key_hash TEXT NOT NULL UNIQUE,
    organization TEXT NOT NULL,
    role TEXT NOT NULL,
    name TEXT NOT NULL,
    credentials TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE TABLE IF NOT EXISTS requests (
    id TEXT PRIMARY KEY,
    organization TEXT NOT NULL,
    submitted_by TEXT NOT NULL,
    plan TEXT NOT NULL,
    policy TEXT NOT NULL,
    policy_version TEXT NOT NULL,
    idempotency_key TEXT,
    body_hash TEXT NOT NULL,
    status TEXT NOT NULL,
    outcome TEXT NOT NULL,
    urgency TEXT NOT NULL,
    due_at BIGINT,
    case_json TEXT NOT NULL,
    decision_json TEXT NOT NULL,
    response_json TEXT NOT NULL,
    renews TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (organization, idempotency_key)
);
CREATE INDEX IF NOT EXISTS requests_queue ON requests (status, due_at);
CREATE TABLE IF NOT EXISTS request_events (
    request_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    at BIGINT NOT NULL,
    outcome TEXT NOT NULL,
    case_json TEXT NOT NULL,
    decision_json TEXT NOT NULL,
    PRIMARY KEY (request_id, seq)
);
CREATE TABLE IF NOT EXISTS determinations (
    request_id TEXT PRIMARY KEY,
    decision TEXT NOT NULL,
    reason TEXT NOT NULL,
    criterion TEXT NOT NULL,
    reviewer_key TEXT NOT NULL,
    reviewer_name TEXT NOT NULL,
    reviewer_credentials TEXT NOT NULL,
    changes_json TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS authorizations (
    number TEXT PRIMARY KEY,
    request_id TEXT NOT NULL,
    organization TEXT NOT NULL,
    drug TEXT NOT NULL,
    hcpcs TEXT NOT NULL,
    start_date TEXT NOT NULL,
    end_date TEXT NOT NULL,
    units_per_period BIGINT NOT NULL,
    period_days BIGINT NOT NULL,
    cycles BIGINT NOT NULL,
    first_cycle BIGINT NOT NULL,
    approved_units BIGINT NOT NULL,
    used_units BIGINT NOT NULL,
    renews TEXT,
    created_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS usage (
    id TEXT PRIMARY KEY,
    authorization_number TEXT NOT NULL,
    units BIGINT NOT NULL,
    service_date TEXT NOT NULL,
    actor TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_head (
    id BIGINT PRIMARY KEY,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '') ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS audit_log (
    seq BIGINT PRIMARY KEY,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    organization TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
"#,
    ),
    (
        2,
        // An authorization is renewed at most once (NULLs, the first authorizations, are
        // distinct in a unique index on both databases).
        "CREATE UNIQUE INDEX IF NOT EXISTS authorizations_renews ON authorizations (renews)",
    ),
    (
        3,
        r#"
CREATE TABLE IF NOT EXISTS fhir_claims (
    request_id TEXT PRIMARY KEY,
    organization TEXT NOT NULL,
    claim_identifier TEXT NOT NULL,
    item_sequence BIGINT NOT NULL,
    bundle_json TEXT NOT NULL,
    base TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS fhir_claims_identifier ON fhir_claims (organization, claim_identifier);
CREATE TABLE IF NOT EXISTS subscriptions (
    id TEXT PRIMARY KEY,
    organization TEXT NOT NULL UNIQUE,
    endpoint TEXT NOT NULL,
    headers_json TEXT NOT NULL,
    resource_json TEXT NOT NULL,
    events BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS notifications (
    id TEXT PRIMARY KEY,
    subscription_id TEXT NOT NULL,
    request_id TEXT NOT NULL,
    event_number BIGINT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    delivered_at BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS notifications_due ON notifications (delivered_at, next_attempt_at);
"#,
    ),
    (
        4,
        // Decisions are recomputed on read from the case and the policy version that made
        // them; each decision event keeps the SHA-256 of the decision as it was answered, so
        // that a read proves it shows that decision. Rows written before keep their stored
        // decisions (this column is NULL there).
        "ALTER TABLE request_events ADD COLUMN decision_sha256 TEXT",
    ),
];

/// A database failure; the detail stays in the server, never in a response.
#[derive(Debug, thiserror::Error)]
#[error("database: {0}")]
pub struct StoreError(#[from] pub sqlx::Error);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone)]
pub struct Store {
    pub pool: AnyPool,
    /// For reads that must not wait behind writes: on SQLite, connections of their own (WAL
    /// lets them read while the one writer writes); on PostgreSQL, `pool` itself.
    pub reads: AnyPool,
    pub backend: Backend,
}

pub type Tx = sqlx::Transaction<'static, sqlx::Any>;

/// The default database: a file in the working directory.
pub const DEFAULT_URL: &str = "sqlite://priorauth.sqlite?mode=rwc";

impl Store {
    /// Connects and brings the schema up to date.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        };
        let options = AnyPoolOptions::new();
        let pool = match backend {
            // One connection: SQLite has one writer, and a single connection never meets a
            // busy or upgrade deadlock. WAL with full sync: a committed decision survives a
            // crash or power loss.
            Backend::Sqlite => {
                options
                    .max_connections(1)
                    .after_connect(|connection, _| {
                        Box::pin(async move {
                            use sqlx::Executor;
                            connection.execute("PRAGMA journal_mode = WAL").await?;
                            connection.execute("PRAGMA synchronous = FULL").await?;
                            connection.execute("PRAGMA busy_timeout = 5000").await?;
                            connection.execute("PRAGMA foreign_keys = ON").await?;
                            Ok(())
                        })
                    })
                    .connect(url)
                    .await?
            }
            // Every write transaction takes the audit head's row lock until it commits, so
            // more sessions only queue on it: 4 sustained 1,000 requests/s on 2 cores where 16
            // managed 865 (bench/README.md).
            //
            // Decisions are stored as text of several kilobytes, which PostgreSQL compresses:
            // lz4 (PostgreSQL 14 and later, when built with it) costs a fraction of the default
            // pglz's CPU. A server without it keeps its default, so the error is not fatal.
            Backend::Postgres => {
                options
                    .max_connections(4)
                    .after_connect(|connection, _| {
                        Box::pin(async move {
                            use sqlx::Executor;
                            let _ = connection
                                .execute("SET default_toast_compression = 'lz4'")
                                .await;
                            Ok(())
                        })
                    })
                    .connect(url)
                    .await?
            }
        };
        let mut store = Store {
            reads: pool.clone(),
            pool,
            backend,
        };
        store.migrate().await?;
        // An in-memory database is one connection's own: its reads stay on it.
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        if backend == Backend::Sqlite && !in_memory {
            store.reads = AnyPoolOptions::new()
                .max_connections(2)
                .after_connect(|connection, _| {
                    Box::pin(async move {
                        use sqlx::Executor;
                        connection.execute("PRAGMA query_only = ON").await?;
                        connection.execute("PRAGMA busy_timeout = 5000").await?;
                        Ok(())
                    })
                })
                .connect(url)
                .await?;
        }
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        if self.backend == Backend::Postgres {
            // Instances starting together take turns.
            sqlx::query("SELECT pg_advisory_xact_lock(7212)")
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)")
            .execute(&mut *tx)
            .await?;
        for (version, sql) in MIGRATIONS {
            let done = sqlx::query("SELECT version FROM schema_migrations WHERE version = $1")
                .bind(*version)
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
            if done {
                continue;
            }
            for statement in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                sqlx::query(statement).execute(&mut *tx).await?;
            }
            sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
                .bind(*version)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A random identifier with a prefix (`req_…`), 128 bits.
pub fn random_id(prefix: &str) -> String {
    let mut bytes = [0u8; 16];
    // The operating system's generator does not fail on the platforms we run on; if it
    // did, an all-zero id would collide on insert and the request would fail, not corrupt.
    let _ = getrandom::fill(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}

pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}
