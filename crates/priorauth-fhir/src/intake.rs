//! FHIR resources to a case: the order, the member, conditions, observations, the prescriber's
//! role, the coverage and the answers of a QuestionnaireResponse (whose linkIds are case keys).
//!
//! Structured data fills what it can say for certain (`config/fhir.toml`); a questionnaire
//! answer is the requester's attestation and overrides it. Nothing is guessed: a fact no
//! source gives stays unknown, and the engine asks for it if it matters.

use std::collections::BTreeMap;

use fhirbolt::model::r4::Resource;
use fhirbolt::model::r4::resources::{
    Bundle, Claim, ClaimDiagnosisDiagnosis, ClaimItemServiced, Condition, Coverage,
    MedicationRequest, MedicationRequestMedication, Observation, ObservationEffective,
    ObservationValue, PractitionerRole, QuestionnaireResponse, QuestionnaireResponseItem,
    QuestionnaireResponseItemAnswerValue,
};
use fhirbolt::model::r4::types::{CodeableConcept, Dosage, Extension, Identifier, Reference};
use priorauth_core::Engine;
use priorauth_core::questions::{self, Kind};
use serde_json::{Map as JsonMap, Value, json};

use crate::map::Map;
use crate::{PAS, Problem};

/// The resources of a request, found by reference.
#[derive(Debug, Default)]
pub struct Resources {
    entries: Vec<(Option<String>, Resource)>,
}

impl Resources {
    pub fn from_bundle(bundle: &Bundle) -> Resources {
        let mut resources = Resources::default();
        for entry in &bundle.entry {
            if let Some(resource) = &entry.resource {
                let url = entry.full_url.as_ref().and_then(|u| u.value.clone());
                resources.add(url, resource.clone());
            }
        }
        resources
    }

    /// Adds a resource; a Bundle's entries are added in its place.
    pub fn add(&mut self, full_url: Option<String>, resource: Resource) {
        match resource {
            Resource::Bundle(bundle) => {
                for entry in bundle.entry {
                    if let Some(resource) = entry.resource {
                        self.add(entry.full_url.and_then(|u| u.value), resource);
                    }
                }
            }
            resource => self.entries.push((full_url, resource)),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Resource> {
        self.entries.iter().map(|(_, r)| r)
    }

    /// The resource a reference names: by full URL, by `Type/id`, or by a full URL ending
    /// in `/Type/id`.
    pub fn resolve(&self, reference: &Reference) -> Option<&Resource> {
        let target = reference.reference.as_ref()?.value.as_deref()?;
        self.entries.iter().find_map(|(url, resource)| {
            let typed = format!("{}/{}", type_name(resource), resource_id(resource)?);
            let hit = url.as_deref() == Some(target)
                || typed == target
                || url
                    .as_deref()
                    .is_some_and(|u| u.ends_with(&format!("/{target}")))
                || target.ends_with(&format!("/{typed}"));
            hit.then_some(resource)
        })
    }
}

/// The member ids a Coverage carries: its `subscriberId`, then each identifier's value (US
/// Core and CARIN give the member id as an identifier of type `MB`; any identifier is tried,
/// since an id that is no member's matches nothing).
pub fn member_ids(coverage: &Coverage) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    let subscriber = coverage
        .subscriber_id
        .as_ref()
        .and_then(|s| s.value.clone());
    let identifiers = coverage
        .identifier
        .iter()
        .filter_map(|i| i.value.as_ref()?.value.clone());
    for id in subscriber.into_iter().chain(identifiers) {
        let id = id.trim().to_string();
        if !id.is_empty() && !ids.contains(&id) {
            ids.push(id);
        }
    }
    ids
}

/// The identifiers by which a Coverage names its payer (`system|value`; `|value` when no
/// system is given): each `payor` reference's own identifier, and those of the Organization
/// it refers to, in the request or contained in the Coverage.
pub fn payer_ids(coverage: &Coverage, resources: &Resources) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for payor in &coverage.payor {
        let target = payor.reference.as_ref().and_then(|r| r.value.as_deref());
        let contained = target.and_then(|t| t.strip_prefix('#')).and_then(|local| {
            coverage
                .contained
                .iter()
                .find(|r| resource_id(r) == Some(local))
        });
        let organization = match contained.or_else(|| resources.resolve(payor)) {
            Some(Resource::Organization(organization)) => organization.identifier.as_slice(),
            _ => &[],
        };
        for id in payor
            .identifier
            .iter()
            .map(|i| &**i)
            .chain(organization)
            .filter_map(identifier_text)
        {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    ids
}

/// An identifier as `system|value` (`|value` when it names no system).
fn identifier_text(identifier: &Identifier) -> Option<String> {
    let value = identifier.value.as_ref()?.value.as_deref()?.trim();
    let system = identifier
        .system
        .as_ref()
        .and_then(|s| s.value.as_deref())
        .unwrap_or_default()
        .trim();
    (!value.is_empty()).then(|| format!("{system}|{value}"))
}

fn resource_id(resource: &Resource) -> Option<&str> {
    resource.id().and_then(|id| id.value.as_deref())
}

/// The resource type's name, for the types a request carries.
pub fn type_name(resource: &Resource) -> &'static str {
    match resource {
        Resource::Patient(_) => "Patient",
        Resource::Coverage(_) => "Coverage",
        Resource::Condition(_) => "Condition",
        Resource::Observation(_) => "Observation",
        Resource::MedicationRequest(_) => "MedicationRequest",
        Resource::Practitioner(_) => "Practitioner",
        Resource::PractitionerRole(_) => "PractitionerRole",
        Resource::Organization(_) => "Organization",
        Resource::Claim(_) => "Claim",
        Resource::ClaimResponse(_) => "ClaimResponse",
        Resource::QuestionnaireResponse(_) => "QuestionnaireResponse",
        Resource::Questionnaire(_) => "Questionnaire",
        Resource::Bundle(_) => "Bundle",
        Resource::Location(_) => "Location",
        Resource::ServiceRequest(_) => "ServiceRequest",
        Resource::DeviceRequest(_) => "DeviceRequest",
        Resource::DocumentReference(_) => "DocumentReference",
        Resource::Encounter(_) => "Encounter",
        Resource::Parameters(_) => "Parameters",
        Resource::Subscription(_) => "Subscription",
        _ => "Resource",
    }
}

/// (system, code) of each coding of a concept.
pub fn codings(concept: &CodeableConcept) -> impl Iterator<Item = (&str, &str)> {
    concept.coding.iter().filter_map(|c| {
        Some((
            c.system.as_ref()?.value.as_deref()?,
            c.code.as_ref()?.value.as_deref()?,
        ))
    })
}

pub fn extension<'a>(extensions: &'a [Extension], url: &str) -> Option<&'a Extension> {
    extensions.iter().find(|e| e.url == url)
}

/// The date part of a FHIR date or dateTime, when it is a full date.
fn full_date(text: &str) -> Option<String> {
    let date = text.get(..10)?;
    (date.len() == 10 && date.as_bytes().get(4) == Some(&b'-')).then(|| date.to_string())
}

/// Where a fact came from; a higher rank overrides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Rank {
    Record,
    Order,
    Answer,
}

/// A case being assembled from FHIR data.
#[derive(Debug)]
pub struct CaseBuilder<'a> {
    map: &'a Map,
    engine: &'a Engine,
    facts: BTreeMap<String, (Value, Rank)>,
    /// Date of the observation each observed fact came from (the newest wins).
    observed: BTreeMap<String, String>,
    icd10: Vec<String>,
    /// The plan id on the member's coverage, as the EHR declares it (`Coverage.class` plan).
    pub plan: Option<String>,
    /// The member ids on the coverage (`subscriberId`, then each identifier), by which the
    /// service finds the member's plan in the payer's eligibility.
    pub member_ids: Vec<String>,
    /// Each member id with the identifiers by which the Coverage that carries it names its
    /// payer ([`payer_ids`]; for a PAS Claim's focal Coverage naming none, the Claim's
    /// insurer's): a plan that lists payer identifiers takes the member id only if one agrees.
    /// Kept per Coverage, so that another Coverage's payer never vouches for this one.
    pub payer_ids: Vec<(String, Vec<String>)>,
    /// Expedited review asked for (PAS level of service `U`, or priority `urgent`/`stat`).
    pub expedited: bool,
    /// The authorization this request continues (PAS item authorizationNumber).
    pub renews: Option<String>,
    pub problems: Vec<Problem>,
}

impl<'a> CaseBuilder<'a> {
    pub fn new(map: &'a Map, engine: &'a Engine) -> CaseBuilder<'a> {
        CaseBuilder {
            map,
            engine,
            facts: BTreeMap::new(),
            observed: BTreeMap::new(),
            icd10: Vec::new(),
            plan: None,
            member_ids: Vec::new(),
            payer_ids: Vec::new(),
            expedited: false,
            renews: None,
            problems: Vec::new(),
        }
    }

    fn set(&mut self, key: &str, value: Value, rank: Rank) {
        match self.facts.get(key) {
            Some((_, held)) if *held > rank => {}
            _ => {
                self.facts.insert(key.to_string(), (value, rank));
            }
        }
    }

    pub fn is_set(&self, key: &str) -> bool {
        self.facts.contains_key(key)
    }

    /// Every resource of a request that speaks of the member's clinical state.
    pub fn records(&mut self, resources: &Resources) {
        for resource in resources.iter() {
            match resource {
                Resource::Patient(patient) => {
                    if let Some(date) = patient.birth_date.as_ref().and_then(|d| d.value.as_deref())
                    {
                        if let Some(date) = full_date(date) {
                            self.set("patient.birth_date", json!(date), Rank::Record);
                        }
                    }
                }
                Resource::Condition(condition) => self.condition(condition),
                Resource::Observation(observation) => self.observation(observation),
                Resource::Coverage(coverage) => self.coverage(coverage, resources),
                _ => {}
            }
        }
    }

    pub fn condition(&mut self, condition: &Condition) {
        let inactive = |concept: &Option<Box<CodeableConcept>>, codes: &[&str]| {
            concept
                .as_deref()
                .is_some_and(|c| codings(c).any(|(_, code)| codes.contains(&code)))
        };
        if inactive(&condition.clinical_status, &["inactive", "resolved"])
            || inactive(
                &condition.verification_status,
                &["refuted", "entered-in-error"],
            )
        {
            return;
        }
        if let Some(code) = condition.code.as_deref() {
            self.diagnosis_code(code);
        }
    }

    fn diagnosis_code(&mut self, concept: &CodeableConcept) {
        let codes: Vec<String> = codings(concept)
            .filter(|(system, _)| self.map.systems.icd10.iter().any(|s| s == system))
            .map(|(_, code)| code.to_string())
            .collect();
        for code in codes {
            let entries: Vec<_> = self.map.icd10_of(&code).cloned().collect();
            for entry in entries {
                if let Some(condition) = entry.condition {
                    self.set("diagnosis.condition", json!(condition), Rank::Record);
                }
                if let Some(status) = entry.disease_status {
                    self.set("diagnosis.disease_status", json!(status), Rank::Record);
                }
            }
            if !self.icd10.contains(&code) {
                self.icd10.push(code);
            }
        }
    }

    pub fn observation(&mut self, observation: &Observation) {
        let status = observation.status.value.as_deref().unwrap_or_default();
        if !["final", "amended", "corrected"].contains(&status) {
            return;
        }
        let Some(entry) = codings(&observation.code)
            .find_map(|(system, code)| self.map.observation_of(system, code))
            .cloned()
        else {
            return;
        };
        let date = match &observation.effective {
            Some(ObservationEffective::DateTime(d)) => d.value.clone(),
            Some(ObservationEffective::Instant(d)) => d.value.clone(),
            Some(ObservationEffective::Period(p)) => p
                .end
                .as_ref()
                .or(p.start.as_ref())
                .and_then(|d| d.value.clone()),
            _ => None,
        }
        .unwrap_or_default();
        if self
            .observed
            .get(&entry.fact)
            .is_some_and(|held| *held > date)
        {
            return;
        }
        let value = match &observation.value {
            Some(ObservationValue::Quantity(q)) => {
                let number = q.value.as_ref().and_then(|v| v.value.as_deref());
                let unit = q
                    .code
                    .as_ref()
                    .and_then(|c| c.value.as_deref())
                    .or_else(|| q.unit.as_ref().and_then(|u| u.value.as_deref()));
                match (number.and_then(|n| n.parse::<f64>().ok()), unit) {
                    (Some(n), Some(unit)) => match entry.units.get(unit) {
                        Some(factor) => Some(json!(round(n * factor))),
                        None => {
                            self.problems.push(Problem::new(
                                "Observation.valueQuantity.code",
                                format!(
                                    "unit `{unit}` of {} is not one of {}",
                                    entry.fact,
                                    entry.units.keys().cloned().collect::<Vec<_>>().join(", ")
                                ),
                            ));
                            None
                        }
                    },
                    _ => None,
                }
            }
            Some(ObservationValue::CodeableConcept(c)) => codings(c)
                .find_map(|(_, code)| entry.answers.get(code))
                .map(|v| json!(v)),
            _ => None,
        };
        if let Some(value) = value {
            self.set(&entry.fact, value, Rank::Record);
            if let Some(method) = &entry.method {
                self.set("diagnosis.mrd_method", json!(method), Rank::Record);
            }
            self.observed.insert(entry.fact.clone(), date);
        }
    }

    pub fn coverage(&mut self, coverage: &Coverage, resources: &Resources) {
        for class in &coverage.class {
            if codings(&class.r#type).any(|(_, code)| code == self.map.coverage.plan_class) {
                self.plan = class.value.value.clone();
            }
        }
        let payers = payer_ids(coverage, resources);
        for id in member_ids(coverage) {
            match self.payer_ids.iter_mut().find(|(member, _)| *member == id) {
                Some((_, named)) => {
                    for payer in &payers {
                        if !named.contains(payer) {
                            named.push(payer.clone());
                        }
                    }
                }
                None => self.payer_ids.push((id.clone(), payers.clone())),
            }
            if !self.member_ids.contains(&id) {
                self.member_ids.push(id);
            }
        }
    }

    pub fn practitioner_role(&mut self, role: &PractitionerRole) {
        let specialty = role.specialty.iter().find_map(|concept| {
            codings(concept).find_map(|(system, code)| self.map.specialty_of(system, code))
        });
        if let Some(specialty) = specialty {
            self.set("prescriber.specialty", json!(specialty), Rank::Record);
        }
    }

    /// The drug of an order's codes, and its HCPCS code.
    fn drug_codes(&mut self, concept: &CodeableConcept, path: &str) -> bool {
        let mut found = false;
        for (system, code) in codings(concept) {
            if let Some(drug) = self.map.drug_of(system, code) {
                let drug = drug.to_string();
                if let Some(hcpcs) = self.map.hcpcs_of(&drug) {
                    self.set("request.hcpcs", json!(hcpcs), Rank::Order);
                }
                self.set("request.drug", json!(drug), Rank::Order);
                found = true;
            }
        }
        if !found && !concept.coding.is_empty() {
            self.problems.push(Problem::new(
                path,
                "no code of a drug a policy governs (HCPCS, RxNorm or NDC in config/fhir.toml)",
            ));
        }
        found
    }

    /// The order: drug, dose, date and quantity. Resolves the requester's role.
    pub fn medication_request(&mut self, order: &MedicationRequest, resources: &Resources) {
        if let MedicationRequestMedication::Reference(reference) = &order.medication {
            // A Medication contained in the order (`#id`) or among the request's resources.
            let target = reference
                .reference
                .as_ref()
                .and_then(|r| r.value.as_deref());
            let contained = order
                .contained
                .iter()
                .find(|r| target.is_some_and(|t| t.strip_prefix('#') == resource_id(r)));
            let medication = contained.or_else(|| resources.resolve(reference));
            if let Some(Resource::Medication(medication)) = medication {
                if let Some(code) = &medication.code {
                    self.drug_codes(code, "Medication.code");
                }
            }
        }
        if let MedicationRequestMedication::CodeableConcept(concept) = &order.medication {
            self.drug_codes(concept, "MedicationRequest.medicationCodeableConcept");
            // CRD 2.2 carries the expected billing code next to the clinical one.
            if let Some(Extension {
                value: Some(fhirbolt::model::r4::types::ExtensionValue::CodeableConcept(c)),
                ..
            }) = extension(
                &concept.extension,
                "http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-billing-options",
            ) {
                self.drug_codes(c, "MedicationRequest.medicationCodeableConcept.extension");
            }
        }
        for reason in &order.reason_code {
            self.diagnosis_code(reason);
        }
        if let Some(dosage) = order.dosage_instruction.first() {
            self.dosage(dosage);
        }
        let start = order
            .dosage_instruction
            .iter()
            .find_map(
                |d| match d.timing.as_ref()?.repeat.as_ref()?.bounds.as_ref()? {
                    fhirbolt::model::r4::types::TimingRepeatBounds::Period(p) => {
                        p.start.as_ref()?.value.clone()
                    }
                    _ => None,
                },
            )
            .or_else(|| {
                order
                    .dispense_request
                    .as_ref()?
                    .validity_period
                    .as_ref()?
                    .start
                    .as_ref()?
                    .value
                    .clone()
            })
            .or_else(|| order.authored_on.as_ref()?.value.clone());
        if let Some(date) = start.as_deref().and_then(full_date) {
            self.set("request.date", json!(date), Rank::Order);
        }
        if let Some(requester) = &order.requester {
            if let Some(Resource::PractitionerRole(role)) = resources.resolve(requester) {
                self.practitioner_role(role);
            }
        }
        if order
            .priority
            .as_ref()
            .and_then(|p| p.value.as_deref())
            .is_some_and(|p| p == "urgent" || p == "stat" || p == "asap")
        {
            self.expedited = true;
        }
    }

    fn dosage(&mut self, dosage: &Dosage) {
        use fhirbolt::model::r4::types::DosageDoseAndRateDose;
        let Some(DosageDoseAndRateDose::Quantity(q)) =
            dosage.dose_and_rate.first().and_then(|d| d.dose.as_ref())
        else {
            return;
        };
        let value = q
            .value
            .as_ref()
            .and_then(|v| v.value.as_deref()?.parse::<f64>().ok());
        let unit = q
            .code
            .as_ref()
            .and_then(|c| c.value.as_deref())
            .and_then(|code| self.map.dose_units.get(code));
        match (value, unit) {
            (Some(value), Some(unit)) => self.set(
                "request.dose",
                json!({"value": value, "unit": unit}),
                Rank::Order,
            ),
            (Some(_), None) => self.problems.push(Problem::new(
                "MedicationRequest.dosageInstruction.doseAndRate.doseQuantity.code",
                format!(
                    "the dose unit must be a UCUM code of {}",
                    self.map
                        .dose_units
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
            _ => {}
        }
    }

    /// A PAS Claim: the drug item, its quantity and dates, diagnoses, request kind, the
    /// requested order, the provider's role and the attached questionnaire answers.
    pub fn claim(&mut self, claim: &Claim, resources: &Resources) -> Option<u32> {
        self.claim_item(claim, resources, None)
    }

    /// As [`CaseBuilder::claim`], for the item at `only` (its index) alone when given: each
    /// item of a Claim with several is a request of its own.
    pub fn claim_item(
        &mut self,
        claim: &Claim,
        resources: &Resources,
        only: Option<usize>,
    ) -> Option<u32> {
        for diagnosis in &claim.diagnosis {
            match &diagnosis.diagnosis {
                ClaimDiagnosisDiagnosis::CodeableConcept(c) => self.diagnosis_code(c),
                ClaimDiagnosisDiagnosis::Reference(r) => {
                    if let Some(Resource::Condition(c)) = resources.resolve(r) {
                        self.condition(c);
                    }
                }
                _ => {}
            }
        }
        // PAS 2.2.1 names the extension `levelOfServiceCode` (its slice is
        // `levelOfServiceType`, the name earlier versions' URL had): both are read.
        let level = extension(
            &claim.extension,
            &format!("{PAS}/StructureDefinition/extension-levelOfServiceCode"),
        )
        .or_else(|| {
            extension(
                &claim.extension,
                &format!("{PAS}/StructureDefinition/extension-levelOfServiceType"),
            )
        });
        if let Some(level) = level {
            if let Some(fhirbolt::model::r4::types::ExtensionValue::CodeableConcept(c)) =
                &level.value
            {
                if codings(c).any(|(_, code)| code == "U" || code == "03") {
                    self.expedited = true;
                }
            }
        }
        if codings(&claim.priority).any(|(_, code)| code == "stat") {
            self.expedited = true;
        }
        let insurer: Vec<String> = match claim.insurer.as_deref().and_then(|r| resources.resolve(r))
        {
            Some(Resource::Organization(insurer)) => insurer
                .identifier
                .iter()
                .filter_map(identifier_text)
                .collect(),
            _ => Vec::new(),
        };
        for insurance in claim
            .insurance
            .iter()
            .filter(|i| i.focal.value == Some(true))
        {
            if let Some(Resource::Coverage(coverage)) = resources.resolve(&insurance.coverage) {
                self.coverage(coverage, resources);
                // A focal Coverage that names no payer is the insurer's the Claim is sent to.
                let ids = member_ids(coverage);
                for (member, named) in &mut self.payer_ids {
                    if named.is_empty() && ids.contains(member) {
                        named.clone_from(&insurer);
                    }
                }
            }
        }
        for provider in std::iter::once(claim.provider.as_ref())
            .chain(claim.care_team.iter().map(|c| c.provider.as_ref()))
        {
            if let Some(Resource::PractitionerRole(role)) = resources.resolve(provider) {
                self.practitioner_role(role);
            }
        }
        // The first item a policy governs is the request; its sequence is returned.
        let mut sequence = None;
        for (index, item) in claim.item.iter().enumerate() {
            if only.is_some_and(|only| only != index) {
                continue;
            }
            let path = format!("Claim.item[{index}].productOrService");
            let before = self.problems.len();
            if !self.drug_codes(&item.product_or_service, &path) {
                continue;
            }
            self.problems.truncate(before);
            sequence = item.sequence.value;
            if let Some(quantity) = item.quantity.as_ref().and_then(|q| q.value.as_ref()) {
                match quantity
                    .value
                    .as_deref()
                    .and_then(|v| v.parse::<f64>().ok())
                {
                    Some(units) if units >= 1.0 && units.fract() == 0.0 => {
                        self.set("request.units", json!(units as u64), Rank::Order)
                    }
                    // 0 units approve nothing; read as absent, they were approved at the
                    // policy's most (as `/v1` refuses `request.units` of 0).
                    _ => self.problems.push(Problem::new(
                        format!("Claim.item[{index}].quantity.value"),
                        "billing units must be a whole number of at least 1; leave the quantity out for the policy's most",
                    )),
                }
            }
            match &item.serviced {
                Some(ClaimItemServiced::Date(d)) => {
                    if let Some(date) = d.value.as_deref().and_then(full_date) {
                        self.set("request.date", json!(date), Rank::Order);
                    }
                }
                Some(ClaimItemServiced::Period(p)) => {
                    let start = p
                        .start
                        .as_ref()
                        .and_then(|d| d.value.as_deref())
                        .and_then(full_date);
                    let end = p
                        .end
                        .as_ref()
                        .and_then(|d| d.value.as_deref())
                        .and_then(full_date);
                    if let Some(start) = &start {
                        self.set("request.date", json!(start), Rank::Order);
                    }
                    if let Some(days) = start.zip(end).and_then(|(s, e)| days_between(&s, &e)) {
                        self.set("request.units_period_days", json!(days + 1), Rank::Order);
                    }
                }
                _ => {}
            }
            let certification = format!("{PAS}/StructureDefinition/extension-certificationType");
            if let Some(Extension {
                value: Some(fhirbolt::model::r4::types::ExtensionValue::CodeableConcept(c)),
                ..
            }) = extension(&item.extension, &certification)
            {
                if let Some(kind) =
                    codings(c).find_map(|(_, code)| self.map.certification_type.get(code))
                {
                    self.set("request.kind", json!(kind), Rank::Order);
                }
            }
            let number = format!("{PAS}/StructureDefinition/extension-authorizationNumber");
            if let Some(Extension {
                value: Some(fhirbolt::model::r4::types::ExtensionValue::String(s)),
                ..
            }) = extension(&item.extension, &number)
            {
                self.renews = s.value.clone();
            }
            let requested = format!("{PAS}/StructureDefinition/extension-requestedService");
            if let Some(Extension {
                value: Some(fhirbolt::model::r4::types::ExtensionValue::Reference(r)),
                ..
            }) = extension(&item.extension, &requested)
            {
                if let Some(Resource::MedicationRequest(order)) = resources.resolve(r) {
                    self.medication_request(order, resources);
                }
            }
            break;
        }
        if sequence.is_none() {
            self.problems.push(Problem::new(
                "Claim.item",
                "no item names a drug a policy governs (HCPCS, RxNorm or NDC)",
            ));
        }
        for info in &claim.supporting_info {
            if let Some(fhirbolt::model::r4::resources::ClaimSupportingInfoValue::Reference(r)) =
                &info.value
            {
                if let Some(Resource::QuestionnaireResponse(qr)) = resources.resolve(r) {
                    self.answers(qr);
                }
            }
        }
        sequence
    }

    /// Answers whose linkId is a case key.
    fn questionnaire_response(&mut self, response: &QuestionnaireResponse) {
        let mut items = Vec::new();
        flatten(&response.item, &mut items);
        for item in items {
            self.answer(item);
        }
    }

    fn answer(&mut self, item: &QuestionnaireResponseItem) {
        let Some(link) = item.link_id.value.as_deref() else {
            return;
        };
        let path = format!("QuestionnaireResponse.item[linkId={link}]");
        if link == "history.tkis.tried" {
            if let Some(QuestionnaireResponseItemAnswerValue::Boolean(b)) =
                item.answer.first().and_then(|a| a.value.as_ref())
            {
                if b.value == Some(false) {
                    self.set("history.tkis", json!([]), Rank::Answer);
                }
            }
            return;
        }
        if link == "history.tkis" {
            return; // groups are read below, by answer()'s caller
        }
        let declared = priorauth_core::declared::find(&self.engine.declared, link);
        // An answer to a form generated before a key was renamed counts under its new name.
        let renamed = priorauth_core::facts::CASE_KEYS
            .iter()
            .copied()
            .find(|k| crate::questionnaire::deprecated_name(k) == Some(link));
        let Some(key) = priorauth_core::facts::CASE_KEYS
            .iter()
            .copied()
            .find(|k| *k == link)
            .or(renamed)
            .or_else(|| declared.map(|id| id.def().name))
        else {
            return; // display items and items of other forms
        };
        let Some(question) = questions::question(key, self.engine) else {
            return;
        };
        let values: Vec<Value> = item
            .answer
            .iter()
            .filter_map(|a| a.value.as_ref())
            .filter_map(|value| match answer_value(question.kind, value, self.map) {
                Ok(v) => Some(v),
                Err(message) => {
                    self.problems.push(Problem::new(path.clone(), message));
                    None
                }
            })
            .collect();
        let value = if key == "diagnosis.icd10" {
            (!values.is_empty()).then(|| Value::Array(values))
        } else {
            values.into_iter().next()
        };
        if let Some(value) = value {
            self.set(key, value, Rank::Answer);
        }
    }

    /// Answers of the TKI groups (`history.tkis`, repeated, with `drug` and `outcome`).
    fn tki_groups(&mut self, response: &QuestionnaireResponse) {
        let mut items = Vec::new();
        flatten(&response.item, &mut items);
        let mut trials = Vec::new();
        for group in items
            .iter()
            .filter(|i| i.link_id.value.as_deref() == Some("history.tkis"))
        {
            let code = |link: &str| {
                group
                    .item
                    .iter()
                    .find(|i| i.link_id.value.as_deref() == Some(link))
                    .and_then(|i| match i.answer.first()?.value.as_ref()? {
                        QuestionnaireResponseItemAnswerValue::Coding(c) => {
                            c.code.as_ref()?.value.clone()
                        }
                        QuestionnaireResponseItemAnswerValue::String(s) => s.value.clone(),
                        _ => None,
                    })
            };
            if let (Some(drug), Some(outcome)) =
                (code("history.tkis.drug"), code("history.tkis.outcome"))
            {
                trials.push(json!({"drug": drug, "outcome": outcome}));
            }
        }
        if !trials.is_empty() {
            self.set("history.tkis", Value::Array(trials), Rank::Answer);
        }
    }

    /// Every answer of a response, TKI groups included.
    pub fn answers(&mut self, response: &QuestionnaireResponse) {
        self.questionnaire_response(response);
        self.tki_groups(response);
    }

    /// The case in the case format. Unknown facts are absent.
    pub fn case(&self) -> Value {
        let mut root = JsonMap::new();
        let mut facts = self.facts.clone();
        if !self.icd10.is_empty() && !facts.contains_key("diagnosis.icd10") {
            facts.insert("diagnosis.icd10".into(), (json!(self.icd10), Rank::Record));
        }
        for (key, (value, _)) in facts {
            // A fact declared in data goes in the case's `facts` object, by its name.
            let (section, name) = if crate::questionnaire::is_case_key(&key) {
                match key.split_once('.') {
                    Some(parts) => parts,
                    None => continue,
                }
            } else {
                ("facts", key.as_str())
            };
            let section = root
                .entry(section.to_string())
                .or_insert_with(|| Value::Object(JsonMap::new()));
            if let Some(section) = section.as_object_mut() {
                section.insert(name.to_string(), value);
            }
        }
        Value::Object(root)
    }

    /// The case keys this builder has a value for.
    pub fn known_keys(&self) -> impl Iterator<Item = &str> {
        self.facts.keys().map(String::as_str)
    }
}

/// The items of a response at every depth (groups' children and answers' children).
pub fn flatten<'r>(
    items: &'r [QuestionnaireResponseItem],
    out: &mut Vec<&'r QuestionnaireResponseItem>,
) {
    for item in items {
        out.push(item);
        if item.link_id.value.as_deref() != Some("history.tkis") {
            flatten(&item.item, out);
        }
        for answer in &item.answer {
            flatten(&answer.item, out);
        }
    }
}

/// An answer as a case value, by the question's kind.
fn answer_value(
    kind: Kind,
    value: &QuestionnaireResponseItemAnswerValue,
    map: &Map,
) -> Result<Value, String> {
    use QuestionnaireResponseItemAnswerValue as A;
    let wrong = |expected: &str| Err(format!("the answer must be {expected}"));
    match (kind, value) {
        (Kind::Choice, A::Coding(c)) => c
            .code
            .as_ref()
            .and_then(|c| c.value.clone())
            .map(Value::from)
            .ok_or_else(|| "the coding has no code".to_string()),
        (Kind::Choice | Kind::Text, A::String(s)) => Ok(json!(s.value)),
        (Kind::Choice, _) => wrong("a valueCoding"),
        (Kind::Boolean, A::Boolean(b)) => Ok(json!(b.value)),
        (Kind::Boolean, _) => wrong("a valueBoolean"),
        (Kind::Integer, A::Integer(i)) => Ok(json!(i.value)),
        (Kind::Integer, _) => wrong("a valueInteger"),
        (Kind::Decimal, A::Decimal(d)) => d
            .value
            .as_deref()
            .and_then(|d| d.parse::<f64>().ok())
            .map(Value::from)
            .ok_or_else(|| "the decimal is not a number".to_string()),
        (Kind::Decimal, A::Integer(i)) => Ok(json!(i.value)),
        (Kind::Decimal, _) => wrong("a valueDecimal"),
        (Kind::Date, A::Date(d)) => d
            .value
            .as_deref()
            .and_then(full_date)
            .map(Value::from)
            .ok_or_else(|| "the date must be a full date (YYYY-MM-DD)".to_string()),
        (Kind::Date, _) => wrong("a valueDate"),
        (Kind::Dose, A::Quantity(q)) => {
            let value = q
                .value
                .as_ref()
                .and_then(|v| v.value.as_deref()?.parse::<f64>().ok());
            let unit = q.code.as_ref().and_then(|c| c.value.clone());
            match (value, unit) {
                // A UCUM code, or the case format's own unit.
                (Some(value), Some(unit)) => {
                    Ok(json!({"value": value, "unit": map.dose_units.get(&unit).unwrap_or(&unit)}))
                }
                _ => Err("the dose needs a value and a unit code".into()),
            }
        }
        (Kind::Dose, _) => wrong("a valueQuantity"),
        (Kind::Text, _) => wrong("a valueString"),
        (Kind::Tkis, _) => wrong("a group"),
    }
}

fn round(n: f64) -> f64 {
    (n * 1000.0).round() / 1000.0
}

fn days_between(start: &str, end: &str) -> Option<i64> {
    let start = priorauth_core::date::Date::parse(start)?;
    let end = priorauth_core::date::Date::parse(end)?;
    Some(end.days_since(start))
}
