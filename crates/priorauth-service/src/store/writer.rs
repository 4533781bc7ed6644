//! Group commit. A new request (its row, first event, authorization, FHIR link and audit
//! entry) and the audit entry of a read are queued here, and one task writes whatever has
//! queued in one transaction: one audit head read and write and one commit (one fsync on
//! SQLite, one WAL flush on PostgreSQL) for all of them. Each caller is answered only after
//! that commit, so an answer is never given for a row that is not durable.
//!
//! While a batch commits the next one queues, so a batch is as large as the load makes it
//! (one write at low load, no added wait). If any statement of a batch fails, the batch is
//! rolled back and each of its writes is retried in a transaction of its own, so one bad
//! write costs the others nothing but time.

use tokio::sync::{mpsc, oneshot};

use super::authorizations;
use super::requests::{self, NewRequest};
use super::{AuditChain, AuditRecord, Binds, Store, StoreError, Tx};

/// The most writes one transaction takes.
const MAX_BATCH: usize = 256;
/// Writes waiting for the task beyond this make callers wait to queue (back pressure).
const QUEUE: usize = 4096;

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
    /// Starts the writing task on the current runtime; it ends when every `Writer` is dropped.
    pub fn start(store: Store) -> Writer {
        let (queue, receiver) = mpsc::channel(QUEUE);
        tokio::spawn(run(store, receiver));
        Writer { queue }
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
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let writes: Vec<&Write> = batch.iter().map(|job| &job.write).collect();
        match commit(&store, &writes).await {
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
            Err(_) => {
                for job in batch.drain(..) {
                    let written = commit(&store, &[&job.write]).await;
                    let _ = job
                        .done
                        .send(written.map(|w| w.first().copied().unwrap_or(Written::Stored)));
                }
            }
        }
    }
}

async fn commit(store: &Store, writes: &[&Write]) -> Result<Vec<Written>, StoreError> {
    let mut tx = store.pool.begin().await?;
    let mut chain = AuditChain::lock(&mut tx).await?;
    let mut written = Vec::with_capacity(writes.len());
    for write in writes {
        written.push(write_in(&mut tx, &mut chain, write).await?);
    }
    chain.save(&mut tx).await?;
    tx.commit().await?;
    Ok(written)
}

/// Writes one write inside `tx`, its audit entry chained on `chain`. Also used by the
/// requests that must read and write in one transaction of their own (renewals).
pub async fn write_in(
    tx: &mut Tx,
    chain: &mut AuditChain,
    write: &Write,
) -> Result<Written, StoreError> {
    match write {
        Write::Request(request) => {
            if !requests::insert(tx, request).await? {
                return Ok(Written::DuplicateKey);
            }
            if let Some(authorization) = &request.authorization {
                authorizations::insert(tx, authorization).await?;
            }
            let record = AuditRecord {
                actor: request.submitted_by.clone(),
                organization: request.organization.clone(),
                action: "request.create",
                target: request.id.clone(),
                binds: Some(Binds::Request),
                state: None,
            };
            chain.append(tx, &record).await?;
            if let Some(authorization) = &request.authorization {
                let record = AuditRecord {
                    action: "authorization.create",
                    target: authorization.number.clone(),
                    binds: Some(Binds::Authorization),
                    state: Some(super::audit::new_authorization_state(&authorization.number)),
                    ..record
                };
                chain.append(tx, &record).await?;
            }
        }
        Write::Audit(record) => chain.append(tx, record).await?,
    }
    Ok(Written::Stored)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::authorizations::NewAuthorization;
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
            case_json: "{}".into(),
            decision_json: "{}".into(),
            response_json: "{}".into(),
            renews: None,
            created_at: 1,
            event_case_json: "{}".into(),
            event_decision_json: "{}".into(),
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

    /// Jobs queued before the task starts are taken as one batch. One of them fails (its
    /// authorization number is taken), so the batch is rolled back and each job retried alone:
    /// the others are stored, the bad one is answered with its error, the chain holds.
    #[tokio::test]
    async fn a_failing_write_costs_its_batch_nothing() {
        let path = std::env::temp_dir().join(format!("priorauth-writer-{}.sqlite", random_id("")));
        let store = Store::connect(&format!("sqlite://{}?mode=rwc", path.display()))
            .await
            .unwrap();
        let first = Writer::start(store.clone());
        assert_eq!(
            first
                .write(request("req_1", Some("PA-TAKEN")))
                .await
                .unwrap(),
            Written::Stored
        );

        let (queue, receiver) = mpsc::channel(QUEUE);
        let mut answers = Vec::new();
        for write in [
            request("req_2", Some("PA-2")),
            request("req_3", Some("PA-TAKEN")),
            request("req_1", None),
            Write::Audit(AuditRecord {
                binds: None,
                state: None,
                actor: "key_a".into(),
                organization: "clinic-a".into(),
                action: "request.read",
                target: "req_2".into(),
            }),
        ] {
            let (done, answer) = oneshot::channel();
            queue.try_send(Job { write, done }).unwrap();
            answers.push(answer);
        }
        tokio::spawn(run(store.clone(), receiver));
        let mut results = Vec::new();
        for answer in answers {
            results.push(answer.await.unwrap());
        }
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
}
