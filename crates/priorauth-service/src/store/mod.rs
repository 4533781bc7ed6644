//! The database: SQLite (default, a file in the working directory) or PostgreSQL
//! (`DATABASE_URL=postgres://…`), through one code path (sqlx's `Any` driver) and one SQL
//! dialect both accept: `$n` parameters, `ON CONFLICT`, `RETURNING`, integers for flags and
//! times (milliseconds since the epoch), text for JSON.

use sha2::{Digest, Sha256};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

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

/// One entry of the audit log, as it is hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub seq: i64,
    pub at: i64,
    pub actor: String,
    pub organization: String,
    pub action: String,
    pub target: String,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditEntry {
    fn digest(&self) -> String {
        // Fields are joined with a separator that none of them contains (ids, actions).
        sha256_hex(&format!(
            "{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}",
            self.prev_hash,
            self.seq,
            self.at,
            self.actor,
            self.organization,
            self.action,
            self.target
        ))
    }

    fn from_row(row: &AnyRow) -> Result<AuditEntry, sqlx::Error> {
        Ok(AuditEntry {
            seq: row.try_get("seq")?,
            at: row.try_get("at")?,
            actor: row.try_get("actor")?,
            organization: row.try_get("organization")?,
            action: row.try_get("action")?,
            target: row.try_get("target")?,
            prev_hash: row.try_get("prev_hash")?,
            hash: row.try_get("hash")?,
        })
    }
}

/// Who did what to which record, as the audit log records it (with its time and links).
#[derive(Debug, Clone)]
pub struct AuditRecord {
    pub actor: String,
    pub organization: String,
    pub action: &'static str,
    pub target: String,
}

/// Appends to the audit log inside `tx`. The head row is updated first, which holds its lock
/// until commit, so appends from concurrent transactions (and instances) chain in order.
pub async fn audit(tx: &mut Tx, record: &AuditRecord) -> Result<(), StoreError> {
    let mut chain = AuditChain::lock(tx).await?;
    chain.append(tx, record).await?;
    chain.save(tx).await
}

/// The end of the audit chain, held for one transaction: `lock` takes the head row (its row
/// lock lasts until commit), `append` links entries in memory and inserts them, `save` writes
/// the new head. Many entries then cost one head read and one head write.
#[derive(Debug)]
pub struct AuditChain {
    seq: i64,
    hash: String,
}

impl AuditChain {
    pub async fn lock(tx: &mut Tx) -> Result<AuditChain, StoreError> {
        // An update, not a select: it takes the row lock on PostgreSQL (SQLite has one writer).
        let head = sqlx::query("UPDATE audit_head SET seq = seq WHERE id = 1 RETURNING seq, hash")
            .fetch_one(&mut **tx)
            .await?;
        Ok(AuditChain {
            seq: head.try_get("seq")?,
            hash: head.try_get("hash")?,
        })
    }

    pub async fn append(&mut self, tx: &mut Tx, record: &AuditRecord) -> Result<(), StoreError> {
        let mut entry = AuditEntry {
            seq: self.seq + 1,
            at: now_ms(),
            actor: record.actor.clone(),
            organization: record.organization.clone(),
            action: record.action.to_string(),
            target: record.target.clone(),
            prev_hash: self.hash.clone(),
            hash: String::new(),
        };
        entry.hash = entry.digest();
        sqlx::query("INSERT INTO audit_log (seq, at, actor, organization, action, target, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
            .bind(entry.seq)
            .bind(entry.at)
            .bind(&entry.actor)
            .bind(&entry.organization)
            .bind(&entry.action)
            .bind(&entry.target)
            .bind(&entry.prev_hash)
            .bind(&entry.hash)
            .execute(&mut **tx)
            .await?;
        self.seq = entry.seq;
        self.hash = entry.hash;
        Ok(())
    }

    pub async fn save(self, tx: &mut Tx) -> Result<(), StoreError> {
        sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
            .bind(self.seq)
            .bind(&self.hash)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

/// What `priorauth audit verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditReport {
    pub entries: i64,
    /// Empty when the chain is intact.
    pub problems: Vec<String>,
}

/// Walks the whole log: each entry's hash, its link to the one before, the sequence without
/// gaps, and the head (which catches entries deleted from the end).
pub async fn verify_audit(store: &Store) -> Result<AuditReport, StoreError> {
    let rows = sqlx::query("SELECT seq, at, actor, organization, action, target, prev_hash, hash FROM audit_log ORDER BY seq")
        .fetch_all(&store.pool)
        .await?;
    let mut problems = Vec::new();
    let mut previous_hash = String::new();
    let mut expected_seq = 1;
    for row in &rows {
        let entry = AuditEntry::from_row(row)?;
        if entry.seq != expected_seq {
            problems.push(format!(
                "entry {expected_seq} is missing (next is {})",
                entry.seq
            ));
        }
        if entry.prev_hash != previous_hash {
            problems.push(format!(
                "entry {} does not follow the entry before it",
                entry.seq
            ));
        }
        if entry.digest() != entry.hash {
            problems.push(format!(
                "entry {} was changed after it was written",
                entry.seq
            ));
        }
        previous_hash = entry.hash.clone();
        expected_seq = entry.seq + 1;
    }
    let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
        .fetch_one(&store.pool)
        .await?;
    let (head_seq, head_hash): (i64, String) = (head.try_get("seq")?, head.try_get("hash")?);
    if head_seq != expected_seq - 1 || head_hash != previous_hash {
        problems.push(format!(
            "the log ends at entry {} but {head_seq} were written",
            expected_seq - 1
        ));
    }
    Ok(AuditReport {
        entries: rows.len() as i64,
        problems,
    })
}
