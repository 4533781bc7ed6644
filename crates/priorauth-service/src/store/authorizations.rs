//! The authorizations aggregate's SQL: authorizations, their renewal chains and the usage
//! spent against them.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{StoreError, Tx, insert_rows};

/// An authorization as it is stored.
#[derive(Debug, Clone)]
pub struct NewAuthorization {
    pub number: String,
    pub request_id: String,
    pub organization: String,
    pub drug: String,
    pub hcpcs: String,
    pub start_date: String,
    pub end_date: String,
    pub units_per_period: i64,
    pub period_days: i64,
    pub cycles: i64,
    pub first_cycle: i64,
    pub approved_units: i64,
    pub renews: Option<String>,
    pub created_at: i64,
}

/// An authorization as stored, with the units used so far.
#[derive(Debug, Clone)]
pub struct Authorization {
    pub number: String,
    pub request_id: String,
    pub organization: String,
    pub drug: String,
    pub hcpcs: String,
    pub start_date: String,
    pub end_date: String,
    pub units_per_period: i64,
    pub period_days: i64,
    pub cycles: i64,
    pub first_cycle: i64,
    pub approved_units: i64,
    pub used_units: i64,
    pub renews: Option<String>,
    /// The day its provider cancelled it (`YYYY-MM-DD`): nothing given after it is covered.
    pub cancelled_on: Option<String>,
}

const COLUMNS: &str = "number, request_id, organization, drug, hcpcs, start_date, end_date, units_per_period, period_days, cycles, first_cycle, approved_units, used_units, renews, cancelled_on";

impl Authorization {
    fn from_row(row: &AnyRow) -> Result<Authorization, sqlx::Error> {
        Ok(Authorization {
            number: row.try_get("number")?,
            request_id: row.try_get("request_id")?,
            organization: row.try_get("organization")?,
            drug: row.try_get("drug")?,
            hcpcs: row.try_get("hcpcs")?,
            start_date: row.try_get("start_date")?,
            end_date: row.try_get("end_date")?,
            units_per_period: row.try_get("units_per_period")?,
            period_days: row.try_get("period_days")?,
            cycles: row.try_get("cycles")?,
            first_cycle: row.try_get("first_cycle")?,
            approved_units: row.try_get("approved_units")?,
            used_units: row.try_get("used_units")?,
            renews: row.try_get("renews")?,
            cancelled_on: row.try_get("cancelled_on")?,
        })
    }
}

/// A unit spend recorded against an authorization.
#[derive(Debug, Clone)]
pub struct NewUsage {
    pub id: String,
    pub authorization_number: String,
    pub units: i64,
    pub service_date: String,
    pub actor: String,
    pub at: i64,
}

pub async fn insert(tx: &mut Tx, authorization: &NewAuthorization) -> Result<(), StoreError> {
    insert_all(tx, &[authorization]).await
}

/// Inserts new authorizations, nothing used of any, in one statement per chunk of rows
/// (`row_chunks`).
pub async fn insert_all(
    tx: &mut Tx,
    authorizations: &[&NewAuthorization],
) -> Result<(), StoreError> {
    insert_rows(
        tx,
        "INSERT INTO authorizations (number, request_id, organization, drug, hcpcs, start_date, end_date, units_per_period, period_days, cycles, first_cycle, approved_units, used_units, renews, created_at)",
        "",
        15,
        authorizations,
        |query, authorization| {
            query
                .bind(&authorization.number)
                .bind(&authorization.request_id)
                .bind(&authorization.organization)
                .bind(&authorization.drug)
                .bind(&authorization.hcpcs)
                .bind(&authorization.start_date)
                .bind(&authorization.end_date)
                .bind(authorization.units_per_period)
                .bind(authorization.period_days)
                .bind(authorization.cycles)
                .bind(authorization.first_cycle)
                .bind(authorization.approved_units)
                .bind(0_i64)
                .bind(&authorization.renews)
                .bind(authorization.created_at)
        },
    )
    .await?;
    Ok(())
}

/// An authorization by number.
pub async fn fetch(tx: &mut Tx, number: &str) -> Result<Option<Authorization>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM authorizations WHERE number = $1"
    ))
    .bind(number)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(|r| Authorization::from_row(&r)).transpose()?)
}

/// The authorizations of one member's course of one drug under one plan, of every
/// organization: the payer's records of what the member was authorized (the member as the
/// requests name them by `patient.member_id`), oldest first. At most `RECORDED_KEPT`, the
/// latest ones (a course is a few authorizations).
pub async fn of_member(
    pool: &sqlx::AnyPool,
    plan: &str,
    member_id: &str,
    drug: &str,
) -> Result<Vec<Authorization>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM authorizations WHERE drug = $1 AND request_id IN \
         (SELECT id FROM requests WHERE plan = $2 AND member_id = $3) \
         ORDER BY start_date DESC, number LIMIT {RECORDED_KEPT}"
    ))
    .bind(drug)
    .bind(plan)
    .bind(member_id)
    .fetch_all(pool)
    .await?;
    let mut found = rows
        .iter()
        .map(Authorization::from_row)
        .collect::<Result<Vec<_>, _>>()?;
    found.reverse();
    Ok(found)
}

/// The most authorizations of a member's drug that a request's history is given: the case
/// format's limit on `history.authorizations`.
const RECORDED_KEPT: usize = 50;

/// The authorization a request was granted, if any.
pub async fn of_request(
    tx: &mut Tx,
    request_id: &str,
) -> Result<Option<Authorization>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM authorizations WHERE request_id = $1"
    ))
    .bind(request_id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(|r| Authorization::from_row(&r)).transpose()?)
}

/// The number of the authorization that renews `number`, if one does.
pub async fn renewal_of(tx: &mut Tx, number: &str) -> Result<Option<String>, StoreError> {
    let row = sqlx::query("SELECT number FROM authorizations WHERE renews = $1")
        .bind(number)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(row
        .map(|row| row.try_get::<String, _>("number"))
        .transpose()?)
}

/// An authorization's units after a spend, and the day it was cancelled, as the spend's own
/// statement found its row (holding it until the transaction ends).
#[derive(Debug, Clone)]
pub struct Spent {
    pub used_units: i64,
    pub approved_units: i64,
    pub cancelled_on: Option<String>,
}

/// Spends `units` if they fit in what is left: one statement checks and spends, so
/// concurrent calls can never overspend. The units used and approved after it, or None when
/// they would not fit.
pub async fn spend(tx: &mut Tx, number: &str, units: i64) -> Result<Option<Spent>, StoreError> {
    let spent = sqlx::query("UPDATE authorizations SET used_units = used_units + $1 WHERE number = $2 AND used_units + $1 <= approved_units RETURNING used_units, approved_units, cancelled_on")
        .bind(units)
        .bind(number)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(spent
        .map(|row| -> Result<Spent, sqlx::Error> {
            Ok(Spent {
                used_units: row.try_get("used_units")?,
                approved_units: row.try_get("approved_units")?,
                cancelled_on: row.try_get("cancelled_on")?,
            })
        })
        .transpose()?)
}

pub async fn insert_usage(tx: &mut Tx, usage: &NewUsage) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO usage (id, authorization_number, units, service_date, actor, at) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(&usage.id)
        .bind(&usage.authorization_number)
        .bind(usage.units)
        .bind(&usage.service_date)
        .bind(&usage.actor)
        .bind(usage.at)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The numbers of the authorizations of the course of authorization `$1`: the same plan,
/// member and drug (none but itself when its request names no member).
const COURSE_OF: &str = "SELECT a.number FROM authorizations a JOIN requests r ON r.id = a.request_id \
     JOIN authorizations mine ON mine.number = $1 JOIN requests theirs ON theirs.id = mine.request_id \
     WHERE a.drug = mine.drug AND r.plan = theirs.plan AND r.member_id = theirs.member_id";

/// The units spent with dates of service from `from` to `to` (inclusive, as `YYYY-MM-DD`,
/// which sort as dates) on an authorization and on every other authorization of its member's
/// course (the same plan, member and drug): two authorizations of one course active at once
/// share the drug the member can be given.
pub async fn units_spent_between(
    tx: &mut Tx,
    number: &str,
    from: &str,
    to: &str,
) -> Result<i64, StoreError> {
    let row = sqlx::query(&format!("SELECT CAST(COALESCE(SUM(units), 0) AS BIGINT) AS spent FROM usage WHERE service_date >= $2 AND service_date <= $3 AND authorization_number IN \
         (SELECT $1 UNION {COURSE_OF})"))
        .bind(number)
        .bind(from)
        .bind(to)
        .fetch_one(&mut **tx)
        .await?;
    Ok(row.try_get("spent")?)
}

/// The other authorizations of an authorization's member's course (the same plan, member
/// and drug, as `units_spent_between` counts them) whose period holds `date` (`YYYY-MM-DD`).
pub async fn course_covering(
    tx: &mut Tx,
    number: &str,
    date: &str,
) -> Result<Vec<Authorization>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM authorizations WHERE number <> $1 AND start_date <= $2 AND end_date >= $2 AND number IN ({COURSE_OF}) ORDER BY number"
    ))
    .bind(number)
    .bind(date)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows
        .iter()
        .map(Authorization::from_row)
        .collect::<Result<_, _>>()?)
}

/// Authorizations, the nearest end first (at most `limit`): an organization's, or all.
pub async fn list(
    tx: &mut Tx,
    organization: Option<&str>,
    limit: i64,
) -> Result<Vec<Authorization>, StoreError> {
    let rows = match organization {
        Some(organization) => {
            sqlx::query(&format!(
                "SELECT {COLUMNS} FROM authorizations WHERE organization = $1 ORDER BY end_date LIMIT $2"
            ))
            .bind(organization)
            .bind(limit)
            .fetch_all(&mut **tx)
            .await?
        }
        None => {
            sqlx::query(&format!(
                "SELECT {COLUMNS} FROM authorizations ORDER BY end_date LIMIT $1"
            ))
            .bind(limit)
            .fetch_all(&mut **tx)
            .await?
        }
    };
    Ok(rows
        .iter()
        .map(Authorization::from_row)
        .collect::<Result<_, sqlx::Error>>()?)
}

/// Cancels an authorization as of `day` (`YYYY-MM-DD`); false when it was already cancelled
/// (one statement: of two concurrent cancellations, one cancels).
/// The latest day of service recorded against an authorization (`YYYY-MM-DD`), if any.
pub async fn last_service_date(tx: &mut Tx, number: &str) -> Result<Option<String>, StoreError> {
    let row =
        sqlx::query("SELECT MAX(service_date) AS last FROM usage WHERE authorization_number = $1")
            .bind(number)
            .fetch_one(&mut **tx)
            .await?;
    Ok(row.try_get::<Option<String>, _>("last")?)
}

pub async fn cancel(tx: &mut Tx, number: &str, day: &str) -> Result<bool, StoreError> {
    let updated = sqlx::query(
        "UPDATE authorizations SET cancelled_on = $1 WHERE number = $2 AND cancelled_on IS NULL",
    )
    .bind(day)
    .bind(number)
    .execute(&mut **tx)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// New terms for an authorization (an approval with changes overturned on appeal grants what
/// the approval would have), keeping its number, units used and usage; false when the units
/// already used exceed the new approved units.
pub async fn replace_terms(
    tx: &mut Tx,
    number: &str,
    terms: &NewAuthorization,
) -> Result<bool, StoreError> {
    let updated = sqlx::query(
        "UPDATE authorizations SET start_date = $1, end_date = $2, units_per_period = $3, period_days = $4, cycles = $5, first_cycle = $6, approved_units = $7 \
         WHERE number = $8 AND used_units <= $7",
    )
    .bind(&terms.start_date)
    .bind(&terms.end_date)
    .bind(terms.units_per_period)
    .bind(terms.period_days)
    .bind(terms.cycles)
    .bind(terms.first_cycle)
    .bind(terms.approved_units)
    .bind(number)
    .execute(&mut **tx)
    .await?;
    Ok(updated.rows_affected() == 1)
}
