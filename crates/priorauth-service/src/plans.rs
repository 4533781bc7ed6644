//! Plans: a payer's line of business, the policy governing each drug, and the decision
//! clocks. Loaded from TOML (bundled default: `config/plans.toml`) and checked against the
//! engine's policies and drugs.

use std::collections::BTreeMap;

use priorauth_core::Engine;
use priorauth_core::case::LineOfBusiness;
use serde::Deserialize;

pub const BUNDLED: &str = include_str!("../../../config/plans.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub id: String,
    pub name: String,
    pub line_of_business: String,
    /// Drug id -> policy id.
    pub policies: BTreeMap<String, String>,
    pub clocks: Clocks,
    /// How to appeal, as the denial notice states it.
    pub appeal: String,
    /// The IANA time zone (`America/New_York`) its members' and providers' times are shown in;
    /// times are stored and answered in UTC.
    #[serde(default = "utc")]
    pub time_zone: String,
    /// The clocks of this plan's appeals; without them, its line of business's regulatory
    /// defaults (`AppealClocks::default_for`).
    #[serde(default)]
    pub appeal_clocks: Option<AppealClocks>,
    /// The rights left after an appeal is decided, as its notice states them; without it, its
    /// line of business's (`further_rights_for`).
    #[serde(default)]
    pub further_rights: Option<String>,
    /// How members and providers reach the plan about a decision, as its notices state it;
    /// without it, the notices point to the member's ID card.
    #[serde(default)]
    pub contact: Option<String>,
    /// The identifiers by which EHRs name this plan's payer on a Coverage (`Coverage.payor`,
    /// the Organization it refers to, or a PAS Claim's insurer): `system|value`
    /// (`http://hl7.org/fhir/sid/us-npi|1234567893`), or a bare value matching that value in
    /// any system. Where both the plan and the Coverage carrying a member id name payer
    /// identifiers, they must share one for the member to be this plan's: a member id that
    /// another payer also issues, on a Coverage naming that payer, is then not taken for
    /// this payer's member. A Coverage that names no payer is not checked: this corrects
    /// honest collisions; it is no control against a sender who leaves the payer out (the
    /// eligibility still decides who is a member). Empty: not checked.
    #[serde(default)]
    pub payer_ids: Vec<String>,
}

impl Plan {
    /// Whether a Coverage naming the payer by `payer_ids` (`system|value`) may be this plan's:
    /// unless both name identifiers, nothing is known against it.
    pub fn is_payer(&self, payer_ids: &[String]) -> bool {
        if self.payer_ids.is_empty() || payer_ids.is_empty() {
            return true;
        }
        // (system, value), split at the first `|`: a system is a URI, a value may hold `|`.
        let parts = |id: &str| match id.split_once('|') {
            Some((system, value)) => (system.trim().to_string(), value.trim().to_string()),
            None => (String::new(), id.trim().to_string()),
        };
        self.payer_ids
            .iter()
            .map(|id| parts(id))
            .any(|(system, value)| {
                payer_ids.iter().map(|id| parts(id)).any(|(theirs, named)| {
                    // A bare value in the plan, or an identifier the Coverage gives no system,
                    // matches by value.
                    named == value && (system.is_empty() || theirs.is_empty() || theirs == system)
                })
            })
    }
}

fn utc() -> String {
    "UTC".into()
}

/// An IANA time zone name as written (`UTC`, `America/Argentina/Buenos_Aires`, `Etc/GMT+5`):
/// the console's browser resolves it, so only its form is checked here.
fn is_time_zone_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.split('/').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+'))
        })
}

impl Plan {
    pub fn appeal_clocks(&self) -> AppealClocks {
        self.appeal_clocks
            .unwrap_or_else(|| AppealClocks::default_for(&self.line_of_business))
    }

    pub fn further_rights(&self) -> String {
        self.further_rights
            .clone()
            .unwrap_or_else(|| further_rights_for(&self.line_of_business).to_string())
    }
}

/// Within how long an appeal of an adverse determination is filed and decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppealClocks {
    /// Days after the determination within which an appeal is filed.
    pub filing_days: i64,
    pub standard_hours: i64,
    pub expedited_hours: i64,
    /// Days a standard or expedited appeal may be extended by, once, with a reason (0: none).
    #[serde(default)]
    pub extension_days: i64,
}

impl AppealClocks {
    /// The regulatory defaults of a line of business, for a plan that states none.
    pub fn default_for(line_of_business: &str) -> AppealClocks {
        match line_of_business {
            // Reconsideration of a Part B drug request: 7 calendar days (42 CFR 422.590(c)),
            // expedited 72 hours (422.590(e)(1)), no extension for a Part B drug
            // (422.590(f), as CMS-4180-F amended it); filed within 65 days of the notice (422.582(b)).
            "medicare_advantage" => AppealClocks {
                filing_days: 65,
                standard_hours: 7 * 24,
                expedited_hours: 72,
                extension_days: 0,
            },
            // Medicaid managed care: 30 calendar days (42 CFR 438.408(b)(2)), expedited
            // 72 hours (438.408(b)(3)), extended by up to 14 days (438.408(c)(1)); filed within
            // 60 days (438.402(c)(2)(ii)). CHIP managed care follows them (457.1260).
            "medicaid" | "chip" => AppealClocks {
                filing_days: 60,
                standard_hours: 30 * 24,
                expedited_hours: 72,
                extension_days: 14,
            },
            // Group health plans (ERISA) and individual coverage: a pre-service appeal with one
            // level, 30 days (29 CFR 2560.503-1(i)(2)(ii)), urgent 72 hours ((i)(2)(i)), no
            // extension; filed within 180 days ((h)(3)(i); 45 CFR 147.136(b) for the
            // individual market and the exchanges).
            _ => AppealClocks {
                filing_days: 180,
                standard_hours: 30 * 24,
                expedited_hours: 72,
                extension_days: 0,
            },
        }
    }

    /// When an appeal received at `received_ms` is due.
    pub fn due(&self, expedited: bool, received_ms: i64) -> i64 {
        due_by(
            self.standard_hours,
            self.expedited_hours,
            expedited,
            received_ms,
        )
    }
}

/// The rights left after an appeal upholds a denial, by line of business.
pub fn further_rights_for(line_of_business: &str) -> &'static str {
    match line_of_business {
        "medicare_advantage" => {
            "If the plan does not decide fully in your favor, it sends your case to the Independent Review Entity automatically (42 CFR 422.592); you need not ask for it."
        }
        "medicaid" => {
            "You may ask for a State fair hearing within 120 days of this notice (42 CFR 438.408(f)); ask for an expedited hearing if waiting could seriously harm your health."
        }
        "chip" => {
            "You may ask the State for an external review of this decision (42 CFR 457.1260, 457.1120)."
        }
        _ => {
            "You may ask for an external review by an independent review organization within 4 months of this notice (45 CFR 147.136(d)); an urgent external review may be asked for at the same time as an urgent appeal."
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Clocks {
    pub standard_hours: i64,
    pub expedited_hours: i64,
    /// Hours a standard request's clock may be extended by, once, with a reason (0: none).
    #[serde(default)]
    pub extension_hours: i64,
}

impl Clocks {
    /// When a decision received at `received_ms` is due, by the clock for its urgency.
    pub fn due(&self, expedited: bool, received_ms: i64) -> i64 {
        due_by(
            self.standard_hours,
            self.expedited_hours,
            expedited,
            received_ms,
        )
    }
}

/// Receipt plus the hours of the clock for the urgency.
fn due_by(standard_hours: i64, expedited_hours: i64, expedited: bool, received_ms: i64) -> i64 {
    let hours = if expedited {
        expedited_hours
    } else {
        standard_hours
    };
    received_ms + hours * 3_600_000
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlansFile {
    /// Drug id -> the specialties of a physician who may uphold a denial of it on appeal.
    #[serde(default)]
    appeal_specialties: BTreeMap<String, Vec<String>>,
    plan: Vec<Plan>,
}

#[derive(Debug, Clone)]
pub struct Plans {
    pub plans: Vec<Plan>,
    /// Drug id -> specialties (lowercase) of the same or a similar specialty: who may uphold a
    /// medical-necessity denial of it on appeal.
    pub appeal_specialties: BTreeMap<String, Vec<String>>,
}

impl Plans {
    pub fn load(text: &str, engine: &Engine) -> Result<Plans, String> {
        let file: PlansFile =
            toml::from_str(text).map_err(|e| format!("plans: {}", e.message()))?;
        for plan in &file.plan {
            if !LineOfBusiness::VARIANTS.contains(&plan.line_of_business.as_str()) {
                return Err(format!(
                    "plan `{}`: `{}` is not a line of business",
                    plan.id, plan.line_of_business
                ));
            }
            for (drug, policy) in &plan.policies {
                if !engine.drug_names().contains(drug) {
                    return Err(format!("plan `{}`: unknown drug `{drug}`", plan.id));
                }
                if engine.policy_index(policy).is_none() {
                    return Err(format!("plan `{}`: unknown policy `{policy}`", plan.id));
                }
            }
        }
        for drug in file.appeal_specialties.keys() {
            if !engine.drug_names().contains(drug) {
                return Err(format!("appeal_specialties: unknown drug `{drug}`"));
            }
        }
        for plan in &file.plan {
            if !is_time_zone_name(&plan.time_zone) {
                return Err(format!(
                    "plan `{}`: `{}` is not a time zone name (`America/New_York`)",
                    plan.id, plan.time_zone
                ));
            }
            if let Some(bad) = plan.payer_ids.iter().find(|id| {
                let (system, value) = id.split_once('|').unwrap_or(("-", id.as_str()));
                system.trim().is_empty()
                    || value.trim().is_empty()
                    || id.len() > 256
                    || id.chars().any(char::is_control)
            }) {
                return Err(format!(
                    "plan `{}`: payer_ids: `{bad}` is not `system|value` or a value",
                    plan.id
                ));
            }
            let clocks = plan.appeal_clocks();
            let sane = |n: i64, most: i64| (1..=most).contains(&n);
            if !sane(clocks.filing_days, 3_650)
                || !sane(clocks.standard_hours, 24 * 365)
                || !sane(clocks.expedited_hours, 24 * 365)
                || !(0..=365).contains(&clocks.extension_days)
            {
                return Err(format!("plan `{}`: appeal_clocks out of range", plan.id));
            }
        }
        let appeal_specialties = file
            .appeal_specialties
            .into_iter()
            .map(|(drug, names)| {
                let names = names.iter().map(|n| n.trim().to_lowercase()).collect();
                (drug, names)
            })
            .collect();
        Ok(Plans {
            plans: file.plan,
            appeal_specialties,
        })
    }

    pub fn get(&self, id: &str) -> Option<&Plan> {
        self.plans.iter().find(|p| p.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_zone_names_are_checked_for_their_form() {
        for name in [
            "UTC",
            "America/New_York",
            "America/Argentina/Buenos_Aires",
            "Etc/GMT+5",
        ] {
            assert!(is_time_zone_name(name), "{name}");
        }
        for name in [
            "",
            "America/",
            "/UTC",
            "America/New York",
            "Europe/../etc",
            "x\n",
        ] {
            assert!(!is_time_zone_name(name), "{name:?}");
        }
    }

    #[test]
    fn a_coverage_is_another_payers_only_when_both_name_payers_and_none_agrees() {
        let engine = Engine::bundled().expect("the bundled policies");
        let text = include_str!("../../../config/plans.toml").replace(
            "id = \"eocco-medicaid\"",
            "id = \"eocco-medicaid\"\npayer_ids = [\"http://hl7.org/fhir/sid/us-npi|1234567893\", \"EOCCO01\"]",
        );
        let plans = Plans::load(&text, &engine).expect("the plans load");
        let eocco = plans.get("eocco-medicaid").expect("the plan");
        let ids = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(eocco.is_payer(&ids(&["http://hl7.org/fhir/sid/us-npi|1234567893"])));
        // A bare value in the plan matches it in any system.
        assert!(eocco.is_payer(&ids(&["urn:oid:2.16.840.1.113883.3.221.5|EOCCO01"])));
        assert!(eocco.is_payer(&[]), "a Coverage that names no payer");
        assert!(
            eocco.is_payer(&ids(&["|1234567893"])),
            "an identifier with no system, by value"
        );
        // A value holding `|` is not split at its last `|`.
        assert!(!eocco.is_payer(&ids(&["urn:other|X|EOCCO01"])));
        assert!(!eocco.is_payer(&ids(&["http://hl7.org/fhir/sid/us-npi|1999999984"])));
        // The same value in another system is another identifier.
        assert!(!eocco.is_payer(&ids(&["urn:example:npi|1234567893"])));
        let masshealth = plans.get("masshealth").expect("the plan");
        assert!(
            masshealth.is_payer(&ids(&["http://hl7.org/fhir/sid/us-npi|1999999984"])),
            "a plan that names none"
        );
        for entry in ["urn:x|", "|EOCCO01", " "] {
            let bad = text.replace("\"EOCCO01\"", &format!("\"{entry}\""));
            let error = Plans::load(&bad, &engine).expect_err(entry);
            assert!(error.contains("payer_ids"), "{error}");
        }
    }

    #[test]
    fn each_line_of_business_has_its_regulatory_appeal_clocks() {
        let ma = AppealClocks::default_for("medicare_advantage");
        assert_eq!(
            (
                ma.standard_hours,
                ma.expedited_hours,
                ma.filing_days,
                ma.extension_days
            ),
            (168, 72, 65, 0)
        );
        let medicaid = AppealClocks::default_for("medicaid");
        assert_eq!(
            (
                medicaid.standard_hours,
                medicaid.filing_days,
                medicaid.extension_days
            ),
            (720, 60, 14)
        );
        assert_eq!(AppealClocks::default_for("chip"), medicaid);
        let commercial = AppealClocks::default_for("commercial");
        assert_eq!(
            (
                commercial.standard_hours,
                commercial.filing_days,
                commercial.extension_days
            ),
            (720, 180, 0)
        );
        assert_eq!(AppealClocks::default_for("exchange"), commercial);
    }
}
