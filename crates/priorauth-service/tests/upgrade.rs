//! Upgrades: databases written by the previous release (commit 8a3b3e2, whose hand-rolled
//! runner recorded schema versions 1 to 3 in `schema_migrations`) opened by the current code,
//! once from the SQLite file and, when `DATABASE_URL` names a PostgreSQL server, once from the
//! PostgreSQL dump (`tests/fixtures/make-old-databases.sh` made both through the old
//! binary's HTTP API). Opening runs the migrations; every record must then be there as the old
//! release answered it: the row count of every table, each request's and each
//! authorization's GET answer, compared whole (every field of those answers comes from the
//! records, times included, none from the clock), the audit chain, the keys. The upgraded
//! schema must be a fresh database's, opening again must change nothing, and the old records
//! must take new writes. Also: the embedded migrations are the `migrations/` directory, and
//! instances opening one fresh database at once take turns.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use priorauth_service::Store;
use priorauth_service::store::{self, Backend, verify_audit};
use serde_json::{Value, json};
use sqlx::Row;
use support::{Server, case, for_each_backend};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/8a3b3e2");

/// The tables whose rows belong to the records (the audit log grows with every read).
const RECORDS: &[&str] = &[
    "api_keys",
    "requests",
    "request_events",
    "determinations",
    "authorizations",
    "usage",
    "fhir_claims",
    "subscriptions",
    "notifications",
    "schema_migrations",
];

/// The migrations in `migrations/` (`NNNN_description.sql`).
fn migration_count() -> usize {
    std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "sql")
        })
        .count()
}

fn expected(backend: &str) -> Value {
    let path = Path::new(FIXTURES).join(backend).join("expected.json");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("expected.json is JSON")
}

/// Puts the old release's database where `url` points (an empty database from
/// `for_each_backend`) and answers what it held.
async fn restore_old_database(url: &str) -> Value {
    if url.starts_with("sqlite:") {
        let path = url
            .strip_prefix("sqlite://")
            .and_then(|rest| rest.split_once('?'))
            .map(|(path, _)| path)
            .expect("a sqlite://PATH?… URL");
        std::fs::copy(Path::new(FIXTURES).join("sqlite/priorauth.sqlite"), path)
            .expect("copy the SQLite fixture");
        expected("sqlite")
    } else {
        let dump = std::fs::read_to_string(Path::new(FIXTURES).join("postgres/dump.sql"))
            .expect("read the PostgreSQL dump");
        // A connection of its own (the dump empties its search_path), in a pool: a future that
        // borrows a connection is not `Send` to the compiler.
        let loader = single_connection(url).await;
        sqlx::raw_sql(&dump)
            .execute(&loader)
            .await
            .expect("load the PostgreSQL dump");
        loader.close().await;
        expected("postgres")
    }
}

async fn single_connection(url: &str) -> sqlx::PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .expect("connect to the database")
}

/// Fields added to the answers since the release that wrote the fixture, by JSON pointer: an
/// additive change a client reading the old answer ignores. Anything else must read as saved.
const ADDED_SINCE: &[&str] = &[
    // Whether the request is past its clock (a request of the fixture decided on receipt
    // has no due time, so `false`).
    "/late",
    // The requesting organization, shown with the request since the console names the clinic.
    "/organization",
    // The files sent with the request (none in the fixture).
    "/attachments",
    // The day its provider cancelled an authorization (none of the fixture's: null).
    "/authorization/cancelled_on",
    "/cancelled_on",
];

/// The JSON pointers at which two values differ (at most a few), for a readable failure.
fn differences(path: String, left: &Value, right: &Value, found: &mut Vec<String>) {
    if found.len() >= 10 || left == right {
        return;
    }
    match (left, right) {
        (Value::Object(a), Value::Object(b)) => {
            let added = |key: &String| {
                !b.contains_key(key) && ADDED_SINCE.contains(&format!("{path}/{key}").as_str())
            };
            for key in a
                .keys()
                .filter(|k| !added(k))
                .chain(b.keys().filter(|k| !a.contains_key(*k)))
            {
                let missing = Value::String("<absent>".into());
                differences(
                    format!("{path}/{key}"),
                    a.get(key).unwrap_or(&missing),
                    b.get(key).unwrap_or(&missing),
                    found,
                );
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                differences(format!("{path}/{i}"), x, y, found);
            }
        }
        _ => found.push(format!("{path}: {left} instead of {right}")),
    }
}

#[track_caller]
fn assert_same(what: &str, actual: &Value, saved: &Value) {
    let mut found = Vec::new();
    differences(String::new(), actual, saved, &mut found);
    assert!(found.is_empty(), "{what} changed: {found:#?}");
}

async fn counts(server: &Server) -> BTreeMap<String, i64> {
    let mut counts = BTreeMap::new();
    for table in RECORDS.iter().chain(&["audit_log", "audit_head"]) {
        counts.insert(table.to_string(), server.count(table).await);
    }
    counts
}

/// The migrations a database recorded as applied (sqlx records a failed one too, as not
/// successful, and then refuses to start: none may be).
async fn applied(store: &Store) -> Vec<(i64, Vec<u8>)> {
    let failed = sqlx::query("SELECT version FROM _sqlx_migrations WHERE NOT success")
        .fetch_all(&store.pool)
        .await
        .expect("read _sqlx_migrations");
    assert!(failed.is_empty(), "a migration failed");
    sqlx::query("SELECT version, checksum FROM _sqlx_migrations ORDER BY version")
        .fetch_all(&store.pool)
        .await
        .expect("read _sqlx_migrations")
        .iter()
        .map(|row| (row.get("version"), row.get("checksum")))
        .collect()
}

/// The schema as a sorted list of lines: tables, columns, indexes and constraints, without the
/// migration runners' own tables. On PostgreSQL, that of `namespace`.
async fn schema(store: &Store, namespace: &str) -> Vec<String> {
    let runners = "('schema_migrations', '_sqlx_migrations')";
    let queries = match store.backend {
        Backend::Sqlite => vec![format!(
            "SELECT type || ' ' || name || ' ' || tbl_name || ' ' || COALESCE(sql, '') AS line \
             FROM sqlite_master WHERE tbl_name NOT IN {runners}"
        )],
        Backend::Postgres => vec![
            format!(
                "SELECT table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable \
                 || ' ' || COALESCE(column_default, '') AS line FROM information_schema.columns \
                 WHERE table_schema = '{namespace}' AND table_name NOT IN {runners}"
            ),
            format!(
                "SELECT replace(indexdef, '{namespace}.', '') AS line FROM pg_indexes \
                 WHERE schemaname = '{namespace}' AND tablename NOT IN {runners}"
            ),
            format!(
                "SELECT c.relname || ' ' || k.conname || ' ' || pg_get_constraintdef(k.oid) AS line \
                 FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = '{namespace}' AND c.relname NOT IN {runners}"
            ),
        ],
    };
    let mut lines = Vec::new();
    for query in queries {
        for row in sqlx::query(&query)
            .fetch_all(&store.pool)
            .await
            .unwrap_or_else(|e| panic!("{query}: {e}"))
        {
            let line: String = row.get("line");
            lines.push(line.split_whitespace().collect::<Vec<_>>().join(" "));
        }
    }
    lines.sort();
    lines
}

/// A fresh database's schema, made by the current code: in memory on SQLite (the in-memory
/// URL works), in a schema of its own beside the upgraded one on PostgreSQL.
async fn fresh_schema(url: &str) -> Vec<String> {
    if url.starts_with("sqlite:") {
        let fresh = Store::connect("sqlite::memory:").await.expect("open");
        assert_eq!(applied(&fresh).await.len(), migration_count());
        let lines = schema(&fresh, "main").await;
        fresh.pool.close().await;
        lines
    } else {
        let admin = single_connection(url).await;
        sqlx::raw_sql("CREATE SCHEMA fresh")
            .execute(&admin)
            .await
            .expect("create a schema");
        admin.close().await;
        let separator = if url.contains('?') { '&' } else { '?' };
        let fresh = Store::connect(&format!("{url}{separator}options[search_path]=fresh"))
            .await
            .expect("open a fresh schema");
        assert_eq!(applied(&fresh).await.len(), migration_count());
        let lines = schema(&fresh, "fresh").await;
        fresh.pool.close().await;
        lines
    }
}

/// Each request and authorization of the fixture, read through the API, as the old release
/// answered it.
async fn assert_records_read_as_before(server: &Server, expected: &Value) {
    let submitter = expected["keys"]["submitter"].as_str().unwrap();
    let requests = expected["requests"].as_object().unwrap();
    let authorizations = expected["authorizations"].as_object().unwrap();
    assert_eq!(requests.len(), 8);
    assert_eq!(authorizations.len(), 5);
    for (id, saved) in requests {
        let read = server.get(&format!("/v1/requests/{id}"), submitter).await;
        read.expect(200);
        assert_same(&format!("GET /v1/requests/{id}"), &read.body, saved);
    }
    for (number, saved) in authorizations {
        let read = server
            .get(&format!("/v1/authorizations/{number}"), submitter)
            .await;
        read.expect(200);
        assert_same(
            &format!("GET /v1/authorizations/{number}"),
            &read.body,
            saved,
        );
    }
}

#[track_caller]
fn request_with_status<'a>(expected: &'a Value, status: &str) -> &'a str {
    expected["requests"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(_, r)| r["status"] == status)
        .map(|(id, _)| id.as_str())
        .unwrap_or_else(|| panic!("the fixture has no request {status}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_of_the_previous_release_upgrades_with_every_record_intact() {
    for_each_backend(|url| async move {
        let expected = restore_old_database(&url).await;
        let saved: BTreeMap<String, i64> =
            serde_json::from_value(expected["counts"].clone()).unwrap();
        // What the fixture holds: the previous runner's three versions, no sqlx table.
        assert_eq!(saved["schema_migrations"], 3);
        assert!(saved["requests"] > 0 && saved["usage"] > 0 && saved["determinations"] > 0);

        // Opened by the current code: the migrations run.
        let server = Server::start(&url).await;
        let migrations = applied(server.store()).await;
        assert_eq!(
            migrations.iter().map(|m| m.0).collect::<Vec<_>>(),
            (1..=migration_count() as i64).collect::<Vec<_>>()
        );
        // Every row is there (counted before any read, which the audit log records).
        assert_eq!(counts(&server).await, saved);
        let report = verify_audit(server.store()).await.unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!(report.entries, saved["audit_log"]);
        // The upgraded schema is a fresh database's.
        let upgraded = schema(server.store(), "public").await;
        let fresh = fresh_schema(&url).await;
        assert_eq!(upgraded, fresh);
        assert_records_read_as_before(&server, &expected).await;
        // The old keys still authenticate, with their roles.
        let reviewer = expected["keys"]["reviewer"].as_str().unwrap();
        server.get("/v1/queue", reviewer).await.expect(200);
        // The UM report counts the old records, whose drug was not recorded, by their status
        // and their determinations (looked up: no copy on the old rows).
        let um = server
            .get("/v1/reports/um?from=2000-01-01&to=2100-12-31", reviewer)
            .await;
        um.expect(200);
        let groups = um.body["groups"].as_array().unwrap();
        let sum = |figure: &str| {
            groups
                .iter()
                .map(|g| g[figure].as_i64().unwrap())
                .sum::<i64>()
        };
        assert_eq!(sum("requests"), saved["requests"]);
        assert!(groups.iter().all(|g| g["drug"] == "unrecorded"));
        let by_status = |status: &str| {
            let n = expected["requests"]
                .as_object()
                .unwrap()
                .values()
                .filter(|r| r["status"] == status)
                .count();
            i64::try_from(n).unwrap()
        };
        assert_eq!(sum("denied"), by_status("denied"));
        let approved = sum("approved_touchless")
            + sum("approved_by_reviewer")
            + sum("approved_with_changes")
            + sum("approved_on_appeal");
        assert_eq!(approved, by_status("approved"));
        let determined = expected["requests"]
            .as_object()
            .unwrap()
            .values()
            .filter(|r| r["status"] == "approved" && !r["determination"].is_null())
            .count();
        assert_eq!(
            sum("approved_by_reviewer") + sum("approved_with_changes"),
            i64::try_from(determined).unwrap()
        );
        server.stop().await;

        // Opened again: nothing to apply, nothing changed.
        let server = Server::start(&url).await;
        assert_eq!(applied(server.store()).await, migrations);
        let mut now = counts(&server).await;
        let mut then = saved.clone();
        for table in ["audit_log", "audit_head"] {
            now.remove(table);
            then.remove(table);
        }
        assert_eq!(now, then);
        assert_records_read_as_before(&server, &expected).await;

        // The old records take new writes: a new request, a completion and a determination
        // of requests the old release left waiting.
        let submitter = expected["keys"]["submitter"].as_str().unwrap();
        let submitted = server.submitted(submitter, "masshealth", case("E01")).await;
        assert_eq!(submitted["status"], "approved");
        let waiting = request_with_status(&expected, "pending_information");
        let completed = server
            .patch(
                &format!("/v1/requests/{waiting}"),
                submitter,
                &json!({"diagnosis": {"mrd_percent": 0.8}}),
            )
            .await;
        completed.expect(200);
        assert_eq!(completed.body["history"].as_array().unwrap().len(), 2);
        let queued = request_with_status(&expected, "pending_review");
        server
            .determine(
                reviewer,
                queued,
                "approve",
                "new-to-plan-on-treatment",
                "Already on therapy when the member joined the plan.",
            )
            .await
            .expect(200);
        assert_eq!(server.count("requests").await, saved["requests"] + 1);
        let report = verify_audit(server.store()).await.unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn the_embedded_migrations_are_the_migrations_directory() {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let read = sqlx::migrate::Migrator::new(directory.as_path())
        .await
        .expect("sqlx reads the directory");
    let embedded = store::migrator().await.expect("the embedded migrations");
    let describe = |migrator: &sqlx::migrate::Migrator| -> Vec<String> {
        migrator
            .iter()
            .map(|m| {
                format!(
                    "{} {} {:?} no_tx={} {}",
                    m.version,
                    m.description,
                    m.migration_type,
                    m.no_tx,
                    hex::encode(&m.checksum)
                )
            })
            .collect()
    };
    assert_eq!(describe(&embedded), describe(&read));
    assert!(embedded.iter().count() >= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_opening_one_fresh_database_at_once_take_turns() {
    for_each_backend(|url| async move {
        let opening: Vec<_> = (0..4)
            .map(|_| {
                let url = url.clone();
                tokio::spawn(async move { Store::connect(&url).await })
            })
            .collect();
        let mut stores = Vec::new();
        for store in opening {
            stores.push(store.await.unwrap().expect("every instance opens"));
        }
        for store in &stores {
            assert_eq!(applied(store).await.len(), migration_count());
        }
        for store in stores {
            store.pool.close().await;
            store.reads.close().await;
        }
    })
    .await;
}
