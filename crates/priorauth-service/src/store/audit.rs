//! The audit log's SQL: an append-only chain of entries, each hashing the one before, with
//! its head in a row of its own; and the walk that verifies it.
//!
//! An entry of a write binds the record it wrote: it carries the SHA-256 of the record's rows
//! as the write left them (a request: its row, events, determination and authorization's
//! terms; an authorization: its units used and its usage rows), inside its own hash. `verify`
//! recomputes each record's hash and compares it with the latest entry that bound it, so an
//! edit to a status, units or usage in the database is found, not only an edit to the log.

use std::collections::HashMap;

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{
    Bound, Store, StoreError, Tx, insert_rows, now_ms, row_chunks, sha256_hex, values_sql,
};

/// One entry of the audit log, as it is hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub seq: i64,
    pub at: i64,
    pub actor: String,
    pub organization: String,
    pub action: String,
    pub target: String,
    /// The hash of the entry before (empty for the first), inside this entry's hash. New
    /// rows store it empty: it is the previous row's `hash`, which `verify_audit` reads
    /// anyway, and storing it twice cost 65 bytes an entry (1.5 entries a request). Rows
    /// written by earlier releases keep it, and `verify_audit` holds it equal to the previous
    /// row's `hash`.
    pub prev_hash: String,
    pub hash: String,
    /// `request:<sha256>` or `authorization:<sha256>`: the bound record's rows after the write.
    pub record: Option<String>,
}

impl AuditEntry {
    fn digest(&self) -> String {
        // Fields are joined with a separator that none of them contains (ids, actions).
        let fields = format!(
            "{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}",
            self.prev_hash,
            self.seq,
            self.at,
            self.actor,
            self.organization,
            self.action,
            self.target
        );
        // Entries without a bound record hash as they always did.
        match &self.record {
            None => sha256_hex(&fields),
            Some(record) => sha256_hex(&format!("{fields}\u{1f}{record}")),
        }
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
            record: row.try_get("record_sha256")?,
        })
    }
}

/// The kind of record an audit entry binds; its id is the entry's target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Binds {
    Request,
    Authorization,
}

impl Binds {
    fn as_str(self) -> &'static str {
        match self {
            Binds::Request => "request",
            Binds::Authorization => "authorization",
        }
    }

    fn parse(text: &str) -> Option<Binds> {
        match text {
            "request" => Some(Binds::Request),
            "authorization" => Some(Binds::Authorization),
            _ => None,
        }
    }

    /// Every row of the record, each column as text, in one query: the request's row, its
    /// events in order, its determination, its authorization's terms (not its units used,
    /// which usage changes under the authorization's own entries), its appeals with their
    /// attachments, its peer-to-peer records, its drug, decision's time and
    /// determination's decision (for a request stored with its drug), the reason its clock was extended, its member
    /// and the reviewer it is assigned to, the files sent with it (by their SHA-256: a file's
    /// bytes are checked against it by `verify_audit`, so that a write to a request with files
    /// does not read them all), its reviewers' comments and the day its authorization was
    /// cancelled (parts a request
    /// without them does not have, so states
    /// bound before they existed compute as they did); or the authorization's
    /// units used and its usage rows.
    fn rows_sql(self) -> &'static str {
        match self {
            Binds::Request => {
                "SELECT 1 AS part, 0 AS n, CAST(id AS TEXT) AS c1, organization, submitted_by, plan, policy, policy_version, idempotency_key, body_hash, status, outcome, urgency, CAST(due_at AS TEXT) AS c12, case_json, decision_json, response_json, renews, CAST(created_at AS TEXT) AS c17, CAST(updated_at AS TEXT) AS c18 FROM requests WHERE id = $1 \
                 UNION ALL SELECT 2, seq, kind, actor, CAST(at AS TEXT), outcome, case_json, decision_json, decision_sha256, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM request_events WHERE request_id = $1 \
                 UNION ALL SELECT 3, 0, decision, reason, criterion, reviewer_key, reviewer_name, reviewer_credentials, changes_json, CAST(at AS TEXT), NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM determinations WHERE request_id = $1 \
                 UNION ALL SELECT 4, 0, number, organization, drug, hcpcs, start_date, end_date, CAST(units_per_period AS TEXT), CAST(period_days AS TEXT), CAST(cycles AS TEXT), CAST(first_cycle AS TEXT), CAST(approved_units AS TEXT), renews, CAST(created_at AS TEXT), NULL, NULL, NULL, NULL, NULL FROM authorizations WHERE request_id = $1 \
                 UNION ALL SELECT 5, received_at, id, filed_by, appellant, urgency, status, grounds, attachments_json, CAST(received_at AS TEXT), CAST(due_at AS TEXT), extension_reason, decision_reason, reviewer_key, reviewer_name, reviewer_credentials, CAST(decided_at AS TEXT), NULL, NULL, NULL FROM appeals WHERE request_id = $1 \
                 UNION ALL SELECT 6, recorded_at, id, appeal_id, prescriber, CAST(held_at AS TEXT), outcome, notes, reviewer_key, reviewer_name, reviewer_credentials, CAST(recorded_at AS TEXT), NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM peer_to_peer WHERE request_id = $1 \
                 UNION ALL SELECT 8, 0, drug, CAST(decided_at AS TEXT), determination, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM requests WHERE id = $1 AND drug IS NOT NULL \
                 UNION ALL SELECT 9, 0, extension_reason, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM requests WHERE id = $1 AND extension_reason IS NOT NULL \
                 UNION ALL SELECT 10, 0, member_id, member_name, assigned_to, assigned_name, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM requests WHERE id = $1 AND (member_id IS NOT NULL OR member_name IS NOT NULL OR assigned_to IS NOT NULL) \
                 UNION ALL SELECT 7, a.n, a.appeal_id, a.content_type, a.data, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM appeal_attachments a JOIN appeals p ON p.id = a.appeal_id WHERE p.request_id = $1 \
                 UNION ALL SELECT 11, n, title, content_type, CAST(bytes AS TEXT), sha256, added_by, added_name, CAST(added_at AS TEXT), NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM request_attachments WHERE request_id = $1 \
                 UNION ALL SELECT 12, n, criterion, body, author_key, author_name, CAST(at AS TEXT), NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM request_comments WHERE request_id = $1 \
                 UNION ALL SELECT 13, 0, number, cancelled_on, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM authorizations WHERE request_id = $1 AND cancelled_on IS NOT NULL \
                 ORDER BY 1, 2, 3"
            }
            Binds::Authorization => {
                "SELECT 1 AS part, CAST(number AS TEXT) AS c1, CAST(used_units AS TEXT) AS c2, NULL AS c3, NULL AS c4, NULL AS c5 FROM authorizations WHERE number = $1 \
                 UNION ALL SELECT 2, id, CAST(units AS TEXT), service_date, actor, CAST(at AS TEXT) FROM usage WHERE authorization_number = $1 \
                 ORDER BY 1, 2"
            }
        }
    }

    /// The columns after the sort keys.
    fn columns(self) -> std::ops::Range<usize> {
        match self {
            Binds::Request => 2..20,
            Binds::Authorization => 1..6,
        }
    }
}

/// `kind:<sha256>` of a record's rows as they stand, read through `executor` (a transaction
/// after its write, or the pool when verifying).
async fn record_state<'e, E>(executor: E, binds: Binds, id: &str) -> Result<String, StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let rows = sqlx::query(binds.rows_sql())
        .bind(id)
        .fetch_all(executor)
        .await?;
    let mut values = Vec::with_capacity(rows.len());
    for row in &rows {
        let mut columns = Vec::with_capacity(binds.columns().len());
        for column in binds.columns() {
            columns.push(row.try_get::<Option<String>, _>(column)?);
        }
        values.push(columns);
    }
    Ok(state_of(binds, &values))
}

/// The state of rows given as text columns (None for NULL): columns joined by U+001F, rows
/// by U+001E, NULL as U+0000, which no stored text holds (control characters are refused at
/// the edge).
fn state_of(binds: Binds, rows: &[Vec<Option<String>>]) -> String {
    let mut text = String::new();
    for row in rows {
        for value in row {
            text.push_str(value.as_deref().unwrap_or("\u{0}"));
            text.push('\u{1f}');
        }
        text.push('\u{1e}');
    }
    format!("{}:{}", binds.as_str(), sha256_hex(&text))
}

/// The state of an authorization just created: nothing used, no usage. Known without reading
/// it back, which saves the group commit a round trip per approval (a test holds it equal to
/// the state read).
pub fn new_authorization_state(number: &str) -> String {
    state_of(
        Binds::Authorization,
        &[vec![
            Some(number.to_string()),
            Some("0".to_string()),
            None,
            None,
            None,
        ]],
    )
}

/// The state of a request just created: its row, its first event, its authorization if one
/// was granted, its drug and decision time, and its member, as `requests::insert_all` and
/// `authorizations::insert_all` write them. Known without reading them back, which saves the
/// group commit a round trip per request (`verify_audit` reads them back and must find the
/// same; the writer's tests and every test that verifies the audit hold it so).
pub fn new_request_state(request: &super::requests::NewRequest) -> String {
    let text = |value: &str| Some(value.to_string());
    let number = |value: i64| Some(value.to_string());
    let row = |mut values: Vec<Option<String>>| {
        values.resize(Binds::Request.columns().len(), None);
        values
    };
    let mut rows = vec![
        // 1: the request's row.
        row(vec![
            text(&request.id),
            text(&request.organization),
            text(&request.submitted_by),
            text(&request.plan),
            text(&request.policy),
            text(&request.policy_version),
            request.idempotency_key.clone(),
            text(&request.body_hash),
            text(request.status),
            text(request.outcome),
            text(request.urgency),
            request.due_at.map(|at| at.to_string()),
            text(request.case_json.as_str()),
            text(request.decision_json.as_str()),
            text(request.response_json.as_str()),
            request.renews.clone(),
            number(request.created_at),
            number(request.created_at),
        ]),
        // 2: its first event.
        row(vec![
            text("submitted"),
            text(&request.submitted_by),
            number(request.created_at),
            text(request.outcome),
            text(request.event_case_json.as_str()),
            text(request.event_decision_json.as_str()),
            request.decision_sha256.clone(),
        ]),
    ];
    // 4: the authorization granted with it.
    if let Some(authorization) = &request.authorization {
        rows.push(row(vec![
            text(&authorization.number),
            text(&authorization.organization),
            text(&authorization.drug),
            text(&authorization.hcpcs),
            text(&authorization.start_date),
            text(&authorization.end_date),
            number(authorization.units_per_period),
            number(authorization.period_days),
            number(authorization.cycles),
            number(authorization.first_cycle),
            number(authorization.approved_units),
            authorization.renews.clone(),
            number(authorization.created_at),
        ]));
    }
    // 8: the drug, when it was decided, and no determination yet.
    rows.push(row(vec![
        text(&request.drug),
        request.decided_at().map(|at| at.to_string()),
        None,
    ]));
    // 10: the member, when the case names one (no one is assigned yet).
    if request.member.id.is_some() || request.member.name.is_some() {
        rows.push(row(vec![
            request.member.id.clone(),
            request.member.name.clone(),
        ]));
    }
    state_of(Binds::Request, &rows)
}

/// Who did what to which record, as the audit log records it (with its time and links).
#[derive(Debug, Clone)]
pub struct AuditRecord {
    pub actor: String,
    pub organization: String,
    pub action: &'static str,
    pub target: String,
    /// The record the entry binds (its id is `target`), for an entry of a write.
    pub binds: Option<Binds>,
    /// Its state when the writer knows it without reading it back (`new_authorization_state`).
    pub state: Option<String>,
}

impl AuditRecord {
    /// The entry of a write that binds the record it wrote (`target`).
    pub fn binding(mut self, binds: Binds) -> AuditRecord {
        self.binds = Some(binds);
        self
    }
}

/// Appends to the audit log inside `tx`. The head row is updated first, which holds its lock
/// until commit, so appends from concurrent transactions (and instances) chain in order.
pub async fn audit(tx: &mut Tx, record: &AuditRecord) -> Result<(), StoreError> {
    let mut chain = AuditChain::lock(tx).await?;
    chain.append(tx, record).await?;
    chain.save(tx).await
}

const INSERT_ENTRIES: &str = "INSERT INTO audit_log (seq, at, actor, organization, action, target, prev_hash, hash, record_sha256)";
const ENTRY_COLUMNS: usize = 9;

fn bind_entry<'q>(query: Bound<'q>, entry: &'q AuditEntry) -> Bound<'q> {
    query
        .bind(entry.seq)
        .bind(entry.at)
        .bind(&entry.actor)
        .bind(&entry.organization)
        .bind(&entry.action)
        .bind(&entry.target)
        // The link is in `hash`; the previous row holds it (see `prev_hash`).
        .bind("")
        .bind(&entry.hash)
        .bind(&entry.record)
}

/// SQLite: appends entries with no record state to read (the entries of reads and refused
/// calls bind none) in a transaction of their own, committed without waiting for the disk
/// (see `writer`), in two round trips to the connection's thread where `audit` takes seven:
/// each statement is a hand-off to that thread and back, and the hand-offs, not the writes,
/// were most of a read's audit. The statements run as two scripts (sqlx runs each statement of a text in
/// turn): the sync lowered, the transaction begun and the head read; then the entries
/// inserted, the head written, the commit and the sync raised again. On an error the
/// connection may be left inside the transaction or syncing less: the caller must close it
/// rather than return it to the pool (`writer::commit_entries`). sqlx 0.8 deprecates scripts
/// with parameters (only its SQLite driver runs them; sqlx issue 3108): should a later sqlx
/// refuse them or run only their first statement, this fails (no head row is read, or the last
/// script does not answer the full sync its last statement reads) and the writer's tests
/// fail with it, rather than leaving entries unwritten.
pub async fn append_unsynced(
    connection: &mut sqlx::AnyConnection,
    records: &[AuditRecord],
) -> Result<(), StoreError> {
    let rows = sqlx::query("PRAGMA synchronous = NORMAL; BEGIN IMMEDIATE; UPDATE audit_head SET seq = seq WHERE id = 1 RETURNING seq, hash")
        .fetch_all(&mut *connection)
        .await?;
    let head = rows.last().ok_or(sqlx::Error::RowNotFound)?;
    let mut chain = AuditChain {
        seq: head.try_get("seq")?,
        hash: head.try_get("hash")?,
    };
    let states = records.iter().map(|record| record.state.clone()).collect();
    let entries = chain.link(records, states);
    let chunks: Vec<&[AuditEntry]> = row_chunks(&entries).collect();
    for (index, chunk) in chunks.iter().enumerate() {
        let mut sql = format!(
            "{INSERT_ENTRIES} VALUES {}",
            values_sql(chunk.len(), ENTRY_COLUMNS)
        );
        let last = index + 1 == chunks.len();
        if last {
            let head = chunk.len() * ENTRY_COLUMNS;
            sql.push_str(&format!(
                "; UPDATE audit_head SET seq = ${}, hash = ${} WHERE id = 1; COMMIT; PRAGMA synchronous = FULL; PRAGMA synchronous",
                head + 1,
                head + 2
            ));
        }
        let mut query = chunk.iter().fold(sqlx::query(&sql), bind_entry);
        if !last {
            query.execute(&mut *connection).await?;
            continue;
        }
        query = query.bind(chain.seq).bind(&chain.hash);
        // The script's last statement answers the sync now set: FULL (2) only if every
        // statement before it ran.
        let rows = query.fetch_all(&mut *connection).await?;
        let synchronous = match rows.last() {
            Some(row) => row.try_get::<i64, _>(0)?,
            None => -1,
        };
        if synchronous != 2 {
            return Err(sqlx::Error::Protocol(format!(
                "an audit script ended with synchronous = {synchronous}"
            ))
            .into());
        }
    }
    Ok(())
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
    pub async fn lock(tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> Result<AuditChain, StoreError> {
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
        self.append_all(tx, std::slice::from_ref(record)).await
    }

    /// Appends entries in order: each bound record's state is read (unless the writer knows
    /// it), then the entries are chained in memory and inserted in one statement per
    /// chunk of rows (`row_chunks`).
    pub async fn append_all(
        &mut self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        records: &[AuditRecord],
    ) -> Result<(), StoreError> {
        let mut states = Vec::with_capacity(records.len());
        for record in records {
            states.push(match (&record.state, record.binds) {
                (Some(state), _) => Some(state.clone()),
                (None, Some(binds)) => Some(record_state(&mut **tx, binds, &record.target).await?),
                (None, None) => None,
            });
        }
        let entries = self.link(records, states);
        insert_rows(tx, INSERT_ENTRIES, "", ENTRY_COLUMNS, &entries, bind_entry).await?;
        Ok(())
    }

    /// The entries of `records` (each with its bound record's state), chained after the head.
    fn link(&mut self, records: &[AuditRecord], states: Vec<Option<String>>) -> Vec<AuditEntry> {
        records
            .iter()
            .zip(states)
            .map(|(record, state)| {
                let mut entry = AuditEntry {
                    seq: self.seq + 1,
                    at: now_ms(),
                    actor: record.actor.clone(),
                    organization: record.organization.clone(),
                    action: record.action.to_string(),
                    target: record.target.clone(),
                    prev_hash: std::mem::take(&mut self.hash),
                    hash: String::new(),
                    record: state,
                };
                entry.hash = entry.digest();
                self.seq = entry.seq;
                self.hash.clone_from(&entry.hash);
                entry
            })
            .collect()
    }

    pub async fn save(self, tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> Result<(), StoreError> {
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
    /// Records whose rows were checked against the entry that last bound them.
    pub records: i64,
    /// Empty when the chain and the records it binds are intact.
    pub problems: Vec<String>,
}

/// Walks the whole log: each entry's hash, its link to the one before, the sequence without
/// gaps, and the head (which catches entries deleted from the end).
pub async fn verify_audit(store: &Store) -> Result<AuditReport, StoreError> {
    let rows = sqlx::query("SELECT seq, at, actor, organization, action, target, prev_hash, hash, record_sha256 FROM audit_log ORDER BY seq")
        .fetch_all(&store.pool)
        .await?;
    let mut problems = Vec::new();
    let mut previous_hash = String::new();
    let mut expected_seq = 1;
    // Each bound record's latest entry: (kind, id) -> (seq, recorded state).
    let mut bound: HashMap<(Binds, String), (i64, String)> = HashMap::new();
    for row in &rows {
        let mut entry = AuditEntry::from_row(row)?;
        // An entry stored without its link (every entry since the link stopped being stored)
        // is hashed with the previous row's hash: an edit to that row, or a row removed before
        // it, breaks this entry's hash instead of the comparison below.
        if entry.prev_hash.is_empty() {
            entry.prev_hash.clone_from(&previous_hash);
        }
        if let Some(record) = &entry.record {
            let kind = record
                .split_once(':')
                .and_then(|(kind, _)| Binds::parse(kind));
            match kind {
                Some(kind) => {
                    bound.insert((kind, entry.target.clone()), (entry.seq, record.clone()));
                }
                None => problems.push(format!("entry {} binds no known record", entry.seq)),
            }
        }
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
    let mut records: Vec<_> = bound.into_iter().collect();
    records.sort_by_key(|(_, (seq, _))| *seq);
    for ((kind, id), (seq, recorded)) in &records {
        if record_state(&store.pool, *kind, id).await? != *recorded {
            problems.push(format!(
                "{} {id} was changed after audit entry {seq} recorded it",
                kind.as_str()
            ));
        }
    }
    problems.extend(unfaithful_files(store).await?);
    Ok(AuditReport {
        entries: rows.len() as i64,
        records: records.len() as i64,
        problems,
    })
}

/// The request files whose bytes are not those of the SHA-256 their request's audited state
/// holds, one at a time.
async fn unfaithful_files(store: &Store) -> Result<Vec<String>, StoreError> {
    use base64::Engine as _;
    use futures_util::TryStreamExt;
    use sha2::{Digest, Sha256};
    let mut problems = Vec::new();
    let mut rows = sqlx::query(
        "SELECT request_id, n, sha256, data FROM request_attachments ORDER BY request_id, n",
    )
    .fetch(&store.pool);
    while let Some(row) = rows.try_next().await? {
        let (request, n, sha256, data): (String, i64, String, String) = (
            row.try_get("request_id")?,
            row.try_get("n")?,
            row.try_get("sha256")?,
            row.try_get("data")?,
        );
        let faithful = base64::engine::general_purpose::STANDARD
            .decode(data.as_bytes())
            .is_ok_and(|bytes| format!("{:x}", Sha256::digest(&bytes)) == sha256);
        if !faithful {
            problems.push(format!(
                "file {n} of request {request} is not the file its audit entries recorded"
            ));
        }
    }
    Ok(problems)
}
