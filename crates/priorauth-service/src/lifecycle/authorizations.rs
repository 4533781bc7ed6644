//! Authorizations: what an approval grants (period, units, cycles, within the policy's and
//! the label's bounds), reading one, and spending its units.

use priorauth_core::date::Date;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::evaluate::Evaluated;
use super::retries::{Begun, Retry, begin};
use super::{Error, Service, invalid, require, visible};
use crate::keys::{Caller, Role};
use crate::store::authorizations::{self as records, Authorization, NewAuthorization, NewUsage};
use crate::store::requests::{self as requests_store, NewEvent, Request};
use crate::store::{self, StoreError, Tx, now_ms, random_id};

/// What a clinician's approval grants instead of the request.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Changes {
    pub units: Option<u32>,
    pub period_days: Option<u32>,
    pub cycles: Option<u32>,
    /// Inclusive last day, `YYYY-MM-DD`.
    pub end: Option<String>,
}

impl Changes {
    /// Names nothing to change.
    pub fn is_empty(&self) -> bool {
        self.units.is_none()
            && self.period_days.is_none()
            && self.cycles.is_none()
            && self.end.is_none()
    }
}

/// Units used on a date of service.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UsageBody {
    pub units: u32,
    /// `YYYY-MM-DD`.
    pub date_of_service: String,
}

/// Why a provider cancels an authorization it no longer needs.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancellationBody {
    /// In plain language: the treatment was stopped, the member changed plans, …
    pub reason: String,
}

/// Creates the authorization of a request's approval inside `tx` and answers it as JSON:
/// the request's organization holds it (also when an admin or a reviewer approves), and a
/// renewal's continues the authorization the request renews.
pub(super) async fn create(
    tx: &mut Tx,
    service: &Service,
    caller: &Caller,
    request: &Request,
    evaluated: &Evaluated,
    changes: &Changes,
) -> Result<Value, Error> {
    let authorization = plan(
        service,
        &request.organization,
        &request.id,
        evaluated,
        changes,
        request.renews.as_deref(),
    )?;
    insert(tx, caller, &authorization).await?;
    Ok(answer(&authorization))
}

/// Stores an authorization. A renewal checks first that its authorization was not renewed
/// meanwhile; two renewals approved at once (two PostgreSQL sessions) meet the unique index
/// on `renews`, which lets one commit.
/// Its audit entry binds it (its units used and usage, none yet).
pub(super) async fn insert(
    tx: &mut Tx,
    caller: &Caller,
    authorization: &NewAuthorization,
) -> Result<(), Error> {
    check_not_renewed(tx, authorization).await?;
    records::insert(tx, authorization)
        .await
        .map_err(|error| renewed_meanwhile(error, authorization.renews.as_deref()))?;
    let record = caller
        .audit_record("authorization.create", &authorization.number)
        .binding(store::Binds::Authorization);
    store::audit(tx, &record).await?;
    Ok(())
}

/// A renewal's authorization must not be renewed already: a renewal submitted before the
/// other was approved, the first approval wins.
pub(super) async fn check_not_renewed(
    tx: &mut Tx,
    authorization: &NewAuthorization,
) -> Result<(), Error> {
    if let Some(renews) = &authorization.renews {
        if let Some(renewal) = records::renewal_of(tx, renews).await? {
            return Err(already_renewed(renews, &renewal));
        }
    }
    Ok(())
}

/// An authorization is renewed once: a second renewal would authorize the same cycles again.
pub(super) fn already_renewed(number: &str, renewal: &str) -> Error {
    Error::Conflict(format!(
        "authorization `{number}` is already renewed by `{renewal}`; renew that one"
    ))
}

/// A unique violation on a renewal's insert: another renewal of the same authorization won.
pub(super) fn renewed_meanwhile(error: StoreError, renews: Option<&str>) -> Error {
    match (&error.0, renews) {
        (sqlx::Error::Database(database), Some(renews)) if database.is_unique_violation() => {
            Error::Conflict(format!("authorization `{renews}` was renewed meanwhile"))
        }
        _ => error.into(),
    }
}

/// The authorization of an approval: its period, units and cycles.
pub fn plan(
    service: &Service,
    organization: &str,
    request_id: &str,
    evaluated: &Evaluated,
    changes: &Changes,
    renews: Option<&str>,
) -> Result<NewAuthorization, Error> {
    let request = evaluated.case.request.clone().unwrap_or_default();
    let drug_id = request.drug.clone().unwrap_or_default();
    let drug = service
        .engine
        .catalog
        .drugs
        .iter()
        .find(|d| d.id == drug_id);
    // The period starts on the day the payer received the request, never on a date the
    // requester sends.
    let start = evaluated.received;
    let bound = evaluated.bound;
    // A reviewer may change the quantity, within the label's limits.
    let cycles = changes.cycles.unwrap_or(bound.cycles);
    if cycles == 0 || cycles > bound.max_cycles {
        return Err(invalid(
            if changes.cycles.is_some() {
                "changes.cycles"
            } else {
                "case.request.cycles"
            },
            format!(
                "{cycles} cycles: an authorization covers from 1 to {} cycles here (the label's course from the request's first cycle)",
                bound.max_cycles
            ),
        ));
    }
    let units = changes.units.unwrap_or(bound.units_per_cycle);
    if units > bound.max_units_per_cycle {
        return Err(invalid(
            "changes.units",
            format!(
                "{units} units per cycle are more than the label's {} per cycle",
                bound.max_units_per_cycle
            ),
        ));
    }
    // The request's cycle, never shorter than the label's (28-day cycles declared without
    // Blincyto's 14 treatment-free days are counted as its 42), for the cycles approved:
    // Blincyto's continued therapy (cycles 6-9) is 84 days, declared 42 or not.
    let label_shortest = drug.and_then(|d| d.limits.shortest_cycle_from(bound.first_cycle));
    let shortest_cycle = label_shortest.unwrap_or(1);
    let cycle_length_days = request
        .cycle_length_days
        .map(|days| days.max(shortest_cycle));
    // Without a cycle length or a period for the units, the label's shortest cycle: each of
    // its periods holds at most the units per cycle, so leaving both out does not let the
    // course be spent at once.
    let cycle_days = cycle_length_days
        .or(request.units_period_days)
        .or(label_shortest)
        .unwrap_or(0);
    // Each period may spend a cycle's units: a reviewer may lengthen it, never shorten it (a
    // 1-day period let 980 units of Blincyto be spent each day, the course in 9 days).
    if let Some(days) = changes.period_days {
        if !(cycle_days.max(1)..=366).contains(&days) {
            return Err(invalid(
                "changes.period_days",
                format!(
                    "from {} (the days of a cycle the request is approved for) to 366 days",
                    cycle_days.max(1)
                ),
            ));
        }
    }
    let period_days = changes.period_days.unwrap_or(cycle_days);
    // The engine's period, which starts on the day of receipt.
    let stated_end = evaluated
        .result
        .pointer("/authorization/end")
        .and_then(Value::as_str)
        .and_then(Date::parse)
        .or(bound.end);
    // Without a duration in the policy, the authorization covers the cycles approved, and
    // never more than a year: the cycle length is the request's, so a long cycle declared
    // (366 days) must not stretch an authorization over years.
    let year_end = start.inclusive_end(priorauth_core::date::Duration::Years(1));
    let course_end = cycle_length_days.and_then(|length| {
        let days = i64::from(length).checked_mul(i64::from(cycles))?;
        let end = start.add_days(days - 1)?;
        Some(year_end.map_or(end, |year_end| end.min(year_end)))
    });
    // The period the policy allows (its stated duration, else the cycles approved, else a
    // year): a reviewer may shorten it, never lengthen it.
    let allowed_end = stated_end.or(course_end).or(year_end).unwrap_or(start);
    let end = match &changes.end {
        Some(text) => Date::parse(text)
            .filter(|end| (start..=allowed_end).contains(end))
            .ok_or_else(|| {
                invalid(
                    "changes.end",
                    format!("must be a date from the start {start} to {allowed_end}, the end the policy allows"),
                )
            })?,
        None => allowed_end,
    };
    // Where the engine placed the request in its course, not where it said it starts: a
    // request that gives only `history.cycles_given`, or that the records place later, is
    // for those later cycles, and its renewal continues after them.
    let first_cycle = bound.first_cycle;
    let hcpcs = request
        .hcpcs
        .clone()
        .or_else(|| drug.map(|d| d.hcpcs.clone()))
        .unwrap_or_default();
    Ok(NewAuthorization {
        number: format!("PA-{}", &random_id("")[..12].to_uppercase()),
        request_id: request_id.to_string(),
        organization: organization.to_string(),
        drug: drug_id,
        hcpcs,
        start_date: start.to_string(),
        end_date: end.to_string(),
        units_per_period: i64::from(units),
        period_days: i64::from(period_days),
        cycles: i64::from(cycles),
        first_cycle: i64::from(first_cycle),
        // Two u32 factors: the product fits an i64.
        approved_units: i64::from(units) * i64::from(cycles),
        renews: renews.map(str::to_string),
        created_at: now_ms(),
    })
}

/// The authorization of a clinician's approval of a request no policy governs (a PAS
/// request for a service no policy of the plan covers). No policy or label bound is known,
/// so nothing is taken from what the request declares: the reviewer states all of it, the
/// units per cycle, the cycles, and the last day or the days of a cycle; the period starts
/// on the day of receipt, as every authorization's does.
///
/// What it states stays within the drug's label when the catalog holds the drug (whatever
/// the plan): at most the label's units a cycle, the cycles left of the label's course after
/// those the member's recorded authorizations cover, and usage paced at the label's shortest
/// cycle at least (a cycle's units are never spent faster). A request no policy governs (an
/// unknown plan, a member the eligibility does not hold) was approved 24 cycles of 100,000
/// units of Blincyto, and its 8,820 units spent in a day.
pub(super) fn stated(
    engine: &priorauth_core::Engine,
    organization: &str,
    request_id: &str,
    case: &Value,
    received: Date,
    changes: &Changes,
) -> Result<NewAuthorization, Error> {
    const WHY: &str = "no policy governs this request, so the approval states what it covers";
    let label = LabelBound::of(engine, case);
    let units = changes.units.filter(|u| *u > 0).ok_or_else(|| {
        invalid(
            "changes.units",
            format!("{WHY}: units per cycle, at least 1"),
        )
    })?;
    let cycles = changes
        .cycles
        .filter(|c| (1..=priorauth_core::case::MAX_CYCLES_REQUESTED).contains(c))
        .ok_or_else(|| {
            invalid(
                "changes.cycles",
                format!(
                    "{WHY}: cycles, from 1 to {}",
                    priorauth_core::case::MAX_CYCLES_REQUESTED
                ),
            )
        })?;
    if let Some(most) = label.units_per_cycle.filter(|most| units > *most) {
        return Err(invalid(
            "changes.units",
            format!(
                "at most {most} units a cycle: no more is given in a cycle by the drug's label"
            ),
        ));
    }
    if let Some(left) = label.cycles_left.filter(|left| cycles > *left) {
        return Err(invalid(
            "changes.cycles",
            match left {
                0 => "no cycle is left of the drug label's course after those the member's recorded authorizations cover: not approvable as a cycle of it".to_string(),
                left => format!(
                    "at most {left}: the cycles left of the drug label's course after those the member's recorded authorizations cover"
                ),
            },
        ));
    }
    if let (Some(days), Some(shortest)) = (changes.period_days, label.shortest_cycle_days) {
        if days < shortest {
            return Err(invalid(
                "changes.period_days",
                format!(
                    "at least {shortest}: the drug label's shortest cycle, over which a cycle's units are given"
                ),
            ));
        }
    }
    let period_days = changes.period_days.filter(|d| (1..=366).contains(d));
    let end = match (&changes.end, period_days) {
        (Some(text), _) => Date::parse(text)
            .filter(|end| *end >= received)
            .ok_or_else(|| invalid("changes.end", "must be a date on or after the start"))?,
        (None, Some(days)) => received
            .add_days(i64::from(days) * i64::from(cycles) - 1)
            .ok_or_else(|| invalid("changes.period_days", "the period ends past the calendar"))?,
        (None, None) => {
            return Err(invalid(
                "changes.end",
                format!(
                    "{WHY}: the last day (`end`) or the days of a cycle (`period_days`, 1 to 366)"
                ),
            ));
        }
    };
    let text = |pointer: &str| {
        case.pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let authorization = NewAuthorization {
        number: format!("PA-{}", &random_id("")[..12].to_uppercase()),
        request_id: request_id.to_string(),
        organization: organization.to_string(),
        drug: text("/request/drug"),
        hcpcs: text("/request/hcpcs"),
        start_date: received.to_string(),
        end_date: end.to_string(),
        units_per_period: i64::from(units),
        period_days: i64::from(period_days.or(label.shortest_cycle_days).unwrap_or(0)),
        cycles: i64::from(cycles),
        first_cycle: 1,
        approved_units: i64::from(units) * i64::from(cycles),
        renews: None,
        created_at: now_ms(),
    };
    Ok(authorization)
}

/// What the drug catalog's label allows an approval no policy sized: each bound `None` when
/// the catalog does not hold the drug.
#[derive(Debug, Default)]
struct LabelBound {
    units_per_cycle: Option<u32>,
    cycles_left: Option<u32>,
    shortest_cycle_days: Option<u32>,
}

impl LabelBound {
    /// From the case's facts where it gives them (its dose days, body surface area, the
    /// member's recorded authorizations), else the label's most: a dose per m² at the
    /// largest body surface area sized, the course from its first cycle.
    fn of(engine: &priorauth_core::Engine, case: &Value) -> LabelBound {
        use priorauth_core::facts::{FactId, Value as Fact};
        let Some(drug) = case
            .pointer("/request/drug")
            .and_then(Value::as_str)
            .and_then(|id| engine.catalog.drugs.iter().find(|d| d.id == id.trim()))
        else {
            return LabelBound::default();
        };
        let facts = super::evaluate::facts_of(engine, case);
        let number = |id: FactId| match facts.as_ref().map(|f| f.get(id)) {
            Some(Fact::Number(n)) if n.is_finite() && n >= 0.0 => Some(n),
            _ => None,
        };
        let units = number(FactId::RequestLabelUnitsPerCycle).or_else(|| {
            drug.label_units_per_cycle(
                None,
                None,
                Some(priorauth_core::policy::MOST_BSA_M2_SIZED),
                None,
            )
        });
        let course = number(FactId::RequestLabelCourseCycles)
            .unwrap_or(f64::from(drug.limits.course_cycles));
        // A case that does not parse (an item no policy governs may hold what the intake
        // could not read) is placed after the cycles of the authorizations its history holds
        // (the member's recorded ones, merged in).
        let recorded = || {
            case.pointer("/history/authorizations")
                .and_then(Value::as_array)
                .map_or(0.0, |list| {
                    list.iter()
                        .filter_map(|a| a.get("cycles").and_then(Value::as_f64))
                        .filter(|c| c.is_finite() && *c >= 0.0)
                        .sum::<f64>()
                })
        };
        let first = number(FactId::RequestFirstCycle)
            .unwrap_or_else(|| recorded() + 1.0)
            .max(1.0);
        let first_cycle = first.min(f64::from(u32::MAX)) as u32;
        LabelBound {
            units_per_cycle: units.map(|u| u.floor().min(f64::from(u32::MAX)) as u32),
            cycles_left: Some((course - (first - 1.0)).max(0.0) as u32),
            shortest_cycle_days: drug.limits.shortest_cycle_from(first_cycle),
        }
    }
}

/// A new authorization as the answer to its request shows it.
pub fn answer(a: &NewAuthorization) -> Value {
    json!({
        "number": a.number, "drug": a.drug, "hcpcs": a.hcpcs, "start": a.start_date, "end": a.end_date,
        "units_per_period": a.units_per_period, "period_days": a.period_days, "cycles": a.cycles, "first_cycle": a.first_cycle,
        "approved_units": a.approved_units, "used_units": 0, "renews": a.renews,
    })
}

/// An authorization as its reader sees it.
pub fn view(a: &Authorization) -> Value {
    json!({
        "number": a.number,
        "request_id": a.request_id,
        "drug": a.drug,
        "hcpcs": a.hcpcs,
        "start": a.start_date,
        "end": a.end_date,
        "units_per_period": a.units_per_period,
        "period_days": a.period_days,
        "cycles": a.cycles,
        "first_cycle": a.first_cycle,
        "approved_units": a.approved_units,
        "used_units": a.used_units,
        "remaining_units": a.approved_units - a.used_units,
        "renews": a.renews,
        "cancelled_on": a.cancelled_on,
    })
}

/// An authorization, or NotFound when it does not exist or the caller may not see it.
pub(super) async fn fetch(
    tx: &mut Tx,
    caller: &Caller,
    number: &str,
) -> Result<Authorization, Error> {
    let authorization = records::fetch(tx, number).await?.ok_or(Error::NotFound)?;
    if !visible(caller, &authorization.organization) {
        return Err(Error::NotFound);
    }
    Ok(authorization)
}

/// Reads an authorization with the units used and left.
pub async fn read(service: &Service, caller: &Caller, number: &str) -> Result<Value, Error> {
    let mut tx = service.store.pool.begin().await?;
    let authorization = fetch(&mut tx, caller, number).await?;
    store::audit(&mut tx, &caller.audit_record("authorization.read", number)).await?;
    tx.commit().await?;
    Ok(view(&authorization))
}

/// Spends units of an authorization on a date of service within its period; never beyond
/// the approved units, also under concurrent calls.
pub async fn record_usage(
    service: &Service,
    caller: &Caller,
    number: &str,
    body: &UsageBody,
    retry: Option<&Retry>,
) -> Result<(Value, bool), Error> {
    require(caller, &[Role::Submitter, Role::Admin])?;
    if body.units == 0 {
        return Err(invalid("units", "must be at least 1"));
    }
    let date = Date::parse(&body.date_of_service)
        .ok_or_else(|| invalid("date_of_service", "must be a date as YYYY-MM-DD"))?;
    // Usage is drug given: a date of service still to come is not spent against the
    // authorization (one day's grace for a clinic whose day has begun before the payer's).
    let today = super::day_of(now_ms());
    if today.add_days(1).is_some_and(|tomorrow| date > tomorrow) {
        return Err(invalid(
            "date_of_service",
            format!("{date} is still to come (today is {today}): usage records drug already given"),
        ));
    }
    // Drug given when the member's coverage had ended (the payer's eligibility) is not
    // spent against the authorization, whose period may outlast the coverage. Read before
    // the transaction opens: a read on another pooled connection while holding one starved
    // the pool when many spends of one authorization came at once.
    let covered = match crate::store::requests::course_of(&service.store.reads, number).await? {
        Some((plan, Some(member), _)) => {
            super::members::covered_on(service, &plan, &member, &date.to_string()).await?
        }
        _ => true,
    };
    // Spends of one member's course, one at a time (their periods' units are counted
    // together), held before the transaction opens (see `courses::hold`).
    let _course = super::courses::hold(service, number, &Value::Null).await?;
    let mut tx = match begin(service, caller, retry).await? {
        Begun::Fresh(tx) => tx,
        Begun::Replayed(answer) => return Ok((answer, true)),
    };
    let authorization = fetch(&mut tx, caller, number).await?;
    let (start, end) = (&authorization.start_date, &authorization.end_date);
    if date < Date::parse(start).unwrap_or(date) || date > Date::parse(end).unwrap_or(date) {
        return Err(invalid(
            "date_of_service",
            format!("{date} is outside the authorization period {start} to {end}"),
        ));
    }
    // Answered only once the authorization is known to be the caller's (another's answers
    // as a missing one).
    if !covered {
        return Err(invalid(
            "date_of_service",
            format!(
                "{date}: the member's coverage under the plan does not include this day (the payer's eligibility)"
            ),
        ));
    }
    let Some(spent) = records::spend(&mut tx, number, i64::from(body.units)).await? else {
        return Err(Error::Conflict(format!(
            "{} units would exceed the approved {} ({} left)",
            body.units,
            authorization.approved_units,
            authorization.approved_units - authorization.used_units
        )));
    };
    // The day it was cancelled as the spend found its row, which the spend holds: a
    // cancellation committed while this spend was on its way is seen here (the transaction is
    // then rolled back, nothing spent).
    if let Some(day) = given_after_cancellation(spent.cancelled_on.as_deref(), date) {
        return Err(invalid(
            "date_of_service",
            format!(
                "{date} is after the authorization was cancelled on {day}: only drug given through that day is covered"
            ),
        ));
    }
    let (used, approved) = (spent.used_units, spent.approved_units);
    // Each of the authorization's successive periods from its start (a cycle: "980 billable
    // units per 42 days") holds at most its units per period, so a course is not spent in its
    // first days. Checked after the spend above, whose update holds the authorization's row:
    // concurrent spends of one authorization see each other's usage here.
    //
    // The member's other authorizations of the course with periods as long as this one's,
    // whose period holds the date, hold it to their periods too. Each lays its periods from
    // its own start, so without this two authorizations received weeks apart were each spent a
    // cycle's units within one cycle of the other's: about twice the label's pace. Only those
    // of the same period length: a longer period (a later cycle's, or one a reviewer
    // lengthened) laid from another start would hold the end of one cycle and the whole of
    // the next, and refuse drug the label allows. The limit is the larger of the two units
    // per period, so that another authorization's smaller one cannot refuse this one's.
    // Another organization's authorization is not described to the caller.
    let others = records::course_covering(&mut tx, number, &date.to_string()).await?;
    let periods = std::iter::once(&authorization).chain(
        others
            .iter()
            .filter(|other| other.period_days == authorization.period_days),
    );
    for holder in periods {
        let Some((from, to)) = spending_period(holder, date) else {
            continue;
        };
        let spent =
            records::units_spent_between(&mut tx, number, &from.to_string(), &to.to_string())
                .await?;
        let limit = holder.units_per_period.max(authorization.units_per_period);
        if spent + i64::from(body.units) <= limit {
            continue;
        }
        let units = body.units;
        return Err(Error::Conflict(if holder.number == authorization.number {
            let days = to.days_since(from) + 1;
            format!(
                "{units} units would exceed the {limit} units per {days} days this authorization covers from {from} to {to}, counted with the member's other authorizations of the course ({} left in that period)",
                (limit - spent).max(0)
            )
        } else {
            format!(
                "{units} units on {date} would exceed what the member's course allows in the period that holds that day, counted with the member's other authorizations of the drug"
            )
        }));
    }
    let usage_id = random_id("use_");
    records::insert_usage(
        &mut tx,
        &NewUsage {
            id: usage_id.clone(),
            authorization_number: number.to_string(),
            units: i64::from(body.units),
            service_date: date.to_string(),
            actor: caller.key_id.clone(),
            at: now_ms(),
        },
    )
    .await?;
    store::audit(
        &mut tx,
        &caller
            .audit_record("authorization.usage", number)
            .binding(store::Binds::Authorization),
    )
    .await?;
    let answer = json!({"id": usage_id, "authorization": number, "units": body.units, "date_of_service": date.to_string(), "used_units": used, "remaining_units": approved - used});
    if let Some(retry) = retry {
        retry.remember(&mut tx, caller, &answer).await?;
    }
    tx.commit().await?;
    Ok((answer, false))
}

/// The most characters of a cancellation's reason.
const CANCELLATION_REASON_MAX: usize = 2_000;

/// Its provider cancels an authorization it no longer needs (PAS: a cancellation,
/// certification type 3, of an approved request; X12 306 `C`). It is cancelled as of today:
/// drug given through today stays covered, since its usage is recorded after the fact, and
/// nothing given later is. Its request stays `approved` (it was), its authorization says
/// `cancelled_on`, and a `authorization_cancelled` event records who, when and why. An
/// authorization already cancelled is a conflict naming the day. The answer is the request
/// as it now stands.
///
/// Only the requester's organization (a submitter, or an admin) cancels: an authorization
/// only ever shrinks by it (no units, period or cycle is added), so it needs no clinician.
pub async fn cancel(
    service: &Service,
    caller: &Caller,
    number: &str,
    body: &CancellationBody,
    retry: Option<&Retry>,
) -> Result<(Value, bool), Error> {
    cancel_with(service, caller, number, body, retry, None).await
}

/// [`cancel`] by a PAS cancellation of the caller's organization; a `claim` of its own
/// (`system|value`) is recorded with it, so that an inquiry by that Claim's identifier finds
/// the request, as for a pending request the Claim withdrew (`requests::withdraw_for_claim`).
pub async fn cancel_for_claim(
    service: &Service,
    caller: &Caller,
    number: &str,
    body: &CancellationBody,
    claim: Option<&str>,
) -> Result<(Value, bool), Error> {
    cancel_with(service, caller, number, body, None, claim).await
}

async fn cancel_with(
    service: &Service,
    caller: &Caller,
    number: &str,
    body: &CancellationBody,
    retry: Option<&Retry>,
    claim: Option<&str>,
) -> Result<(Value, bool), Error> {
    require(caller, &[Role::Submitter, Role::Admin])?;
    let reason = body.reason.trim();
    if reason.is_empty() || reason.chars().count() > CANCELLATION_REASON_MAX {
        return Err(invalid(
            "reason",
            format!("give the reason in 1 to {CANCELLATION_REASON_MAX} characters"),
        ));
    }
    let mut tx = match begin(service, caller, retry).await? {
        Begun::Fresh(tx) => tx,
        Begun::Replayed(answer) => return Ok((answer, true)),
    };
    let authorization = fetch(&mut tx, caller, number).await?;
    // As of today, or of the latest day of service already recorded (a clinic's tomorrow,
    // within the day's grace): drug recorded as given stays covered, and the day is the one
    // every later spend is held to (recorded usage for a day a new spend was refused for
    // stayed counted).
    let today = super::today();
    let cancelled_on = match records::last_service_date(&mut tx, number).await? {
        Some(last) if last > today => last,
        _ => today,
    };
    // One statement decides it against a concurrent cancellation: the second finds it done.
    if !records::cancel(&mut tx, number, &cancelled_on).await? {
        return Err(Error::Conflict(format!(
            "authorization `{number}` was already cancelled on {}",
            authorization
                .cancelled_on
                .as_deref()
                .unwrap_or(&cancelled_on)
        )));
    }
    let request = requests_store::fetch(&mut tx, &authorization.request_id)
        .await?
        .ok_or_else(|| Error::Internal("an authorization without its request".into()))?;
    let detail = json!({"reason": reason, "authorization": number, "cancelled_on": cancelled_on});
    requests_store::add_event(
        &mut tx,
        &request.id,
        &NewEvent {
            kind: "authorization_cancelled",
            actor: &caller.key_id,
            at: now_ms(),
            outcome: &request.outcome,
            case_json: &detail.to_string(),
            decision_json: "",
            decision_sha256: None,
        },
    )
    .await?;
    if let Some(claim) = claim {
        requests_store::add_successor(&mut tx, &request.id, &request.organization, claim, now_ms())
            .await?;
    }
    let view = super::requests::finish_decision(
        service,
        tx,
        caller,
        &request.id,
        "authorization.cancel",
        retry,
    )
    .await?;
    Ok((view, false))
}

/// The day an authorization was cancelled (`cancelled_on`), when `date` is after it: drug
/// given then is not covered.
fn given_after_cancellation(cancelled_on: Option<&str>, date: Date) -> Option<&str> {
    let day = cancelled_on?;
    (date > Date::parse(day)?).then_some(day)
}

/// The period of `authorization` that holds `date`, over which at most its units per period
/// are spent: its periods of `period_days` follow one another from its start. None for a date
/// before its start or an authorization without periods.
///
/// Every period has the same length, the earlier cycles' for an authorization that also
/// holds later, longer cycles (Blincyto's cycles 4 to 8 are spent at 980 units per 42 days
/// throughout). Lengthening the later periods was tried and backed out: the periods are laid
/// from the day of receipt, not from the first dose, so a treatment begun a week later put
/// the last dose of the last short cycle into the first long period with the whole next
/// cycle, and refused drug the label allows. The totals (units and cycles) are the policy's
/// either way.
fn spending_period(authorization: &Authorization, date: Date) -> Option<(Date, Date)> {
    let start = Date::parse(&authorization.start_date)?;
    let days = authorization.period_days;
    if days <= 0 || date < start {
        return None;
    }
    let from = start.add_days(date.days_since(start).div_euclid(days) * days)?;
    Some((from, from.add_days(days - 1)?))
}

/// The most authorizations a list shows.
const LIST_LIMIT: i64 = 500;

/// Authorizations with units used and left, the nearest end first: a submitter's own
/// organization's, everyone's for the payer's staff. The read is audited like any other.
pub async fn list(service: &Service, caller: &Caller) -> Result<Value, Error> {
    let mut tx = service.store.pool.begin().await?;
    let organization = (caller.role == Role::Submitter).then_some(caller.organization.as_str());
    let rows = records::list(&mut tx, organization, LIST_LIMIT).await?;
    // The audit names the authorizations shown.
    let shown: Vec<&str> = rows.iter().map(|a| a.number.as_str()).collect();
    store::audit(
        &mut tx,
        &caller.audit_record(
            "authorization.list",
            &format!("authorizations:{}", shown.join(",")),
        ),
    )
    .await?;
    tx.commit().await?;
    let today = super::day_of(now_ms());
    let list: Vec<Value> = rows
        .iter()
        .map(|a| {
            let days_left = Date::parse(&a.end_date).map(|end| end.days_since(today));
            json!({
                "number": a.number, "request_id": a.request_id,
                "organization": a.organization, "drug": a.drug,
                "hcpcs": a.hcpcs, "start": a.start_date, "end": a.end_date,
                "approved_units": a.approved_units, "used_units": a.used_units,
                "remaining_units": a.approved_units - a.used_units,
                "cycles": a.cycles, "days_left": days_left,
                "cancelled_on": a.cancelled_on,
                // A cancelled authorization is not renewed from the list's reminder.
                "renewal_due": a.cancelled_on.is_none() && days_left.is_some_and(|d| (0..=30).contains(&d)),
            })
        })
        .collect();
    Ok(Value::Array(list))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn of(period_days: i64) -> Authorization {
        Authorization {
            number: "PA-1".into(),
            request_id: "req".into(),
            organization: "clinic".into(),
            drug: "blinatumomab".into(),
            hcpcs: "J9039".into(),
            start_date: "2026-01-01".into(),
            end_date: "2026-12-31".into(),
            units_per_period: 980,
            period_days,
            cycles: 5,
            first_cycle: 4,
            approved_units: 4900,
            used_units: 0,
            renews: None,
            cancelled_on: None,
        }
    }

    fn period(authorization: &Authorization, date: &str) -> Option<(String, String)> {
        spending_period(authorization, Date::parse(date).unwrap())
            .map(|(from, to)| (from.to_string(), to.to_string()))
    }

    fn days(from: &str, to: &str) -> Option<(String, String)> {
        Some((from.to_string(), to.to_string()))
    }

    /// Periods of the same length follow one another from the start, whatever the cycles.
    #[test]
    fn an_authorizations_periods_follow_one_another_from_its_start() {
        let periods = of(42);
        assert_eq!(
            period(&periods, "2026-01-01"),
            days("2026-01-01", "2026-02-11")
        );
        assert_eq!(
            period(&periods, "2026-02-11"),
            days("2026-01-01", "2026-02-11")
        );
        assert_eq!(
            period(&periods, "2026-02-12"),
            days("2026-02-12", "2026-03-25")
        );
        // Cycle 6 on (day 84): still 42 days (see `spending_period`).
        assert_eq!(
            period(&periods, "2026-03-26"),
            days("2026-03-26", "2026-05-06")
        );
        assert_eq!(period(&periods, "2025-12-31"), None);
        assert_eq!(period(&of(0), "2026-03-01"), None);
    }
}
