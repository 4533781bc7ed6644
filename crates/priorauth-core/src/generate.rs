//! Generated case populations: plausible ages, weights, disease settings and prior
//! therapies, with some facts left unknown, for benchmarks and property tests.
//! Deterministic for a seed.

use serde_json::{Map, Value, json};

/// A small deterministic generator (SplitMix64); statistical quality is not needed here.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        items.get(self.below(items.len() as u64) as usize)
    }

    /// A value from weighted choices.
    pub fn weighted<'a, T>(&mut self, items: &'a [(u64, T)]) -> Option<&'a T> {
        let total: u64 = items.iter().map(|(w, _)| w).sum();
        let mut roll = self.below(total);
        for (weight, item) in items {
            if roll < *weight {
                return Some(item);
            }
            roll -= weight;
        }
        None
    }
}

/// One generated case as JSON. About one fact in `unknown_percent` is dropped.
pub fn case(rng: &mut Rng, index: u64, unknown_percent: u64) -> Value {
    let drug = if rng.chance(85) {
        "blinatumomab"
    } else {
        "inotuzumab_ozogamicin"
    };
    let status = *rng
        .weighted(&[
            (40, "relapsed"),
            (20, "refractory"),
            (30, "complete_remission"),
            (10, "newly_diagnosed"),
        ])
        .unwrap_or(&"relapsed");
    let child = rng.chance(25);
    let age_years = if child {
        rng.below(15) as i64
    } else {
        15 + rng.below(70) as i64
    };
    let age_days = age_years * 365 + rng.below(365) as i64;
    let request_day = 20_500 + rng.below(700) as i64; // days since 1970, 2026 to 2027
    let date = civil_from_days(request_day);
    let birth = civil_from_days(request_day - age_days.max(20));
    let weight = if child {
        4.0 + age_years as f64 * 3.2
    } else {
        45.0 + rng.below(60) as f64
    } + rng.below(40) as f64 / 10.0
        - 2.0;
    let height = if child {
        55.0 + age_years as f64 * 6.5
    } else {
        150.0 + rng.below(45) as f64
    };
    let bsa = (weight * height / 3600.0).sqrt();
    let renewal = rng.chance(15);
    let (dose, unit) = match drug {
        "blinatumomab" if weight < 45.0 => (
            *rng.pick(&[5.0, 15.0, 15.0, 15.0, 20.0]).unwrap_or(&15.0),
            "mcg/m2/day",
        ),
        "blinatumomab" => (
            *rng.pick(&[9.0, 28.0, 28.0, 28.0, 28.0, 35.0])
                .unwrap_or(&28.0),
            "mcg/day",
        ),
        _ => (*rng.pick(&[0.5, 0.8, 0.8, 1.0]).unwrap_or(&0.8), "mg/m2"),
    };
    // Continued therapy (cycles 6-9) is the relapsed or refractory course's: a frontline
    // course (newly diagnosed, or in remission) renews within its first cycles.
    let continued = renewal && matches!(status, "relapsed" | "refractory");
    let first_cycle = if renewal {
        if continued { 6 } else { 2 + rng.below(3) }
    } else {
        1
    };
    let cycle_length = if drug != "blinatumomab" {
        21
    } else if continued {
        84
    } else {
        42
    };
    let units = if drug == "blinatumomab" {
        980
    } else {
        // The label's cycle (0.8, 0.5 and 0.5 mg/m²), each dose in whole 0.9 mg vials of
        // 9 units, at the requested first dose.
        [dose, 0.5, 0.5]
            .iter()
            .map(|d| (d * bsa / 0.9 - 1e-9).ceil().max(1.0) as u64 * 9)
            .sum::<u64>()
    };
    let ph = *rng
        .weighted(&[(55, "negative"), (30, "positive"), (15, "ph_like")])
        .unwrap_or(&"negative");
    let tki_drugs = [
        "imatinib",
        "dasatinib",
        "nilotinib",
        "bosutinib",
        "ponatinib",
        "asciminib",
        "olverembatinib",
    ];
    let tki_outcomes = [
        "relapsed",
        "refractory",
        "intolerant",
        "inadequate_response",
        "adverse_reaction",
        "responding",
    ];
    let tkis: Vec<Value> = if ph == "positive" {
        (0..rng.below(3))
            .map(|_| json!({"drug": rng.pick(&tki_drugs), "outcome": rng.pick(&tki_outcomes)}))
            .collect()
    } else {
        Vec::new()
    };
    let in_remission = status == "complete_remission";
    // A Blincyto course with a treatment phase (induction, consolidation, maintenance) is
    // frontline, whose label course is 4 cycles: its requests ask no more than it has left.
    let most_cycles = match drug {
        "blinatumomab" if in_remission || status == "newly_diagnosed" => {
            5u64.saturating_sub(first_cycle).clamp(1, 4)
        }
        "blinatumomab" => 4,
        _ => 3,
    };
    let mrd_positive = in_remission && rng.chance(65);
    let mut sections = json!({
        "request": {
            "drug": drug,
            "kind": if renewal { "renewal" } else { "initial" },
            "date": date,
            "line_of_business": rng.weighted(&[(35, "commercial"), (10, "exchange"), (35, "medicaid"), (5, "chip"), (15, "medicare_advantage")]),
            "phase": if in_remission { Value::from(*rng.pick(&["consolidation", "consolidation", "maintenance"]).unwrap_or(&"consolidation")) } else if status == "newly_diagnosed" { Value::from("induction") } else { Value::Null },
            "regimen": rng.weighted(&[(80, "single_agent"), (5, "inotuzumab_mini_hypercvd"), (3, "interfant"), (5, "tki_combination"), (7, "chemotherapy_combination")]),
            "dose": {"value": dose, "unit": unit},
            "dose_days": if drug == "blinatumomab" { 28 } else { 3 },
            "cycle_length_days": cycle_length,
            "cycles": 1 + rng.below(most_cycles),
            "first_cycle": first_cycle,
            "hcpcs": if drug == "blinatumomab" { "J9039" } else { "J9229" },
            "units": units,
            "units_period_days": cycle_length,
            "drug_source": rng.weighted(&[(90, "plan"), (5, "samples"), (5, "manufacturer_assistance")]),
        },
        "patient": {
            "birth_date": birth,
            "weight_kg": (weight * 10.0).round() / 10.0,
            "height_cm": height.round(),
            "new_to_plan_on_treatment": rng.chance(8),
        },
        "diagnosis": {
            "icd10": [match status { "complete_remission" => "C91.01", "newly_diagnosed" | "refractory" => "C91.00", _ => "C91.02" }],
            "condition": rng.weighted(&[(94, "acute_lymphoblastic_leukemia"), (3, "lymphoblastic_lymphoma"), (2, "other_cancer"), (1, "non_cancer")]),
            "lineage": rng.weighted(&[(90, "b_cell_precursor"), (7, "t_cell"), (3, "mixed_phenotype")]),
            "cd19_positive": rng.chance(93),
            "cd22_positive": rng.chance(85),
            "ph_status": ph,
            "disease_status": status,
            "remission_number": if in_remission { Value::from(1 + rng.below(2)) } else { Value::Null },
            "complete_response_to_induction": in_remission || rng.chance(40),
            "mrd_status": if in_remission { Value::from(if mrd_positive { "positive" } else { "negative" }) } else { Value::Null },
            "mrd_percent": if mrd_positive { Value::from(rng.below(300) as f64 / 100.0) } else if in_remission { Value::from(0.0) } else { Value::Null },
            "mrd_method": if in_remission { Value::from(*rng.pick(&["flow_cytometry", "pcr", "ngs"]).unwrap_or(&"flow_cytometry")) } else { Value::Null },
        },
        "history": {
            "induction_regimen": rng.weighted(&[(75, "standard_chemotherapy"), (8, "inotuzumab_mini_hypercvd"), (12, "tki_based"), (5, "other")]),
            "prior_systemic_therapies": if status == "newly_diagnosed" { 0 } else { 1 + rng.below(3) },
            "tkis": tkis,
            "blinatumomab_cycles": first_cycle - 1,
            "blinatumomab_continued_cycles": 0,
            "progression_on_blinatumomab": rng.chance(4),
            "hypersensitivity": rng.chance(2),
            "live_vaccine_within_2_weeks": rng.chance(3),
            "live_vaccine_planned": rng.chance(2),
            "unacceptable_toxicity": renewal && rng.chance(8),
            "response": if renewal { Value::from(*rng.weighted(&[(60, "response"), (30, "stable"), (10, "progression")]).unwrap_or(&"response")) } else { Value::Null },
            "medications_added": renewal && rng.chance(10),
            "authorizations": if renewal { json!([{"start": civil_from_days(request_day - 220), "end": civil_from_days(request_day - 1 - rng.below(60) as i64), "renewal": false}]) } else { json!([]) },
        },
        "prescriber": {
            "specialty": rng.weighted(&[(40, "medical_oncology"), (20, "hematology"), (25, "hematology_oncology"), (10, "pediatric_hematology_oncology"), (5, "other")]),
        },
    });
    // Drop facts: a null is unknown, as the spec says.
    if let Value::Object(sections) = &mut sections {
        for section in sections.values_mut() {
            if let Value::Object(facts) = section {
                for value in facts.values_mut() {
                    if rng.chance(unknown_percent) {
                        *value = Value::Null;
                    }
                }
            }
        }
        let mut case = Map::new();
        case.insert("id".to_string(), Value::from(format!("G{index:07}")));
        case.append(sections);
        return Value::Object(case);
    }
    sections
}

/// `YYYY-MM-DD` of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> String {
    crate::date::Date::from_epoch_days(days)
        .map(|d| d.to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_cases_are_valid_and_repeatable() {
        let engine = crate::Engine::bundled().unwrap();
        let mut rng = Rng::new(7);
        let first: Vec<Value> = (0..500).map(|i| case(&mut rng, i, 5)).collect();
        let mut again = Rng::new(7);
        for (i, value) in first.iter().enumerate() {
            assert_eq!(*value, case(&mut again, i as u64, 5));
            engine
                .parse_case(&value.to_string())
                .unwrap_or_else(|e| panic!("{e}\n{value}"));
        }
        assert_eq!(civil_from_days(0), "1970-01-01");
        assert_eq!(civil_from_days(20_591), "2026-05-18");
    }
}
