//! Policy files: the human-authored TOML that encodes one payer document, loaded and checked
//! into a [`Policy`] the evaluator can run.
//!
//! Every criterion is named and carries its source: the section of the document and the
//! words it encodes, and where the text is unclear, the interpretation chosen. Groups
//! (`all`, `any`, `not`) are criteria too, so the outline of the document is kept.
//! A file that reads an unknown fact, tests a fact with the wrong type, names a value the
//! fact cannot take, refers to a criterion that does not exist, or has a pathway without an
//! outcome is rejected with the file, line and column.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use toml::Spanned;

use crate::date::{Date, Duration};
use crate::facts::{FactId, FactType, Missing};

/// Index of a criterion in its policy's arena.
pub type CriterionIdx = u16;

/// A checked policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The file it was loaded from.
    pub file: String,
    pub id: String,
    pub title: String,
    pub payer: String,
    /// The document's own name and number.
    pub document: String,
    /// File name of the source text under `policies/sources/`.
    pub source_file: String,
    pub version: String,
    pub effective: Option<Date>,
    /// Drug catalog positions this policy governs.
    pub drugs: Vec<u8>,
    /// Bit per `LineOfBusiness` index; `None` when the document names none (it governs all).
    pub lines_of_business: Option<u32>,
    pub applicability: Source,
    /// The outcome when a pathway's criteria are met and its dosing is not.
    pub dosing_outside: Outcome,
    pub dosing_outside_source: Source,
    pub codes: Codes,
    pub criteria: Vec<Criterion>,
    /// `criteria`, compiled for evaluation.
    pub arena: Arena,
    /// Exclusions: any one met is a denial. An undocumented exclusion is taken as absent.
    pub exclusions: Vec<CriterionIdx>,
    pub pathways: Vec<Pathway>,
    /// Versions of the same policy this one replaces (their `version` strings).
    pub supersedes: Vec<String>,
    /// Lint findings the authors looked at and keep, each `kind: why` (`no-duration: …`).
    pub acknowledged: Vec<String>,
    /// The facts declared in data that its criteria read, in the order they first appear:
    /// the `n`-th names an unknown one in a decision's `missing` by bit
    /// `FIRST_DECLARED_BIT + n` (at most `MAX_DECLARED_PER_POLICY`).
    pub declared: Vec<FactId>,
}

impl Policy {
    /// The keys a decision of this policy asks for: case keys in the case format's order, then
    /// the declared facts it reads, by name.
    pub fn missing_keys(&self, missing: Missing) -> impl Iterator<Item = &'static str> + '_ {
        crate::facts::case_keys(missing).chain(
            self.declared
                .iter()
                .enumerate()
                .filter(move |(n, _)| missing & (1 << (crate::facts::FIRST_DECLARED_BIT + n)) != 0)
                .map(|(_, id)| id.def().name),
        )
    }
}

/// Where a criterion comes from in the source document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub section: String,
    /// The words encoded, as they stand in the document.
    pub quote: String,
    /// How unclear text was read, in the words it interprets; empty when the text is clear.
    #[serde(default)]
    pub interpretation: String,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: \"{}\"", self.section, self.quote)
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Codes {
    #[serde(default)]
    pub hcpcs: Vec<String>,
    #[serde(default)]
    pub ndc: Vec<String>,
    /// Covered diagnosis codes: when the policy lists them, a request whose ICD-10-CM codes
    /// are all outside the list is not covered (it cannot be approved).
    #[serde(default)]
    pub icd10: Vec<String>,
    /// Where the list of covered diagnosis codes is stated.
    #[serde(default)]
    pub icd10_source: Source,
    /// The covered codes without the dot, in capitals (`C9102`), made once on load.
    #[serde(skip)]
    pub icd10_plain: Vec<PlainCode>,
}

/// An ICD-10-CM code without its dot, in capitals, in place: its first 8 bytes (a code is at
/// most 8, `Z00.0012`; the rest are 0) and its length. Comparing two is comparing 8 bytes and
/// a number, with no pointer to follow: this runs for every case.
pub type PlainCode = ([u8; 8], usize);

/// `code` without its dot, in capitals; a length over 8 keeps its first 8 bytes.
pub fn plain(code: &str) -> PlainCode {
    let mut bytes = [0u8; 8];
    let mut length = 0;
    for byte in code
        .bytes()
        .filter(|b| *b != b'.')
        .map(|b| b.to_ascii_uppercase())
    {
        if let Some(slot) = bytes.get_mut(length) {
            *slot = byte;
        }
        length += 1;
    }
    (bytes, length)
}

impl Codes {
    /// Whether a request's diagnosis codes are covered: `None` when the policy lists no
    /// codes or the request gives none, else whether any given code is listed (compared
    /// without the dot and case, so `c9102` is `C91.02`).
    pub fn icd10_covered(&self, given: &[String]) -> Option<bool> {
        if self.icd10_plain.is_empty() || given.is_empty() {
            return None;
        }
        // A given code is compared by its first 8 plain bytes: a listed code longer than
        // that matches none.
        Some(given.iter().any(|code| {
            let (bytes, length) = plain(code);
            self.icd10_plain.contains(&(bytes, length.min(8)))
        }))
    }
}

#[derive(Debug, Clone)]
pub struct Criterion {
    pub id: String,
    pub text: String,
    /// How the criterion reads when it is not met, for a criterion stated as a negative
    /// ("no live vaccine …"): "not met: no live vaccine" is a double negative a physician
    /// should not have to untangle. Empty: "not met" and `text`.
    pub unmet: String,
    pub source: Source,
    pub node: Node,
    /// Line of its table in the policy file.
    pub line: usize,
}

#[derive(Debug, Clone)]
pub enum Node {
    Test(Test),
    All(Vec<CriterionIdx>),
    Any(Vec<CriterionIdx>),
    Not(CriterionIdx),
}

/// The criteria compiled for evaluation: one compact node per criterion, children packed in
/// one array, apart from the texts and sources, so that deciding a case touches few cache lines.
#[derive(Debug, Clone, Default)]
pub struct Arena {
    ops: Vec<Op>,
    children: Vec<CriterionIdx>,
}

/// A criterion as the evaluator runs it.
#[derive(Debug, Clone, Copy)]
pub enum Op {
    Test(Test),
    /// Children `children[start..start + len]`.
    All {
        start: u32,
        len: u32,
    },
    Any {
        start: u32,
        len: u32,
    },
    Not(CriterionIdx),
}

impl Arena {
    pub fn new(criteria: &[Criterion]) -> Arena {
        let mut arena = Arena {
            ops: Vec::with_capacity(criteria.len()),
            children: Vec::new(),
        };
        for criterion in criteria {
            let op = match &criterion.node {
                Node::Test(test) => Op::Test(*test),
                Node::All(list) | Node::Any(list) => {
                    let start = arena.children.len() as u32;
                    arena.children.extend(list);
                    let len = list.len() as u32;
                    if matches!(criterion.node, Node::All(_)) {
                        Op::All { start, len }
                    } else {
                        Op::Any { start, len }
                    }
                }
                Node::Not(inner) => Op::Not(*inner),
            };
            arena.ops.push(op);
        }
        arena
    }

    pub fn op(&self, idx: CriterionIdx) -> Option<&Op> {
        self.ops.get(usize::from(idx))
    }

    pub fn children(&self, start: u32, len: u32) -> &[CriterionIdx] {
        self.children
            .get(start as usize..(start + len) as usize)
            .unwrap_or_default()
    }
}

/// A test of one fact.
#[derive(Debug, Clone, Copy)]
pub struct Test {
    pub fact: FactId,
    pub check: Check,
    /// How the test reads when the fact is unknown, for exceptions a document says are
    /// taken as absent unless documented; `None`: unknown.
    pub if_unknown: Option<bool>,
}

#[derive(Debug, Clone, Copy)]
pub enum Check {
    Is(bool),
    /// The fact's value is one of these (bit per enum position).
    OneOf(u64),
    /// `min <= value <= max` with the bounds' inclusiveness; `per_days` rescales a rate fact.
    Range {
        min: Option<Bound>,
        max: Option<Bound>,
        per_days: Option<f64>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bound {
    pub value: f64,
    pub inclusive: bool,
}

/// A route to an outcome: its criteria (all must be met), its dosing, and what it grants.
#[derive(Debug, Clone)]
pub struct Pathway {
    pub id: String,
    pub title: String,
    /// Bit per `RequestKind` index.
    pub kinds: u32,
    pub outcome: Outcome,
    pub criteria: Vec<CriterionIdx>,
    pub dosing: Vec<CriterionIdx>,
    /// `None` when the document states no duration.
    pub authorization: Option<Duration>,
    pub authorization_source: Source,
    /// The most an approval by this pathway covers (`[pathway.quantity]`); `None` when the
    /// file states none, and then the label's limits of the drug catalog alone apply.
    pub quantity: Option<QuantityLimit>,
    /// Its dosing reads the course position (cycles, first, last or continued cycle), so a
    /// part of the cycles requested may meet it when the whole does not.
    pub dosing_reads_course: bool,
    /// Line of its table in the policy file.
    pub line: usize,
}

/// The quantity ceiling of an approving pathway. The lower of it and the label's limits (the
/// drug catalog's `units_per_dose_day`, `doses_mg_per_m2` and `course_cycles`) applies.
#[derive(Debug, Clone)]
pub struct QuantityLimit {
    /// Most cycles one authorization covers.
    pub cycles: Option<u32>,
    /// Most billable units per cycle (`request.units_per_cycle`).
    pub units_per_cycle: Option<u32>,
    pub source: Source,
}

/// What a policy says about a request.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize, PartialOrd, Ord,
)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Approve,
    Deny,
    Review,
    Incomplete,
    NotApplicable,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Approve => "approve",
            Outcome::Deny => "deny",
            Outcome::Review => "review",
            Outcome::Incomplete => "incomplete",
            Outcome::NotApplicable => "not_applicable",
        }
    }
}

/// A policy file that cannot be used, with where the problem is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
#[non_exhaustive]
pub struct LoadError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

// ---- The file format, as written. ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    id: String,
    title: String,
    payer: String,
    document: String,
    source_file: String,
    version: String,
    #[serde(default)]
    effective: Option<String>,
    applies: RawApplies,
    dosing_outside: Spanned<Outcome>,
    dosing_outside_source: RawSource,
    #[serde(default)]
    codes: Codes,
    #[serde(default)]
    exclusions: Vec<Spanned<String>>,
    #[serde(default, rename = "pathway")]
    pathways: Vec<Spanned<RawPathway>>,
    #[serde(default)]
    criteria: BTreeMap<String, Spanned<RawCriterion>>,
    #[serde(default)]
    supersedes: Vec<String>,
    #[serde(default)]
    lint: RawLint,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLint {
    #[serde(default)]
    acknowledged: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApplies {
    drugs: Vec<Spanned<String>>,
    #[serde(default)]
    lines_of_business: Option<Vec<Spanned<String>>>,
    section: String,
    quote: String,
    #[serde(default)]
    interpretation: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    section: String,
    quote: String,
    #[serde(default)]
    interpretation: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPathway {
    id: String,
    title: String,
    kinds: Vec<Spanned<String>>,
    #[serde(default)]
    outcome: Option<Spanned<Outcome>>,
    criteria: Vec<Spanned<String>>,
    #[serde(default)]
    dosing: Vec<Spanned<String>>,
    #[serde(default)]
    authorization: Option<RawAuthorization>,
    #[serde(default)]
    authorization_source: Option<RawSource>,
    #[serde(default)]
    quantity: Option<RawQuantity>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuantity {
    #[serde(default)]
    cycles: Option<u32>,
    #[serde(default)]
    units_per_cycle: Option<u32>,
    section: String,
    quote: String,
    #[serde(default)]
    interpretation: String,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawAuthorization {
    /// `"not stated"`: the document gives no duration, deliberately recorded.
    NotStated(String),
    Duration(Duration),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCriterion {
    text: String,
    #[serde(default)]
    section: Option<String>,
    #[serde(default)]
    quote: Option<String>,
    #[serde(default)]
    interpretation: String,
    #[serde(default)]
    fact: Option<Spanned<String>>,
    #[serde(default)]
    is: Option<bool>,
    #[serde(default, rename = "in")]
    one_of: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    ge: Option<f64>,
    #[serde(default)]
    gt: Option<f64>,
    #[serde(default)]
    le: Option<f64>,
    #[serde(default)]
    lt: Option<f64>,
    #[serde(default)]
    per_days: Option<f64>,
    #[serde(default)]
    if_unknown: Option<bool>,
    #[serde(default)]
    all: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    any: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    not: Option<Spanned<String>>,
    #[serde(default)]
    unmet: String,
}

/// Reads the parts of a file that any criteria-bearing file shares, turning byte spans into
/// line and column.
pub(crate) struct Loader<'a> {
    file: &'a str,
    text: &'a str,
    drugs: &'a [String],
    /// The facts declared in data that criteria may read besides the case format's.
    declared: &'a [FactId],
}

impl<'a> Loader<'a> {
    pub(crate) fn new(file: &'a str, text: &'a str, drugs: &'a [String]) -> Self {
        Loader {
            file,
            text,
            drugs,
            declared: &[],
        }
    }

    pub(crate) fn error(&self, offset: usize, message: impl Into<String>) -> LoadError {
        let before = self
            .text
            .get(..offset.min(self.text.len()))
            .unwrap_or_default();
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        LoadError {
            file: self.file.to_string(),
            line,
            column,
            message: message.into(),
        }
    }

    pub(crate) fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, LoadError> {
        toml::from_str(self.text).map_err(|error| {
            let offset = error.span().map_or(0, |span| span.start);
            self.error(offset, error.message().replace('\n', " "))
        })
    }

    /// Compiles named criteria into an arena, checking facts, types, values, references and
    /// the outline they form. Returns the criteria and each one's outline size.
    pub(crate) fn compile_criteria(
        &self,
        raw: &BTreeMap<String, Spanned<RawCriterion>>,
    ) -> Result<(Vec<Criterion>, Vec<usize>), LoadError> {
        if raw.len() > usize::from(CriterionIdx::MAX) {
            return Err(self.error(0, format!("more than {} criteria", CriterionIdx::MAX)));
        }
        let index: BTreeMap<&str, CriterionIdx> = raw
            .keys()
            .enumerate()
            .map(|(i, id)| (id.as_str(), i as CriterionIdx))
            .collect();
        let resolve = |name: &Spanned<String>| {
            index.get(name.get_ref().as_str()).copied().ok_or_else(|| {
                self.error(
                    name.span().start,
                    format!("unknown criterion `{}`", name.get_ref()),
                )
            })
        };
        let mut criteria = Vec::with_capacity(raw.len());
        for (id, spanned) in raw {
            let at = spanned.span().start;
            let criterion = spanned.get_ref();
            let (Some(section), Some(quote)) = (&criterion.section, &criterion.quote) else {
                return Err(self.error(
                    at,
                    format!("criterion `{id}` has no source: give `section` and `quote`"),
                ));
            };
            let kinds = [
                criterion.fact.is_some(),
                criterion.all.is_some(),
                criterion.any.is_some(),
                criterion.not.is_some(),
            ];
            if kinds.iter().filter(|k| **k).count() != 1 {
                return Err(self.error(
                    at,
                    format!("criterion `{id}` needs exactly one of `fact`, `all`, `any`, `not`"),
                ));
            }
            let node = if let Some(fact) = &criterion.fact {
                Node::Test(self.compile_test(id, fact, criterion)?)
            } else if let Some(list) = &criterion.all {
                Node::All(list.iter().map(resolve).collect::<Result<_, _>>()?)
            } else if let Some(list) = &criterion.any {
                Node::Any(list.iter().map(resolve).collect::<Result<_, _>>()?)
            } else if let Some(inner) = &criterion.not {
                Node::Not(resolve(inner)?)
            } else {
                return Err(self.error(at, format!("criterion `{id}` is empty")));
            };
            if criterion.if_unknown.is_some() && criterion.fact.is_none() {
                return Err(self.error(
                    at,
                    format!("criterion `{id}`: `if_unknown` applies to a fact test only"),
                ));
            }
            if let Node::All(list) | Node::Any(list) = &node {
                if list.is_empty() {
                    return Err(self.error(at, format!("criterion `{id}` groups no criteria")));
                }
            }
            criteria.push(Criterion {
                id: id.clone(),
                text: criterion.text.clone(),
                unmet: criterion.unmet.clone(),
                source: Source {
                    section: section.clone(),
                    quote: quote.clone(),
                    interpretation: criterion.interpretation.clone(),
                },
                node,
                line: self.error(at, "").line,
            });
        }
        let spans: Vec<usize> = raw.values().map(|spanned| spanned.span().start).collect();
        let sizes = self.check_outline(&criteria, &spans)?;
        Ok((criteria, sizes))
    }

    /// Checks the outline the criteria form, in one walk that visits each criterion once (a
    /// walk of every path is exponential when groups share sub-criteria): no criterion contains
    /// itself, none nests deeper than [`MAX_NESTING`], none expands to more than
    /// [`MAX_OUTLINE`]. Returns each criterion's outline size.
    fn check_outline(
        &self,
        criteria: &[Criterion],
        spans: &[usize],
    ) -> Result<Vec<usize>, LoadError> {
        let mut visits = vec![Visit::New; criteria.len()];
        for start in 0..criteria.len() {
            self.visit(criteria, spans, &mut visits, start, start, 0)?;
        }
        Ok(visits
            .iter()
            .map(|visit| match visit {
                Visit::Done { size, .. } => *size,
                Visit::New | Visit::Open => 0,
            })
            .collect())
    }

    /// Visits criterion `idx`, `depth` groups below `start`; returns its outline size.
    fn visit(
        &self,
        criteria: &[Criterion],
        spans: &[usize],
        visits: &mut [Visit],
        idx: usize,
        start: usize,
        depth: usize,
    ) -> Result<usize, LoadError> {
        let error = |at: usize, message: String| {
            self.error(spans.get(at).copied().unwrap_or_default(), message)
        };
        let id = |at: usize| criteria.get(at).map_or("", |c| c.id.as_str());
        let too_deep = || {
            error(
                start,
                format!(
                    "criterion `{}` nests criteria more than {MAX_NESTING} deep",
                    id(start)
                ),
            )
        };
        match visits.get(idx) {
            Some(Visit::Done { size, height }) => {
                return if depth + height > MAX_NESTING {
                    Err(too_deep())
                } else {
                    Ok(*size)
                };
            }
            // Open: on the path from `start`, so it reaches itself.
            Some(Visit::Open) => {
                return Err(error(
                    idx,
                    format!("criterion `{}` contains itself", id(idx)),
                ));
            }
            Some(Visit::New) | None => {}
        }
        if depth > MAX_NESTING {
            return Err(too_deep());
        }
        if let Some(visit) = visits.get_mut(idx) {
            *visit = Visit::Open;
        }
        let children: &[CriterionIdx] = match criteria.get(idx).map(|c| &c.node) {
            Some(Node::All(list) | Node::Any(list)) => list,
            Some(Node::Not(inner)) => std::slice::from_ref(inner),
            Some(Node::Test(_)) | None => &[],
        };
        let (mut size, mut height) = (1usize, 0usize);
        for child in children {
            let child = usize::from(*child);
            size = size.saturating_add(self.visit(
                criteria,
                spans,
                visits,
                child,
                start,
                depth + 1,
            )?);
            if let Some(Visit::Done { height: below, .. }) = visits.get(child) {
                height = height.max(below + 1);
            }
        }
        if size > MAX_OUTLINE {
            return Err(error(
                idx,
                format!("criterion `{}` {}", id(idx), too_large(size)),
            ));
        }
        if let Some(visit) = visits.get_mut(idx) {
            *visit = Visit::Done { size, height };
        }
        Ok(size)
    }

    /// Checks the outline of a list of criteria (a policy's pathways and exclusions, a drug's
    /// label), which the evaluator and an explanation may walk in full for one case.
    fn check_list_outline<'i>(
        &self,
        at: usize,
        what: &str,
        list: impl IntoIterator<Item = &'i CriterionIdx>,
        sizes: &[usize],
    ) -> Result<(), LoadError> {
        let size = list.into_iter().fold(0usize, |sum, idx| {
            sum.saturating_add(sizes.get(usize::from(*idx)).copied().unwrap_or_default())
        });
        if size > MAX_OUTLINE {
            return Err(self.error(at, format!("{what} {}", too_large(size))));
        }
        Ok(())
    }

    fn compile_test(
        &self,
        id: &str,
        fact: &Spanned<String>,
        raw: &RawCriterion,
    ) -> Result<Test, LoadError> {
        let at = fact.span().start;
        let fact_id = FactId::by_name(fact.get_ref())
            .or_else(|| crate::declared::find(self.declared, fact.get_ref()))
            .ok_or_else(|| {
                self.error(
                    at,
                    format!(
                        "criterion `{id}` reads unknown fact `{}`: neither a fact of the case format (`priorauth policy facts`) nor one declared in facts.toml",
                        fact.get_ref()
                    ),
                )
            })?;
        let def = fact_id.def();
        let has_range =
            raw.ge.is_some() || raw.gt.is_some() || raw.le.is_some() || raw.lt.is_some();
        let wrong = |what: &str| {
            self.error(
                at,
                format!("criterion `{id}`: fact `{}` is {what}", def.name),
            )
        };
        let check = match def.fact_type {
            FactType::Bool => {
                if raw.one_of.is_some() || has_range || raw.per_days.is_some() {
                    return Err(wrong("true or false: test it with `is`"));
                }
                Check::Is(
                    raw.is
                        .ok_or_else(|| wrong("true or false: test it with `is`"))?,
                )
            }
            FactType::Number => {
                if raw.is.is_some() || raw.one_of.is_some() || !has_range {
                    return Err(wrong("a number: test it with `ge`, `gt`, `le` or `lt`"));
                }
                if raw.ge.is_some() && raw.gt.is_some() || raw.le.is_some() && raw.lt.is_some() {
                    return Err(wrong("tested with two lower or two upper bounds"));
                }
                if raw.per_days.is_some() && fact_id != FactId::RequestUnits {
                    return Err(wrong("not a rate: only `request.units` takes `per_days`"));
                }
                let bound =
                    |value: Option<f64>, inclusive| value.map(|value| Bound { value, inclusive });
                Check::Range {
                    min: bound(raw.ge, true).or(bound(raw.gt, false)),
                    max: bound(raw.le, true).or(bound(raw.lt, false)),
                    per_days: raw.per_days,
                }
            }
            FactType::Enum(_) | FactType::Drug => {
                if raw.is.is_some() || has_range || raw.per_days.is_some() {
                    return Err(wrong("one of a set of values: test it with `in`"));
                }
                let values = raw
                    .one_of
                    .as_ref()
                    .ok_or_else(|| wrong("one of a set of values: test it with `in`"))?;
                let variants: Vec<&str> = match def.fact_type {
                    FactType::Enum(variants) => variants.to_vec(),
                    _ => self.drugs.iter().map(String::as_str).collect(),
                };
                let mut mask = 0u64;
                for value in values.get_ref() {
                    let position = variants.iter().position(|v| v == value).ok_or_else(|| {
                        self.error(
                            values.span().start,
                            format!(
                                "criterion `{id}`: `{value}` is not a value of `{}` (one of {})",
                                def.name,
                                variants.join(", ")
                            ),
                        )
                    })?;
                    mask |= 1 << position;
                }
                Check::OneOf(mask)
            }
        };
        Ok(Test {
            fact: fact_id,
            check,
            if_unknown: raw.if_unknown,
        })
    }
}

/// Criteria nest at most this deep: evaluating and explaining a criterion recurse through its
/// outline. The bundled policies nest 5 deep at most.
pub const MAX_NESTING: usize = 32;

/// A criterion, and all of a policy's pathways and exclusions together, written out as an
/// outline (a shared criterion once per place it appears, as an explanation lists it) have at
/// most this many criteria: it bounds the work and the explanation of one decision. The
/// bundled policies' largest (eocco-0382's pathways and exclusions) has 204.
pub const MAX_OUTLINE: usize = 10_000;

fn too_large(size: usize) -> String {
    let size = if size == usize::MAX {
        "more".to_string()
    } else {
        size.to_string()
    };
    format!(
        "expands to {size} criteria when written out (a shared criterion counts each time it appears); at most {MAX_OUTLINE}"
    )
}

/// The outline walk's mark on a criterion.
#[derive(Debug, Clone, Copy)]
enum Visit {
    New,
    Open,
    /// Checked: its outline's size, and how deep groups nest below it.
    Done {
        size: usize,
        height: usize,
    },
}

/// Loads and checks one policy file. `drugs` are the catalog's drug names.
pub fn load_policy(file: &str, text: &str, drugs: &[String]) -> Result<Policy, LoadError> {
    load_policy_declared(file, text, drugs, &[])
}

/// [`load_policy`] for a policy that may read facts declared in data besides the case
/// format's (`declared`: the ids [`crate::declared::load`] gave them).
pub fn load_policy_declared(
    file: &str,
    text: &str,
    drugs: &[String],
    declared: &[FactId],
) -> Result<Policy, LoadError> {
    let mut loader = Loader::new(file, text, drugs);
    loader.declared = declared;
    let raw: RawPolicy = loader.parse()?;
    let (criteria, sizes) = loader.compile_criteria(&raw.criteria)?;
    let find = |name: &Spanned<String>| -> Result<CriterionIdx, LoadError> {
        criteria
            .iter()
            .position(|c| c.id == *name.get_ref())
            .map(|i| i as CriterionIdx)
            .ok_or_else(|| {
                loader.error(
                    name.span().start,
                    format!("unknown criterion `{}`", name.get_ref()),
                )
            })
    };

    let drug_positions = raw
        .applies
        .drugs
        .iter()
        .map(|drug| {
            drugs
                .iter()
                .position(|d| d == drug.get_ref())
                .map(|p| p as u8)
                .ok_or_else(|| {
                    loader.error(
                        drug.span().start,
                        format!(
                            "unknown drug `{}` (the catalog has {})",
                            drug.get_ref(),
                            drugs.join(", ")
                        ),
                    )
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let lines_of_business = match &raw.applies.lines_of_business {
        None => None,
        Some(lines) => Some(enum_mask(
            &loader,
            lines,
            crate::case::LineOfBusiness::VARIANTS,
            "line of business",
        )?),
    };
    let effective = match &raw.effective {
        None => None,
        Some(text) => Some(
            Date::parse(text)
                .ok_or_else(|| loader.error(0, format!("`effective` is not a date: `{text}`")))?,
        ),
    };
    if *raw.dosing_outside.get_ref() != Outcome::Review
        && *raw.dosing_outside.get_ref() != Outcome::Deny
    {
        return Err(loader.error(
            raw.dosing_outside.span().start,
            "`dosing_outside` must be `review` or `deny`",
        ));
    }
    if raw.pathways.is_empty() {
        return Err(loader.error(0, "the policy has no pathway"));
    }

    let mut pathways = Vec::new();
    for spanned in &raw.pathways {
        let at = spanned.span().start;
        let pathway = spanned.get_ref();
        let outcome = pathway.outcome.as_ref().ok_or_else(|| {
            loader.error(
                at,
                format!("pathway `{}` states no outcome: give `outcome`", pathway.id),
            )
        })?;
        if !matches!(outcome.get_ref(), Outcome::Approve | Outcome::Review) {
            return Err(loader.error(
                outcome.span().start,
                format!(
                    "pathway `{}`: outcome must be `approve` or `review`",
                    pathway.id
                ),
            ));
        }
        let authorization = match (&pathway.authorization, outcome.get_ref()) {
            (Some(RawAuthorization::Duration(duration)), _) => Some(*duration),
            (Some(RawAuthorization::NotStated(text)), _) if text == "not stated" => None,
            (Some(RawAuthorization::NotStated(text)), _) => {
                return Err(loader.error(at, format!("pathway `{}`: authorization `{text}` is neither a duration nor \"not stated\"", pathway.id)));
            }
            (None, Outcome::Approve) => {
                return Err(loader.error(at, format!("pathway `{}` approves without an authorization: give a duration or \"not stated\"", pathway.id)));
            }
            (None, _) => None,
        };
        if *outcome.get_ref() == Outcome::Approve && pathway.authorization_source.is_none() {
            return Err(loader.error(
                at,
                format!("pathway `{}` has no `authorization_source`", pathway.id),
            ));
        }
        if pathway.criteria.is_empty() {
            return Err(loader.error(at, format!("pathway `{}` has no criteria", pathway.id)));
        }
        if let Some(quantity) = &pathway.quantity {
            if *outcome.get_ref() != Outcome::Approve {
                return Err(loader.error(
                    at,
                    format!(
                        "pathway `{}`: only an approving pathway has a `quantity`",
                        pathway.id
                    ),
                ));
            }
            if quantity.cycles == Some(0) || quantity.units_per_cycle == Some(0) {
                return Err(loader.error(
                    at,
                    format!(
                        "pathway `{}`: a quantity of 0 approves nothing; give at least 1",
                        pathway.id
                    ),
                ));
            }
        }
        pathways.push(Pathway {
            line: loader.error(at, "").line,
            id: pathway.id.clone(),
            title: pathway.title.clone(),
            kinds: enum_mask(
                &loader,
                &pathway.kinds,
                crate::case::RequestKind::VARIANTS,
                "request kind",
            )?,
            outcome: *outcome.get_ref(),
            criteria: pathway
                .criteria
                .iter()
                .map(find)
                .collect::<Result<_, _>>()?,
            dosing: pathway.dosing.iter().map(find).collect::<Result<_, _>>()?,
            authorization,
            authorization_source: pathway
                .authorization_source
                .as_ref()
                .map(source)
                .unwrap_or_default(),
            dosing_reads_course: false,
            quantity: pathway.quantity.as_ref().map(|q| QuantityLimit {
                cycles: q.cycles,
                units_per_cycle: q.units_per_cycle,
                source: Source {
                    section: q.section.clone(),
                    quote: q.quote.clone(),
                    interpretation: q.interpretation.clone(),
                },
            }),
        });
    }

    let exclusions: Vec<CriterionIdx> =
        raw.exclusions.iter().map(find).collect::<Result<_, _>>()?;
    loader.check_list_outline(
        0,
        "the policy's pathways and exclusions",
        pathways
            .iter()
            .flat_map(|p: &Pathway| p.criteria.iter().chain(&p.dosing))
            .chain(&exclusions),
        &sizes,
    )?;

    for pathway in &mut pathways {
        pathway.dosing_reads_course = pathway
            .dosing
            .iter()
            .any(|idx| reads_course(&criteria, *idx, 0));
    }

    // The declared facts its criteria read, each with its own bit of a decision's `missing`.
    let mut declared: Vec<FactId> = Vec::new();
    for criterion in &criteria {
        if let Node::Test(test) = &criterion.node {
            if test.fact.is_declared() && !declared.contains(&test.fact) {
                declared.push(test.fact);
            }
        }
    }
    if declared.len() > crate::facts::MAX_DECLARED_PER_POLICY {
        return Err(loader.error(
            0,
            format!(
                "the criteria read {} facts declared in facts.toml; one policy may read at most {} (each needs a bit of a decision's `missing` set)",
                declared.len(),
                crate::facts::MAX_DECLARED_PER_POLICY
            ),
        ));
    }

    Ok(Policy {
        file: file.to_string(),
        declared,
        supersedes: raw.supersedes,
        acknowledged: raw.lint.acknowledged,
        id: raw.id,
        title: raw.title,
        payer: raw.payer,
        document: raw.document,
        source_file: raw.source_file,
        version: raw.version,
        effective,
        drugs: drug_positions,
        lines_of_business,
        applicability: Source {
            section: raw.applies.section,
            quote: raw.applies.quote,
            interpretation: raw.applies.interpretation,
        },
        dosing_outside: *raw.dosing_outside.get_ref(),
        dosing_outside_source: source(&raw.dosing_outside_source),
        codes: Codes {
            icd10_plain: raw.codes.icd10.iter().map(|code| plain(code)).collect(),
            ..raw.codes
        },
        exclusions,
        arena: Arena::new(&criteria),
        criteria,
        pathways,
    })
}

fn source(raw: &RawSource) -> Source {
    Source {
        section: raw.section.clone(),
        quote: raw.quote.clone(),
        interpretation: raw.interpretation.clone(),
    }
}

fn enum_mask(
    loader: &Loader<'_>,
    values: &[Spanned<String>],
    variants: &[&str],
    what: &str,
) -> Result<u32, LoadError> {
    values.iter().try_fold(0u32, |mask, value| {
        variants
            .iter()
            .position(|v| v == value.get_ref())
            .map(|p| mask | 1 << p)
            .ok_or_else(|| {
                loader.error(
                    value.span().start,
                    format!(
                        "`{}` is not a {what} (one of {})",
                        value.get_ref(),
                        variants.join(", ")
                    ),
                )
            })
    })
}

/// Whether a criterion reads the course position, directly or through its parts.
fn reads_course(criteria: &[Criterion], idx: CriterionIdx, depth: usize) -> bool {
    // The loader bounds nesting; the depth guard only keeps a malformed outline finite.
    if depth > MAX_NESTING {
        return true;
    }
    match criteria.get(usize::from(idx)).map(|c| &c.node) {
        Some(Node::Test(test)) => matches!(
            test.fact,
            FactId::RequestCycles
                | FactId::RequestFirstCycle
                | FactId::RequestLastCycle
                | FactId::RequestContinuedCycles
        ),
        Some(Node::All(list) | Node::Any(list)) => list
            .iter()
            .any(|child| reads_course(criteria, *child, depth + 1)),
        Some(Node::Not(inner)) => reads_course(criteria, *inner, depth + 1),
        None => true,
    }
}

// ---- The drug catalog. ----

/// A drug the engine knows: billing units, vial size, and its labeled indications as
/// criteria (which give the derived fact `request.on_label`).
#[derive(Debug, Clone)]
pub struct Drug {
    pub id: String,
    pub name: String,
    pub hcpcs: String,
    /// Amount of drug in one HCPCS unit, in `amount_unit`.
    pub hcpcs_unit_amount: f64,
    /// Amount of drug in one vial, in `amount_unit`.
    pub vial_amount: f64,
    pub amount_unit: String,
    pub label: Vec<CriterionIdx>,
    pub dose_bands: Vec<DoseBand>,
    /// The label's quantity limits, which bound every approval of the drug.
    pub limits: LabelLimits,
}

/// The most of a drug its label gives, in billable units and cycles. Every approval is
/// bounded by these, whatever a policy states (a policy may state less).
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct LabelLimits {
    /// Billable units per dose day, for a drug given at a fixed daily dose: the highest
    /// daily dose in whole vials. `units_per_infusion_day` is its deprecated name.
    #[serde(default, alias = "units_per_infusion_day")]
    pub units_per_dose_day: Option<u32>,
    /// Most dose days in a cycle (with `units_per_dose_day`). `infusion_days_per_cycle` is
    /// its deprecated name.
    #[serde(default, alias = "infusion_days_per_cycle")]
    pub dose_days_per_cycle: Option<u32>,
    /// The doses of one cycle in mg per m² of body surface area, each given from whole vials.
    #[serde(default)]
    pub doses_mg_per_m2: Vec<f64>,
    /// The day of the cycle each dose is given on: a shorter cycle holds only the doses
    /// whose day it reaches.
    #[serde(default)]
    pub dose_days: Vec<u32>,
    /// Most cycles of one course.
    pub course_cycles: u32,
    /// Most cycles of a frontline course, where the label's frontline indications have a
    /// shorter one than its relapsed or refractory course (Blincyto: 4 for MRD-positive
    /// disease, 1 induction and 3 consolidation cycles, and 4 in the consolidation phase,
    /// against 9 for relapsed or refractory disease). Applies when the course is known not to
    /// treat relapsed or refractory disease (`request.relapsed_refractory_course` false);
    /// `course_cycles` otherwise.
    #[serde(default)]
    pub frontline_course_cycles: Option<u32>,
    /// The label's shortest cycle, in days (its dose days and the treatment-free interval
    /// after them): an approval counts the cycles that start within its period at no
    /// shorter cycle, whatever cycle length the request declares.
    #[serde(default)]
    pub shortest_cycle_days: Option<u32>,
    /// A longer shortest cycle from a cycle of the course on (Blincyto's continued therapy,
    /// cycles 6-9, 84 days; Besponsa's cycles after the first, 28): an authorization whose
    /// cycles all come from there has its units spent over periods no shorter.
    #[serde(default)]
    pub later_cycles: Option<LaterCycles>,
}

/// The label's shortest cycle from a cycle of the course on.
#[derive(Debug, Clone, Copy, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct LaterCycles {
    pub from_cycle: u32,
    pub shortest_cycle_days: u32,
}

impl LabelLimits {
    /// The label's shortest cycle for an authorization whose first cycle in the course is
    /// `first_cycle`.
    pub fn shortest_cycle_from(&self, first_cycle: u32) -> Option<u32> {
        match self.later_cycles {
            Some(later) if first_cycle >= later.from_cycle => self
                .shortest_cycle_days
                .map_or(Some(later.shortest_cycle_days), |days| {
                    Some(days.max(later.shortest_cycle_days))
                }),
            _ => self.shortest_cycle_days,
        }
    }
}

/// The largest body surface area (m²) an approval's units are sized on without a clinician.
///
/// Weight and height are what a request declares, and each alone may be as large as the
/// largest people recorded (700 kg, 300 cm), so together they gave a body surface area of
/// 7.6 m² and a label ceiling of Besponsa three times a large adult's (153 units a cycle,
/// for 54 at 2.0 m²). A dose per m² of a larger patient is counted at this area: units beyond it go the way
/// the policy sends a dose outside its limits (a clinician's review, or a denial a clinician
/// must confirm), with the reason saying so. 3.0 m² is about 1 m² beyond an average adult's
/// (1.7 to 2.0), well past the sizes seen in the labels' studies; in whole vials of Besponsa
/// it bounds no patient under about 3.37 m².
pub const MOST_BSA_M2_SIZED: f64 = 3.0;

impl Drug {
    /// The label's most billable units in one cycle: whole vials per dose day times the dose
    /// days (the request's, at most the label's), or, for a drug dosed per m², each dose of
    /// the cycle times the body surface area (at most [`MOST_BSA_M2_SIZED`]) in whole vials.
    /// `None` when the body surface area it needs is not known.
    pub fn label_units_per_cycle(
        &self,
        dose_days: Option<f64>,
        cycle_length: Option<f64>,
        bsa_m2: Option<f64>,
        requested_mg_per_m2: Option<f64>,
    ) -> Option<f64> {
        let limits = &self.limits;
        // A cycle holds no more dose days than it has days.
        let cycle = cycle_length.unwrap_or(f64::INFINITY);
        if let (Some(per_day), Some(days)) = (limits.units_per_dose_day, limits.dose_days_per_cycle)
        {
            let days = dose_days
                .map_or(f64::from(days), |given| given.min(f64::from(days)))
                .min(cycle);
            return Some(f64::from(per_day) * days);
        }
        if limits.doses_mg_per_m2.is_empty() {
            return None;
        }
        let bsa = bsa_m2?.min(MOST_BSA_M2_SIZED);
        let units_per_vial = (self.vial_amount / self.hcpcs_unit_amount).round();
        // A dose that needs exactly whole vials takes no more (1e-9 absorbs rounding). No
        // dose is above the requested highest single dose: a cycle of Besponsa at 0.5 mg/m²
        // (the label's dose in remission from cycle 2) needs 0.5 on each of its days, not the
        // label's 0.8 on day 1.
        let vials: f64 = limits
            .doses_mg_per_m2
            .iter()
            .enumerate()
            .filter(|(i, _)| {
                limits
                    .dose_days
                    .get(*i)
                    .is_none_or(|day| f64::from(*day) <= cycle)
            })
            // The request's dose days, as Blincyto's infusion days bound its units: a cycle
            // of Besponsa given on one day holds the first dose, not the three's vials.
            .take(dose_days.map_or(usize::MAX, |given| given.max(0.0) as usize))
            .map(|(_, dose)| {
                let dose = requested_mg_per_m2.map_or(*dose, |requested| dose.min(requested));
                (dose * bsa / self.vial_amount - 1e-9).ceil().max(1.0)
            })
            .sum();
        Some(vials * units_per_vial)
    }
}

/// The label's highest dose in a weight band: fixed, or per m² of body surface area with a cap.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct DoseBand {
    #[serde(default)]
    pub below_kg: Option<f64>,
    #[serde(default)]
    pub from_kg: Option<f64>,
    #[serde(default)]
    pub fixed: Option<f64>,
    #[serde(default)]
    pub per_m2: Option<f64>,
    #[serde(default)]
    pub cap: Option<f64>,
    pub unit: String,
}

impl Drug {
    /// The label's highest dose for a weight and body surface area, with its unit.
    pub fn allowed_dose(&self, weight_kg: f64, bsa_m2: Option<f64>) -> Option<(f64, String)> {
        let band = self.dose_bands.iter().find(|b| {
            b.below_kg.is_none_or(|w| weight_kg < w) && b.from_kg.is_none_or(|w| weight_kg >= w)
        })?;
        let dose = match (band.fixed, band.per_m2) {
            (Some(fixed), _) => fixed,
            (None, Some(per_m2)) => per_m2 * bsa_m2?,
            (None, None) => return None,
        };
        Some((
            band.cap.map_or(dose, |cap| dose.min(cap)),
            band.unit.clone(),
        ))
    }
}

/// Every drug, with the criteria their labels use.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub drugs: Vec<Drug>,
    pub criteria: Vec<Criterion>,
    pub arena: Arena,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalog {
    #[serde(rename = "drug")]
    drugs: Vec<RawDrug>,
    #[serde(default)]
    criteria: BTreeMap<String, Spanned<RawCriterion>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDrug {
    id: String,
    name: String,
    hcpcs: String,
    hcpcs_unit_amount: f64,
    vial_amount: f64,
    amount_unit: String,
    label: Vec<Spanned<String>>,
    #[serde(default)]
    dose_bands: Vec<DoseBand>,
    limits: LabelLimits,
}

/// The most drugs a catalog may hold: one bit each in a test's set of values.
pub const MAX_DRUGS: usize = 64;

/// Loads the drug catalog. Label criteria may not read `request.on_label`, which they define.
pub fn load_catalog(file: &str, text: &str) -> Result<Catalog, LoadError> {
    let names: Vec<String> = Vec::new();
    let loader = Loader::new(file, text, &names);
    let raw: RawCatalog = loader.parse()?;
    // Drug-typed facts are tested against a bit set of the catalog's positions (`Check::OneOf`).
    if raw.drugs.len() > MAX_DRUGS {
        return Err(loader.error(
            0,
            format!(
                "the catalog has {} drugs; at most {MAX_DRUGS}",
                raw.drugs.len()
            ),
        ));
    }
    let drug_names: Vec<String> = raw.drugs.iter().map(|d| d.id.clone()).collect();
    let loader = Loader::new(file, text, &drug_names);
    let (criteria, sizes) = loader.compile_criteria(&raw.criteria)?;
    for (criterion, spanned) in criteria.iter().zip(raw.criteria.values()) {
        if matches!(
            criterion.node,
            Node::Test(Test {
                fact: FactId::RequestOnLabel,
                ..
            })
        ) {
            return Err(loader.error(
                spanned.span().start,
                "a label criterion cannot read `request.on_label`",
            ));
        }
    }
    let drugs = raw
        .drugs
        .into_iter()
        .map(|drug| {
            let label = drug
                .label
                .iter()
                .map(|name| {
                    criteria
                        .iter()
                        .position(|c| c.id == *name.get_ref())
                        .map(|i| i as CriterionIdx)
                        .ok_or_else(|| {
                            loader.error(
                                name.span().start,
                                format!("unknown criterion `{}`", name.get_ref()),
                            )
                        })
                })
                .collect::<Result<_, _>>()?;
            let limits = &drug.limits;
            let per_day =
                limits.units_per_dose_day.is_some() && limits.dose_days_per_cycle.is_some();
            let per_m2 = !limits.doses_mg_per_m2.is_empty()
                && limits
                    .doses_mg_per_m2
                    .iter()
                    .all(|d| d.is_finite() && *d > 0.0 && *d < 100.0);
            if per_day == per_m2
                || limits.course_cycles == 0
                || limits
                    .frontline_course_cycles
                    .is_some_and(|f| f == 0 || f > limits.course_cycles)
                || limits.units_per_dose_day == Some(0)
                || limits.dose_days_per_cycle == Some(0)
                || limits.shortest_cycle_days == Some(0)
                || limits
                    .later_cycles
                    .is_some_and(|l| l.from_cycle < 2 || l.shortest_cycle_days == 0)
                || !(drug.vial_amount.is_finite() && drug.vial_amount > 0.0)
                || !(drug.hcpcs_unit_amount.is_finite() && drug.hcpcs_unit_amount > 0.0)
            {
                return Err(loader.error(
                    0,
                    format!(
                        "drug `{}`: `limits` needs `course_cycles` of at least 1 (and `frontline_course_cycles`, if given, from 1 to it) and either `units_per_dose_day` with `dose_days_per_cycle` or positive `doses_mg_per_m2`, and positive vial and unit amounts",
                        drug.id
                    ),
                ));
            }
            Ok(Drug {
                id: drug.id,
                name: drug.name,
                hcpcs: drug.hcpcs,
                hcpcs_unit_amount: drug.hcpcs_unit_amount,
                vial_amount: drug.vial_amount,
                amount_unit: drug.amount_unit,
                dose_bands: drug.dose_bands,
                limits: drug.limits,
                label,
            })
        })
        .collect::<Result<Vec<Drug>, LoadError>>()?;
    // A case whose drug is unknown evaluates every label.
    loader.check_list_outline(
        0,
        "the drugs' labels",
        drugs.iter().flat_map(|drug| &drug.label),
        &sizes,
    )?;
    Ok(Catalog {
        drugs,
        arena: Arena::new(&criteria),
        criteria,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
id = "p"
title = "t"
payer = "x"
document = "d"
source_file = "d.txt"
version = "1"
dosing_outside = "deny"
dosing_outside_source = { section = "s", quote = "q" }
applies = { drugs = ["blinatumomab"], section = "s", quote = "q" }

[[pathway]]
id = "only"
title = "t"
kinds = ["initial"]
outcome = "approve"
criteria = ["adult"]
authorization = { years = 1 }
authorization_source = { section = "s", quote = "q" }

[criteria.adult]
text = "adult"
section = "s"
quote = "q"
fact = "patient.age_years"
ge = 18
"#;

    fn load(text: &str) -> Result<Policy, LoadError> {
        load_policy("p.toml", text, &["blinatumomab".to_string()])
    }

    fn error_of(text: &str) -> LoadError {
        load(text).unwrap_err()
    }

    #[test]
    fn a_minimal_policy_loads() {
        let policy = load(MINIMAL).unwrap();
        assert_eq!(policy.pathways.len(), 1);
        assert_eq!(policy.pathways[0].authorization, Some(Duration::Years(1)));
    }

    #[test]
    fn an_unknown_fact_is_located() {
        let error = error_of(&MINIMAL.replace("patient.age_years", "patient.age_in_years"));
        assert_eq!((error.line, error.column), (25, 8));
        assert!(
            error
                .message
                .contains("unknown fact `patient.age_in_years`"),
            "{error}"
        );
    }

    #[test]
    fn a_test_of_the_wrong_type_is_an_error() {
        let error = error_of(&MINIMAL.replace("ge = 18", "is = true"));
        assert!(error.message.contains("is a number"), "{error}");
        let error = error_of(&MINIMAL.replace(
            "fact = \"patient.age_years\"\nge = 18",
            "fact = \"diagnosis.ph_status\"\nin = [\"maybe\"]",
        ));
        assert!(
            error
                .message
                .contains("`maybe` is not a value of `diagnosis.ph_status`"),
            "{error}"
        );
        assert_eq!(error.line, 26);
    }

    #[test]
    fn a_pathway_with_no_outcome_is_an_error() {
        let error = error_of(&MINIMAL.replace("outcome = \"approve\"\n", ""));
        assert!(error.message.contains("states no outcome"), "{error}");
        assert_eq!(error.line, 12);
    }

    #[test]
    fn approving_without_a_duration_must_say_so() {
        let error = error_of(&MINIMAL.replace("authorization = { years = 1 }\n", ""));
        assert!(
            error.message.contains("without an authorization"),
            "{error}"
        );
        assert!(load(&MINIMAL.replace("{ years = 1 }", "\"not stated\"")).is_ok());
    }

    #[test]
    fn unknown_keys_references_and_sources_are_errors() {
        assert!(
            error_of(&MINIMAL.replace("ge = 18", "ge = 18\ngreater = 1"))
                .message
                .contains("unknown field")
        );
        assert!(
            error_of(&MINIMAL.replace("criteria = [\"adult\"]", "criteria = [\"adults\"]"))
                .message
                .contains("unknown criterion `adults`")
        );
        assert!(
            error_of(&MINIMAL.replace("quote = \"q\"\nfact", "fact"))
                .message
                .contains("has no source")
        );
        assert!(
            error_of(&MINIMAL.replace("kinds = [\"initial\"]", "kinds = [\"first\"]"))
                .message
                .contains("not a request kind")
        );
        assert!(
            error_of(&MINIMAL.replace("drugs = [\"blinatumomab\"]", "drugs = [\"aspirin\"]"))
                .message
                .contains("unknown drug")
        );
    }

    #[test]
    fn a_criterion_that_contains_itself_is_an_error() {
        let text = format!(
            "{MINIMAL}\n[criteria.loop]\ntext = \"l\"\nsection = \"s\"\nquote = \"q\"\nall = [\"loop\"]\n"
        );
        assert!(error_of(&text).message.contains("contains itself"));
    }

    /// `MINIMAL` with a chain of `levels` groups below `adult`, each listing the next `width`
    /// times.
    fn with_chain(levels: usize, width: usize) -> String {
        let mut text = MINIMAL.replace("criteria = [\"adult\"]", "criteria = [\"adult\", \"g0\"]");
        for level in 0..levels {
            let next = if level + 1 == levels {
                "adult".to_string()
            } else {
                format!("g{}", level + 1)
            };
            let list = vec![format!("\"{next}\""); width].join(", ");
            text.push_str(&format!(
                "\n[criteria.g{level}]\ntext = \"g\"\nsection = \"s\"\nquote = \"q\"\nall = [{list}]\n"
            ));
        }
        text
    }

    #[test]
    fn an_outline_that_doubles_at_each_level_is_refused_at_once() {
        // 2^30 criteria written out: the loader must neither walk nor evaluate them.
        let started = std::time::Instant::now();
        let error = error_of(&with_chain(30, 2));
        assert!(error.message.contains("when written out"), "{error}");
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        // Sharing within bounds is fine: 2^8 = 256 leaves.
        assert!(load(&with_chain(8, 2)).is_ok());
        // The whole policy is bounded too, not only each criterion.
        let many = with_chain(12, 2).replace(
            "criteria = [\"adult\", \"g0\"]",
            "criteria = [\"adult\", \"g0\", \"g0\", \"g0\"]",
        );
        assert!(load(&with_chain(12, 2)).is_ok());
        let error = error_of(&many);
        assert!(
            error
                .message
                .starts_with("the policy's pathways and exclusions"),
            "{error}"
        );
    }

    #[test]
    fn criteria_nest_at_most_max_nesting_deep() {
        assert!(load(&with_chain(MAX_NESTING, 1)).is_ok());
        let error = error_of(&with_chain(MAX_NESTING + 1, 1));
        assert!(
            error.message.contains("nests criteria more than 32 deep"),
            "{error}"
        );
    }

    #[test]
    fn a_catalog_holds_at_most_max_drugs() {
        let catalog = |n: usize| {
            (0..n)
                .map(|i| {
                    format!(
                        "[[drug]]\nid = \"d{i}\"\nname = \"n\"\nhcpcs = \"J0001\"\nhcpcs_unit_amount = 1\nvial_amount = 1\namount_unit = \"mg\"\nlabel = [\"last\"]\nlimits = {{ units_per_infusion_day = 1, infusion_days_per_cycle = 1, course_cycles = 1 }}\n"
                    )
                })
                .collect::<String>()
                + &format!(
                    "[criteria.last]\ntext = \"t\"\nsection = \"s\"\nquote = \"q\"\nfact = \"request.drug\"\nin = [\"d{}\"]\n",
                    n - 1
                )
        };
        assert!(load_catalog("drugs.toml", &catalog(MAX_DRUGS)).is_ok());
        let error = load_catalog("drugs.toml", &catalog(MAX_DRUGS + 1)).unwrap_err();
        assert!(error.message.contains("at most 64"), "{error}");
    }
}
