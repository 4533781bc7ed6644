//! Group commit. A new request (its row, first event, authorization, FHIR link and audit
//! entry) and the audit entry of a read are queued here, and one task writes whatever has
//! queued in one transaction: one audit head read and write, one statement per kind of row
//! and one commit (one fsync on SQLite, one WAL flush on PostgreSQL) for all of them. Each
//! caller is answered only after that commit, so an answer is never given for a row that is
//! not durable.
//!
//! A batch of audit entries alone (the entries of reads, replays and refused calls: what was
//! shown or refused, never a change anyone is answered) is committed before its callers are
//! answered but without waiting for the disk: the entry is in the chain and survives a
//! crash of the process, and reaches the disk with the next commit that syncs (any write's)
//! or within [`SYNC_WITHIN`] of its commit, when the writer syncs SQLite's WAL file itself
//! (on PostgreSQL, its WAL writer's own bound, three times `wal_writer_delay`, 600 ms by
//! default). Only a crash of the machine in that
//! window can lose it, and then the chain ends intact before it (a log's lost tail is a
//! prefix). Waiting for the disk was half of a read's latency and most of its tail.
//!
//! While a batch commits the next one queues, so a batch is as large as the load makes it
//! (one write at low load, no added wait). If any statement of a batch fails, the batch is
//! rolled back and each of its writes is retried in a transaction of its own, so one bad
//! write costs the others nothing but time.

use std::time::Duration;

use sqlx::Executor;
use tokio::sync::{mpsc, oneshot};

use super::authorizations::{self, NewAuthorization};
use super::requests::{self, NewRequest};
use super::{AuditChain, AuditRecord, Backend, Binds, Store, StoreError, Tx};

/// The most writes one transaction takes.
const MAX_BATCH: usize = 256;
/// Writes waiting for the task beyond this make callers wait to queue (back pressure).
const QUEUE: usize = 4096;
/// On SQLite, audit entries committed without a sync are synced at most this long after
/// the first of them (module docs).
pub const SYNC_WITHIN: Duration = Duration::from_millis(200);

#[derive(Debug, Clone)]
pub enum Write {
    Request(Box<NewRequest>),
    /// An audit entry on its own (a replayed answer).
    Audit(AuditRecord),
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Stored,
    /// The organization already has a request with this idempotency key: nothing was written.
    DuplicateKey,
}

struct Job {
    write: Write,
    done: oneshot::Sender<Result<Written, StoreError>>,
}

/// The queue to the writing task.
#[derive(Debug, Clone)]
pub struct Writer {
    queue: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writing task on a thread and runtime of its own; it ends when every
    /// `Writer` is dropped.
    ///
    /// Why not a task among the service's: a batch is a dozen statements in turn, and after
    /// each one the task waits to be woken. On the service's runtime it is woken behind
    /// whatever requests the workers are busy deciding, so under load every statement waited
    /// for a worker and the one writer, not the CPU or the disk, set the pace. On a thread of
    /// its own it runs as soon as its statement is done. On PostgreSQL it also has a
    /// connection of its own, whose socket its own runtime polls (`Store::for_writer`).
    pub async fn start(store: Store) -> Result<Writer, StoreError> {
        let (queue, receiver) = mpsc::channel(QUEUE);
        let (started, ready) = oneshot::channel();
        std::thread::Builder::new()
            .name("priorauth-writer".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        let _ = started.send(Err(StoreError(sqlx::Error::Io(error))));
                        return;
                    }
                };
                runtime.block_on(async move {
                    match store.for_writer().await {
                        Ok(store) => {
                            let _ = started.send(Ok(()));
                            run(store, receiver).await;
                        }
                        Err(error) => {
                            let _ = started.send(Err(error));
                        }
                    }
                });
            })
            .map_err(|error| StoreError(sqlx::Error::Io(error)))?;
        ready.await.map_err(|_| stopped())??;
        Ok(Writer { queue })
    }

    /// Writes and commits; answers once the write is durable.
    pub async fn write(&self, write: Write) -> Result<Written, StoreError> {
        let (done, answer) = oneshot::channel();
        self.queue
            .send(Job { write, done })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> StoreError {
    StoreError(sqlx::Error::PoolClosed)
}

async fn run(store: Store, mut receiver: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    // SQLite: when the oldest entry committed without a sync was committed (`commit_entries`);
    // it is synced by SYNC_WITHIN after that, whether the writer is idle or not.
    let mut unsynced_since: Option<tokio::time::Instant> = None;
    // The database file SQLite names, found at the first unsynced commit, while the pool is
    // open: the last sync, when the queue closes, may come after the pool has been closed.
    let mut database_file: Option<String> = None;
    loop {
        let received = match unsynced_since {
            Some(since) => {
                let deadline = since + SYNC_WITHIN;
                match tokio::time::timeout_at(deadline, receiver.recv_many(&mut batch, MAX_BATCH))
                    .await
                {
                    Ok(received) => received,
                    Err(_due) => {
                        sync_wal(&store, &database_file, &mut unsynced_since).await;
                        continue;
                    }
                }
            }
            None => receiver.recv_many(&mut batch, MAX_BATCH).await,
        };
        if received == 0 {
            sync_wal(&store, &database_file, &mut unsynced_since).await;
            break;
        }
        let writes: Vec<&Write> = batch.iter().map(|job| &job.write).collect();
        let entries_only = writes.iter().all(|write| matches!(write, Write::Audit(_)));
        let committed = if entries_only {
            commit_entries(&store, &writes).await
        } else {
            commit(&store, &writes).await
        };
        match (&committed, entries_only) {
            (Ok(_), true) if store.backend == Backend::Sqlite => {
                unsynced_since.get_or_insert_with(tokio::time::Instant::now);
                if database_file.is_none() {
                    database_file = main_file(&store).await.ok();
                }
            }
            // A commit that syncs syncs the entries before it too (the WAL is one file).
            (Ok(_), false) => unsynced_since = None,
            _ => {}
        }
        match committed {
            Ok(written) => {
                for (job, written) in batch.drain(..).zip(written) {
                    let _ = job.done.send(Ok(written));
                }
            }
            Err(error) if batch.len() == 1 => {
                if let Some(job) = batch.pop() {
                    let _ = job.done.send(Err(error));
                }
            }
            // Each retried alone, with a sync. (An entries-only batch that failed after its
            // commit, in the closing statements of `audit::append_unsynced`, would have its
            // entries recorded twice: an access recorded twice, never one missed.)
            Err(_) => {
                for job in batch.drain(..) {
                    let written = commit(&store, &[&job.write]).await.and_then(only);
                    let _ = job.done.send(written);
                }
            }
        }
        if unsynced_since.is_some_and(|since| since.elapsed() >= SYNC_WITHIN) {
            sync_wal(&store, &database_file, &mut unsynced_since).await;
        }
    }
}

async fn commit(store: &Store, writes: &[&Write]) -> Result<Vec<Written>, StoreError> {
    commit_in(store, writes, "").await
}

/// [`commit`], with `setting` run first in the transaction on PostgreSQL (a `SET LOCAL`, the
/// transaction's own: nothing is left on the connection).
async fn commit_in(
    store: &Store,
    writes: &[&Write],
    setting: &str,
) -> Result<Vec<Written>, StoreError> {
    let mut tx = store.pool.begin().await?;
    if store.backend == Backend::Postgres && !setting.is_empty() {
        tx.execute(setting).await?;
    }
    let mut chain = AuditChain::lock(&mut tx).await?;
    let written = write_in(&mut tx, &mut chain, writes).await?;
    chain.save(&mut tx).await?;
    tx.commit().await?;
    Ok(written)
}

/// A batch of audit entries alone, committed without waiting for the disk (module docs).
async fn commit_entries(store: &Store, writes: &[&Write]) -> Result<Vec<Written>, StoreError> {
    let records: Vec<AuditRecord> = writes
        .iter()
        .filter_map(|write| match write {
            Write::Audit(record) => Some(record.clone()),
            Write::Request(_) => None,
        })
        .collect();
    let nothing_to_read = records
        .iter()
        .all(|record| record.binds.is_none() || record.state.is_some());
    if store.backend == Backend::Postgres || !nothing_to_read {
        return commit_in(store, writes, "SET LOCAL synchronous_commit = off").await;
    }
    // The connection is the one every other write uses: it goes back to the pool syncing
    // fully and outside any transaction, or not at all (closed, and a new one opened).
    let mut connection = store.pool.acquire().await?;
    if let Err(error) = super::audit::append_unsynced(&mut connection, &records).await {
        connection.close_on_drop();
        return Err(error);
    }
    Ok(vec![Written::Stored; records.len()])
}

/// Syncs SQLite's WAL file, and with it every entry committed without a sync (the WAL is
/// appended in order, so syncing the file makes every commit in it durable), as SQLite
/// itself syncs it at a full commit: `fdatasync` of the file SQLite names for the database,
/// plus `-wal`. Cleared only once synced; a failure is tried again at the next deadline.
async fn sync_wal(
    store: &Store,
    database_file: &Option<String>,
    unsynced_since: &mut Option<tokio::time::Instant>,
) {
    if unsynced_since.is_none() {
        return;
    }
    let file = match database_file {
        Some(file) => Ok(file.clone()),
        None => main_file(store).await,
    };
    match file.and_then(|file| wal_synced(&file)) {
        Ok(()) => *unsynced_since = None,
        Err(error) => {
            eprintln!("syncing the audit entries of reads: {error}");
            *unsynced_since = Some(tokio::time::Instant::now());
        }
    }
}

/// The file SQLite names for the database (empty for an in-memory one).
async fn main_file(store: &Store) -> Result<String, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'")
            .fetch_one(&store.pool)
            .await?,
    )
}

fn wal_synced(file: &str) -> Result<(), StoreError> {
    // An in-memory database has no file, and nothing to lose that a crash would not.
    if file.is_empty() {
        return Ok(());
    }
    let io = |error| StoreError(sqlx::Error::Io(error));
    match std::fs::File::open(format!("{file}-wal")) {
        Ok(wal) => wal.sync_data().map_err(io),
        // No WAL: every commit is in the database file, synced by the checkpoint that
        // removed it.
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(io(error)),
    }
}

/// One write inside `tx` ([`write_in`] of a batch of one).
pub async fn write_one(
    tx: &mut Tx,
    chain: &mut AuditChain,
    write: &Write,
) -> Result<Written, StoreError> {
    write_in(tx, chain, &[write]).await.and_then(only)
}

/// What the one write of a batch of one did.
fn only(written: Vec<Written>) -> Result<Written, StoreError> {
    written
        .first()
        .copied()
        .ok_or_else(|| StoreError(sqlx::Error::Protocol("a write was not answered".into())))
}

/// Writes a batch inside `tx`, its audit entries chained on `chain` in the batch's order.
/// Each kind of row goes in by one statement per chunk of the batch (`store::insert_rows`),
/// so a batch costs about as many statements as one write, plus one read of each new
/// request's state for its entry. Also used by the requests that must read and write in one
/// transaction of their own (renewals).
pub async fn write_in(
    tx: &mut Tx,
    chain: &mut AuditChain,
    writes: &[&Write],
) -> Result<Vec<Written>, StoreError> {
    let new: Vec<&NewRequest> = writes
        .iter()
        .filter_map(|write| match write {
            Write::Request(request) => Some(&**request),
            Write::Audit(_) => None,
        })
        .collect();
    let stored = requests::insert_all(tx, &new).await?;
    let granted: Vec<&NewAuthorization> = new
        .iter()
        .filter(|request| stored.contains(&request.id))
        .filter_map(|request| request.authorization.as_ref())
        .collect();
    authorizations::insert_all(tx, &granted).await?;

    let mut records = Vec::with_capacity(writes.len() + granted.len());
    let mut written = Vec::with_capacity(writes.len());
    for write in writes {
        match write {
            Write::Request(request) if !stored.contains(&request.id) => {
                written.push(Written::DuplicateKey);
            }
            Write::Request(request) => {
                let record = AuditRecord {
                    actor: request.submitted_by.clone(),
                    organization: request.organization.clone(),
                    action: "request.create",
                    target: request.id.clone(),
                    binds: Some(Binds::Request),
                    state: Some(super::audit::new_request_state(request)),
                };
                if let Some(authorization) = &request.authorization {
                    let granted = AuditRecord {
                        action: "authorization.create",
                        target: authorization.number.clone(),
                        binds: Some(Binds::Authorization),
                        state: Some(super::audit::new_authorization_state(&authorization.number)),
                        ..record.clone()
                    };
                    records.extend([record, granted]);
                } else {
                    records.push(record);
                }
                written.push(Written::Stored);
            }
            Write::Audit(record) => {
                records.push(record.clone());
                written.push(Written::Stored);
            }
        }
    }
    chain.append_all(tx, &records).await?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::packed::Packed;
    use crate::store::{random_id, verify_audit};

    fn request(id: &str, authorization: Option<&str>) -> Write {
        Write::Request(Box::new(NewRequest {
            id: id.into(),
            organization: "clinic-a".into(),
            submitted_by: "key_a".into(),
            plan: "masshealth".into(),
            drug: "blinatumomab".into(),
            member: Default::default(),
            policy: "masshealth-all-single-agent".into(),
            policy_version: "2025-09-01".into(),
            idempotency_key: Some(format!("key-{id}")),
            body_hash: "h".into(),
            status: "approved",
            outcome: "approve",
            urgency: "standard",
            due_at: None,
            case_json: Packed::new("{}"),
            decision_json: Packed::new("{}"),
            response_json: Packed::new("{}"),
            renews: None,
            created_at: 1,
            event_case_json: Packed::new("{}"),
            event_decision_json: Packed::new("{}"),
            decision_sha256: None,
            authorization: authorization.map(|number| NewAuthorization {
                number: number.into(),
                request_id: id.into(),
                organization: "clinic-a".into(),
                drug: "blinatumomab".into(),
                hcpcs: "J9039".into(),
                start_date: "2026-03-02".into(),
                end_date: "2027-03-01".into(),
                units_per_period: 980,
                period_days: 42,
                cycles: 1,
                first_cycle: 1,
                approved_units: 980,
                renews: None,
                created_at: 1,
            }),
            link: None,
        }))
    }

    async fn temporary_store() -> (Store, std::path::PathBuf) {
        let path = std::env::temp_dir().join(format!("priorauth-writer-{}.sqlite", random_id("")));
        let store = Store::connect(&format!("sqlite://{}?mode=rwc", path.display()))
            .await
            .unwrap();
        (store, path)
    }

    /// A reader's audit entry.
    fn read_of(id: &str) -> Write {
        Write::Audit(AuditRecord {
            binds: None,
            state: None,
            actor: "key_a".into(),
            organization: "clinic-a".into(),
            action: "request.read",
            target: id.into(),
        })
    }

    /// `writes` queued before a writing task starts, so that it takes them as one batch; the
    /// answers in their order.
    async fn one_batch(store: &Store, writes: Vec<Write>) -> Vec<Result<Written, StoreError>> {
        let (queue, receiver) = mpsc::channel(QUEUE);
        let mut answers = Vec::new();
        for write in writes {
            let (done, answer) = oneshot::channel();
            queue.try_send(Job { write, done }).unwrap();
            answers.push(answer);
        }
        tokio::spawn(run(store.clone(), receiver));
        let mut results = Vec::new();
        for answer in answers {
            results.push(answer.await.unwrap());
        }
        results
    }

    /// Jobs queued before the task starts are taken as one batch. One of them fails (its
    /// authorization number is taken), so the batch is rolled back and each job retried alone:
    /// the others are stored, the bad one is answered with its error, the chain holds.
    #[tokio::test]
    async fn a_failing_write_costs_its_batch_nothing() {
        let (store, path) = temporary_store().await;
        let first = Writer::start(store.clone()).await.unwrap();
        assert_eq!(
            first
                .write(request("req_1", Some("PA-TAKEN")))
                .await
                .unwrap(),
            Written::Stored
        );

        let results = one_batch(
            &store,
            vec![
                request("req_2", Some("PA-2")),
                request("req_3", Some("PA-TAKEN")),
                request("req_1", None),
                read_of("req_2"),
            ],
        )
        .await;
        assert_eq!(results[0].as_ref().unwrap(), &Written::Stored);
        assert!(results[1].is_err(), "{:?}", results[1]);
        // The same idempotency key as req_1's: nothing written.
        assert_eq!(results[2].as_ref().unwrap(), &Written::DuplicateKey);
        assert_eq!(results[3].as_ref().unwrap(), &Written::Stored);

        let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM requests ORDER BY id")
            .fetch_all(&store.pool)
            .await
            .unwrap();
        assert_eq!(ids, ["req_1", "req_2"]);
        let events: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM request_events")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(events, 2);
        let report = verify_audit(&store).await.unwrap();
        assert_eq!(
            report.entries, 5,
            "two creations, each with its authorization's, and one read"
        );
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        drop(store);
        let _ = std::fs::remove_file(&path);
    }

    /// A batch of reads' entries is committed without a sync, and the one writing
    /// connection goes back syncing fully: the next request written is durable. On
    /// PostgreSQL the setting is the transaction's own (`SET LOCAL`), so nothing is left.
    #[tokio::test]
    async fn reads_entries_leave_the_writing_connection_syncing_fully() {
        let (store, path) = temporary_store().await;
        let writer = Writer::start(store.clone()).await.unwrap();
        assert_eq!(
            writer.write(read_of("req_1")).await.unwrap(),
            Written::Stored
        );
        let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(synchronous, 2, "FULL");
        assert_eq!(
            writer.write(request("req_1", Some("PA-1"))).await.unwrap(),
            Written::Stored
        );
        assert_eq!(
            writer.write(read_of("req_1")).await.unwrap(),
            Written::Stored
        );
        // Three reads in one batch, inserted in chunks of 2 and 1.
        let reads = vec![read_of("req_1"), read_of("req_2"), read_of("req_3")];
        for result in one_batch(&store, reads).await {
            assert_eq!(result.unwrap(), Written::Stored);
        }
        // The writer syncs what it committed without a sync within SYNC_WITHIN (its errors
        // are only logged: the sync itself is checked here), and the chain is whole after it.
        tokio::time::sleep(SYNC_WITHIN * 2).await;
        wal_synced(&main_file(&store).await.unwrap()).unwrap();
        let report = verify_audit(&store).await.unwrap();
        assert_eq!(
            report.entries, 7,
            "five reads, a creation and its authorization's"
        );
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        drop(store);
        let _ = std::fs::remove_file(&path);
    }

    /// A batch that succeeds goes in by one statement per kind of row and chunk (the
    /// requests in chunks of 4 and 1 here, their audit entries of 4, 2 and 1): each request is stored with its event, authorization and FHIR link, a second
    /// use of an idempotency key within the batch is not, and the audit chain holds the
    /// entries in the batch's order, each bound to the rows it wrote.
    #[tokio::test]
    async fn a_batch_is_written_whole_in_its_order() {
        let (store, path) = temporary_store().await;
        let mut reused = request("req_9", None);
        let mut linked = request("req_2", None);
        if let (Write::Request(reused), Write::Request(linked)) = (&mut reused, &mut linked) {
            reused.idempotency_key = Some("key-req_1".into());
            linked.link = Some(requests::ClaimLink {
                base: "http://payer.example/fhir".into(),
                claim_identifier: "claim-2".into(),
                item_sequence: 1,
                bundle: requests::ReceivedBundle::new(r#"{"resourceType":"Bundle"}"#),
            });
        }
        let writes = [
            request("req_1", Some("PA-1")),
            linked,
            reused,
            read_of("req_1"),
            request("req_3", Some("PA-3")),
            request("req_4", None),
        ];
        let written = commit(&store, &writes.iter().collect::<Vec<_>>())
            .await
            .unwrap();
        use Written::{DuplicateKey, Stored};
        assert_eq!(
            written,
            [Stored, Stored, DuplicateKey, Stored, Stored, Stored]
        );

        let count = |sql: &'static str| {
            let pool = store.pool.clone();
            async move {
                sqlx::query_scalar::<_, i64>(sql)
                    .fetch_one(&pool)
                    .await
                    .unwrap()
            }
        };
        assert_eq!(count("SELECT COUNT(*) FROM requests").await, 4);
        assert_eq!(count("SELECT COUNT(*) FROM request_events").await, 4);
        assert_eq!(count("SELECT COUNT(*) FROM authorizations").await, 2);
        assert_eq!(count("SELECT COUNT(*) FROM fhir_claims").await, 1);
        let claim = requests::claim(&mut store.pool.begin().await.unwrap(), "req_2")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(claim.into_bundle().unwrap(), r#"{"resourceType":"Bundle"}"#);

        let actions: Vec<(String, String)> =
            sqlx::query_as("SELECT action, target FROM audit_log ORDER BY seq")
                .fetch_all(&store.pool)
                .await
                .unwrap();
        let expected = [
            ("request.create", "req_1"),
            ("authorization.create", "PA-1"),
            ("request.create", "req_2"),
            ("request.read", "req_1"),
            ("request.create", "req_3"),
            ("authorization.create", "PA-3"),
            ("request.create", "req_4"),
        ];
        assert_eq!(
            actions,
            expected.map(|(a, t)| (a.to_string(), t.to_string()))
        );
        let report = verify_audit(&store).await.unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!(report.records, 6, "four requests and two authorizations");
        drop(store);
        let _ = std::fs::remove_file(&path);
    }

    /// The state the writer binds a new request's audit entry to without reading it back is
    /// the state `verify_audit` reads, whatever the request holds: pending with its due time,
    /// a member by id and name or by name only, no idempotency key, a renewal, no drug, the
    /// decision's hash or none.
    #[tokio::test]
    async fn a_new_requests_state_is_known_without_reading_it() {
        let (store, path) = temporary_store().await;
        let mut pending = request("req_p", None);
        let mut approved = request("req_a", Some("PA-A"));
        let mut bare = request("req_b", None);
        if let (Write::Request(p), Write::Request(a), Write::Request(b)) =
            (&mut pending, &mut approved, &mut bare)
        {
            p.status = "pending_review";
            p.outcome = "deny";
            p.due_at = Some(86_400_000);
            p.member = requests::Member {
                id: Some("M-1".into()),
                name: Some("Ana Ruiz".into()),
            };
            p.idempotency_key = None;
            p.body_hash = String::new();
            p.renews = Some("PA-OLD".into());
            p.decision_sha256 = Some("ab".repeat(32));
            p.event_case_json = Packed::new("");
            p.event_decision_json = Packed::new("");
            a.member.name = Some("Bo Chen".into());
            if let Some(authorization) = &mut a.authorization {
                authorization.renews = Some("PA-OLD".into());
            }
            b.drug = String::new();
            b.status = "not_applicable";
            b.outcome = "not_applicable";
        }
        let writes = [pending, approved, bare];
        commit(&store, &writes.iter().collect::<Vec<_>>())
            .await
            .unwrap();
        let report = verify_audit(&store).await.unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!(report.records, 4, "three requests and one authorization");
        drop(store);
        let _ = std::fs::remove_file(&path);
    }
}
