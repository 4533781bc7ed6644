//! What a request stores, on SQLite and (with `DATABASE_URL`) PostgreSQL: the facts of a
//! decision (case, policy version, outcome, deciding criteria, the decision's hash), not its
//! explanation; reads and replays recompute the explanation and prove it is the one answered.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use priorauth_service::keys::Role;
use priorauth_service::store::packed::{pack, unpack};
use serde_json::{Value, json};
use sqlx::Row;
use support::{Server, case, for_each_backend};

/// The stored decision columns of a request's events, oldest first.
async fn stored_events(server: &Server, id: &str) -> Vec<(String, String, String, Option<String>)> {
    sqlx::query("SELECT kind, case_json, decision_json, decision_sha256 FROM request_events WHERE request_id = $1 ORDER BY seq")
        .bind(id)
        .fetch_all(&server.store().pool)
        .await
        .unwrap()
        .iter()
        .map(|r| {
            (
                r.try_get("kind").unwrap(),
                unpack(r.try_get("case_json").unwrap()).unwrap(),
                unpack(r.try_get("decision_json").unwrap()).unwrap(),
                r.try_get("decision_sha256").unwrap(),
            )
        })
        .collect()
}

async fn stored_decision(server: &Server, id: &str) -> String {
    sqlx::query("SELECT decision_json FROM requests WHERE id = $1")
        .bind(id)
        .fetch_one(&server.store().pool)
        .await
        .unwrap()
        .try_get("decision_json")
        .map(|stored| unpack(stored).unwrap())
        .unwrap()
}

#[tokio::test]
async fn a_request_stores_the_facts_and_reads_recompute_the_explanation() {
    for_each_backend(|url| async move {
        let server = Server::start(&url).await;
        let (_, submitter) = server
            .key("clinic-a", Role::Submitter, "Clinic A EHR", "")
            .await;

        // An approval: the explanation is not stored, its hash is.
        let body = json!({"plan": "masshealth", "case": case("E01")});
        let first = server
            .call(
                reqwest::Method::POST,
                "/v1/requests",
                Some(&submitter),
                Some(&body),
                &[("Idempotency-Key", "storage-1")],
            )
            .await;
        first.expect(201);
        let answer = first.body;
        let id = answer["id"].as_str().unwrap().to_string();
        assert_eq!(answer["outcome"], "approve", "{answer}");
        let events = stored_events(&server, &id).await;
        assert_eq!(events.len(), 1);
        let (kind, case_json, decision_json, sha256) = &events[0];
        assert_eq!(kind, "submitted");
        assert_eq!(case_json, "", "the first event's case is the request's");
        assert_eq!(decision_json, "", "no explanation stored");
        assert_eq!(sha256.as_deref().map(str::len), Some(64));
        let record = stored_decision(&server, &id).await;
        let explanation = answer["decision"].to_string();
        assert!(
            record.len() * 5 < explanation.len(),
            "the stored record ({} bytes) is a fraction of the explanation ({} bytes)",
            record.len(),
            explanation.len()
        );
        let record: Value = serde_json::from_str(&record).unwrap();
        assert_eq!(record["outcome"], "approve");
        assert!(!record["criteria"].as_array().unwrap().is_empty());

        // A read recomputes the explanation the requester was given, and says it is that one.
        let read = server.get(&format!("/v1/requests/{id}"), &submitter).await;
        read.expect(200);
        assert_eq!(read.body["decision"], answer["decision"]);
        assert_eq!(read.body["history"][0]["decision"], answer["decision"]);
        assert_eq!(read.body["history"][0]["decision_verified"], true);
        assert_eq!(read.body["history"][0]["case"], read.body["case"]);

        // A replay answers the first answer.
        let replay = server
            .call(
                reqwest::Method::POST,
                "/v1/requests",
                Some(&submitter),
                Some(&body),
                &[("Idempotency-Key", "storage-1")],
            )
            .await;
        replay.expect(200);
        assert_eq!(replay.body.to_string(), answer.to_string());

        // A completion stores its case, not its explanation; the history shows each decision.
        let pending = server
            .submitted(&submitter, "eocco-medicaid", case("E06"))
            .await;
        assert_eq!(pending["outcome"], "incomplete", "{pending}");
        let pending_id = pending["id"].as_str().unwrap();
        let missing = pending["decision"]["missing"].as_array().unwrap().clone();
        assert!(!missing.is_empty());
        let completed = server
            .patch(
                &format!("/v1/requests/{pending_id}"),
                &submitter,
                &json!({"diagnosis": {"mrd_percent": 0.8}}),
            )
            .await;
        completed.expect(200);
        let events = stored_events(&server, pending_id).await;
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].0, "completed");
        assert!(events[1].1.contains("mrd_percent"), "the completed case");
        assert_eq!(events[1].2, "");
        let read = server
            .get(&format!("/v1/requests/{pending_id}"), &submitter)
            .await;
        assert_eq!(read.body["history"][0]["decision"], pending["decision"]);
        assert_eq!(
            read.body["history"][1]["decision"],
            completed.body["decision"]
        );
        assert_eq!(read.body["history"][1]["decision_verified"], true);
        assert_eq!(read.body["case"]["diagnosis"]["mrd_percent"], 0.8);
        assert!(read.body["history"][0]["case"]["diagnosis"]["mrd_percent"].is_null());

        // A stored case changed behind the service's back recomputes to another decision:
        // the read says so instead of passing it off as the one answered.
        let pool = &server.store().pool;
        let stored: String = sqlx::query_scalar("SELECT case_json FROM requests WHERE id = $1")
            .bind(&id)
            .fetch_one(pool)
            .await
            .unwrap();
        assert!(stored.starts_with("z1:"), "stored packed: {stored}");
        let changed = unpack(stored)
            .unwrap()
            .replace("\"cycles\":2", "\"cycles\":1");
        sqlx::query("UPDATE requests SET case_json = $1 WHERE id = $2")
            .bind(pack(&changed))
            .bind(&id)
            .execute(pool)
            .await
            .unwrap();
        let read = server.get(&format!("/v1/requests/{id}"), &submitter).await;
        read.expect(200);
        assert_eq!(
            read.body["history"][0]["decision_verified"], false,
            "{}",
            read.body
        );
        assert_ne!(read.body["decision"], answer["decision"]);
        server.stop().await;
    })
    .await;
}

#[cfg(unix)]
#[tokio::test]
async fn a_new_sqlite_database_is_readable_by_the_service_alone() {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::temp_dir().join(format!(
        "priorauth-mode-{}.sqlite",
        priorauth_service::store::random_id("")
    ));
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let store = priorauth_service::Store::connect(&url).await.unwrap();
    let mode = |suffix: &str| {
        let mut file = path.clone().into_os_string();
        file.push(suffix);
        std::fs::metadata(&file).map(|m| m.permissions().mode() & 0o777)
    };
    assert_eq!(mode("").unwrap(), 0o600);
    // WAL mode is on from the first connection: its files take the database's mode.
    assert_eq!(mode("-wal").unwrap(), 0o600);
    store.pool.close().await;
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.clone().into_os_string();
        file.push(suffix);
        let _ = std::fs::remove_file(file);
    }
}

async fn requests_in(tx: &mut priorauth_service::store::Tx) -> i64 {
    sqlx::query("SELECT COUNT(*) AS n FROM requests")
        .fetch_one(&mut **tx)
        .await
        .unwrap()
        .try_get("n")
        .unwrap()
}

/// A read of several statements sees one moment of the database on both back ends: a request
/// submitted while a snapshot is open is not in it, and is in the next.
#[tokio::test]
async fn a_read_sees_the_database_as_of_one_moment() {
    for_each_backend(|url| async move {
        let server = Server::start(&url).await;
        let (_, submitter) = server
            .key("clinic-a", Role::Submitter, "Clinic A EHR", "")
            .await;
        server
            .submit(&submitter, "masshealth", case("E01"))
            .await
            .expect(201);
        let mut snapshot = server.store().snapshot().await.unwrap();
        assert_eq!(requests_in(&mut snapshot).await, 1);
        server
            .submit(&submitter, "masshealth", case("E01"))
            .await
            .expect(201);
        assert_eq!(
            requests_in(&mut snapshot).await,
            1,
            "the snapshot's moment, not the latest"
        );
        snapshot.commit().await.unwrap();
        let mut next = server.store().snapshot().await.unwrap();
        assert_eq!(requests_in(&mut next).await, 2);
        next.commit().await.unwrap();
        server.stop().await;
    })
    .await;
}
