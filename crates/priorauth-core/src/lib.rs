//! priorauth's engine: the case format, policy files as data, and a three-valued evaluator
//! that decides a request against every policy and explains each decision by the sentences
//! of the source documents.
//!
//! The crate reads files (policy directories) and nothing else: no network, no database,
//! no async. See `ARCHITECTURE.md` for the map.

pub mod case;
pub mod change;
pub mod date;
pub mod declared;
pub mod eval;
pub mod facts;
pub mod generate;
pub mod landscape;
pub mod lint;
pub mod policy;
pub mod quantity;
pub mod questions;
pub mod report;

use std::path::Path;

pub use case::{Case, CaseError, parse_case};
pub use eval::{Decision, Reason, Truth};
pub use facts::{FactId, Facts, Missing};
pub use policy::{Catalog, LoadError, Outcome, Policy};

mod bundled {
    include!(concat!(env!("OUT_DIR"), "/bundled.rs"));
}

/// The drug catalog's file name in a policy directory.
pub const CATALOG_FILE: &str = "drugs.toml";

/// The drug catalog and the policies, checked and ready to decide cases.
#[derive(Debug, Clone)]
pub struct Engine {
    pub catalog: Catalog,
    /// Every version of every policy, versions of one policy side by side, oldest first.
    pub policies: Vec<Policy>,
    /// The newest version of each policy, in policy order.
    current: Vec<usize>,
    /// For each entry of `policies`, the positions of every version of its policy (versions
    /// are side by side): choosing the version for a request date compares no ids.
    versions: Vec<std::ops::Range<usize>>,
    drug_names: Vec<String>,
    /// The facts declared in data (`facts.toml`) that the policies may read, in file order.
    pub declared: Vec<FactId>,
}

/// One case decided by every selected policy.
#[derive(Debug, Default)]
pub struct Evaluation {
    pub facts: Facts,
    /// (policy index, decision), in the engine's policy order.
    pub decisions: Vec<(usize, Decision)>,
    memo: eval::Memo,
}

impl Engine {
    /// The policies bundled into the binary at build time.
    pub fn bundled() -> Result<Engine, LoadError> {
        Engine::from_texts(
            bundled::POLICY_FILES
                .iter()
                .map(|(name, text)| (name.to_string(), text.to_string())),
        )
    }

    /// The source documents bundled at build time, by file name.
    pub fn bundled_source(file: &str) -> Option<&'static str> {
        bundled::SOURCE_FILES
            .iter()
            .find(|(name, _)| *name == file)
            .map(|(_, text)| *text)
    }

    /// A policy's source document: `sources/<source_file>` beside its file (a policy loaded
    /// from a directory), else the bundled one.
    pub fn source_document(policy: &Policy) -> Option<String> {
        // A bundled policy's file is a name on no disk: its document is the bundled one.
        let file = Path::new(&policy.file);
        file.is_file()
            .then(|| file.parent().unwrap_or(Path::new("")))
            .map(|dir| dir.join("sources").join(&policy.source_file))
            .and_then(|path| std::fs::read_to_string(path).ok())
            .or_else(|| Engine::bundled_source(&policy.source_file).map(str::to_string))
    }

    /// Every `*.toml` of a directory. Without its own `drugs.toml` or `facts.toml`, the bundled
    /// drug catalog or fact declarations are used.
    pub fn from_dir(dir: &Path) -> Result<Engine, LoadError> {
        let io_error = |path: &Path, error: std::io::Error| LoadError {
            file: path.display().to_string(),
            line: 0,
            column: 0,
            message: format!("cannot read: {error}"),
        };
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| io_error(dir, e))?
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
            .collect();
        paths.sort();
        let mut files = Vec::new();
        for shared in [CATALOG_FILE, declared::FACTS_FILE] {
            if !paths
                .iter()
                .any(|p| p.file_name().is_some_and(|n| n == shared))
            {
                if let Some((name, text)) = bundled::POLICY_FILES
                    .iter()
                    .find(|(name, _)| *name == shared)
                {
                    files.push((name.to_string(), text.to_string()));
                }
            }
        }
        for path in paths {
            let text = std::fs::read_to_string(&path).map_err(|e| io_error(&path, e))?;
            files.push((path.display().to_string(), text));
        }
        Engine::from_texts(files)
    }

    /// Loads a catalog (the file named `drugs.toml`), fact declarations (`facts.toml`, if
    /// any) and policies (every other file).
    pub fn from_texts(
        files: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Engine, LoadError> {
        let files: Vec<(String, String)> = files.into_iter().collect();
        let is_named =
            |name: &str, wanted: &str| Path::new(name).file_name().is_some_and(|n| n == wanted);
        let is_catalog = |name: &str| is_named(name, CATALOG_FILE);
        let is_declarations = |name: &str| is_named(name, declared::FACTS_FILE);
        let (catalog_name, catalog_text) = files
            .iter()
            .find(|(name, _)| is_catalog(name))
            .ok_or_else(|| LoadError {
                file: CATALOG_FILE.to_string(),
                line: 0,
                column: 0,
                message: "no drug catalog".to_string(),
            })?;
        let catalog = policy::load_catalog(catalog_name, catalog_text)?;
        let drug_names: Vec<String> = catalog.drugs.iter().map(|d| d.id.clone()).collect();
        let declared = match files.iter().find(|(name, _)| is_declarations(name)) {
            Some((name, text)) => declared::load(name, text)?,
            None => Vec::new(),
        };
        let mut policies: Vec<Policy> = Vec::new();
        for (name, text) in files
            .iter()
            .filter(|(name, _)| !is_catalog(name) && !is_declarations(name))
        {
            let policy = policy::load_policy_declared(name, text, &drug_names, &declared)?;
            // Versions of one policy each need their own effective date.
            let clash = policies.iter().find(|p| {
                p.id == policy.id
                    && (p.effective.is_none()
                        || policy.effective.is_none()
                        || p.effective == policy.effective
                        || p.version == policy.version)
            });
            if let Some(other) = clash {
                return Err(LoadError {
                    file: name.clone(),
                    line: 1,
                    column: 1,
                    message: format!(
                        "policy `{}` is also in {}: versions of a policy need distinct `version`s and `effective` dates",
                        policy.id, other.file
                    ),
                });
            }
            policies.push(policy);
        }
        // Versions of a policy side by side, oldest first; policies in file order.
        let first_seen: Vec<String> =
            policies
                .iter()
                .map(|p| p.id.clone())
                .fold(Vec::new(), |mut ids, id| {
                    if !ids.contains(&id) {
                        ids.push(id);
                    }
                    ids
                });
        policies.sort_by_key(|p| (first_seen.iter().position(|id| *id == p.id), p.effective));
        let current = first_seen
            .iter()
            .filter_map(|id| policies.iter().rposition(|p| p.id == *id))
            .collect();
        // Each run of one id in `policies` is one policy's versions.
        let mut versions = Vec::with_capacity(policies.len());
        let mut start = 0;
        for end in 1..=policies.len() {
            if policies.get(end).map(|p| &p.id) != policies.get(start).map(|p| &p.id) {
                versions.extend(std::iter::repeat_n(start..end, end - start));
                start = end;
            }
        }
        Ok(Engine {
            current,
            versions,
            catalog,
            policies,
            drug_names,
            declared,
        })
    }

    /// Loads one more policy file as this engine would: its drugs and declared facts.
    pub fn load_policy(&self, file: &str, text: &str) -> Result<Policy, LoadError> {
        policy::load_policy_declared(file, text, &self.drug_names, &self.declared)
    }

    pub fn drug_names(&self) -> &[String] {
        &self.drug_names
    }

    /// The newest version of a policy.
    pub fn policy_index(&self, id: &str) -> Option<usize> {
        self.policies.iter().rposition(|p| p.id == id)
    }

    /// The newest version of each policy, in policy order.
    pub fn current(&self) -> &[usize] {
        &self.current
    }

    /// The version of the policy at `index` in effect on `date`: the latest that took effect
    /// on or before it; without a date, the newest; before every version, the oldest.
    pub fn version_for(&self, index: usize, date: Option<date::Date>) -> usize {
        let Some(versions) = self.versions.get(index) else {
            return index;
        };
        let Some(date) = date else {
            return versions.end - 1;
        };
        let mut in_effect = None;
        for i in versions.clone() {
            let effective = self.policies.get(i).and_then(|p| p.effective);
            if effective.is_none_or(|effective| effective <= date) {
                in_effect = Some(i);
            }
        }
        in_effect.unwrap_or(versions.start)
    }

    /// Parses and validates a case against the case format and the drug catalog.
    pub fn parse_case(&self, json: &str) -> Result<Case, CaseError> {
        let case = parse_case(json, &self.drug_names)?;
        self.check_billing_code(&case)?;
        declared::check_case(&case, &self.declared)?;
        Ok(case)
    }

    /// A request's billing code must be its drug's: J9229 (Besponsa, 0.1 mg a unit) on a
    /// Blincyto request would read 980 units as 98 mg.
    pub fn check_billing_code(&self, case: &Case) -> Result<(), CaseError> {
        let Some(request) = &case.request else {
            return Ok(());
        };
        let (Some(code), Some(drug)) = (&request.hcpcs, &request.drug) else {
            return Ok(());
        };
        let Some(drug) = self.catalog.drugs.iter().find(|d| d.id == *drug) else {
            return Ok(());
        };
        if drug.hcpcs == *code {
            return Ok(());
        }
        let other = self
            .catalog
            .drugs
            .iter()
            .find(|d| d.hcpcs == *code)
            .map_or(String::new(), |d| format!(", the code of {}", d.name));
        Err(CaseError {
            problems: vec![case::CaseProblem {
                key: "request.hcpcs".into(),
                message: format!(
                    "`{code}`{other} is not the billing code of {} (`{}`, request.drug)",
                    drug.name, drug.hcpcs
                ),
            }],
        })
    }

    /// Every fact of a case, derived facts included.
    pub fn facts(&self, case: &Case) -> Facts {
        let mut facts = Facts::default();
        self.fill_facts(case, &mut facts, None);
        facts
    }

    fn fill_facts(&self, case: &Case, facts: &mut Facts, as_of: Option<date::Date>) {
        let drug_index = |name: &str| {
            self.drug_names
                .iter()
                .position(|d| d == name)
                .map(|p| p as u8)
        };
        facts.fill_as_of(case, drug_index, as_of);
        declared::fill(facts, case, &self.declared, as_of);
        let on_label = match facts.get(FactId::RequestDrug) {
            facts::Value::Symbol(drug) => {
                let label = self
                    .catalog
                    .drugs
                    .get(usize::from(drug))
                    .map(|d| d.label.as_slice())
                    .unwrap_or_default();
                // The first indication met settles it: the rest need not be evaluated.
                let mut truth = Truth::False;
                for idx in label {
                    truth = truth.or(eval::eval(&self.catalog.arena, *idx, facts));
                    if truth == Truth::True {
                        break;
                    }
                }
                truth
            }
            // Whichever drug it is, its label may need more facts: ask for them with the drug.
            facts::Value::Unknown(missing) => {
                let labels_missing =
                    self.catalog
                        .drugs
                        .iter()
                        .flat_map(|d| &d.label)
                        .fold(0, |all, idx| {
                            match eval::eval(&self.catalog.arena, *idx, facts) {
                                Truth::Unknown(more) => all | more,
                                _ => all,
                            }
                        });
                Truth::Unknown(missing | labels_missing)
            }
            _ => Truth::False,
        };
        facts.set(
            FactId::RequestOnLabel,
            match on_label {
                Truth::True => facts::Value::Bool(true),
                Truth::False => facts::Value::Bool(false),
                Truth::Unknown(missing) => facts::Value::Unknown(missing),
            },
        );
        self.fill_label_limits(facts);
    }

    /// The label's most per cycle and per course for the requested drug.
    fn fill_label_limits(&self, facts: &mut Facts) {
        use facts::Value;
        let drug = match facts.get(FactId::RequestDrug) {
            Value::Symbol(drug) => self.catalog.drugs.get(usize::from(drug)),
            _ => None,
        };
        let (units, cycles) = match drug {
            None => {
                let missing = match facts.get(FactId::RequestDrug) {
                    Value::Unknown(missing) => missing,
                    _ => 0,
                };
                (Value::Unknown(missing), Value::Unknown(missing))
            }
            Some(drug) => {
                let number = |id| match facts.get(id) {
                    Value::Number(n) => Some(n),
                    _ => None,
                };
                let units = match drug.label_units_per_cycle(
                    number(FactId::RequestDoseDays),
                    number(FactId::RequestCycleLengthDays),
                    number(FactId::PatientBsaM2),
                    number(FactId::RequestDoseMgPerM2),
                ) {
                    Some(units) => Value::Number(units),
                    // Only a dose per m² needs the body surface area.
                    None => match facts.get(FactId::PatientBsaM2) {
                        Value::Unknown(missing) => Value::Unknown(missing),
                        _ => Value::NotApplicable,
                    },
                };
                // A frontline course is the label's frontline one: a course known not to
                // treat relapsed or refractory disease is never sized on the salvage course.
                let course = match (
                    facts.get(FactId::RequestRelapsedRefractoryCourse),
                    drug.limits.frontline_course_cycles,
                ) {
                    (Value::Bool(false), Some(frontline)) => frontline,
                    _ => drug.limits.course_cycles,
                };
                (units, Value::Number(f64::from(course)))
            }
        };
        facts.set(FactId::RequestLabelUnitsPerCycle, units);
        facts.set(FactId::RequestLabelCourseCycles, cycles);
        if let Some(drug) = drug {
            units_per_cycle_by_dose_days(drug, facts);
        }
        facts.set_label_shortest_cycle_days(drug.and_then(|d| d.limits.shortest_cycle_days));
        facts.set_label_later_cycles(drug.and_then(|d| d.limits.later_cycles));
    }

    /// Decides a case against the selected policies (all when `selected` is empty).
    pub fn evaluate(&self, case: &Case, selected: &[usize]) -> Evaluation {
        let mut evaluation = Evaluation::default();
        self.evaluate_into(case, selected, &mut evaluation);
        evaluation
    }

    /// [`Engine::evaluate`] into an evaluation reused from case to case, as batch runs do:
    /// it then allocates nothing and copies no fact table.
    pub fn evaluate_into(&self, case: &Case, selected: &[usize], evaluation: &mut Evaluation) {
        self.decide_into(case, selected, None, evaluation);
    }

    /// Decides a case as the payer received it on `received`: the policy versions in effect
    /// that day decide, and an approval's period starts that day. Without a receipt date, both
    /// follow `request.date` (recorded cases keep deciding the same). With one, a
    /// `request.date` outside the window around receipt is bad input naming it
    /// ([`case::check_received`]): the service and `evaluate --received` share the rule.
    pub fn evaluate_received(
        &self,
        case: &Case,
        selected: &[usize],
        received: Option<date::Date>,
    ) -> Result<Evaluation, CaseError> {
        let mut evaluation = Evaluation::default();
        self.evaluate_received_into(case, selected, received, &mut evaluation)?;
        Ok(evaluation)
    }

    /// Decides a case by one policy version exactly (`index`, not the version in effect),
    /// as received on `received`: how the service recomputes a stored decision under the
    /// version that made it.
    pub fn evaluate_version(&self, case: &Case, index: usize, received: date::Date) -> Evaluation {
        let mut evaluation = Evaluation::default();
        self.fill_facts(case, &mut evaluation.facts, Some(received));
        if let Some(policy) = self.policies.get(index) {
            let codes = case
                .diagnosis
                .as_ref()
                .and_then(|d| d.icd10.as_deref())
                .unwrap_or_default();
            let Evaluation {
                facts,
                decisions,
                memo,
            } = &mut evaluation;
            declared::tag(facts, &policy.declared);
            let mut decision = eval::decide_with(policy, facts, Some(received), memo);
            eval::deny_uncovered_codes(policy, codes, &mut decision);
            decisions.push((index, decision));
        }
        evaluation
    }

    /// [`Engine::evaluate_received`] into an evaluation reused from case to case. On bad
    /// input the evaluation holds no decision.
    pub fn evaluate_received_into(
        &self,
        case: &Case,
        selected: &[usize],
        received: Option<date::Date>,
        evaluation: &mut Evaluation,
    ) -> Result<(), CaseError> {
        if let Some(received) = received {
            if let Err(error) = case::check_received(case, received) {
                evaluation.decisions.clear();
                return Err(error);
            }
        }
        self.decide_into(case, selected, received, evaluation);
        Ok(())
    }

    fn decide_into(
        &self,
        case: &Case,
        selected: &[usize],
        received: Option<date::Date>,
        evaluation: &mut Evaluation,
    ) {
        self.fill_facts(case, &mut evaluation.facts, received);
        let date = received.or_else(|| case.request.as_ref().and_then(|r| r.date));
        let Evaluation {
            facts,
            decisions,
            memo,
        } = evaluation;
        decisions.clear();
        let codes = case
            .diagnosis
            .as_ref()
            .and_then(|d| d.icd10.as_deref())
            .unwrap_or_default();
        // Each policy decides by its version in effect on the request date.
        let mut decide = |index: usize| {
            let index = self.version_for(index, date);
            if let Some(policy) = self.policies.get(index) {
                declared::tag(facts, &policy.declared);
                let mut decision = eval::decide_with(policy, facts, date, memo);
                eval::deny_uncovered_codes(policy, codes, &mut decision);
                decisions.push((index, decision));
            }
        };
        if selected.is_empty() {
            self.current.iter().for_each(|i| decide(*i));
        } else {
            selected.iter().for_each(|i| decide(*i));
        }
    }
}

/// Units given for a period shorter than the cycle, of a drug dosed on set days of its cycle
/// (the catalog's `dose_days`, Besponsa's days 1, 8 and 15): the units of the doses that fall
/// in the period, scaled to the cycle's doses (the request's `dose_days` first of them). The
/// case format's general rule reads units for a period of at least `dose_days` days as the
/// whole cycle's, which holds for a drug given every day of its infusion (Blincyto) but read 9
/// units a week of Besponsa (one 0.5 mg/m² dose) as a cycle's three doses, approving a third
/// of the regimen.
fn units_per_cycle_by_dose_days(drug: &policy::Drug, facts: &mut Facts) {
    use facts::Value;
    if drug.limits.dose_days.is_empty() {
        return;
    }
    let number = |id: FactId| match facts.get(id) {
        Value::Number(n) if n.is_finite() && n >= 0.0 => Some(n),
        _ => None,
    };
    let (Some(units), Some(period), Some(cycle)) = (
        number(FactId::RequestUnits),
        number(FactId::RequestUnitsPeriodDays),
        number(FactId::RequestCycleLengthDays),
    ) else {
        return;
    };
    if period >= cycle {
        return;
    }
    let doses = number(FactId::RequestDoseDays)
        .map_or(drug.limits.dose_days.len(), |n| n as usize)
        .min(drug.limits.dose_days.len());
    let in_period = drug
        .limits
        .dose_days
        .iter()
        .take(doses)
        .filter(|day| f64::from(**day) <= period)
        .count();
    if in_period == 0 || in_period >= doses {
        return;
    }
    let per_cycle = (units * doses as f64 / in_period as f64).ceil();
    facts.set(FactId::RequestUnitsPerCycle, Value::Number(per_cycle));
}
