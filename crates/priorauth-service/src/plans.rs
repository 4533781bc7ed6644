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
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Clocks {
    pub standard_hours: i64,
    pub expedited_hours: i64,
}

impl Clocks {
    /// When a decision received at `received_ms` is due, by the clock for its urgency.
    pub fn due(&self, expedited: bool, received_ms: i64) -> i64 {
        let hours = if expedited {
            self.expedited_hours
        } else {
            self.standard_hours
        };
        received_ms + hours * 3_600_000
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlansFile {
    plan: Vec<Plan>,
}

#[derive(Debug, Clone)]
pub struct Plans {
    pub plans: Vec<Plan>,
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
        Ok(Plans { plans: file.plan })
    }

    pub fn get(&self, id: &str) -> Option<&Plan> {
        self.plans.iter().find(|p| p.id == id)
    }
}
