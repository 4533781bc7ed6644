//! The appeals aggregate's SQL: an appeal of a request's adverse determination, the files sent
//! with it, and the peer-to-peer discussions held on a request. Appeals belong to their
//! request: its audit entries bind them (`audit::Binds::Request`).

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{StoreError, Tx};

/// An appeal as filed.
#[derive(Debug, Clone)]
pub struct NewAppeal {
    pub id: String,
    pub request_id: String,
    pub filed_by: String,
    pub appellant: String,
    pub urgency: String,
    /// Why the appellant asks for another decision, and the new information.
    pub grounds: String,
    /// What each attachment is (`[{n, title, content_type, bytes, sha256}]`).
    pub attachments_json: String,
    /// Each attachment's content type and data (base64), in the order of `attachments_json`.
    pub attachments: Vec<(String, String)>,
    pub received_at: i64,
    pub due_at: i64,
}

/// An appeal as stored, with its request's organization and plan.
#[derive(Debug, Clone)]
pub struct Appeal {
    pub id: String,
    pub request_id: String,
    pub organization: String,
    pub plan: String,
    pub filed_by: String,
    pub appellant: String,
    pub urgency: String,
    /// `pending`, `upheld`, `overturned`.
    pub status: String,
    pub grounds: String,
    pub attachments_json: String,
    pub received_at: i64,
    pub due_at: i64,
    pub extension_reason: Option<String>,
    pub decision_reason: Option<String>,
    pub reviewer_key: Option<String>,
    pub reviewer_name: Option<String>,
    pub reviewer_credentials: Option<String>,
    pub decided_at: Option<i64>,
}

const COLUMNS: &str = "a.id, a.request_id, r.organization, r.plan, a.filed_by, a.appellant, a.urgency, a.status, a.grounds, a.attachments_json, a.received_at, a.due_at, a.extension_reason, a.decision_reason, a.reviewer_key, a.reviewer_name, a.reviewer_credentials, a.decided_at FROM appeals a JOIN requests r ON r.id = a.request_id";

impl Appeal {
    fn from_row(row: &AnyRow) -> Result<Appeal, sqlx::Error> {
        Ok(Appeal {
            id: row.try_get("id")?,
            request_id: row.try_get("request_id")?,
            organization: row.try_get("organization")?,
            plan: row.try_get("plan")?,
            filed_by: row.try_get("filed_by")?,
            appellant: row.try_get("appellant")?,
            urgency: row.try_get("urgency")?,
            status: row.try_get("status")?,
            grounds: row.try_get("grounds")?,
            attachments_json: row.try_get("attachments_json")?,
            received_at: row.try_get("received_at")?,
            due_at: row.try_get("due_at")?,
            extension_reason: row.try_get("extension_reason")?,
            decision_reason: row.try_get("decision_reason")?,
            reviewer_key: row.try_get("reviewer_key")?,
            reviewer_name: row.try_get("reviewer_name")?,
            reviewer_credentials: row.try_get("reviewer_credentials")?,
            decided_at: row.try_get("decided_at")?,
        })
    }
}

/// Files an appeal with its attachments; false (nothing written) when the request already
/// has an open appeal (the unique index `appeals_one_open`).
pub async fn insert(tx: &mut Tx, appeal: &NewAppeal) -> Result<bool, StoreError> {
    let inserted = sqlx::query(
        "INSERT INTO appeals (id, request_id, filed_by, appellant, urgency, status, grounds, attachments_json, received_at, due_at) \
         VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, $8, $9) ON CONFLICT DO NOTHING",
    )
    .bind(&appeal.id)
    .bind(&appeal.request_id)
    .bind(&appeal.filed_by)
    .bind(&appeal.appellant)
    .bind(&appeal.urgency)
    .bind(&appeal.grounds)
    .bind(&appeal.attachments_json)
    .bind(appeal.received_at)
    .bind(appeal.due_at)
    .execute(&mut **tx)
    .await?;
    if inserted.rows_affected() != 1 {
        return Ok(false);
    }
    for (n, (content_type, data)) in appeal.attachments.iter().enumerate() {
        sqlx::query(
            "INSERT INTO appeal_attachments (appeal_id, n, content_type, data) VALUES ($1, $2, $3, $4)",
        )
        .bind(&appeal.id)
        .bind(n as i64 + 1)
        .bind(content_type)
        .bind(data)
        .execute(&mut **tx)
        .await?;
    }
    Ok(true)
}

pub async fn fetch(tx: &mut Tx, id: &str) -> Result<Option<Appeal>, StoreError> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} WHERE a.id = $1"))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(row.as_ref().map(Appeal::from_row).transpose()?)
}

/// The request an appeal appeals, read outside a transaction (to hold its member's course
/// before one opens).
pub async fn request_of(pool: &sqlx::AnyPool, id: &str) -> Result<Option<String>, StoreError> {
    let row = sqlx::query("SELECT request_id FROM appeals WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(|row| row.try_get("request_id")).transpose()?)
}

/// A request's appeals, oldest first.
pub async fn of_request(tx: &mut Tx, request_id: &str) -> Result<Vec<Appeal>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} WHERE a.request_id = $1 ORDER BY a.received_at, a.id"
    ))
    .bind(request_id)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows
        .iter()
        .map(Appeal::from_row)
        .collect::<Result<_, _>>()?)
}

/// Which open appeals to list.
#[derive(Debug, Clone, Default)]
pub struct OpenPage {
    pub limit: i64,
    /// The last row of the page before: (due_at, id).
    pub after: Option<(i64, String)>,
    /// Only this organization's appeals.
    pub organization: Option<String>,
}

/// Open appeals, soonest due first, one page (keyset pagination).
pub async fn open(tx: &mut Tx, page: &OpenPage) -> Result<Vec<Appeal>, StoreError> {
    let (due, id) = page.after.clone().unwrap_or((i64::MIN, String::new()));
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} WHERE a.status = 'pending' AND ($1 IS NULL OR r.organization = $1) \
         AND (a.due_at > $2 OR (a.due_at = $2 AND a.id > $3)) ORDER BY a.due_at, a.id LIMIT $4"
    ))
    .bind(page.organization.as_deref())
    .bind(due)
    .bind(id)
    .bind(page.limit)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows
        .iter()
        .map(Appeal::from_row)
        .collect::<Result<_, _>>()?)
}

/// Takes an open appeal's row lock (until commit); false when it is no longer open. A decision
/// and an extension take it before anything else, so that they queue on it in one order (an
/// overturn also locks its request and the audit head: taken after, never before).
pub async fn lock_pending(tx: &mut Tx, id: &str) -> Result<bool, StoreError> {
    let locked =
        sqlx::query("UPDATE appeals SET status = status WHERE id = $1 AND status = 'pending'")
            .bind(id)
            .execute(&mut **tx)
            .await?;
    Ok(locked.rows_affected() == 1)
}

/// A reviewer's decision on an appeal.
#[derive(Debug, Clone)]
pub struct AppealDecision<'a> {
    /// `upheld` or `overturned`.
    pub status: &'a str,
    pub reason: &'a str,
    pub reviewer_key: &'a str,
    pub reviewer_name: &'a str,
    pub reviewer_credentials: &'a str,
    pub at: i64,
}

/// Decides an appeal, only while it is open; false when it was decided meanwhile.
pub async fn decide(
    tx: &mut Tx,
    id: &str,
    decision: &AppealDecision<'_>,
) -> Result<bool, StoreError> {
    let updated = sqlx::query(
        "UPDATE appeals SET status = $1, decision_reason = $2, reviewer_key = $3, reviewer_name = $4, reviewer_credentials = $5, decided_at = $6 \
         WHERE id = $7 AND status = 'pending'",
    )
    .bind(decision.status)
    .bind(decision.reason)
    .bind(decision.reviewer_key)
    .bind(decision.reviewer_name)
    .bind(decision.reviewer_credentials)
    .bind(decision.at)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// Extends an open appeal's due time once; false when it is decided or already extended.
pub async fn extend(tx: &mut Tx, id: &str, due_at: i64, reason: &str) -> Result<bool, StoreError> {
    let updated = sqlx::query(
        "UPDATE appeals SET due_at = $1, extension_reason = $2 WHERE id = $3 AND status = 'pending' AND extension_reason IS NULL",
    )
    .bind(due_at)
    .bind(reason)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// An attachment's content type and data (base64).
pub async fn attachment(
    tx: &mut Tx,
    appeal_id: &str,
    n: i64,
) -> Result<Option<(String, String)>, StoreError> {
    let row = sqlx::query(
        "SELECT content_type, data FROM appeal_attachments WHERE appeal_id = $1 AND n = $2",
    )
    .bind(appeal_id)
    .bind(n)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row
        .map(|row| -> Result<(String, String), sqlx::Error> {
            Ok((row.try_get("content_type")?, row.try_get("data")?))
        })
        .transpose()?)
}

/// A peer-to-peer discussion between the prescriber and a reviewer.
#[derive(Debug, Clone)]
pub struct PeerToPeer {
    pub id: String,
    pub request_id: String,
    pub appeal_id: Option<String>,
    pub prescriber: String,
    pub held_at: i64,
    pub outcome: String,
    pub notes: String,
    pub reviewer_key: String,
    pub reviewer_name: String,
    pub reviewer_credentials: String,
    pub recorded_at: i64,
}

pub async fn insert_peer_to_peer(tx: &mut Tx, record: &PeerToPeer) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO peer_to_peer (id, request_id, appeal_id, prescriber, held_at, outcome, notes, reviewer_key, reviewer_name, reviewer_credentials, recorded_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&record.id)
    .bind(&record.request_id)
    .bind(&record.appeal_id)
    .bind(&record.prescriber)
    .bind(record.held_at)
    .bind(&record.outcome)
    .bind(&record.notes)
    .bind(&record.reviewer_key)
    .bind(&record.reviewer_name)
    .bind(&record.reviewer_credentials)
    .bind(record.recorded_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A request's peer-to-peer discussions, in the order they were held.
pub async fn peer_to_peer_of(tx: &mut Tx, request_id: &str) -> Result<Vec<PeerToPeer>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, request_id, appeal_id, prescriber, held_at, outcome, notes, reviewer_key, reviewer_name, reviewer_credentials, recorded_at \
         FROM peer_to_peer WHERE request_id = $1 ORDER BY held_at, id",
    )
    .bind(request_id)
    .fetch_all(&mut **tx)
    .await?;
    let records = rows
        .iter()
        .map(|row| {
            Ok(PeerToPeer {
                id: row.try_get("id")?,
                request_id: row.try_get("request_id")?,
                appeal_id: row.try_get("appeal_id")?,
                prescriber: row.try_get("prescriber")?,
                held_at: row.try_get("held_at")?,
                outcome: row.try_get("outcome")?,
                notes: row.try_get("notes")?,
                reviewer_key: row.try_get("reviewer_key")?,
                reviewer_name: row.try_get("reviewer_name")?,
                reviewer_credentials: row.try_get("reviewer_credentials")?,
                recorded_at: row.try_get("recorded_at")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok(records)
}
