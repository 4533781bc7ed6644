//! The coverage landscape: clinical scenarios against every policy, each cell the outcome
//! and the criterion that decides it, as Markdown and as a self-contained HTML page.

use std::fmt::Write as _;

use crate::eval::{self, Truth};
use crate::policy::Outcome;
use crate::{Case, Engine};

/// One scenario: a title and its case.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub id: String,
    pub title: String,
    pub case: Case,
}

/// One cell: a policy's outcome for a scenario and why.
#[derive(Debug, Clone)]
pub struct Cell {
    pub outcome: Outcome,
    /// The pathway or criterion that decides, in words.
    pub why: String,
    /// Where in the document it comes from.
    pub source: String,
}

#[derive(Debug, Clone)]
pub struct Landscape {
    /// (policy id, title) of each column.
    pub policies: Vec<(String, String)>,
    /// Scenario, its cells, and whether the payers differ on it.
    pub rows: Vec<(Scenario, Vec<Cell>, bool)>,
}

pub fn build(engine: &Engine, scenarios: Vec<Scenario>) -> Landscape {
    let policies = engine
        .current()
        .iter()
        .filter_map(|i| engine.policies.get(*i))
        .map(|p| (p.id.clone(), p.title.clone()))
        .collect();
    let rows = scenarios
        .into_iter()
        .map(|scenario| {
            let evaluation = engine.evaluate(&scenario.case, &[]);
            let cells: Vec<Cell> = evaluation
                .decisions
                .iter()
                .filter_map(|(index, decision)| {
                    let policy = engine.policies.get(*index)?;
                    let reasons = eval::explain(policy, &evaluation.facts, decision);
                    let first = |truth: Truth| {
                        reasons
                            .iter()
                            .find(|r| r.truth == truth)
                            .and_then(|r| policy.criteria.get(usize::from(r.criterion)))
                    };
                    let pathway = decision
                        .pathway
                        .and_then(|p| policy.pathways.get(usize::from(p)));
                    let (why, source) = match decision.outcome {
                        Outcome::Approve => {
                            let period = decision
                                .authorization
                                .map_or("no stated duration".to_string(), |(_, end)| {
                                    format!("to {end}")
                                });
                            (
                                format!("{} ({period})", pathway.map_or("", |p| p.title.as_str())),
                                pathway
                                    .map_or(String::new(), |p| p.authorization_source.to_string()),
                            )
                        }
                        Outcome::Review if decision.dosing_outside => (
                            "dose outside the policy's dosing".into(),
                            policy.dosing_outside_source.to_string(),
                        ),
                        Outcome::Review => (
                            pathway.map_or(String::new(), |p| p.title.clone()),
                            pathway.map_or(String::new(), |p| p.authorization_source.to_string()),
                        ),
                        Outcome::Incomplete => (
                            format!(
                                "needs {}",
                                policy
                                    .missing_keys(decision.missing)
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                            String::new(),
                        ),
                        Outcome::NotApplicable => (
                            "does not govern this drug or line of business".into(),
                            policy.applicability.to_string(),
                        ),
                        Outcome::Deny => match decision
                            .exclusion
                            .and_then(|e| policy.criteria.get(usize::from(e)))
                        {
                            Some(exclusion) => (
                                format!("excluded: {}", exclusion.text),
                                exclusion.source.to_string(),
                            ),
                            None => match closest_failure(&reasons, policy)
                                .or_else(|| first(Truth::False))
                            {
                                Some(criterion) => (
                                    if criterion.unmet.is_empty() {
                                        format!("not met: {}", criterion.text)
                                    } else {
                                        criterion.unmet.clone()
                                    },
                                    criterion.source.to_string(),
                                ),
                                None => ("no pathway is met".into(), String::new()),
                            },
                        },
                    };
                    Some(Cell {
                        outcome: decision.outcome,
                        why,
                        source,
                    })
                })
                .collect();
            // Payers differ where the policies that govern the request disagree: a policy
            // for another drug or line of business is no payer's answer to it.
            let governing: Vec<Outcome> = cells
                .iter()
                .map(|c| c.outcome)
                .filter(|o| *o != Outcome::NotApplicable)
                .collect();
            let differs = governing.windows(2).any(|pair| pair.first() != pair.get(1));
            (scenario, cells, differs)
        })
        .collect();
    Landscape { policies, rows }
}

/// The most specific unmet criterion of the pathway that came closest (fewest unmet
/// criteria): what separates the request from approval.
fn closest_failure<'a>(
    reasons: &[eval::Reason],
    policy: &'a crate::Policy,
) -> Option<&'a crate::policy::Criterion> {
    // Per pathway: (unmet top-level criteria, the most specific unmet criterion).
    let mut best: Option<(usize, &eval::Reason)> = None;
    let mut index = 0;
    while index < reasons.len() {
        let pathway = reasons.get(index)?.pathway;
        let end = reasons
            .iter()
            .skip(index)
            .position(|r| r.pathway != pathway)
            .map_or(reasons.len(), |n| index + n);
        let slice = reasons.get(index..end)?;
        // Clinical criteria count; a dose matters only once they are met.
        let criteria = pathway
            .and_then(|p| policy.pathways.get(usize::from(p)))
            .map(|p| p.criteria.as_slice())
            .unwrap_or_default();
        let unmet = slice
            .iter()
            .filter(|r| r.depth == 0 && r.truth == Truth::False && criteria.contains(&r.criterion))
            .count();
        if let Some(first) = slice
            .iter()
            .position(|r| r.depth == 0 && r.truth == Truth::False)
        {
            // Follow the chain of unmet criteria down to the most specific one.
            let mut chosen = slice.get(first)?;
            for reason in slice.iter().skip(first + 1) {
                if reason.depth <= chosen.depth {
                    break;
                }
                if reason.truth == Truth::False && reason.depth == chosen.depth + 1 {
                    chosen = reason;
                }
            }
            // Fewer unmet criteria first; between equals, the failure deeper in the outline.
            if best.is_none_or(|(n, other)| unmet < n || (unmet == n && chosen.depth > other.depth))
            {
                best = Some((unmet, chosen));
            }
        }
        index = end;
    }
    policy.criteria.get(usize::from(best?.1.criterion))
}

pub fn markdown(landscape: &Landscape) -> String {
    let mut out = String::from(
        "# Coverage landscape\n\nEach cell: the outcome, and the pathway or criterion that decides it. Rows marked ◆ are where the policies that govern the request differ.\nA `deny` is a recommendation that a clinician must confirm.\n\n",
    );
    let _ = write!(out, "| scenario |");
    for (id, _) in &landscape.policies {
        let _ = write!(out, " {id} |");
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(landscape.policies.len()));
    out.push('\n');
    for (scenario, cells, differs) in &landscape.rows {
        let _ = write!(
            out,
            "| {}{} |",
            if *differs { "◆ " } else { "" },
            scenario.title
        );
        for cell in cells {
            let _ = write!(
                out,
                " **{}**: {} |",
                cell.outcome.as_str(),
                cell.why.replace('|', "/")
            );
        }
        out.push('\n');
    }
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub fn html(landscape: &Landscape) -> String {
    let mut out = String::from(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Coverage landscape</title>\n<style>\
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1a1a1a}table{border-collapse:collapse;font-size:.9rem}\
th,td{border:1px solid #bbb;padding:.4rem;vertical-align:top;text-align:left}th{background:#f0f0f0}\
td.approve{background:#e3f5e1}td.deny{background:#fbe2e2}td.review{background:#fff3cd}td.incomplete{background:#e2ecfb}td.not_applicable{background:#eee;color:#555}\
tr.differs th{border-left:4px solid #b35c00}.o{font-weight:600;display:block}.src{color:#444;font-size:.8rem}\
</style></head><body>\n<h1>Coverage landscape</h1>\n<p>Each cell: the outcome and the pathway or criterion that decides it, with the source passage. \
Rows with an orange edge are where the policies that govern the request differ. A <em>deny</em> is a recommendation that a clinician must confirm.</p>\n<table>\n<thead><tr><th scope=\"col\">Scenario</th>",
    );
    for (id, title) in &landscape.policies {
        let _ = write!(
            out,
            "<th scope=\"col\" title=\"{}\">{}</th>",
            escape(title),
            escape(id)
        );
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for (scenario, cells, differs) in &landscape.rows {
        let _ = write!(
            out,
            "<tr{}><th scope=\"row\">{}</th>",
            if *differs { " class=\"differs\"" } else { "" },
            escape(&scenario.title)
        );
        for cell in cells {
            let outcome = cell.outcome.as_str();
            let _ = write!(
                out,
                "<td class=\"{outcome}\"><span class=\"o\">{outcome}</span>{}<div class=\"src\">{}</div></td>",
                escape(&cell.why),
                escape(&cell.source)
            );
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table>\n</body></html>\n");
    out
}
