//! The SQL of the UM report: figures counted from the records themselves (requests, their
//! determinations and appeals), in queries both back ends run, for the requests received in a
//! period, and the times the percentiles are ranked from. Nothing is counted on the side.

use sqlx::Row;

use super::{StoreError, Tx};

/// The figures of one plan, drug and urgency (as the report shows them).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct GroupCounts {
    pub plan: String,
    /// `unrecorded` for requests stored before the drug was recorded.
    pub drug: String,
    pub urgency: String,
    pub requests: i64,
    /// Approved by the policy's criteria, with no clinician involved.
    pub approved_touchless: i64,
    /// Approved by a clinician's determination as asked (not on appeal).
    pub approved_by_reviewer: i64,
    /// Approved by a clinician with changes (not on appeal).
    pub approved_with_changes: i64,
    /// Approved when an appeal overturned the determination.
    pub approved_on_appeal: i64,
    pub denied: i64,
    pub withdrawn: i64,
    pub not_applicable: i64,
    /// Still waiting for information or a clinician.
    pub pending: i64,
    /// Requests with at least one appeal.
    pub appealed: i64,
    /// Requests with an appeal overturned.
    pub overturned: i64,
    /// Requests whose clock was extended.
    pub extended: i64,
    /// Extended and approved.
    #[serde(skip)]
    pub extended_approved: i64,
    /// Decided (approved, denied, not applicable), and of those within their clock.
    pub decided: i64,
    pub decided_on_time: i64,
    /// Still pending past their clock at the time of the report.
    pub late_open: i64,
    /// Sum of receipt-to-decision times of the decided, in milliseconds.
    #[serde(skip)]
    pub turnaround_ms_total: i64,
}

/// The request filter of a period: received from `from_ms` (inclusive) to `to_ms` (exclusive).
#[derive(Debug, Clone, Copy)]
pub struct Period {
    pub from_ms: i64,
    pub to_ms: i64,
    /// The report's time: what is pending past its clock is late at it.
    pub now_ms: i64,
}

/// Counts per plan, drug and urgency, in one grouped query over the report index. A request's
/// clinician determination is read from the request (`determination`, kept since the drug is);
/// one stored before that is looked up.
pub async fn counts(tx: &mut Tx, period: Period) -> Result<Vec<GroupCounts>, StoreError> {
    let rows = sqlx::query(
        "SELECT r.plan, r.drug, r.urgency, \
           COUNT(*) AS requests, \
           SUM(CASE WHEN r.status = 'approved' AND r.decision IS NULL THEN 1 ELSE 0 END) AS approved_touchless, \
           SUM(CASE WHEN r.status = 'approved' AND r.decision = 'approve' AND COALESCE(a.overturned, 0) = 0 THEN 1 ELSE 0 END) AS approved_by_reviewer, \
           SUM(CASE WHEN r.status = 'approved' AND r.decision = 'approve_with_changes' AND COALESCE(a.overturned, 0) = 0 THEN 1 ELSE 0 END) AS approved_with_changes, \
           SUM(CASE WHEN r.status = 'approved' AND COALESCE(a.overturned, 0) > 0 THEN 1 ELSE 0 END) AS approved_on_appeal, \
           SUM(CASE WHEN r.status = 'denied' THEN 1 ELSE 0 END) AS denied, \
           SUM(CASE WHEN r.status = 'withdrawn' THEN 1 ELSE 0 END) AS withdrawn, \
           SUM(CASE WHEN r.status = 'not_applicable' THEN 1 ELSE 0 END) AS not_applicable, \
           SUM(CASE WHEN r.status IN ('pending_information', 'pending_review') THEN 1 ELSE 0 END) AS pending, \
           SUM(CASE WHEN COALESCE(a.appeals, 0) > 0 THEN 1 ELSE 0 END) AS appealed, \
           SUM(CASE WHEN COALESCE(a.overturned, 0) > 0 THEN 1 ELSE 0 END) AS overturned, \
           SUM(CASE WHEN r.extension_reason IS NOT NULL THEN 1 ELSE 0 END) AS extended, \
           SUM(CASE WHEN r.extension_reason IS NOT NULL AND r.status = 'approved' THEN 1 ELSE 0 END) AS extended_approved, \
           SUM(CASE WHEN r.decided_at IS NOT NULL THEN 1 ELSE 0 END) AS decided, \
           SUM(CASE WHEN r.decided_at IS NOT NULL AND r.decided_at <= COALESCE(r.due_at, r.decided_at) THEN 1 ELSE 0 END) AS decided_on_time, \
           SUM(CASE WHEN r.decided_at IS NULL AND r.status IN ('pending_information', 'pending_review') AND r.due_at < $3 THEN 1 ELSE 0 END) AS late_open, \
           CAST(SUM(CASE WHEN r.decided_at IS NOT NULL THEN r.decided_at - r.created_at ELSE 0 END) AS BIGINT) AS turnaround_ms_total \
         FROM ( \
           SELECT q.id, q.plan, COALESCE(q.drug, '') AS drug, q.urgency, q.status, q.decided_at, q.due_at, q.created_at, q.extension_reason, \
             CASE WHEN q.drug IS NULL THEN (SELECT d.decision FROM determinations d WHERE d.request_id = q.id) ELSE q.determination END AS decision \
           FROM requests q WHERE q.created_at >= $1 AND q.created_at < $2 \
         ) r \
         LEFT JOIN (SELECT request_id, COUNT(*) AS appeals, SUM(CASE WHEN status = 'overturned' THEN 1 ELSE 0 END) AS overturned FROM appeals GROUP BY request_id) a ON a.request_id = r.id \
         GROUP BY r.plan, r.drug, r.urgency \
         ORDER BY r.plan, r.drug, r.urgency",
    )
    .bind(period.from_ms)
    .bind(period.to_ms)
    .bind(period.now_ms)
    .fetch_all(&mut **tx)
    .await?;
    let counts = rows
        .iter()
        .map(|row| {
            // SUM of integers is a bigint on PostgreSQL (of bigints a numeric, hence the CAST
            // above), an integer on SQLite: each reads as i64.
            let n = |column: &str| row.try_get::<i64, _>(column);
            let drug: String = row.try_get("drug")?;
            Ok(GroupCounts {
                plan: row.try_get("plan")?,
                drug: if drug.is_empty() {
                    "unrecorded".into()
                } else {
                    drug
                },
                urgency: row.try_get("urgency")?,
                requests: n("requests")?,
                approved_touchless: n("approved_touchless")?,
                approved_by_reviewer: n("approved_by_reviewer")?,
                approved_with_changes: n("approved_with_changes")?,
                approved_on_appeal: n("approved_on_appeal")?,
                denied: n("denied")?,
                withdrawn: n("withdrawn")?,
                not_applicable: n("not_applicable")?,
                pending: n("pending")?,
                appealed: n("appealed")?,
                overturned: n("overturned")?,
                extended: n("extended")?,
                extended_approved: n("extended_approved")?,
                decided: n("decided")?,
                decided_on_time: n("decided_on_time")?,
                late_open: n("late_open")?,
                turnaround_ms_total: n("turnaround_ms_total")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok(counts)
}

/// A group of the report: plan, drug (`unrecorded` for requests stored before the drug was
/// recorded) and urgency.
pub type GroupKey = (String, String, String);

/// The receipt-to-decision times of the requests decided in the period, unsorted, per group,
/// read in one pass over the report index and streamed (eight bytes a request are kept, not
/// the rows): ranking them per group in the service (`lifecycle::report`) costs less than the
/// database's window functions, which sort the whole period once per window (measured on a
/// year of a million requests on SQLite: the report took 18 s with them).
pub async fn decided(tx: &mut Tx, period: Period) -> Result<Vec<(GroupKey, Vec<i64>)>, StoreError> {
    use futures_util::TryStreamExt;
    let mut rows = sqlx::query(
        "SELECT plan, COALESCE(drug, '') AS drug, urgency, decided_at - created_at AS t FROM requests \
         WHERE created_at >= $1 AND created_at < $2 AND decided_at IS NOT NULL",
    )
    .bind(period.from_ms)
    .bind(period.to_ms)
    .fetch(&mut **tx);
    // A few dozen groups: a list searched in order beats hashing three strings a row.
    let mut groups: Vec<(GroupKey, Vec<i64>)> = Vec::new();
    while let Some(row) = rows.try_next().await? {
        let plan: &str = row.try_get("plan")?;
        let drug: &str = match row.try_get::<&str, _>("drug")? {
            "" => "unrecorded",
            drug => drug,
        };
        let urgency: &str = row.try_get("urgency")?;
        let t: i64 = row.try_get("t")?;
        let found = groups
            .iter_mut()
            .find(|((p, d, u), _)| p == plan && d == drug && u == urgency);
        match found {
            Some((_, times)) => times.push(t),
            None => groups.push((
                (plan.to_string(), drug.to_string(), urgency.to_string()),
                vec![t],
            )),
        }
    }
    Ok(groups)
}

/// The appeals of a plan received in the period.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct AppealCounts {
    pub plan: String,
    pub urgency: String,
    pub filed: i64,
    pub upheld: i64,
    pub overturned: i64,
    pub pending: i64,
    pub extended: i64,
    pub decided_on_time: i64,
    pub late_open: i64,
}

pub async fn appeals(tx: &mut Tx, period: Period) -> Result<Vec<AppealCounts>, StoreError> {
    let rows = sqlx::query(
        "SELECT r.plan, a.urgency, COUNT(*) AS filed, \
           SUM(CASE WHEN a.status = 'upheld' THEN 1 ELSE 0 END) AS upheld, \
           SUM(CASE WHEN a.status = 'overturned' THEN 1 ELSE 0 END) AS overturned, \
           SUM(CASE WHEN a.status = 'pending' THEN 1 ELSE 0 END) AS pending, \
           SUM(CASE WHEN a.extension_reason IS NOT NULL THEN 1 ELSE 0 END) AS extended, \
           SUM(CASE WHEN a.decided_at IS NOT NULL AND a.decided_at <= a.due_at THEN 1 ELSE 0 END) AS decided_on_time, \
           SUM(CASE WHEN a.status = 'pending' AND a.due_at < $3 THEN 1 ELSE 0 END) AS late_open \
         FROM appeals a JOIN requests r ON r.id = a.request_id \
         WHERE a.received_at >= $1 AND a.received_at < $2 \
         GROUP BY r.plan, a.urgency ORDER BY r.plan, a.urgency",
    )
    .bind(period.from_ms)
    .bind(period.to_ms)
    .bind(period.now_ms)
    .fetch_all(&mut **tx)
    .await?;
    let counts = rows
        .iter()
        .map(|row| {
            let n = |column: &str| row.try_get::<i64, _>(column);
            Ok(AppealCounts {
                plan: row.try_get("plan")?,
                urgency: row.try_get("urgency")?,
                filed: n("filed")?,
                upheld: n("upheld")?,
                overturned: n("overturned")?,
                pending: n("pending")?,
                extended: n("extended")?,
                decided_on_time: n("decided_on_time")?,
                late_open: n("late_open")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok(counts)
}

/// How many requests the database holds.
pub async fn request_count(store: &super::Store) -> Result<i64, StoreError> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM requests")
        .fetch_one(&store.pool)
        .await?;
    Ok(row.try_get("n")?)
}
