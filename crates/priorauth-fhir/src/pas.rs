//! PAS: the request Bundle (`Claim/$submit`) to a case, and the response Bundle with its
//! ClaimResponse from the service's record of the request. A decision is carried by each
//! item's `reviewAction` code (X12 306): A1 certified, A3 not certified (only after a
//! clinician's determination), A4 pended (clinical review, or information missing), A6
//! modified (a clinician approved with changes, or the policy covers only a part of the cycles
//! requested).

// FHIR JSON is read and written with serde_json's `value["key"]` indexing: a read of a
// missing key is `Null` (never a panic), and writes go only into objects built here or
// already read as that resource type.
#![allow(clippy::indexing_slicing)]

use fhirbolt::model::r4::Resource;
use fhirbolt::model::r4::resources::{Bundle, Claim};
use priorauth_core::Engine;
use serde_json::{Value, json};

use crate::intake::{CaseBuilder, Resources};
use crate::map::Map;
use crate::{PAS, Problem};

const X12_306: &str = "https://codesystem.x12.org/005010/306";
/// X12's review decision reason codes (HCR02), the code system PAS binds `reasonCode` to.
const X12_886: &str = "https://codesystem.x12.org/external/886";
const SUBMITTED: &str = "http://terminology.hl7.org/CodeSystem/adjudication";
/// The PAS subscription topic (R4 Subscriptions backport).
pub const TOPIC: &str = "http://hl7.org/fhir/us/davinci-pas/SubscriptionTopic/PASSubscriptionTopic";
const BACKPORT: &str = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition";

/// A checked PAS request Bundle.
#[derive(Debug)]
pub struct ClaimRequest {
    pub bundle: Bundle,
    pub resources: Resources,
    /// `system|value` of the Bundle's identifier: the submission's idempotency key.
    pub bundle_identifier: String,
    /// `system|value` of the Claim's first identifier (what `$inquire` finds it by).
    pub claim_identifier: String,
}

fn identifier_text(identifier: Option<&fhirbolt::model::r4::types::Identifier>) -> Option<String> {
    let identifier = identifier?;
    let value = identifier.value.as_ref()?.value.as_deref()?;
    let system = identifier
        .system
        .as_ref()
        .and_then(|s| s.value.as_deref())
        .unwrap_or_default();
    Some(format!("{system}|{value}"))
}

/// Reads a PAS request (or inquiry) Bundle: R4, a collection with an identifier, and a Claim
/// for prior authorization as its first entry.
pub fn read_request(json: &str) -> Result<ClaimRequest, Vec<Problem>> {
    read_request_json(json, &crate::read_json(json).map_err(|p| vec![p])?)
}

/// A PAS request Bundle read as [`read_request`] does, from its text and the JSON its caller
/// already read from that same text.
pub fn read_request_json(json: &str, value: &Value) -> Result<ClaimRequest, Vec<Problem>> {
    let bundle: Bundle = crate::parse_json_as(json, value, "Bundle", |r| match r {
        Resource::Bundle(b) => Some(*b),
        _ => None,
    })
    .map_err(|p| vec![p])?;
    let mut problems = Vec::new();
    if bundle.r#type.value.as_deref() != Some("collection") {
        problems.push(Problem::new(
            "Bundle.type",
            "a PAS request Bundle is a `collection`",
        ));
    }
    let bundle_identifier = identifier_text(bundle.identifier.as_deref());
    if bundle_identifier.is_none() {
        problems.push(Problem::new(
            "Bundle.identifier",
            "a PAS request Bundle has an identifier (it makes a resubmission idempotent)",
        ));
    }
    let claim = match bundle.entry.first().and_then(|e| e.resource.as_ref()) {
        Some(Resource::Claim(claim)) => Some(claim.as_ref()),
        _ => {
            problems.push(Problem::new(
                "Bundle.entry[0].resource",
                "the first entry of a PAS request Bundle is the Claim",
            ));
            None
        }
    };
    let claim_identifier = claim.and_then(|c| identifier_text(c.identifier.first()));
    if let Some(claim) = claim {
        if claim.r#use.value.as_deref() != Some("preauthorization") {
            problems.push(Problem::new(
                "Claim.use",
                "a PAS Claim's use is `preauthorization`",
            ));
        }
        if claim.item.is_empty() {
            problems.push(Problem::new("Claim.item", "the Claim has no item"));
        }
        if claim_identifier.is_none() {
            problems.push(Problem::new(
                "Claim.identifier",
                "the Claim has no identifier",
            ));
        }
    }
    match (problems.is_empty(), bundle_identifier, claim_identifier) {
        (true, Some(bundle_identifier), Some(claim_identifier)) => {
            let resources = Resources::from_bundle(&bundle);
            Ok(ClaimRequest {
                bundle,
                resources,
                bundle_identifier,
                claim_identifier,
            })
        }
        _ => Err(problems),
    }
}

impl ClaimRequest {
    pub fn claim(&self) -> Option<&Claim> {
        match self.bundle.entry.first()?.resource.as_ref()? {
            Resource::Claim(claim) => Some(claim),
            _ => None,
        }
    }
}

/// A document a PAS request sends for the reviewer (a clinical note, a pathology report): a
/// `Claim.supportingInfo` whose value is an attachment, or a reference to a DocumentReference
/// of the Bundle, with its data inline (a document only at a URL is not fetched).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// Where it is in the request, for a problem about it (`Claim.supportingInfo[0]`).
    pub element: String,
    pub title: String,
    /// As declared, parameters aside (`text/plain; charset=utf-8` is `text/plain`).
    pub content_type: String,
    /// The bytes, base64, as sent.
    pub data: String,
}

impl ClaimRequest {
    /// The documents the request sends with its data, in the order of `Claim.supportingInfo`.
    pub fn documents(&self) -> Vec<Document> {
        use fhirbolt::model::r4::resources::ClaimSupportingInfoValue;
        use fhirbolt::model::r4::types::Attachment;
        let Some(claim) = self.claim() else {
            return Vec::new();
        };
        let mut documents = Vec::new();
        let mut push = |element: String, attachment: &Attachment, titles: &[Option<String>]| {
            let Some(data) = attachment.data.as_ref().and_then(|d| d.value.clone()) else {
                return;
            };
            let content_type = attachment
                .content_type
                .as_ref()
                .and_then(|c| c.value.as_deref())
                .and_then(|c| c.split(';').next())
                .map(|c| c.trim().to_ascii_lowercase())
                .unwrap_or_default();
            // A title is shown in a list: control characters (which FHIR strings may carry,
            // and PostgreSQL cannot hold when NUL) become spaces.
            let title = std::iter::once(attachment.title.as_ref().and_then(|t| t.value.clone()))
                .chain(titles.iter().cloned())
                .flatten()
                .map(|t| {
                    t.chars()
                        .take(200)
                        .map(|c| if c.is_control() { ' ' } else { c })
                        .collect::<String>()
                })
                .find(|t| !t.trim().is_empty())
                .unwrap_or_else(|| "Document sent with the PAS request".to_string());
            documents.push(Document {
                element,
                title,
                content_type,
                data,
            });
        };
        for (i, info) in claim.supporting_info.iter().enumerate() {
            let element = format!("Claim.supportingInfo[{i}]");
            // PAS's documentInformation extension describes the document in words.
            let described = info
                .extension
                .iter()
                .filter(|e| e.url.ends_with("extension-documentInformation"))
                .flat_map(|e| e.extension.iter())
                .find(|e| e.url == "description")
                .and_then(|e| match &e.value {
                    Some(fhirbolt::model::r4::types::ExtensionValue::String(s)) => s.value.clone(),
                    _ => None,
                });
            match &info.value {
                Some(ClaimSupportingInfoValue::Attachment(attachment)) => {
                    push(element, attachment, &[described]);
                }
                Some(ClaimSupportingInfoValue::Reference(reference)) => {
                    if let Some(Resource::DocumentReference(document)) =
                        self.resources.resolve(reference)
                    {
                        let kind = document.r#type.as_ref().and_then(|t| {
                            t.text.as_ref().and_then(|x| x.value.clone()).or_else(|| {
                                t.coding
                                    .iter()
                                    .find_map(|c| c.display.as_ref().and_then(|d| d.value.clone()))
                            })
                        });
                        let description =
                            document.description.as_ref().and_then(|d| d.value.clone());
                        for (j, content) in document.content.iter().enumerate() {
                            push(
                                format!("{element} (DocumentReference content[{j}])"),
                                &content.attachment,
                                &[description.clone(), described.clone(), kind.clone()],
                            );
                        }
                    }
                }
                _ => {}
            }
        }
        documents
    }
}

/// What a PAS request asks of an earlier one (PAS 2.2.1, *Updates and cancellations*).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intent {
    /// A request of its own.
    New,
    /// Replaces the request of the Claim it names (`Claim.related`, `system|value` of that
    /// Claim's identifier; `|value` when the reference gives no system).
    Update { prior: String },
    /// Cancels a request (certification type `3` on the Claim, or on every item): the one
    /// `Claim.related` names, else the one with this Claim's own identifier.
    Cancel { prior: String },
    /// `Claim.related` names an earlier Claim that this Bundle does not identify: neither an
    /// identifier on the reference nor a Claim with an identifier in the Bundle. PASClaim
    /// allows no `related` (0..0); PASClaimUpdate requires it with relationship `prior`, and
    /// PAS 2.2.1 says "The Claim that is being updated SHALL be referenced in the
    /// Claim.related.claim element and included in the Bundle" (spec-72). Such a Claim is an
    /// update of something unknown, never a new request.
    UnknownPrior,
}

/// Whether `extensions` hold PAS's certificationType with X12 1322 code `3` (Cancel).
fn certification_cancel(extensions: &[fhirbolt::model::r4::types::Extension]) -> bool {
    let certification = format!("{PAS}/StructureDefinition/extension-certificationType");
    crate::intake::extension(extensions, &certification)
        .and_then(|e| match &e.value {
            Some(fhirbolt::model::r4::types::ExtensionValue::CodeableConcept(c)) => {
                Some(crate::intake::codings(c).any(|(_, code)| code == "3"))
            }
            _ => None,
        })
        .unwrap_or(false)
}

/// Whether an item is cancelled: its certification type `3`, or PAS's `infoCancelled`.
fn item_cancelled(item: &fhirbolt::model::r4::resources::ClaimItem) -> bool {
    let flagged = item.modifier_extension.iter().any(|e| {
        e.url.ends_with("/modifierextension-infoCancelled")
            && matches!(
                &e.value,
                Some(fhirbolt::model::r4::types::ExtensionValue::Boolean(b)) if b.value == Some(true)
            )
    });
    certification_cancel(&item.extension) || flagged
}

impl ClaimRequest {
    /// What this request asks of an earlier one.
    pub fn intent(&self) -> Intent {
        let Some(claim) = self.claim() else {
            return Intent::New;
        };
        // The prior Claim: by identifier, or by reference to a Claim in this Bundle.
        let prior = claim.related.iter().find_map(|related| {
            let reference = related.claim.as_ref()?;
            identifier_text(reference.identifier.as_deref()).or_else(|| {
                match self.resources.resolve(reference)? {
                    Resource::Claim(prior) => identifier_text(prior.identifier.first()),
                    _ => None,
                }
            })
        });
        if prior.is_none() && !claim.related.is_empty() {
            return Intent::UnknownPrior;
        }
        // PAS 2.2.1: "To cancel the entire request, clients will send a certificationType
        // extension with a code of 3 (Cancel) in the Claim.extension element"; cancelling
        // every item cancels it all too.
        let whole = certification_cancel(&claim.extension);
        if whole || (!claim.item.is_empty() && claim.item.iter().all(item_cancelled)) {
            return Intent::Cancel {
                prior: prior.unwrap_or_else(|| self.claim_identifier.clone()),
            };
        }
        match prior {
            Some(prior) => Intent::Update { prior },
            None => Intent::New,
        }
    }

    /// Whether the Claim's item at `index` is cancelled (certification type `3`, or
    /// `infoCancelled`): in an update, a service no longer required, which needs no
    /// authorization.
    pub fn item_cancelled(&self, index: usize) -> bool {
        self.claim()
            .and_then(|claim| claim.item.get(index))
            .is_some_and(item_cancelled)
    }
}

/// Who a PAS Bundle is about, as its Claim's patient and focal coverage say.
#[derive(Debug, Default, PartialEq, Eq)]
struct Member {
    subscriber_id: Option<String>,
    identifiers: Vec<String>,
    birth_date: Option<String>,
    family: Option<String>,
}

/// The resources of a PAS Bundle that say whom it is for: its Claim (the first entry), the
/// Patient the Claim names and its focal Coverage (else its first); `Null` where missing.
fn member_resources(bundle: &Value) -> (&Value, &Value, &Value) {
    const NONE: &Value = &Value::Null;
    let entries = bundle["entry"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let find = |reference: &str| {
        entries.iter().map(|e| &e["resource"]).find(|r| {
            let typed = format!(
                "{}/{}",
                r["resourceType"].as_str().unwrap_or_default(),
                r["id"].as_str().unwrap_or_default()
            );
            !reference.is_empty()
                && (reference == typed || reference.ends_with(&format!("/{typed}")))
        })
    };
    let claim = entries.first().map_or(NONE, |e| &e["resource"]);
    let patient = find(claim["patient"]["reference"].as_str().unwrap_or_default()).unwrap_or(NONE);
    let coverage = claim["insurance"]
        .as_array()
        .and_then(|list| list.iter().find(|i| i["focal"] == true).or(list.first()))
        .and_then(|i| find(i["coverage"]["reference"].as_str().unwrap_or_default()))
        .unwrap_or(NONE);
    (claim, patient, coverage)
}

/// What of a request Bundle tells whom it is for ([`same_member`] reads nothing else): its
/// Claim's references to the member, the Patient and the Coverage they name. A stored
/// Bundle can be megabytes; an inquiry about it needs this.
pub fn member_source(bundle: &Value) -> Value {
    let (claim, patient, coverage) = member_resources(bundle);
    // A reference that names the Claim itself finds it first: it is kept whole.
    let kept = if std::ptr::eq(patient, claim) || std::ptr::eq(coverage, claim) {
        claim.clone()
    } else {
        let mut kept = serde_json::Map::new();
        for field in ["resourceType", "id", "identifier", "patient", "insurance"] {
            if !claim[field].is_null() {
                kept.insert(field.into(), claim[field].clone());
            }
        }
        Value::Object(kept)
    };
    let mut entries = vec![json!({"resource": kept})];
    entries.extend(
        [patient, coverage]
            .into_iter()
            .filter(|r| !r.is_null())
            .map(|r| json!({"resource": r})),
    );
    json!({"resourceType": "Bundle", "entry": entries})
}

fn member_of(bundle: &Value) -> Member {
    let (_, patient, coverage) = member_resources(bundle);
    let values = |resource: &Value| -> Vec<String> {
        resource["identifier"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["value"].as_str().map(str::to_string))
            .collect()
    };
    let mut identifiers = values(patient);
    identifiers.extend(values(coverage));
    Member {
        subscriber_id: coverage["subscriberId"].as_str().map(str::to_string),
        identifiers,
        birth_date: patient["birthDate"].as_str().map(str::to_string),
        family: patient["name"][0]["family"]
            .as_str()
            .map(str::to_ascii_lowercase),
    }
}

/// The references a PAS 2.2.1 inquiry searches by, besides its Claim's trace number: the
/// values of `extension-authorizationNumber` and `extension-administrationReferenceNumber` on
/// its Claim or its items (the numbers a response gave), at most 16, each once.
pub fn inquiry_references(inquiry: &Value) -> Vec<String> {
    let claim = &inquiry["entry"][0]["resource"];
    let wanted = [
        format!("{PAS}/StructureDefinition/extension-authorizationNumber"),
        format!("{PAS}/StructureDefinition/extension-administrationReferenceNumber"),
    ];
    let items = claim["item"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut references: Vec<String> = Vec::new();
    for extension in std::iter::once(claim)
        .chain(items)
        .filter_map(|holder| holder["extension"].as_array())
        .flatten()
        .filter(|e| {
            e["url"]
                .as_str()
                .is_some_and(|url| wanted.iter().any(|w| w == url))
        })
    {
        let value = extension["valueString"]
            .as_str()
            .or(extension["valueIdentifier"]["value"].as_str());
        if let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) {
            if !references.iter().any(|r| r == value) && references.len() < 16 {
                references.push(value.to_string());
            }
        }
    }
    references
}

/// Whether an inquiry is about the member of a stored request (PAS: an inquiry matches on
/// the trace number and the member): the subscriber ids where both give one, else a member
/// identifier in common, else the birth date and family name where both give them (at least
/// one of the two: an inquiry with no member detail matches no request).
pub fn same_member(stored: &Value, inquiry: &Value) -> bool {
    let (a, b) = (member_of(stored), member_of(inquiry));
    if let (Some(x), Some(y)) = (&a.subscriber_id, &b.subscriber_id) {
        return x == y;
    }
    if !a.identifiers.is_empty() && !b.identifiers.is_empty() {
        return a.identifiers.iter().any(|i| b.identifiers.contains(i));
    }
    // What both give must agree, and they must give something in common: an inquiry that
    // names no member detail the stored request has proves no member.
    let mut compared = false;
    let mut agree = |x: &Option<String>, y: &Option<String>| match (x, y) {
        (Some(x), Some(y)) => {
            compared = true;
            x == y
        }
        _ => true,
    };
    let birth = agree(&a.birth_date, &b.birth_date);
    let family = agree(&a.family, &b.family);
    compared && birth && family
}

/// One answer for a Claim whose items are requests of their own: the first item's response
/// Bundle, its ClaimResponse holding every item's `item` (each with its review action) and
/// process notes, and every item's other entries (a Task asking for information).
pub fn merge_responses(mut responses: Vec<Value>) -> Value {
    if responses.is_empty() {
        return Value::Null;
    }
    let mut first = responses.remove(0);
    for other in responses {
        let entries = other["entry"].as_array().cloned().unwrap_or_default();
        let Some(response) = entries.first().map(|e| e["resource"].clone()) else {
            continue;
        };
        if let Some(items) = first["entry"][0]["resource"]["item"].as_array_mut() {
            items.extend(response["item"].as_array().cloned().unwrap_or_default());
        }
        let notes = response["processNote"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if let Some(list) = first["entry"][0]["resource"]["processNote"].as_array_mut() {
            for mut note in notes {
                note["number"] = json!(list.len() + 1);
                list.push(note);
            }
        }
        if let Some(list) = first["entry"].as_array_mut() {
            for entry in entries.into_iter().skip(1) {
                if !list.iter().any(|e| e["fullUrl"] == entry["fullUrl"]) {
                    list.push(entry);
                }
            }
        }
    }
    first
}

/// The response Bundles of the requests an inquiry found, one per Claim (PAS 2.2.1: "zero or
/// more PAS Inquiry Response Bundles each containing the ClaimResponse for a single matching
/// Claim", with results for all its items): a Claim of several items is several requests
/// here, whose responses share the request Bundle's identifier and the Claim they answer
/// (`ClaimResponse.request`); they are merged as `$submit` answers them
/// ([`merge_responses`]), in item order, each Claim where its first response came.
pub fn responses_by_claim(responses: Vec<Value>) -> Vec<Value> {
    let claim_of = |response: &Value| {
        (
            response["identifier"].clone(),
            response["entry"][0]["resource"]["request"].clone(),
        )
    };
    let mut claims: Vec<((Value, Value), Vec<Value>)> = Vec::new();
    for response in responses {
        let claim = claim_of(&response);
        match claims.iter_mut().find(|(c, _)| *c == claim) {
            Some((_, same)) => same.push(response),
            None => claims.push((claim, vec![response])),
        }
    }
    claims
        .into_iter()
        .map(|(_, mut same)| {
            same.sort_by_key(|r| r["entry"][0]["resource"]["item"][0]["itemSequence"].as_u64());
            merge_responses(same)
        })
        .collect()
}

/// An inquiry's answer Bundle: the response to the request found, under PAS's inquiry
/// response profiles.
pub fn as_inquiry_response(mut bundle: Value) -> Value {
    bundle["meta"] = json!({"profile": [format!("{PAS}/StructureDefinition/profile-pas-inquiry-response-bundle")]});
    if let Some(first) = bundle["entry"].get_mut(0) {
        if first["resource"]["resourceType"] == "ClaimResponse" {
            first["resource"]["meta"] = json!({"profile": [format!("{PAS}/StructureDefinition/profile-claiminquiryresponse")]});
        }
    }
    bundle
}

/// What a PAS request says, as a case and the service's submission details.
#[derive(Debug)]
pub struct Intake {
    pub case: Value,
    /// The plan the Coverage declares; the service finds the member's plan by `member_ids`.
    pub plan: Option<String>,
    pub member_ids: Vec<String>,
    /// Each member id with the identifiers by which its Coverage (or, naming none, the
    /// Claim's insurer) names the payer.
    pub payer_ids: Vec<(String, Vec<String>)>,
    pub expedited: bool,
    pub renews: Option<String>,
    /// Sequence of the Claim item the decision answers.
    pub item_sequence: Option<u32>,
    pub problems: Vec<Problem>,
}

/// The case a PAS request states: its records, the Claim and the attached answers.
pub fn intake(map: &Map, engine: &Engine, request: &ClaimRequest) -> Intake {
    intake_of(map, engine, request, None)
}

/// How many items the request's Claim has.
pub fn item_count(request: &ClaimRequest) -> usize {
    request.claim().map_or(0, |claim| claim.item.len())
}

/// The case of one item (by index) of a Claim with several: the records and answers, with
/// that item's service, quantity, period and certification. Its `item_sequence` is the
/// item's whether or not a policy governs what it asks.
pub fn item_intake(map: &Map, engine: &Engine, request: &ClaimRequest, index: usize) -> Intake {
    let mut intake = intake_of(map, engine, request, Some(index));
    if intake.item_sequence.is_none() {
        intake.item_sequence = request
            .claim()
            .and_then(|claim| claim.item.get(index))
            .and_then(|item| item.sequence.value);
    }
    intake
}

fn intake_of(map: &Map, engine: &Engine, request: &ClaimRequest, only: Option<usize>) -> Intake {
    let mut builder = CaseBuilder::new(map, engine);
    builder.records(&request.resources);
    let item_sequence = request
        .claim()
        .and_then(|claim| builder.claim_item(claim, &request.resources, only));
    Intake {
        case: builder.case(),
        plan: builder.plan.clone(),
        member_ids: builder.member_ids.clone(),
        payer_ids: builder.payer_ids.clone(),
        expedited: builder.expedited,
        renews: builder.renews.clone(),
        item_sequence,
        problems: builder.problems,
    }
}

/// The review action of a request's state in the service.
fn review_action(record: &Value) -> (&'static str, &'static str) {
    let decided_by_reviewer = record["determination"].is_object();
    match (
        record["status"].as_str().unwrap_or_default(),
        decided_by_reviewer,
    ) {
        // X12 306 `C`: its provider cancelled the authorization after the approval.
        ("approved", _) if record["authorization"]["cancelled_on"].is_string() => {
            ("C", "Cancelled")
        }
        ("approved", true) if record["determination"]["decision"] == "approve_with_changes" => {
            ("A6", "Modified")
        }
        // The policy covers a part of the cycles requested: approved with that change, and a
        // clinician confirms the denial of the rest.
        ("approved", false) if record["decision"]["quantity"]["requested_cycles"].is_u64() => {
            ("A6", "Modified")
        }
        ("approved", _) => ("A1", "Certified in total"),
        ("denied", true) => ("A3", "Not certified"),
        // X12 306 `C`: the requester withdrew it before a decision.
        ("withdrawn", _) => ("C", "Cancelled"),
        _ => ("A4", "Pending"),
    }
}

/// The questions a reviewer asked in words and the day the answers are wanted, while the
/// request waits for them.
fn reviewer_questions(record: &Value) -> Option<(&str, Vec<&str>)> {
    let asked = record["history"].as_array()?.last().filter(|e| {
        e["kind"] == "information_requested" && record["status"] == "pending_information"
    })?;
    let questions = asked["questions"]
        .as_array()
        .map(|q| q.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    Some((asked["answer_by"].as_str().unwrap_or_default(), questions))
}

/// The specific reasons of a state, in plain language, each with the criterion it rests on.
fn notes(record: &Value, context: &ResponseContext) -> Vec<(String, Option<(String, String)>)> {
    let mut notes = Vec::new();
    let policy = record["policy"].as_str().unwrap_or_default();
    if let Some(day) = record["authorization"]["cancelled_on"].as_str() {
        notes.push((
            format!(
                "Authorization {} was cancelled by the provider on {day}: drug given through that day stays covered, nothing given after it is.",
                record["authorization"]["number"].as_str().unwrap_or_default()
            ),
            None,
        ));
        return notes;
    }
    if let Some(determination) = record["determination"].as_object() {
        let who = format!(
            "{} ({})",
            determination["reviewer"]["name"]
                .as_str()
                .unwrap_or_default(),
            determination["reviewer"]["credentials"]
                .as_str()
                .unwrap_or_default()
        );
        let criterion = determination["criterion"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        // A request no policy governs is determined on a basis the reviewer names.
        let basis = if policy.is_empty() {
            format!("basis: {criterion}")
        } else {
            format!("criterion `{criterion}` of {policy}")
        };
        notes.push((
            format!(
                "Determination by {who}: {} ({basis}).",
                determination["reason"].as_str().unwrap_or_default()
            ),
            Some((criterion.clone(), criterion)),
        ));
        return notes;
    }
    // A reviewer's own questions, in their words, while the request waits for the answers.
    if let Some((answer_by, questions)) = reviewer_questions(record) {
        notes.push((
            format!(
                "Pended: the reviewer asks, by {answer_by}: {} Answer in an update of this request.",
                questions.join(" ")
            ),
            None,
        ));
        return notes;
    }
    let decision = &record["decision"];
    let outcome = decision["outcome"].as_str().unwrap_or_default();
    let lead = match outcome {
        "approve" => "Approved",
        "deny" => {
            "Pended for clinical review: the policy's criteria appear not to be met (a clinician decides; this is not a denial)"
        }
        "review" => "Pended for clinical review, as the policy requires",
        "incomplete" => "Pended: information is missing",
        _ => "Pended for clinical review: no policy of this plan governs the request",
    };
    if outcome == "not_applicable" {
        notes.push((format!("{lead}."), None));
        return notes;
    }
    if outcome == "incomplete" {
        // In plain words (the questions' labels), never the case format's keys.
        let missing: Vec<&str> = decision["missing"]
            .as_array()
            .map(|m| {
                m.iter()
                    .filter_map(Value::as_str)
                    .map(|key| {
                        context
                            .questions
                            .iter()
                            .find(|(k, _)| k == key)
                            .map_or(key, |(_, label)| label.as_str())
                    })
                    .collect()
            })
            .unwrap_or_default();
        let due = record["due_at"]
            .as_str()
            .map(|d| format!(" by {}", d.get(..10).unwrap_or(d)))
            .unwrap_or_default();
        notes.push((format!("{lead}. Still needed{due}: {}. Answer them in the questionnaire of {policy} (DTR) and submit an update of this request.", missing.join("; ")), None));
        return notes;
    }
    // The deciding criteria: for an approval those met, otherwise those not met.
    let wanted = if outcome == "approve" {
        "met"
    } else {
        "not_met"
    };
    let reasons: Vec<&Value> = decision["reasons"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter(|r| r["status"] == wanted && r["depth"] == 0)
                .collect()
        })
        .unwrap_or_default();
    if reasons.is_empty() {
        notes.push((format!("{lead} under {policy}."), None));
    }
    for reason in reasons {
        let id = reason["id"].as_str().unwrap_or_default().to_string();
        let text = reason["criterion"].as_str().unwrap_or_default().to_string();
        notes.push((
            format!(
                "{lead}. Criterion `{id}` ({text}) is {}: {}",
                wanted.replace('_', " "),
                reason["source"].as_str().unwrap_or_default()
            ),
            Some((id, text)),
        ));
    }
    notes
}

/// Inputs of a response besides the stored request and record.
#[derive(Debug)]
pub struct ResponseContext<'a> {
    /// The service's FHIR base (for the criteria code system and full URLs).
    pub base: &'a str,
    /// The response's creation time (RFC 3339).
    pub created: &'a str,
    pub item_sequence: u32,
    /// Each question of the case format in plain words (key, label), for what is missing.
    pub questions: &'a [(String, String)],
    /// The codes of `x12_denial_reasons` (config/fhir.toml), for a denial's reason code.
    pub map: Option<&'a crate::map::Map>,
}

/// The PAS response Bundle for a stored request Bundle and the service's record of it
/// (the JSON of `GET /v1/requests/{id}`).
pub fn response_bundle(request_bundle: &Value, record: &Value, context: &ResponseContext) -> Value {
    let claim = &request_bundle["entry"][0]["resource"];
    let id = record["id"].as_str().unwrap_or_default();
    // A FHIR id allows no underscore; the request id itself travels in preAuthRef.
    let resource_id = id.replace('_', "-");
    let (code, display) = review_action(record);
    let authorization = &record["authorization"];
    let mut item_extensions = Vec::new();
    let mut review_extensions = vec![json!({
        "url": format!("{PAS}/StructureDefinition/extension-reviewActionCode"),
        "valueCodeableConcept": {"coding": [{"system": X12_306, "code": code, "display": display}]},
    })];
    if let Some(number) = authorization["number"].as_str() {
        review_extensions.insert(0, json!({"url": "number", "valueString": number}));
        let period = json!({"start": authorization["start"], "end": authorization["end"]});
        item_extensions.push(json!({"url": format!("{PAS}/StructureDefinition/extension-itemPreAuthPeriod"), "valuePeriod": period}));
        item_extensions.push(json!({"url": format!("{PAS}/StructureDefinition/extension-authorizationNumber"), "valueString": number}));
        let hcpcs = authorization["hcpcs"].as_str().unwrap_or_default();
        item_extensions.push(json!({
            "url": format!("{PAS}/StructureDefinition/extension-itemAuthorizedDetail"),
            "extension": [
                {"url": "productOrServiceCode", "valueCodeableConcept": {"coding": [{"system": crate::HCPCS, "code": hcpcs}]}},
                {"url": "quantity", "valueQuantity": {"value": authorization["approved_units"], "unit": "units"}},
            ],
        }));
    } else {
        // A pended item: the number to follow it by.
        item_extensions.push(json!({"url": format!("{PAS}/StructureDefinition/extension-administrationReferenceNumber"), "valueString": id}));
    }
    // A denial's coded reason (X12 886), where the payer gave a code for what it cites: the
    // code list is X12's own, so none is made up here (a reason stays in words in processNote).
    if code == "A3" {
        let criterion = record["determination"]["criterion"]
            .as_str()
            .unwrap_or_default();
        let policy = record["policy"].as_str().unwrap_or_default();
        // A request no policy governs cites the reviewer's own words: only `default` applies.
        let cited = if policy.is_empty() { "" } else { criterion };
        if let Some(reason) = context.map.and_then(|m| m.denial_reason(policy, cited)) {
            review_extensions.push(json!({
                "url": "reasonCode",
                "valueCodeableConcept": {"coding": [{"system": X12_886, "code": reason}]},
            }));
        }
    }
    let notes = notes(record, context);
    let mut adjudication = json!({
        "extension": [{"url": format!("{PAS}/StructureDefinition/extension-reviewAction"), "extension": review_extensions}],
        "category": {"coding": [{"system": SUBMITTED, "code": "submitted"}]},
    });
    // The coded reason: the criterion the outcome rests on, in the policy's code system.
    if let Some((criterion, text)) = notes.iter().find_map(|(_, c)| c.clone()) {
        adjudication["reason"] = json!({"coding": [{
            "system": format!("{}/CodeSystem/{}", context.base, record["policy"].as_str().unwrap_or_default()),
            "code": criterion,
            "display": text,
        }]});
    }
    let process_notes: Vec<Value> = notes
        .iter()
        .enumerate()
        .map(|(i, (text, _))| json!({"number": i + 1, "type": "display", "text": text}))
        .collect();
    let mut response = json!({
        "resourceType": "ClaimResponse",
        "id": resource_id,
        "meta": {"profile": [format!("{PAS}/StructureDefinition/profile-claimresponse")]},
        "status": "active",
        "type": claim["type"],
        "use": "preauthorization",
        "patient": claim["patient"],
        "created": context.created,
        "requestor": claim["provider"],
        "request": {"identifier": claim["identifier"][0]},
        "outcome": "complete",
        "preAuthRef": authorization["number"].as_str().unwrap_or(id),
        "item": [{
            "extension": item_extensions,
            "itemSequence": context.item_sequence,
            "adjudication": [adjudication],
        }],
        "processNote": process_notes,
        "extension": [{
            "url": format!("{PAS}/StructureDefinition/extension-claimResponseReviewer"),
            "extension": [{"url": "wasHumanReviewedFlag", "valueBoolean": record["determination"].is_object()}],
        }],
    });
    if let Some(identifier) = claim["identifier"].get(0) {
        response["identifier"] = json!([identifier]);
    }
    if !claim["insurer"].is_null() {
        response["insurer"] = claim["insurer"].clone();
    }
    if authorization.is_object() {
        response["preAuthPeriod"] =
            json!({"start": authorization["start"], "end": authorization["end"]});
    }
    if code == "A6" {
        // What was authorized instead of the request.
        let mut added = json!({
            "itemSequence": [context.item_sequence],
            "productOrService": {"coding": [{"system": crate::HCPCS, "code": authorization["hcpcs"]}]},
            "quantity": {"value": authorization["approved_units"]},
            "adjudication": [{"category": {"coding": [{"system": SUBMITTED, "code": "submitted"}]}}],
        });
        if let Some(start) = authorization["start"].as_str() {
            added["servicedPeriod"] = json!({"start": start, "end": authorization["end"]});
        }
        response["addItem"] = json!([added]);
    }
    if let Some(object) = response.as_object_mut() {
        object.retain(|_, v| !v.is_null());
    }
    let full_url = |resource: &Value| {
        format!(
            "{}/{}/{}",
            context.base,
            resource["resourceType"].as_str().unwrap_or_default(),
            resource["id"].as_str().unwrap_or_default()
        )
    };
    // The request for the information travels with the answer (PAS's Task).
    let task = (record["status"] == "pending_information")
        .then(|| information_task(claim, record, context));
    let mut entries = vec![json!({"fullUrl": full_url(&response), "resource": response})];
    if let Some(task) = task {
        entries.push(json!({"fullUrl": full_url(&task), "resource": task}));
    }
    // The resources the ClaimResponse references, as the request carried them.
    for reference in [&claim["patient"], &claim["insurer"], &claim["provider"]] {
        if let Some(entry) = find_entry(
            request_bundle,
            reference["reference"].as_str().unwrap_or_default(),
        ) {
            if !entries.iter().any(|e| e["fullUrl"] == entry["fullUrl"]) {
                entries.push(entry.clone());
            }
        }
    }
    json!({
        "resourceType": "Bundle",
        "id": resource_id,
        "meta": {"profile": [format!("{PAS}/StructureDefinition/profile-pas-response-bundle")]},
        "identifier": request_bundle["identifier"],
        "type": "collection",
        "timestamp": context.created,
        "entry": entries,
    })
}

/// The request for what a pended request still needs (PAS's Task, code
/// `attachment-request-questionnaire`): the questionnaire to answer (by the request's id as
/// its context, at the service's `$questionnaire-package`), for the Claim's patient, owned by
/// its provider, due when the plan's clock runs out.
fn information_task(claim: &Value, record: &Value, context: &ResponseContext) -> Value {
    let id = record["id"].as_str().unwrap_or_default();
    let line = json!([{"url": format!("{PAS}/StructureDefinition/extension-serviceLineNumber"), "valuePositiveInt": context.item_sequence}]);
    let provider_identifier = claim["provider"]["identifier"].clone();
    let owner = if provider_identifier.is_object() {
        provider_identifier
    } else {
        json!({"system": format!("{}/organization", context.base), "value": record["organization"].as_str().unwrap_or("provider")})
    };
    let mut task = json!({
        "resourceType": "Task",
        "id": format!("{}-information", id.replace('_', "-")),
        "meta": {"profile": [format!("{PAS}/StructureDefinition/profile-task")]},
        "identifier": [{"system": format!("{}/information-request", context.base), "value": id}],
        "status": "requested",
        "intent": "order",
        "code": {"coding": [{"system": format!("{PAS}/CodeSystem/PASTempCodes"), "code": "attachment-request-questionnaire"}]},
        "for": claim["patient"],
        // A request no plan governs (an unknown member) has no plan id: the payer asks.
        "requester": {"identifier": {"system": format!("{}/payer", context.base), "value": record["plan"].as_str().filter(|p| !p.is_empty()).unwrap_or("payer")}},
        "owner": {"identifier": owner},
        "reasonCode": {"coding": [{"system": format!("{PAS}/CodeSystem/PASTempCodes"), "code": "priorAuthorization"}]},
        "reasonReference": {"identifier": claim["identifier"][0]},
        "input": [
            {"type": {"coding": [{"system": format!("{PAS}/CodeSystem/PASTempCodes"), "code": "payer-url"}]},
             "valueUrl": format!("{}/Questionnaire/$questionnaire-package", context.base)},
            {"extension": line, "type": {"coding": [{"system": format!("{PAS}/CodeSystem/PASTempCodes"), "code": "questionnaire-context"}]},
             "valueString": id},
        ],
    });
    if let Some(due) = record["due_at"].as_str() {
        task["restriction"] = json!({"period": {"end": due}});
    }
    // A reviewer's questions go with the Task in words, each a note, as the provider's
    // staff will read them.
    if let Some((answer_by, questions)) = reviewer_questions(record) {
        task["description"] = json!(format!(
            "The reviewer asks, by {answer_by}: {}",
            questions.join(" ")
        ));
        task["note"] = json!(
            questions
                .iter()
                .map(|q| json!({"text": q}))
                .collect::<Vec<_>>()
        );
    }
    task
}

/// What of a request Bundle its response repeats ([`response_bundle`] reads nothing else):
/// the Bundle's identifier, the Claim's own identifiers and the references it answers to
/// (type, patient, provider, insurer), and the entries those references name. A submission
/// keeps this, not the Bundle, until its answer is built: a Bundle's attachments can be
/// megabytes of JSON.
pub fn response_source(bundle: &Value) -> Value {
    let claim_entry = &bundle["entry"][0];
    let claim = &claim_entry["resource"];
    let mut kept = serde_json::Map::new();
    for field in [
        "resourceType",
        "id",
        "type",
        "patient",
        "provider",
        "identifier",
        "insurer",
    ] {
        if !claim[field].is_null() {
            kept.insert(field.into(), claim[field].clone());
        }
    }
    let mut first = json!({"resource": kept});
    if !claim_entry["fullUrl"].is_null() {
        first["fullUrl"] = claim_entry["fullUrl"].clone();
    }
    // In the Bundle's own order, so that a reference finds the same entry first here.
    let all = bundle["entry"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut named: Vec<usize> = [&claim["patient"], &claim["insurer"], &claim["provider"]]
        .iter()
        .filter_map(|r| find_entry(bundle, r["reference"].as_str().unwrap_or_default()))
        .filter_map(|found| all.iter().position(|e| std::ptr::eq(e, found)))
        .collect();
    named.sort_unstable();
    named.dedup();
    if named.first() == Some(&0) {
        // A reference that names the Claim itself: its entry is repeated whole.
        first = claim_entry.clone();
    }
    let mut entries = vec![first];
    entries.extend(
        named
            .into_iter()
            .filter(|&at| at > 0)
            .filter_map(|at| all.get(at).cloned()),
    );
    json!({"identifier": bundle["identifier"], "entry": entries})
}

/// The entry a reference names within a Bundle (by full URL or `Type/id`).
pub fn find_entry<'b>(bundle: &'b Value, reference: &str) -> Option<&'b Value> {
    if reference.is_empty() {
        return None;
    }
    bundle["entry"].as_array()?.iter().find(|entry| {
        let resource = &entry["resource"];
        let typed = format!(
            "{}/{}",
            resource["resourceType"].as_str().unwrap_or_default(),
            resource["id"].as_str().unwrap_or_default()
        );
        let url = entry["fullUrl"].as_str().unwrap_or_default();
        url == reference || typed == reference || url.ends_with(&format!("/{reference}"))
    })
}

/// A checked PAS subscription: rest-hook, full-resource payload, the PAS topic and one
/// organization's filter.
#[derive(Debug, Clone)]
pub struct SubscriptionRequest {
    pub endpoint: String,
    /// Headers the notifications carry (`channel.header`), e.g. an authorization.
    pub headers: Vec<String>,
    pub org_identifier: Option<String>,
}

pub fn read_subscription(json: &str) -> Result<(SubscriptionRequest, Value), Vec<Problem>> {
    let subscription = crate::parse_as(json, "Subscription", |r| match r {
        Resource::Subscription(s) => Some(*s),
        _ => None,
    })
    .map_err(|p| vec![p])?;
    let value: Value =
        serde_json::from_str(json).map_err(|e| vec![Problem::new("", e.to_string())])?;
    let mut problems = Vec::new();
    if subscription.criteria.value.as_deref() != Some(TOPIC) {
        problems.push(Problem::new(
            "Subscription.criteria",
            format!("the topic must be {TOPIC}"),
        ));
    }
    let channel = &subscription.channel;
    if channel.r#type.value.as_deref() != Some("rest-hook") {
        problems.push(Problem::new(
            "Subscription.channel.type",
            "PAS notifications are sent by `rest-hook`",
        ));
    }
    let endpoint = channel
        .endpoint
        .as_ref()
        .and_then(|e| e.value.clone())
        .unwrap_or_default();
    if !(endpoint.starts_with("https://") || endpoint.starts_with("http://")) {
        problems.push(Problem::new(
            "Subscription.channel.endpoint",
            "an http(s) URL is required",
        ));
    }
    let payload_content = value
        .pointer("/channel/_payload/extension")
        .and_then(Value::as_array)
        .and_then(|list| {
            list.iter()
                .find(|e| e["url"] == format!("{BACKPORT}/backport-payload-content"))
                .and_then(|e| e["valueCode"].as_str())
        });
    if payload_content.is_some_and(|c| c != "full-resource") {
        problems.push(Problem::new(
            "Subscription.channel.payload.extension",
            "only `full-resource` notifications are sent",
        ));
    }
    let org_identifier = value
        .pointer("/_criteria/extension")
        .and_then(Value::as_array)
        .and_then(|list| {
            list.iter()
                .find(|e| e["url"] == format!("{BACKPORT}/backport-filter-criteria"))
                .and_then(|e| e["valueString"].as_str())
        })
        .and_then(|f| f.strip_prefix("orgIdentifier="))
        .map(str::to_string);
    let headers = channel
        .header
        .iter()
        .filter_map(|h| h.value.clone())
        .collect();
    if problems.is_empty() {
        Ok((
            SubscriptionRequest {
                endpoint,
                headers,
                org_identifier,
            },
            value,
        ))
    } else {
        Err(problems)
    }
}

/// A notification: a history Bundle whose first entry is the subscription status and whose
/// next is the full PAS response Bundle (the PAS guide's example shape).
/// The handshake a new or updated subscription's endpoint is sent (Subscriptions Backport):
/// a history Bundle holding only its status, of type `handshake`.
pub fn handshake(base: &str, subscription_id: &str, timestamp: &str) -> Value {
    let status = json!({
        "resourceType": "Parameters",
        "id": format!("{subscription_id}-handshake"),
        "parameter": [
            {"name": "subscription", "valueReference": {"reference": format!("Subscription/{subscription_id}")}},
            {"name": "topic", "valueCanonical": TOPIC},
            {"name": "status", "valueCode": "requested"},
            {"name": "type", "valueCode": "handshake"},
            {"name": "events-since-subscription-start", "valueString": "0"},
        ],
    });
    json!({
        "resourceType": "Bundle",
        "type": "history",
        "timestamp": timestamp,
        "entry": [
            {"fullUrl": format!("{base}/Parameters/{subscription_id}-handshake"), "resource": status,
             "request": {"method": "GET", "url": format!("{base}/Subscription/{subscription_id}/$status")}, "response": {"status": "200"}},
        ],
    })
}

pub fn notification(
    base: &str,
    subscription_id: &str,
    event_number: i64,
    timestamp: &str,
    response: &Value,
) -> Value {
    let subscription_url = format!("{base}/Subscription/{subscription_id}");
    let bundle_url = format!(
        "{base}/Bundle/{}",
        response["id"].as_str().unwrap_or_default()
    );
    let status = json!({
        "resourceType": "Parameters",
        "id": format!("{subscription_id}-{event_number}"),
        "parameter": [
            {"name": "subscription", "valueReference": {"reference": format!("Subscription/{subscription_id}")}},
            {"name": "topic", "valueCanonical": TOPIC},
            {"name": "status", "valueCode": "active"},
            {"name": "type", "valueCode": "event-notification"},
            {"name": "events-since-subscription-start", "valueString": event_number.to_string()},
            {"name": "notification-event", "part": [
                {"name": "event-number", "valueString": event_number.to_string()},
                {"name": "timestamp", "valueInstant": timestamp},
                {"name": "focus", "valueReference": {"reference": bundle_url}},
            ]},
        ],
    });
    json!({
        "resourceType": "Bundle",
        "type": "history",
        "timestamp": timestamp,
        "entry": [
            {"fullUrl": format!("{base}/Parameters/{subscription_id}-{event_number}"), "resource": status,
             "request": {"method": "GET", "url": format!("{subscription_url}/$status")}, "response": {"status": "200"}},
            {"fullUrl": bundle_url, "resource": response,
             "request": {"method": "GET", "url": bundle_url}, "response": {"status": "200"}},
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A response's context with no questions' labels, for the first item.
    fn test_context(map: Option<&crate::map::Map>) -> ResponseContext<'_> {
        ResponseContext {
            base: "http://x/fhir",
            created: "2026-12-03T00:00:00Z",
            item_sequence: 1,
            questions: &[],
            map,
        }
    }

    /// The request Bundles of `tests/fhir/cases`.
    fn example_bundles() -> Vec<Value> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fhir/cases");
        let bundles: Vec<Value> = std::fs::read_dir(&dir)
            .expect("tests/fhir/cases")
            .map(|f| f.expect("a file").path())
            .filter(|path| path.extension().is_some_and(|e| e == "json"))
            .map(|path| {
                let text = std::fs::read_to_string(path).expect("a Bundle");
                serde_json::from_str(&text).expect("JSON")
            })
            .collect();
        assert!(bundles.len() >= 15, "{} Bundles", bundles.len());
        bundles
    }

    /// The part of a Bundle a submission keeps answers exactly as the Bundle does, for
    /// every kind of answer and every example Bundle, and for references that name the
    /// Claim itself or the same entry twice.
    #[test]
    fn a_response_from_the_kept_part_equals_one_from_the_whole_bundle() {
        let mut bundles = example_bundles();
        let mut odd = bundles[0].clone();
        let claim = odd["entry"][0]["resource"].clone();
        odd["entry"][0]["resource"]["provider"] =
            json!({"reference": format!("Claim/{}", claim["id"].as_str().unwrap_or_default())});
        odd["entry"][0]["resource"]["insurer"] = claim["patient"].clone();
        bundles.push(odd);
        let authorization = json!({"number": "PA-1", "start": "2026-12-01", "end": "2027-05-31",
            "hcpcs": "J9039", "approved_units": 784});
        let records = [
            json!({"id": "req_1", "status": "approved", "policy": "masshealth-all-single-agent",
                "organization": "clinic-a", "plan": "masshealth",
                "decision": {"outcome": "approve", "reasons": [{"id": "c", "status": "met", "depth": 0, "criterion": "C", "source": "S"}]},
                "authorization": authorization}),
            json!({"id": "req_2", "status": "pending_information", "policy": "p", "organization": "clinic-a",
                "plan": "masshealth", "due_at": "2026-12-03T00:00:00Z",
                "decision": {"outcome": "incomplete", "missing": ["diagnosis.lineage"]}}),
            json!({"id": "req_3", "status": "pending_review", "policy": "p", "organization": "clinic-a",
                "decision": {"outcome": "review", "reasons": []}}),
            json!({"id": "req_4", "status": "denied", "policy": "p",
                "decision": {"outcome": "deny", "reasons": []},
                "determination": {"decision": "deny", "criterion": "c", "reason": "R.",
                    "reviewer": {"name": "Dr. Rivera", "credentials": "MD"}}}),
        ];
        let context = test_context(None);
        for bundle in &bundles {
            let source = response_source(bundle);
            for record in &records {
                assert_eq!(
                    response_bundle(&source, record, &context),
                    response_bundle(bundle, record, &context),
                    "{}",
                    bundle["identifier"]
                );
            }
        }
    }

    /// An inquiry that names no member detail the stored request has (no subscriber id, no
    /// member identifier, no birth date or family name) is about no member: a trace number
    /// alone found the request (within the caller's organization).
    #[test]
    fn an_inquiry_without_member_details_matches_no_member() {
        for bundle in example_bundles() {
            assert!(
                !same_member(&bundle, &json!({})),
                "{}",
                bundle["identifier"]
            );
            assert!(
                !same_member(&bundle, &json!({"entry": []})),
                "{}",
                bundle["identifier"]
            );
            assert!(same_member(&bundle, &bundle), "{}", bundle["identifier"]);
        }
    }

    /// The part of a Bundle an inquiry about it needs finds the same member as the whole
    /// Bundle, for every example Bundle, and for a patient reference naming the Claim itself
    /// and a Claim with no focal coverage.
    #[test]
    fn the_member_from_the_kept_part_equals_the_member_of_the_whole_bundle() {
        let mut bundles = example_bundles();
        let mut itself = bundles[0].clone();
        let id = itself["entry"][0]["resource"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        itself["entry"][0]["resource"]["patient"] = json!({"reference": format!("Claim/{id}")});
        itself["entry"][0]["resource"]["birthDate"] = json!("1970-01-01");
        let mut unfocused = bundles[1].clone();
        if let Some(list) = unfocused["entry"][0]["resource"]["insurance"].as_array_mut() {
            for insurance in list {
                insurance["focal"] = json!(false);
            }
        }
        bundles.extend([itself, unfocused, json!({}), json!({"entry": []})]);
        for bundle in &bundles {
            let kept = member_source(bundle);
            assert_eq!(
                member_of(&kept),
                member_of(bundle),
                "{}",
                bundle["identifier"]
            );
            for inquiry in &bundles {
                assert_eq!(same_member(&kept, inquiry), same_member(bundle, inquiry));
            }
        }
        // And it is small: the member's resources, not the Bundle.
        let whole = serde_json::to_string(&bundles[0]).unwrap_or_default().len();
        let kept = serde_json::to_string(&member_source(&bundles[0]))
            .unwrap_or_default()
            .len();
        assert!(kept < whole, "{kept} of {whole}");
    }

    /// Each state of a request answers its X12 306 review action; a withdrawn one, and an
    /// approved one whose authorization its provider cancelled, are cancelled.
    #[test]
    fn each_state_has_its_review_action() {
        let decision = json!({"outcome": "review", "quantity": null});
        let cases = [
            (
                json!({"status": "pending_review", "decision": decision}),
                "A4",
            ),
            (json!({"status": "withdrawn", "decision": decision}), "C"),
            (
                json!({"status": "denied", "decision": decision, "determination": {"decision": "deny"}}),
                "A3",
            ),
            (
                json!({"status": "approved", "decision": {"outcome": "approve"}}),
                "A1",
            ),
            (
                json!({"status": "approved", "decision": {"outcome": "approve"}, "authorization": {"number": "PA-1", "cancelled_on": null}}),
                "A1",
            ),
            // Its provider cancelled the authorization after the approval.
            (
                json!({"status": "approved", "decision": {"outcome": "approve"}, "authorization": {"number": "PA-1", "cancelled_on": "2026-12-05"}}),
                "C",
            ),
            (
                json!({"status": "approved", "decision": {"outcome": "approve"}, "determination": {"decision": "approve_with_changes"}, "authorization": {"number": "PA-1", "cancelled_on": "2026-12-05"}}),
                "C",
            ),
        ];
        for (record, code) in cases {
            assert_eq!(review_action(&record).0, code, "{record}");
        }
    }

    /// A confirmed denial carries the X12 886 reason code the payer gave for its criterion
    /// (or its default); without one, none is made up.
    #[test]
    fn a_denial_carries_the_payers_reason_code_for_its_criterion() {
        let engine = priorauth_core::Engine::bundled().expect("the bundled policies");
        let text = format!(
            "{}\n[x12_denial_reasons]\ndefault = \"D1\"\n\"masshealth-all-single-agent/b-cell-precursor\" = \"P7\"\n",
            crate::map::BUNDLED
        );
        let map = crate::map::Map::load(&text, &engine).expect("the map loads");
        let bare = crate::map::Map::load(crate::map::BUNDLED, &engine).expect("the map loads");
        let denied = |criterion: &str| {
            json!({"id": "req_1", "status": "denied", "policy": "masshealth-all-single-agent",
                "decision": {"outcome": "deny", "reasons": []},
                "determination": {"decision": "deny", "criterion": criterion, "reason": "Not B-cell.",
                    "reviewer": {"name": "Dr. Rivera", "credentials": "MD"}}})
        };
        let bundle = json!({"entry": [{"resource": {"resourceType": "Claim", "id": "c", "item": [{"sequence": 1}]}}]});
        let reason_codes = |record: &Value, map: Option<&crate::map::Map>| {
            let context = test_context(map);
            let response = response_bundle(&bundle, record, &context);
            let action = &response["entry"][0]["resource"]["item"][0]["adjudication"][0]["extension"]
                [0]["extension"];
            action
                .as_array()
                .into_iter()
                .flatten()
                .filter(|e| e["url"] == "reasonCode")
                .map(|e| {
                    e["valueCodeableConcept"]["coding"][0]["code"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string()
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            reason_codes(&denied("b-cell-precursor"), Some(&map)),
            ["P7"]
        );
        assert_eq!(
            reason_codes(&denied("one-year-or-older"), Some(&map)),
            ["D1"]
        );
        assert!(reason_codes(&denied("b-cell-precursor"), Some(&bare)).is_empty());
        let mut approved = denied("b-cell-precursor");
        approved["status"] = json!("approved");
        approved["determination"]["decision"] = json!("approve");
        assert!(
            reason_codes(&approved, Some(&map)).is_empty(),
            "only a denial has one"
        );
        let bad = format!(
            "{}\n[x12_denial_reasons]\ndefault = \"no spaces\"\n",
            crate::map::BUNDLED
        );
        assert!(crate::map::Map::load(&bad, &engine).is_err());
        // A key must name what a denial can cite: a misspelt criterion or policy is refused
        // naming the key, where it would silently take `default`.
        let keyed = |key: &str| {
            let text = format!(
                "{}\n[x12_denial_reasons]\n\"{key}\" = \"P7\"\n",
                crate::map::BUNDLED
            );
            crate::map::Map::load(&text, &engine).map(|_| ())
        };
        assert_eq!(
            keyed("b-cell-precursor"),
            Ok(()),
            "a criterion id of some policy"
        );
        for misspelt in [
            "masshealth-all-single-agent/b-cell",
            "masshealth-blincyto/b-cell-precursor",
            "b-cell-precursors",
            "",
        ] {
            let error = keyed(misspelt).expect_err(misspelt);
            assert!(error.0.contains(&format!("`{misspelt}`")), "{error}");
        }
    }

    /// A request a reviewer sent back carries the reviewer's questions in the response.
    #[test]
    fn a_reviewers_questions_travel_in_the_notes() {
        let record = json!({
            "status": "pending_information",
            "decision": {"outcome": "review", "reasons": []},
            "history": [
                {"kind": "submitted"},
                {"kind": "information_requested", "questions": ["When did therapy start?"], "answer_by": "2026-12-05"},
            ],
        });
        let context = test_context(None);
        let notes = notes(&record, &context);
        assert_eq!(notes.len(), 1);
        assert!(
            notes[0]
                .0
                .contains("by 2026-12-05: When did therapy start?"),
            "{}",
            notes[0].0
        );
    }
}
