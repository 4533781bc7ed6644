//! The utilization-management program's record for a period, from the records by SQL
//! (`store::report`): per plan, drug and urgency, what was asked and how it was decided
//! (touchless, by a reviewer, with changes, on appeal), how fast (median, 90th percentile,
//! maximum from receipt to the decision) and how often within the plan's clock (NCQA
//! expects at least 90%); the appeals; and the figures CMS-0057-F has payers publish each
//! year, in its categories. As JSON, Markdown, CSV and a self-contained HTML page.

use std::fmt::Write as _;

use priorauth_core::date::Date;
use serde::{Deserialize, Serialize};

use super::{Error, Service, invalid, require, timestamp};
use crate::keys::{Caller, Role};
use std::collections::HashMap;

use crate::store::report::{self as records, AppealCounts, GroupCounts, Period};
use crate::store::{self, now_ms};

/// What a caller asks: `GET /v1/reports/um?from=&to=&format=`.
#[derive(Debug, Default, Deserialize)]
pub struct UmQuery {
    /// First day (UTC), `YYYY-MM-DD`.
    pub from: Option<String>,
    /// Last day (UTC), inclusive.
    pub to: Option<String>,
    /// `json` (default), `markdown`, `csv` or `html`.
    pub format: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Markdown,
    Csv,
    Html,
}

impl Format {
    pub fn parse(text: Option<&str>) -> Result<Format, Error> {
        match text {
            None | Some("json") => Ok(Format::Json),
            Some("markdown" | "md") => Ok(Format::Markdown),
            Some("csv") => Ok(Format::Csv),
            Some("html") => Ok(Format::Html),
            Some(_) => Err(invalid("format", "`json`, `markdown`, `csv` or `html`")),
        }
    }
}

/// Hours, for people: milliseconds to hours with one decimal.
fn hours(ms: i64) -> f64 {
    (ms as f64 / 360_000.0).round() / 10.0
}

/// A share in percent with one decimal; None of nothing.
fn percent(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| (part as f64 * 1000.0 / whole as f64).round() / 10.0)
}

/// The figures of one plan, drug and urgency.
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    #[serde(flatten)]
    pub counts: GroupCounts,
    /// From receipt to the decision, in hours.
    pub turnaround_hours: TurnaroundHours,
    /// Decided within the plan's clock, of those decided, in percent (NCQA: at least 90).
    pub on_time_percent: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct TurnaroundHours {
    pub mean: Option<f64>,
    pub median: Option<f64>,
    pub p90: Option<f64>,
    pub max: Option<f64>,
}

/// CMS-0057-F's public prior-authorization metrics for one plan (42 CFR 422.122(c) and its
/// Medicaid, CHIP and exchange counterparts), over the requests decided in the period.
#[derive(Debug, Clone, Serialize)]
pub struct CmsMetrics {
    pub plan: String,
    /// The items and services that need prior authorization: the plan's drugs and codes.
    pub items_requiring_prior_authorization: Vec<String>,
    pub standard: CmsUrgency,
    pub expedited: CmsUrgency,
    /// Of all requests decided, the share whose clock was extended and that were approved.
    pub extended_and_approved_percent: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CmsUrgency {
    /// Approved or denied (the denominator of the shares).
    pub decided: i64,
    pub approved_percent: Option<f64>,
    pub denied_percent: Option<f64>,
    /// Approved after an appeal overturned the determination (reported for standard requests).
    pub approved_after_appeal_percent: Option<f64>,
    pub mean_hours: Option<f64>,
    pub median_hours: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Appeals {
    #[serde(flatten)]
    pub counts: AppealCounts,
    /// Decided within the appeal clock, of those decided, in percent.
    pub on_time_percent: Option<f64>,
}

/// The report.
#[derive(Debug, Clone, Serialize)]
pub struct UmReport {
    pub from: String,
    pub to: String,
    pub generated_at: String,
    pub groups: Vec<Group>,
    pub appeals: Vec<Appeals>,
    pub cms_0057_f: Vec<CmsMetrics>,
    /// How each figure is counted.
    pub definitions: Vec<&'static str>,
}

const DEFINITIONS: &[&str] = &[
    "Requests are those received from the first day 00:00 UTC to the last day 24:00 UTC; each is counted once, by its status at the time of the report.",
    "Approved touchless: approved by the policy's criteria with no clinician's determination. By a reviewer: a clinician approved as asked. With changes: a clinician approved less or otherwise. On appeal: an appeal overturned the determination.",
    "Turnaround: from receipt to the decision (approved, denied or not applicable; of a reopened request, the decision after its reopening), by nearest rank; an appeal's decision is not a request's.",
    "On time: the decision came by the request's due time under the plan's clock (after an extension, its extended due time). Late open: still pending past its due time at the report's time.",
    "CMS-0057-F: shares of the standard (or expedited) requests approved or denied in the period; approved after appeal counts requests whose appeal was overturned; not-applicable and withdrawn requests are outside the denominator.",
    "Appeals are those received in the period; on time means decided by the appeal's due time (after an extension, its extended one).",
];

/// The UM report of `[from, to]` (reviewers and admins), its reading audited.
pub async fn um(service: &Service, caller: &Caller, query: &UmQuery) -> Result<UmReport, Error> {
    require(caller, &[Role::Reviewer, Role::Admin])?;
    let day = |field: &str, value: &Option<String>| {
        value
            .as_deref()
            .and_then(Date::parse)
            .ok_or_else(|| invalid(field, "a date as YYYY-MM-DD"))
    };
    let from = day("from", &query.from)?;
    let to = day("to", &query.to)?;
    if to < from {
        return Err(invalid("to", "is before `from`"));
    }
    let epoch = Date::from_ymd_unchecked(1970, 1, 1);
    let period = Period {
        from_ms: from.days_since(epoch) * 86_400_000,
        to_ms: (to.days_since(epoch) + 1) * 86_400_000,
        now_ms: now_ms(),
    };
    let mut tx = service.store.snapshot().await?;
    let counts = records::counts(&mut tx, period).await?;
    let decided = records::decided(&mut tx, period).await?;
    let appeals = records::appeals(&mut tx, period).await?;
    tx.commit().await?;
    let mut audit = service.store.pool.begin().await?;
    store::audit(
        &mut audit,
        &caller.audit_record("report.um", &format!("{from}..{to}")),
    )
    .await?;
    audit.commit().await?;

    let by_group = percentiles(&decided, |(plan, drug, urgency)| (plan, drug, urgency));
    let by_plan = percentiles(&decided, |(plan, _, urgency)| (plan, "", urgency));
    let groups = counts
        .iter()
        .map(|c| {
            let percentiles = by_group.get(&(c.plan.as_str(), c.drug.as_str(), c.urgency.as_str()));
            Group {
                counts: c.clone(),
                turnaround_hours: TurnaroundHours {
                    mean: (c.decided > 0).then(|| hours(c.turnaround_ms_total / c.decided)),
                    median: percentiles.map(|t| hours(t.median_ms)),
                    p90: percentiles.map(|t| hours(t.p90_ms)),
                    max: percentiles.map(|t| hours(t.max_ms)),
                },
                on_time_percent: percent(c.decided_on_time, c.decided),
            }
        })
        .collect();
    let mut plans: Vec<&str> = counts.iter().map(|c| c.plan.as_str()).collect();
    plans.dedup();
    let cms = plans
        .iter()
        .map(|plan| cms_metrics(service, plan, &counts, &by_plan))
        .collect();
    let appeals = appeals
        .iter()
        .map(|a| Appeals {
            counts: a.clone(),
            on_time_percent: percent(a.decided_on_time, a.upheld + a.overturned),
        })
        .collect();
    Ok(UmReport {
        from: from.to_string(),
        to: to.to_string(),
        generated_at: timestamp(period.now_ms),
        groups,
        appeals,
        cms_0057_f: cms,
        definitions: DEFINITIONS.to_vec(),
    })
}

fn cms_metrics(
    service: &Service,
    plan: &str,
    counts: &[GroupCounts],
    by_plan: &HashMap<(&str, &str, &str), Percentiles>,
) -> CmsMetrics {
    let of = |urgency: &str| -> CmsUrgency {
        let rows: Vec<&GroupCounts> = counts
            .iter()
            .filter(|c| c.plan == plan && c.urgency == urgency)
            .collect();
        let sum = |f: fn(&GroupCounts) -> i64| rows.iter().map(|c| f(c)).sum::<i64>();
        let approved = sum(|c| {
            c.approved_touchless
                + c.approved_by_reviewer
                + c.approved_with_changes
                + c.approved_on_appeal
        });
        let denied = sum(|c| c.denied);
        let decided = approved + denied;
        let all_decided = sum(|c| c.decided);
        let percentiles = by_plan.get(&(plan, "", urgency));
        CmsUrgency {
            decided,
            approved_percent: percent(approved, decided),
            denied_percent: percent(denied, decided),
            approved_after_appeal_percent: percent(sum(|c| c.approved_on_appeal), decided),
            mean_hours: (all_decided > 0)
                .then(|| hours(sum(|c| c.turnaround_ms_total) / all_decided)),
            median_hours: percentiles.map(|t| hours(t.median_ms)),
        }
    };
    let decided: i64 = counts
        .iter()
        .filter(|c| c.plan == plan)
        .map(|c| c.decided)
        .sum();
    let extended_approved: i64 = counts
        .iter()
        .filter(|c| c.plan == plan)
        .map(|c| c.extended_approved)
        .sum();
    let items = service
        .plans
        .get(plan)
        .map(|p| {
            p.policies
                .keys()
                .map(|drug| {
                    let hcpcs = service
                        .engine
                        .catalog
                        .drugs
                        .iter()
                        .find(|d| &d.id == drug)
                        .map(|d| format!(" (HCPCS {})", d.hcpcs))
                        .unwrap_or_default();
                    format!("{drug}{hcpcs}")
                })
                .collect()
        })
        .unwrap_or_default();
    CmsMetrics {
        plan: plan.to_string(),
        items_requiring_prior_authorization: items,
        standard: of("standard"),
        expedited: of("expedited"),
        extended_and_approved_percent: percent(extended_approved, decided),
    }
}

/// The median, 90th percentile and maximum of a group's turnaround, by nearest rank (the
/// smallest time that at least that share of the group is at or under).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Percentiles {
    median_ms: i64,
    p90_ms: i64,
    max_ms: i64,
}

/// The percentiles of each group that `key` makes of the report's groups (itself, or plan
/// and urgency).
fn percentiles<'a>(
    decided: &'a [(records::GroupKey, Vec<i64>)],
    key: impl Fn((&'a str, &'a str, &'a str)) -> (&'a str, &'a str, &'a str),
) -> HashMap<(&'a str, &'a str, &'a str), Percentiles> {
    let mut times: HashMap<(&str, &str, &str), Vec<i64>> = HashMap::new();
    for ((plan, drug, urgency), group) in decided {
        times
            .entry(key((plan, drug, urgency)))
            .or_default()
            .extend_from_slice(group);
    }
    times
        .into_iter()
        .filter_map(|(group, mut t)| {
            t.sort_unstable();
            let n = t.len();
            // Rank k (1-based) of share p is ceil(p·n): (n + 1) / 2 and (9n + 9) / 10.
            let at = |k: usize| t.get(k.max(1) - 1).copied();
            Some((
                group,
                Percentiles {
                    median_ms: at(n.div_ceil(2))?,
                    p90_ms: at((9 * n).div_ceil(10))?,
                    max_ms: at(n)?,
                },
            ))
        })
        .collect()
}

fn cell<T: std::fmt::Display>(value: Option<T>) -> String {
    value.map(|v| v.to_string()).unwrap_or_else(|| "–".into())
}

const GROUP_COLUMNS: &[&str] = &[
    "plan",
    "drug",
    "urgency",
    "requests",
    "approved touchless",
    "approved by a reviewer",
    "approved with changes",
    "approved on appeal",
    "denied",
    "withdrawn",
    "not applicable",
    "pending",
    "appealed",
    "overturned",
    "extended",
    "decided",
    "on time %",
    "late open",
    "mean h",
    "median h",
    "p90 h",
    "max h",
];

fn group_cells(g: &Group) -> Vec<String> {
    let c = &g.counts;
    let t = &g.turnaround_hours;
    vec![
        c.plan.clone(),
        c.drug.clone(),
        c.urgency.clone(),
        c.requests.to_string(),
        c.approved_touchless.to_string(),
        c.approved_by_reviewer.to_string(),
        c.approved_with_changes.to_string(),
        c.approved_on_appeal.to_string(),
        c.denied.to_string(),
        c.withdrawn.to_string(),
        c.not_applicable.to_string(),
        c.pending.to_string(),
        c.appealed.to_string(),
        c.overturned.to_string(),
        c.extended.to_string(),
        c.decided.to_string(),
        cell(g.on_time_percent),
        c.late_open.to_string(),
        cell(t.mean),
        cell(t.median),
        cell(t.p90),
        cell(t.max),
    ]
}

const CMS_COLUMNS: &[&str] = &[
    "plan",
    "standard: decided",
    "approved %",
    "denied %",
    "approved after appeal %",
    "mean h",
    "median h",
    "expedited: decided",
    "approved %",
    "denied %",
    "mean h",
    "median h",
    "extended and approved %",
];

fn cms_cells(m: &CmsMetrics) -> Vec<String> {
    let (s, e) = (&m.standard, &m.expedited);
    vec![
        m.plan.clone(),
        s.decided.to_string(),
        cell(s.approved_percent),
        cell(s.denied_percent),
        cell(s.approved_after_appeal_percent),
        cell(s.mean_hours),
        cell(s.median_hours),
        e.decided.to_string(),
        cell(e.approved_percent),
        cell(e.denied_percent),
        cell(e.mean_hours),
        cell(e.median_hours),
        cell(m.extended_and_approved_percent),
    ]
}

const APPEAL_COLUMNS: &[&str] = &[
    "plan",
    "urgency",
    "filed",
    "upheld",
    "overturned",
    "pending",
    "extended",
    "on time %",
    "late open",
];

fn appeal_cells(a: &Appeals) -> Vec<String> {
    let c = &a.counts;
    vec![
        c.plan.clone(),
        c.urgency.clone(),
        c.filed.to_string(),
        c.upheld.to_string(),
        c.overturned.to_string(),
        c.pending.to_string(),
        c.extended.to_string(),
        cell(a.on_time_percent),
        c.late_open.to_string(),
    ]
}

fn markdown_table(out: &mut String, columns: &[&str], rows: &[Vec<String>]) {
    let _ = writeln!(out, "| {} |", columns.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(columns.len()));
    for row in rows {
        let _ = writeln!(out, "| {} |", row.join(" | "));
    }
    out.push('\n');
}

impl UmReport {
    pub fn to_markdown(&self) -> String {
        let mut out = format!(
            "# Utilization management report, {} to {}\n\nGenerated {}.\n\n## Requests by plan, drug and urgency\n\n",
            self.from, self.to, self.generated_at
        );
        let groups: Vec<Vec<String>> = self.groups.iter().map(group_cells).collect();
        markdown_table(&mut out, GROUP_COLUMNS, &groups);
        out.push_str("## Appeals\n\n");
        let appeals: Vec<Vec<String>> = self.appeals.iter().map(appeal_cells).collect();
        markdown_table(&mut out, APPEAL_COLUMNS, &appeals);
        out.push_str("## CMS-0057-F prior-authorization metrics\n\n");
        let cms: Vec<Vec<String>> = self.cms_0057_f.iter().map(cms_cells).collect();
        markdown_table(&mut out, CMS_COLUMNS, &cms);
        for m in &self.cms_0057_f {
            let _ = writeln!(
                out,
                "- {}: items requiring prior authorization: {}",
                m.plan,
                m.items_requiring_prior_authorization.join(", ")
            );
        }
        out.push_str("\n## Definitions\n\n");
        for d in &self.definitions {
            let _ = writeln!(out, "- {d}");
        }
        out
    }

    /// Three CSV sections (requests, appeals, CMS-0057-F), each with its header row, separated
    /// by a blank line and headed by `# section`.
    pub fn to_csv(&self) -> String {
        let mut out = String::new();
        let mut section = |name: &str, columns: &[&str], rows: Vec<Vec<String>>| {
            let _ = writeln!(out, "# {name}");
            let line = |cells: Vec<String>| {
                cells
                    .iter()
                    .map(|c| csv_field(c))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            let _ = writeln!(
                out,
                "{}",
                line(columns.iter().map(|c| c.to_string()).collect())
            );
            for row in rows {
                let _ = writeln!(out, "{}", line(row));
            }
            out.push('\n');
        };
        section(
            "requests",
            GROUP_COLUMNS,
            self.groups.iter().map(group_cells).collect(),
        );
        section(
            "appeals",
            APPEAL_COLUMNS,
            self.appeals.iter().map(appeal_cells).collect(),
        );
        section(
            "cms-0057-f",
            CMS_COLUMNS,
            self.cms_0057_f.iter().map(cms_cells).collect(),
        );
        out
    }

    /// A self-contained page (no script, no request leaves it): the tables, and bars for the
    /// on-time share and the outcome mix of each group.
    pub fn to_html(&self) -> String {
        let mut out = String::from(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>UM report</title><style>\
             body{font-family:system-ui,sans-serif;margin:2rem;color:#1b1f24}table{border-collapse:collapse;margin:1rem 0;font-size:.85rem}\
             th,td{border:1px solid #ccd;padding:.25rem .5rem;text-align:right}th:first-child,td:first-child{text-align:left}\
             .bar{display:flex;height:1rem;width:24rem;background:#eef}.bar span{display:block;height:100%}\
             .touchless{background:#2e7d32}.reviewer{background:#66bb6a}.changes{background:#c0ca33}.appeal{background:#29b6f6}.denied{background:#e53935}.other{background:#9e9e9e}\
             .ontime{background:#1565c0}.goal{font-size:.8rem;color:#555}</style></head><body>",
        );
        let _ = write!(
            out,
            "<h1>Utilization management report</h1><p>{} to {} (UTC), generated {}.</p>",
            escape(&self.from),
            escape(&self.to),
            escape(&self.generated_at)
        );
        out.push_str("<h2>Decided within the plan's clock</h2><p class=\"goal\">NCQA expects at least 90%.</p><table><tr><th>plan · drug · urgency</th><th>on time</th><th></th><th>outcomes</th></tr>");
        for g in &self.groups {
            let c = &g.counts;
            let on_time = g.on_time_percent.unwrap_or(0.0);
            let whole = c.requests.max(1) as f64;
            let share = |n: i64| n as f64 * 100.0 / whole;
            let other = c.withdrawn + c.not_applicable + c.pending;
            let _ = write!(
                out,
                "<tr><td>{} · {} · {}</td><td>{}</td><td><div class=\"bar\"><span class=\"ontime\" style=\"width:{on_time:.1}%\"></span></div></td>\
                 <td><div class=\"bar\" title=\"touchless {}, reviewer {}, with changes {}, on appeal {}, denied {}, other {}\">\
                 <span class=\"touchless\" style=\"width:{:.1}%\"></span><span class=\"reviewer\" style=\"width:{:.1}%\"></span>\
                 <span class=\"changes\" style=\"width:{:.1}%\"></span><span class=\"appeal\" style=\"width:{:.1}%\"></span>\
                 <span class=\"denied\" style=\"width:{:.1}%\"></span><span class=\"other\" style=\"width:{:.1}%\"></span></div></td></tr>",
                escape(&c.plan),
                escape(&c.drug),
                escape(&c.urgency),
                cell(g.on_time_percent),
                c.approved_touchless,
                c.approved_by_reviewer,
                c.approved_with_changes,
                c.approved_on_appeal,
                c.denied,
                other,
                share(c.approved_touchless),
                share(c.approved_by_reviewer),
                share(c.approved_with_changes),
                share(c.approved_on_appeal),
                share(c.denied),
                share(other),
            );
        }
        out.push_str("</table><p class=\"goal\">Outcomes: <span style=\"color:#2e7d32\">■</span> touchless <span style=\"color:#66bb6a\">■</span> by a reviewer <span style=\"color:#c0ca33\">■</span> with changes <span style=\"color:#29b6f6\">■</span> on appeal <span style=\"color:#e53935\">■</span> denied <span style=\"color:#9e9e9e\">■</span> withdrawn, not applicable or pending</p>");
        let mut table = |title: &str, columns: &[&str], rows: Vec<Vec<String>>| {
            let _ = write!(out, "<h2>{}</h2><table><tr>", escape(title));
            for c in columns {
                let _ = write!(out, "<th>{}</th>", escape(c));
            }
            out.push_str("</tr>");
            for row in rows {
                out.push_str("<tr>");
                for c in row {
                    let _ = write!(out, "<td>{}</td>", escape(&c));
                }
                out.push_str("</tr>");
            }
            out.push_str("</table>");
        };
        table(
            "Requests by plan, drug and urgency",
            GROUP_COLUMNS,
            self.groups.iter().map(group_cells).collect(),
        );
        table(
            "Appeals",
            APPEAL_COLUMNS,
            self.appeals.iter().map(appeal_cells).collect(),
        );
        table(
            "CMS-0057-F prior-authorization metrics",
            CMS_COLUMNS,
            self.cms_0057_f.iter().map(cms_cells).collect(),
        );
        out.push_str("<h2>Definitions</h2><ul>");
        for d in &self.definitions {
            let _ = write!(out, "<li>{}</li>", escape(d));
        }
        out.push_str("</ul></body></html>\n");
        out
    }
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_and_hours_round_to_one_decimal() {
        assert_eq!(percent(9, 10), Some(90.0));
        assert_eq!(percent(2, 3), Some(66.7));
        assert_eq!(percent(1, 0), None);
        assert_eq!(hours(5_400_000), 1.5);
    }

    #[test]
    fn csv_fields_are_quoted_when_they_must_be() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"x\""), "\"say \"\"x\"\"\"");
    }
}
