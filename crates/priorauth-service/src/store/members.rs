//! The eligibility table's SQL: the payer's members, their plan and the days it covers them.

use sqlx::Row;

use super::{Store, StoreError, Tx};

/// One enrolment span of a member in a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrolment {
    pub member_id: String,
    pub plan: String,
    /// First day covered, `YYYY-MM-DD`.
    pub effective_from: String,
    /// Last day covered (inclusive); `None` while the enrolment is open.
    pub effective_to: Option<String>,
    pub birth_date: Option<String>,
}

impl Enrolment {
    /// Whether the enrolment covers `day` (`YYYY-MM-DD`, compared as text).
    pub fn covers(&self, day: &str) -> bool {
        self.effective_from.as_str() <= day
            && self.effective_to.as_deref().is_none_or(|to| day <= to)
    }
}

/// Writes enrolments; one with the same member, plan and first day replaces the stored one.
pub async fn upsert(tx: &mut Tx, rows: &[Enrolment], at: i64) -> Result<(), StoreError> {
    for row in rows {
        sqlx::query("INSERT INTO members (member_id, plan, effective_from, effective_to, birth_date, imported_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (member_id, plan, effective_from) DO UPDATE SET effective_to = excluded.effective_to, birth_date = excluded.birth_date, imported_at = excluded.imported_at")
            .bind(&row.member_id)
            .bind(&row.plan)
            .bind(&row.effective_from)
            .bind(&row.effective_to)
            .bind(&row.birth_date)
            .bind(at)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Every enrolment of these member ids, soonest first.
pub async fn of_members(store: &Store, ids: &[String]) -> Result<Vec<Enrolment>, StoreError> {
    let mut found = Vec::new();
    for id in ids {
        let rows = sqlx::query("SELECT member_id, plan, effective_from, effective_to, birth_date FROM members WHERE member_id = $1 ORDER BY effective_from, plan")
            .bind(id)
            .fetch_all(&store.reads)
            .await?;
        for row in rows {
            found.push(Enrolment {
                member_id: row.try_get("member_id")?,
                plan: row.try_get("plan")?,
                effective_from: row.try_get("effective_from")?,
                effective_to: row.try_get("effective_to")?,
                birth_date: row.try_get("birth_date")?,
            });
        }
    }
    Ok(found)
}

/// Whether any eligibility has been loaded: until it has, the plan on a Coverage is taken as
/// the records' word (the service's behaviour before the table existed).
///
/// Every `/v1` request asks, so the answer is kept: enrolments are only ever added
/// (`upsert`), so once seen loaded it stays so; an empty table is asked again after
/// [`EMPTY_ASKED_AGAIN_MS`], so an import by another process (the CLI's `members import`
/// beside a running service) counts within a second.
pub async fn any(store: &Store) -> Result<bool, StoreError> {
    use std::sync::atomic::Ordering;
    let seen = store.members_seen.load(Ordering::Relaxed);
    if seen == LOADED {
        return Ok(true);
    }
    let now = super::now_ms();
    if seen > 0 && now.saturating_sub(seen) < EMPTY_ASKED_AGAIN_MS {
        return Ok(false);
    }
    let row = sqlx::query("SELECT COUNT(*) AS n FROM (SELECT 1 FROM members LIMIT 1) t")
        .fetch_one(&store.reads)
        .await?;
    let loaded = row.try_get::<i64, _>("n")? > 0;
    store
        .members_seen
        .store(if loaded { LOADED } else { now.max(1) }, Ordering::Relaxed);
    Ok(loaded)
}

/// `Store::members_seen` once eligibility was seen loaded.
const LOADED: i64 = -1;

/// How long an empty eligibility table is taken as empty without asking again.
const EMPTY_ASKED_AGAIN_MS: i64 = 1_000;

/// After an import in this process: loaded from now on.
pub fn note_loaded(store: &Store) {
    store
        .members_seen
        .store(LOADED, std::sync::atomic::Ordering::Relaxed);
}
