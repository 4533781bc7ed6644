//! The work list: `GET /v1/requests`, the requests a caller may see, newest first, filtered
//! and one page at a time. A clinic's intake sees its own organization's requests (its
//! "my requests"); a reviewer or an admin sees every organization's and may filter by one.
//! The audit records the ids each page shows.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Error, Service, invalid, timestamp};
use crate::keys::{Caller, Role};
use crate::store::requests::{self, ListFilter};
use crate::store::{self, now_ms};

/// The rows a page holds unless the caller asks for fewer, and the most it may ask.
const PAGE: i64 = 50;
const PAGE_MAX: i64 = 500;

/// Every status a request can have (the states of `lifecycle`).
const STATUSES: [&str; 6] = [
    "pending_information",
    "pending_review",
    "approved",
    "denied",
    "not_applicable",
    "withdrawn",
];

/// `GET /v1/requests?status=&plan=&drug=&urgency=&due_before=&member=&organization=&limit=&after=`,
/// each parameter as text so that a bad one is named, not rejected by the extractor.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub status: Option<String>,
    pub plan: Option<String>,
    pub drug: Option<String>,
    pub urgency: Option<String>,
    /// `YYYY-MM-DD` (due before that day begins, UTC) or an RFC 3339 time.
    pub due_before: Option<String>,
    /// A member id (exact) or part of a member's name (any case).
    pub member: Option<String>,
    /// Payer roles only: one organization's requests.
    pub organization: Option<String>,
    pub limit: Option<String>,
    /// The `next` of the page before.
    pub after: Option<String>,
}

/// One page of the requests the caller may see.
pub async fn list(service: &Service, caller: &Caller, query: &ListQuery) -> Result<Value, Error> {
    let filter = filter(caller, query)?;
    let mut tx = service.store.pool.begin().await?;
    let rows = requests::list(&mut tx, &filter).await?;
    let now = now_ms();
    let items: Vec<Value> = rows
        .iter()
        .map(|r| {
            let due = r.due_at.filter(|_| super::requests::is_pending(&r.status));
            json!({
                "id": r.id,
                "status": r.status,
                "outcome": r.outcome,
                "organization": r.organization,
                "plan": r.plan,
                "policy": r.policy,
                "drug": r.drug,
                "urgency": r.urgency,
                "member": {"id": r.member.id, "name": r.member.name},
                "received_at": timestamp(r.created_at),
                "due_at": due.map(timestamp),
                "minutes_left": due.map(|d| (d - now) / 60_000),
                "late": due.map(|d| now > d),
                "decided_at": r.decided_at.map(timestamp),
                "authorization": r.authorization,
            })
        })
        .collect();
    let next = rows
        .last()
        .filter(|_| rows.len() as i64 == filter.limit)
        .map(|r| format!("{}.{}", r.created_at, r.id));
    let shown: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let target = format!("requests:{}", shown.join(","));
    store::audit(&mut tx, &caller.audit_record("requests.list", &target)).await?;
    tx.commit().await?;
    Ok(json!({ "items": items, "next": next }))
}

/// A query read into a filter, each bad parameter named. A submitter's list is its own
/// organization's whatever it asks: another organization's requests do not exist for it, so
/// naming one answers an empty page, as naming one with no requests would.
fn filter(caller: &Caller, query: &ListQuery) -> Result<ListFilter, Error> {
    let text = |name: &'static str, value: &Option<String>, max: usize| match value.as_deref() {
        None => Ok(None),
        Some(v)
            if !v.trim().is_empty()
                && v.chars().count() <= max
                && !v.chars().any(char::is_control) =>
        {
            Ok(Some(v.trim().to_string()))
        }
        Some(_) => Err(invalid(name, format!("1 to {max} characters"))),
    };
    let status = match query.status.as_deref() {
        None => None,
        Some(s) if STATUSES.contains(&s) => Some(s.to_string()),
        Some(_) => {
            return Err(invalid("status", format!("one of {}", STATUSES.join(", "))));
        }
    };
    let urgency = match query.urgency.as_deref() {
        None => None,
        Some(u @ ("standard" | "expedited")) => Some(u.to_string()),
        Some(_) => return Err(invalid("urgency", "`standard` or `expedited`")),
    };
    let due_before = match query.due_before.as_deref() {
        None => None,
        Some(t) => Some(
            parse_time(t)
                .ok_or_else(|| invalid("due_before", "a date `YYYY-MM-DD` or an RFC 3339 time"))?,
        ),
    };
    let asked = text("organization", &query.organization, 200)?;
    let (organization, foreign) = match caller.role {
        Role::Submitter => (
            Some(caller.organization.clone()),
            asked.is_some_and(|other| other != caller.organization),
        ),
        Role::Reviewer | Role::Admin => (asked, false),
    };
    let limit = match query.limit.as_deref() {
        None => PAGE,
        Some(t) => t
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=PAGE_MAX).contains(n))
            .ok_or_else(|| invalid("limit", format!("a whole number from 1 to {PAGE_MAX}")))?,
    };
    let after = match query.after.as_deref() {
        None => None,
        Some(t) => Some(parse_cursor(t).ok_or_else(|| {
            invalid("after", "not a cursor this service gave (`next` of a page)")
        })?),
    };
    Ok(ListFilter {
        organization,
        nothing: foreign,
        status,
        plan: text("plan", &query.plan, 100)?,
        drug: text("drug", &query.drug, 100)?,
        urgency,
        due_before,
        member: text("member", &query.member, 200)?,
        limit,
        after,
    })
}

/// Milliseconds since 1970 of `YYYY-MM-DD` (its midnight, UTC) or an RFC 3339 time.
fn parse_time(text: &str) -> Option<i64> {
    if let Some(day) = priorauth_core::date::Date::parse(text) {
        let epoch = priorauth_core::date::Date::from_epoch_days(0)?;
        return day.days_since(epoch).checked_mul(86_400_000);
    }
    text.parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond())
}

/// `created.id` as `list` writes it.
fn parse_cursor(text: &str) -> Option<(i64, String)> {
    let (created, id) = text.split_once('.')?;
    let created = created.parse().ok()?;
    let plausible = !id.is_empty()
        && id.len() <= 64
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    plausible.then(|| (created, id.to_string()))
}
