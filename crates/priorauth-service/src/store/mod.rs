//! The database: SQLite (default, a file in the working directory) or PostgreSQL
//! (`DATABASE_URL=postgres://…`), through one code path (sqlx's `Any` driver) and one SQL
//! dialect both accept: `$n` parameters, `ON CONFLICT`, `RETURNING`, integers for flags and
//! times (milliseconds since the epoch), text for JSON.

pub mod appeals;
pub mod assertions;
pub mod attachments;
pub mod audit;
pub mod authorizations;
pub mod courses;
pub mod idempotency;
pub mod members;
pub mod notifications;
pub mod packed;
pub mod report;
pub mod requests;
pub mod writer;

pub use audit::{AuditChain, AuditEntry, AuditRecord, AuditReport, Binds, audit, verify_audit};
use sha2::{Digest, Sha256};
use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;

/// The schema: the files of `migrations/` (`NNNN_description.sql`), embedded in the binary,
/// which `Store::migrate` applies in order with sqlx's migrator. A new file is added here too;
/// the `upgrade` test checks this list against the directory, and a released file never
/// changes (the migrator keeps each file's checksum and refuses a changed one).
const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_initial.sql",
        include_str!("../../migrations/0001_initial.sql"),
    ),
    (
        "0002_authorizations_renewed_once.sql",
        include_str!("../../migrations/0002_authorizations_renewed_once.sql"),
    ),
    (
        "0003_fhir_claims_and_subscriptions.sql",
        include_str!("../../migrations/0003_fhir_claims_and_subscriptions.sql"),
    ),
    (
        "0004_decision_sha256.sql",
        include_str!("../../migrations/0004_decision_sha256.sql"),
    ),
    (
        "0005_authorizations_by_request.sql",
        include_str!("../../migrations/0005_authorizations_by_request.sql"),
    ),
    (
        "0006_idempotent_answers.sql",
        include_str!("../../migrations/0006_idempotent_answers.sql"),
    ),
    (
        "0007_notifications_dead_letters.sql",
        include_str!("../../migrations/0007_notifications_dead_letters.sql"),
    ),
    (
        "0008_audit_binds_records.sql",
        include_str!("../../migrations/0008_audit_binds_records.sql"),
    ),
    (
        "0009_appeals_and_peer_to_peer.sql",
        include_str!("../../migrations/0009_appeals_and_peer_to_peer.sql"),
    ),
    (
        "0010_requests_report_columns.sql",
        include_str!("../../migrations/0010_requests_report_columns.sql"),
    ),
    (
        "0011_requests_report_index.sql",
        include_str!("../../migrations/0011_requests_report_index.sql"),
    ),
    (
        "0012_members.sql",
        include_str!("../../migrations/0012_members.sql"),
    ),
    (
        "0013_clients.sql",
        include_str!("../../migrations/0013_clients.sql"),
    ),
    (
        "0014_requests_member.sql",
        include_str!("../../migrations/0014_requests_member.sql"),
    ),
    (
        "0015_requests_assignment.sql",
        include_str!("../../migrations/0015_requests_assignment.sql"),
    ),
    (
        "0016_request_attachments_and_comments.sql",
        include_str!("../../migrations/0016_request_attachments_and_comments.sql"),
    ),
    (
        "0017_usage_by_authorization.sql",
        include_str!("../../migrations/0017_usage_by_authorization.sql"),
    ),
    (
        "0018_fhir_claim_successors.sql",
        include_str!("../../migrations/0018_fhir_claim_successors.sql"),
    ),
    (
        "0019_crd_assertions.sql",
        include_str!("../../migrations/0019_crd_assertions.sql"),
    ),
    (
        "0020_authorizations_cancelled.sql",
        include_str!("../../migrations/0020_authorizations_cancelled.sql"),
    ),
];

/// `MIGRATIONS` as sqlx's migrator takes them: version, description, type and the no-transaction
/// mark read from each file as sqlx's own directory source (and `sqlx::migrate!`) reads them,
/// so the versions and checksums are the ones those would record. (`sqlx::migrate!` itself
/// needs sqlx's `macros` feature, which builds sqlx and SQLite a second time for the compiler.)
#[derive(Debug, Clone, Copy)]
struct EmbeddedMigrations;

impl<'s> sqlx::migrate::MigrationSource<'s> for EmbeddedMigrations {
    fn resolve(
        self,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<
                    Output = Result<Vec<sqlx::migrate::Migration>, sqlx::error::BoxDynError>,
                > + Send
                + 's,
        >,
    > {
        use sqlx::migrate::{Migration, MigrationType};
        let resolved = MIGRATIONS
            .iter()
            .map(|(file, sql)| {
                let (version, rest) = file
                    .split_once('_')
                    .ok_or_else(|| format!("migration {file}: no `NNNN_` prefix"))?;
                let version: i64 = version
                    .parse()
                    .map_err(|_| format!("migration {file}: `{version}` is not a version"))?;
                let kind = MigrationType::from_filename(rest);
                let description = rest.trim_end_matches(kind.suffix()).replace('_', " ");
                let no_transaction = sql.starts_with("-- no-transaction");
                Ok(Migration::new(
                    version,
                    description.into(),
                    kind,
                    (*sql).into(),
                    no_transaction,
                ))
            })
            .collect::<Result<Vec<_>, String>>()
            .map_err(Into::into);
        Box::pin(std::future::ready(resolved))
    }
}

/// sqlx's migrator over the embedded migrations.
pub async fn migrator() -> Result<sqlx::migrate::Migrator, StoreError> {
    sqlx::migrate::Migrator::new(EmbeddedMigrations)
        .await
        .map_err(|e| StoreError(e.into()))
}

/// A database failure; the detail stays in the server, never in a response.
#[derive(Debug, thiserror::Error)]
#[error("database: {0}")]
pub struct StoreError(#[from] pub sqlx::Error);

/// The most rows one multi-row statement carries (a power of two, see `row_chunks`): its
/// parameters (at most 22 a row) stay well under SQLite's 32,766 and PostgreSQL's 65,535.
pub(crate) const MAX_ROWS: usize = 256;

/// Rows in chunks of 256, 128, …, 2, 1, largest first: a multi-row statement then comes in
/// nine sizes, which a connection keeps prepared, where one of every size from 1 to 256
/// would be prepared again at almost every batch (sqlx keeps 100 statements a connection).
pub(crate) fn row_chunks<T>(rows: &[T]) -> impl Iterator<Item = &[T]> {
    let mut rest = rows;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let size = MAX_ROWS.min(1 << rest.len().ilog2());
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        Some(chunk)
    })
}

/// A statement with its parameters bound so far.
pub(crate) type Bound<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// Inserts `rows` by one statement per chunk (`row_chunks`): `insert` is the statement up to
/// its `VALUES`, `tail` what follows them (`ON CONFLICT …`, `RETURNING …`, or nothing), and
/// `bind` binds one row's `columns` values in their order. Answers the rows `RETURNING` gave.
pub(crate) async fn insert_rows<T>(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    insert: &str,
    tail: &str,
    columns: usize,
    rows: &[T],
    bind: impl for<'q> Fn(Bound<'q>, &'q T) -> Bound<'q>,
) -> Result<Vec<sqlx::any::AnyRow>, StoreError> {
    let mut returned = Vec::new();
    for chunk in row_chunks(rows) {
        let sql = format!(
            "{insert} VALUES {} {tail}",
            values_sql(chunk.len(), columns)
        );
        let query = chunk.iter().fold(sqlx::query(&sql), &bind);
        returned.extend(query.fetch_all(&mut **tx).await?);
    }
    Ok(returned)
}

/// `($1, …, $columns), (…)`: the `VALUES` of a statement inserting `rows` rows at once.
pub(crate) fn values_sql(rows: usize, columns: usize) -> String {
    let mut sql = String::with_capacity(rows * columns * 5);
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for column in 0..columns {
            if column > 0 {
                sql.push_str(", ");
            }
            sql.push('$');
            sql.push_str(&(row * columns + column + 1).to_string());
        }
        sql.push(')');
    }
    sql
}

/// A pool of SQLite connections, which never test a connection before handing it out: the
/// test is a round trip to the connection's own thread (sqlx pings it), on every statement
/// and transaction's way, and an SQLite connection is a file opened in this process, which
/// nothing outside it can break while it waits in the pool.
fn sqlite_pool(options: AnyPoolOptions) -> AnyPoolOptions {
    options.test_before_acquire(false)
}

/// A PostgreSQL session as the service opens it. Text over about 2 KB (a PAS request Bundle;
/// the whole decisions of rows written before migration 0004) is compressed by PostgreSQL:
/// lz4 (PostgreSQL 14 and later, when built with it) costs a fraction of the default pglz's
/// CPU. A server without it keeps its default, so the error is not fatal.
fn postgres_session(options: AnyPoolOptions) -> AnyPoolOptions {
    postgres_pool(options).after_connect(|connection, _| {
        Box::pin(async move {
            use sqlx::Executor;
            let _ = connection
                .execute("SET default_toast_compression = 'lz4'")
                .await;
            Ok(())
        })
    })
}

/// A pool of PostgreSQL connections, which test a connection before handing it out only when
/// it has waited in the pool for longer than [`POSTGRES_TESTED_AFTER`]. sqlx's default test is
/// a round trip to the server on every acquisition, on top of the one it makes on every
/// release: a key lookup took three round trips for one query, and a PAS submission, which
/// takes more connections than a `/v1` request, paid for it most. A connection that served a
/// call within the last second is taken as alive; one that sat longer (where a server
/// restart, an idle timeout or a dropped route would have broken it) is tested as before,
/// and one found broken is closed and replaced. A connection that breaks in that second fails
/// the call that meets it, as one breaking while in use does.
fn postgres_pool(options: AnyPoolOptions) -> AnyPoolOptions {
    options
        .test_before_acquire(false)
        .before_acquire(|connection, meta| {
            Box::pin(async move {
                if meta.idle_for > POSTGRES_TESTED_AFTER {
                    sqlx::Connection::ping(connection).await?;
                }
                Ok(true)
            })
        })
}

/// How long a PostgreSQL connection waits in its pool before it is tested again when handed out.
const POSTGRES_TESTED_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

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
    /// On PostgreSQL, the connections that hold members' courses across services on one
    /// database (`courses::hold_shared`): a pool of their own, so a held course never waits
    /// for a connection another held course has. None on SQLite and for the writer.
    pub courses: Option<AnyPool>,
    pub backend: Backend,
    /// What `members::any` last found: `LOADED` once the payer's eligibility was seen loaded,
    /// else when (ms since the epoch) the table was last found empty.
    pub(crate) members_seen: std::sync::Arc<std::sync::atomic::AtomicI64>,
}

pub type Tx = sqlx::Transaction<'static, sqlx::Any>;

/// The default database: a file in the working directory.
pub const DEFAULT_URL: &str = "sqlite://priorauth.sqlite?mode=rwc";

/// A new SQLite database is created readable and writable by the service's user alone (it
/// holds patient data); SQLite gives its `-wal` and `-shm` files the same mode. An existing
/// file keeps the mode its operator gave it. An in-memory database has no file.
fn create_private_file(url: &str) -> Result<(), StoreError> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or_default();
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path.starts_with(':') || std::path::Path::new(path).exists() {
        return Ok(());
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        // Made meanwhile by another instance: it is that one's to have made.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError(sqlx::Error::Io(e))),
    }
}

impl Store {
    /// Connects and brings the schema up to date.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        };
        if backend == Backend::Sqlite {
            create_private_file(url)?;
        }
        let options = AnyPoolOptions::new();
        let pool = match backend {
            // One connection: SQLite has one writer, and a single connection never meets a
            // busy or upgrade deadlock. WAL with full sync: a committed decision survives a
            // crash or power loss.
            Backend::Sqlite => {
                sqlite_pool(options)
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
            // managed 865 (bench/README.md). The group commit has a connection of its own
            // besides (`for_writer`).
            Backend::Postgres => {
                postgres_session(options.max_connections(4))
                    .connect(url)
                    .await?
            }
        };
        let mut store = Store {
            reads: pool.clone(),
            courses: None,
            pool,
            backend,
            members_seen: Default::default(),
        };
        store.migrate().await?;
        // An in-memory database is one connection's own: its reads stay on it.
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        if backend == Backend::Postgres {
            let options = (*store.pool.connect_options()).clone();
            store.courses = Some(
                postgres_pool(AnyPoolOptions::new())
                    .max_connections(courses::SHARED_HOLDS)
                    .connect_with(options)
                    .await?,
            );
        }
        if backend == Backend::Sqlite && !in_memory {
            store.reads = sqlite_pool(AnyPoolOptions::new())
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

    /// A read-only transaction that sees the database as of one moment, for a read of several
    /// statements (a request with its events, authorization and claim; a report's counts).
    /// On SQLite every transaction does (WAL gives it a snapshot from its first read). On
    /// PostgreSQL the default, READ COMMITTED, takes a new snapshot per statement, so a
    /// determination committing between two of them could show a request as still pending
    /// beside the event that decided it: REPEATABLE READ takes one for the whole transaction,
    /// and a read-only one never fails for a concurrent write.
    pub async fn snapshot(&self) -> Result<Tx, StoreError> {
        Ok(match self.backend {
            Backend::Sqlite => self.reads.begin().await?,
            Backend::Postgres => {
                self.reads
                    .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    .await?
            }
        })
    }

    /// The store the group commit writes through, made on the writer's own runtime. On
    /// PostgreSQL, a connection of its own: a socket is polled by the runtime that opened it,
    /// and the service's runtime polls its sockets only between the requests it is busy with.
    /// On SQLite, the one writing connection, shared: its statements run on a thread of their
    /// own whichever runtime waits for them, and a second writing connection would only meet
    /// the first's lock.
    pub async fn for_writer(&self) -> Result<Store, StoreError> {
        match self.backend {
            Backend::Sqlite => Ok(self.clone()),
            Backend::Postgres => {
                let options = (*self.pool.connect_options()).clone();
                let pool = postgres_session(AnyPoolOptions::new().max_connections(1))
                    .connect_with(options)
                    .await?;
                Ok(Store {
                    reads: pool.clone(),
                    courses: None,
                    pool,
                    backend: self.backend,
                    members_seen: self.members_seen.clone(),
                })
            }
        }
    }

    /// Brings the schema up to date: sqlx's migrator applies the migrations a database has
    /// not recorded in `_sqlx_migrations`, each with its record in one transaction.
    ///
    /// Instances starting together take turns. On PostgreSQL the migrator holds a session
    /// advisory lock (`pg_advisory_lock`, keyed by the database's name) from before it reads
    /// what was applied until the last migration has committed. On SQLite its lock does
    /// nothing (two processes on a fresh file would both apply 0001, and one would fail on
    /// its record), so the whole run is one `BEGIN IMMEDIATE` transaction: it takes the file's
    /// write lock first, a second process waits for it (`busy_timeout`) and then finds the
    /// work done, and each migration is a savepoint inside it. That run goes through
    /// `Migrator::run_direct`, which sqlx provides for a connection it did not acquire itself:
    /// `run` given a borrowed connection makes a future the compiler does not see as `Send`
    /// (sqlx issue 2016).
    ///
    /// Databases of the previous release (commit 8a3b3e2, whose runner recorded versions 1 to
    /// 3 in `schema_migrations`) have no `_sqlx_migrations`, so 0001 to 0003 run on them
    /// again. That is harmless: those files are the previous runner's statements unchanged,
    /// each `CREATE TABLE/INDEX … IF NOT EXISTS` or `INSERT … ON CONFLICT DO NOTHING`, which
    /// find their table, index or row and change nothing; the run only records the three
    /// versions. (On PostgreSQL, `CREATE INDEX IF NOT EXISTS` still takes its table's SHARE
    /// lock for the moment of that one transaction.) `schema_migrations` is left as it was,
    /// unused. `tests/upgrade.rs` opens databases written by that release and finds every
    /// record as it was and the schema as a fresh database's.
    async fn migrate(&self) -> Result<(), StoreError> {
        use sqlx::Connection;
        let migrator = migrator().await?;
        let outcome = match self.backend {
            Backend::Postgres => migrator.run(&self.pool).await.map_err(sqlx::Error::from),
            Backend::Sqlite => {
                let mut connection = self.pool.acquire().await?;
                async {
                    let mut tx = connection.begin_with("BEGIN IMMEDIATE").await?;
                    migrator.run_direct(&mut *tx).await?;
                    tx.commit().await
                }
                .await
            }
        };
        if outcome.is_err() {
            // sqlx releases PostgreSQL's advisory lock only after a run that succeeded: the
            // connection that may hold it must not stay in the pool.
            self.pool.close().await;
        }
        Ok(outcome?)
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

/// The time `history::generate` writes at, in milliseconds since 1970; 0 (always, but in
/// that command's own process) for the system clock.
static SIMULATED_NOW: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

/// Sets the time every record is written at, for `priorauth history generate`, which fills a
/// fresh database with a past year through the lifecycle in its own process. The server never
/// calls it: its records carry the system's time.
pub fn simulate_clock(ms: i64) {
    SIMULATED_NOW.store(ms, std::sync::atomic::Ordering::Relaxed);
}

/// The time now in milliseconds since 1970 (the simulated time, in the history generator).
pub fn now_ms() -> i64 {
    let simulated = SIMULATED_NOW.load(std::sync::atomic::Ordering::Relaxed);
    if simulated != 0 {
        return simulated;
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_go_in_chunks_of_a_few_sizes_largest_first() {
        let sizes = |n: usize| {
            let rows = vec![0; n];
            row_chunks(&rows).map(<[i32]>::len).collect::<Vec<_>>()
        };
        assert_eq!(sizes(0), Vec::<usize>::new());
        assert_eq!(sizes(1), [1]);
        assert_eq!(sizes(13), [8, 4, 1]);
        assert_eq!(sizes(256), [256]);
        assert_eq!(sizes(600), [256, 256, 64, 16, 8]);
    }

    #[test]
    fn values_number_every_parameter_once() {
        assert_eq!(values_sql(1, 2), "($1, $2)");
        assert_eq!(values_sql(3, 2), "($1, $2), ($3, $4), ($5, $6)");
    }
}
