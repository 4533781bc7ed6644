//! The SQL of the UM report: figures counted from the records themselves (requests, their
//! determinations and appeals), in queries both back ends run, for the requests received in a
//! period. Nothing is counted on the side.

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

/// Counts per plan, drug and urgency, in one grouped query.
pub async fn counts(tx: &mut Tx, period: Period) -> Result<Vec<GroupCounts>, StoreError> {
    let rows = sqlx::query(
        "SELECT r.plan, COALESCE(r.drug, '') AS drug, r.urgency, \
           COUNT(*) AS requests, \
           SUM(CASE WHEN r.status = 'approved' AND d.request_id IS NULL THEN 1 ELSE 0 END) AS approved_touchless, \
           SUM(CASE WHEN r.status = 'approved' AND d.decision = 'approve' AND COALESCE(a.overturned, 0) = 0 THEN 1 ELSE 0 END) AS approved_by_reviewer, \
           SUM(CASE WHEN r.status = 'approved' AND d.decision = 'approve_with_changes' AND COALESCE(a.overturned, 0) = 0 THEN 1 ELSE 0 END) AS approved_with_changes, \
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
         FROM requests r \
         LEFT JOIN determinations d ON d.request_id = r.id \
         LEFT JOIN (SELECT request_id, COUNT(*) AS appeals, SUM(CASE WHEN status = 'overturned' THEN 1 ELSE 0 END) AS overturned FROM appeals GROUP BY request_id) a ON a.request_id = r.id \
         WHERE r.created_at >= $1 AND r.created_at < $2 \
         GROUP BY r.plan, COALESCE(r.drug, ''), r.urgency \
         ORDER BY r.plan, COALESCE(r.drug, ''), r.urgency",
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

/// Which requests' turnaround a percentile is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grouping {
    /// Per plan, drug and urgency.
    PlanDrugUrgency,
    /// Per plan and urgency (CMS-0057-F's figures are per plan).
    PlanUrgency,
}

/// The median, 90th percentile and maximum of receipt-to-first-decision times of a group, by
/// nearest rank (the smallest time at least that share of the group is at or under).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Turnaround {
    pub plan: String,
    /// Empty under `Grouping::PlanUrgency`.
    pub drug: String,
    pub urgency: String,
    pub median_ms: i64,
    pub p90_ms: i64,
    pub max_ms: i64,
}

/// Turnaround percentiles per group, ranked by window functions in the database (SQLite 3.25
/// and PostgreSQL both have them), reading three rows per group rather than every time.
pub async fn turnaround(
    tx: &mut Tx,
    period: Period,
    grouping: Grouping,
) -> Result<Vec<Turnaround>, StoreError> {
    let drug = match grouping {
        Grouping::PlanDrugUrgency => "COALESCE(r.drug, '')",
        Grouping::PlanUrgency => "''",
    };
    let sql = format!(
        "SELECT plan, drug, urgency, n, k, t FROM ( \
           SELECT r.plan AS plan, {drug} AS drug, r.urgency AS urgency, r.decided_at - r.created_at AS t, \
             ROW_NUMBER() OVER (PARTITION BY r.plan, {drug}, r.urgency ORDER BY r.decided_at - r.created_at) AS k, \
             COUNT(*) OVER (PARTITION BY r.plan, {drug}, r.urgency) AS n \
           FROM requests r WHERE r.created_at >= $1 AND r.created_at < $2 AND r.decided_at IS NOT NULL \
         ) ranked \
         WHERE k = (n + 1) / 2 OR k = (9 * n + 9) / 10 OR k = n \
         ORDER BY plan, drug, urgency, k"
    );
    let rows = sqlx::query(&sql)
        .bind(period.from_ms)
        .bind(period.to_ms)
        .fetch_all(&mut **tx)
        .await?;
    let mut figures: Vec<Turnaround> = Vec::new();
    for row in &rows {
        let plan: String = row.try_get("plan")?;
        let drug: String = match row.try_get::<String, _>("drug")? {
            drug if drug.is_empty() && grouping == Grouping::PlanDrugUrgency => "unrecorded".into(),
            drug => drug,
        };
        let urgency: String = row.try_get("urgency")?;
        let n: i64 = row.try_get("n")?;
        let k: i64 = row.try_get("k")?;
        let t: i64 = row.try_get("t")?;
        let same = figures
            .last()
            .is_some_and(|f| f.plan == plan && f.drug == drug && f.urgency == urgency);
        if !same {
            figures.push(Turnaround {
                plan,
                drug,
                urgency,
                ..Turnaround::default()
            });
        }
        if let Some(figure) = figures.last_mut() {
            // One row may be several ranks at once (a group of one is its own median).
            if k == (n + 1) / 2 {
                figure.median_ms = t;
            }
            if k == (9 * n + 9) / 10 {
                figure.p90_ms = t;
            }
            if k == n {
                figure.max_ms = t;
            }
        }
    }
    Ok(figures)
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
