//! A realistic past to report on: `priorauth history generate` fills a fresh database with a
//! period of requests and what follows them (completions, withdrawals, clinicians'
//! determinations, extensions, peer-to-peer discussions, appeals and their decisions,
//! reopenings), each written through the lifecycle's own functions, as a day's work would
//! write it, at the simulated time it happens (`store::simulate_clock`).
//!
//! Events run in time order from a queue: the requests arrive spread over the period, and
//! each answer schedules what a clinic or a reviewer does next, most within the plan's clocks
//! and some late. All events of one ten-minute tick run at once, as concurrent callers.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use priorauth_core::date::Date;
use priorauth_core::generate::{self, Rng};
use serde_json::{Value, json};

use crate::keys::{self, Caller, Role};
use crate::lifecycle::appeals::{
    self, AppealBody, AppealDecisionBody, AppealOutcome, Appellant, ExtensionBody,
};
use crate::lifecycle::authorizations::Changes;
use crate::lifecycle::peer_to_peer::{self, PeerToPeerBody, PeerToPeerOutcome};
use crate::lifecycle::request_view;
use crate::lifecycle::requests::{self, SubmitBody, Urgency, WithdrawalBody};
use crate::lifecycle::review::{
    self, DeterminationBody, DeterminationDecision, ReopeningBody, RequestExtensionBody,
};
use crate::lifecycle::{Error, Service};
use crate::store::{self, now_ms};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;
/// Events of one tick run together, at the tick's time.
const TICK: i64 = 10 * MINUTE;

/// What to generate.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub requests: u64,
    /// The period ends today (UTC) and lasts this many days.
    pub days: i64,
    pub seed: u64,
}

/// What was written, by kind, and what the lifecycle refused (which the history keeps as it
/// would in a day's work).
#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub done: BTreeMap<&'static str, u64>,
    pub refused: BTreeMap<String, u64>,
}

impl Summary {
    fn count(&mut self, what: &'static str) {
        *self.done.entry(what).or_default() += 1;
    }
}

/// Who works in the history: the clinics and the payer's reviewers.
struct Cast {
    clinics: Vec<Caller>,
    /// Physicians of the drugs' specialty: they deny, and uphold on appeal.
    specialists: Vec<Caller>,
    /// Others entitled to approve and to overturn on appeal.
    others: Vec<Caller>,
    admin: Caller,
}

impl Cast {
    /// Clinic `n` (of however many there are).
    fn clinic(&self, n: usize) -> &Caller {
        self.clinics
            .get(n % self.clinics.len().max(1))
            .unwrap_or(&self.admin)
    }
}

async fn cast(service: &Service) -> Result<Cast, String> {
    let caller = |organization: &str, role: Role, name: &str, credentials: &str| {
        let (organization, name, credentials) = (
            organization.to_string(),
            name.to_string(),
            credentials.to_string(),
        );
        let store = service.store.clone();
        async move {
            let (key_id, _) = keys::create(&store, &organization, role, &name, &credentials)
                .await
                .map_err(|e| e.to_string())?;
            Ok::<Caller, String>(Caller {
                key_id,
                organization,
                role,
                name,
                credentials,
            })
        }
    };
    let mut clinics = Vec::new();
    for n in 1..=12 {
        clinics.push(
            caller(
                &format!("clinic-{n:02}"),
                Role::Submitter,
                &format!("Clinic {n:02} EHR"),
                "",
            )
            .await?,
        );
    }
    let specialists = vec![
        caller(
            "payer",
            Role::Reviewer,
            "Dr. Ana Reyes",
            "MD, Hematology/Oncology",
        )
        .await?,
        caller(
            "payer",
            Role::Reviewer,
            "Dr. Ben Cho",
            "MD, Medical Oncology",
        )
        .await?,
        caller("payer", Role::Reviewer, "Dr. Carla Diaz", "DO, Hematology").await?,
        caller(
            "payer",
            Role::Reviewer,
            "Dr. Dev Patel",
            "MD, Pediatric Hematology-Oncology",
        )
        .await?,
    ];
    let others = vec![
        caller(
            "payer",
            Role::Reviewer,
            "Dr. Eve Kim",
            "MD, Internal Medicine",
        )
        .await?,
        caller("payer", Role::Reviewer, "Pat Lee", "PharmD, Oncology").await?,
    ];
    let admin = caller("payer", Role::Admin, "UM operations", "").await?;
    Ok(Cast {
        clinics,
        specialists,
        others,
        admin,
    })
}

/// One thing someone does at a time.
#[derive(Debug, Clone)]
enum Action {
    Submit {
        index: u64,
    },
    Complete {
        clinic: usize,
        id: String,
        facts: Value,
    },
    Withdraw {
        clinic: usize,
        id: String,
    },
    Extend {
        id: String,
        /// When the reviewer then decides, and how.
        decide_after: i64,
        then: Box<Action>,
    },
    Determine {
        id: String,
        clinic: usize,
        /// The engine recommended a denial (else it asked for a clinician's review).
        recommended_deny: bool,
        /// The criterion a determination cites.
        criterion: String,
    },
    PeerToPeer {
        id: String,
        reviewer: String,
    },
    Appeal {
        clinic: usize,
        id: String,
        denier: String,
        expedited: bool,
    },
    ExtendAppeal {
        appeal: String,
        denier: String,
        decide_after: i64,
    },
    DecideAppeal {
        appeal: String,
        denier: String,
    },
    Reopen {
        id: String,
        clinic: usize,
    },
}

/// The queue of what happens next, in time order (ties in the order scheduled).
#[derive(Default)]
struct Agenda {
    heap: BinaryHeap<Reverse<(i64, u64)>>,
    actions: BTreeMap<u64, Action>,
    next: u64,
}

impl Agenda {
    fn at(&mut self, time: i64, action: Action) {
        self.next += 1;
        self.heap.push(Reverse((time, self.next)));
        self.actions.insert(self.next, action);
    }

    /// The actions due before `end`.
    fn due_before(&mut self, end: i64) -> Vec<Action> {
        let mut due = Vec::new();
        while let Some(Reverse((time, n))) = self.heap.peek().copied() {
            if time >= end {
                break;
            }
            self.heap.pop();
            if let Some(action) = self.actions.remove(&n) {
                due.push(action);
            }
        }
        due
    }
}

/// Writes the history into the service's database, which must hold no request yet.
pub async fn generate(service: &Service, spec: Spec) -> Result<Summary, String> {
    let existing = store::report::request_count(&service.store)
        .await
        .map_err(|e| e.to_string())?;
    if existing > 0 {
        return Err(format!(
            "the database holds {existing} requests: a history is generated into a fresh one"
        ));
    }
    let today = now_ms().div_euclid(DAY) * DAY;
    let start = today - spec.days * DAY;
    let cast = std::sync::Arc::new(cast(service).await?);
    let mut rng = Rng::new(spec.seed);
    let mut agenda = Agenda::default();
    for index in 0..spec.requests {
        // Weekdays, office hours (08:00 to 18:00 UTC), over the period.
        let day = loop {
            let day = rng.below(spec.days.max(1) as u64) as i64;
            // 1970-01-01 was a Thursday: day 2 and 3 of the week (mod 7) are Saturday, Sunday.
            let weekday = (start / DAY + day).rem_euclid(7);
            if weekday != 2 && weekday != 3 {
                break day;
            }
        };
        let time = start + day * DAY + 8 * HOUR + rng.below(10 * 60) as i64 * MINUTE;
        agenda.at(time, Action::Submit { index });
    }
    let mut summary = Summary::default();
    while let Some(Reverse((first, _))) = agenda.heap.peek().copied() {
        let tick = first.div_euclid(TICK) * TICK;
        // Nothing is written in the future.
        if tick > now_ms_real() {
            break;
        }
        store::simulate_clock(tick);
        let mut running = tokio::task::JoinSet::new();
        for action in agenda.due_before(tick + TICK) {
            let service = service.clone();
            let cast = cast.clone();
            let seed = spec.seed;
            running.spawn(async move {
                let mut rng = Rng::new(seed ^ (tick as u64).rotate_left(17) ^ rand_of(&action));
                run(&service, &cast, action, tick, &mut rng).await
            });
        }
        while let Some(done) = running.join_next().await {
            let (outcome, next) = done.map_err(|e| e.to_string())?;
            match outcome {
                Ok(what) => summary.count(what),
                Err(refusal) => *summary.refused.entry(refusal).or_default() += 1,
            }
            for (time, action) in next {
                // Whatever follows happens in a later tick.
                agenda.at(time.max(tick + TICK), action);
            }
        }
    }
    store::simulate_clock(0);
    Ok(summary)
}

/// The system's time, whatever the simulated one.
fn now_ms_real() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A number that differs between actions of one tick, for their own random draws. The ids
/// an action names (`req_…`, `apl_…`, `key_…`: random in every run) are left out, so that one
/// seed draws the same for an action in every run, and so generates the same year.
fn rand_of(action: &Action) -> u64 {
    let text = format!("{action:?}");
    let bytes = text.as_bytes();
    let is_id = |at: usize| {
        bytes.get(at..at + 4).is_some_and(|prefix| {
            prefix.iter().take(3).all(u8::is_ascii_lowercase) && prefix.get(3) == Some(&b'_')
        })
    };
    let mut hash = 0xcbf2_9ce4_8422_2325_u64;
    let mut in_id = false;
    for (at, &b) in bytes.iter().enumerate() {
        if in_id && b != b'"' {
            continue;
        }
        in_id = b == b'"' && !in_id && is_id(at + 1);
        hash = (hash ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    hash
}

type Next = Vec<(i64, Action)>;

/// Runs one action: what it did (or why it was refused) and what follows from it.
async fn run(
    service: &Service,
    cast: &Cast,
    action: Action,
    now: i64,
    rng: &mut Rng,
) -> (Result<&'static str, String>, Next) {
    let mut next = Next::new();
    let refused = |what: &str, error: Error| format!("{what}: {}", kind_of(&error));
    let outcome = match action {
        Action::Submit { index } => {
            let (plan, case, full) = request_case(service, index, now);
            let clinic = (index % cast.clinics.len() as u64) as usize;
            let urgency = if rng.chance(12) {
                Urgency::Expedited
            } else {
                Urgency::Standard
            };
            let body = SubmitBody {
                plan,
                case,
                urgency,
                renews: None,
            };
            match requests::submit(service, cast.clinic(clinic), body, None, None).await {
                Ok((_, answer)) => {
                    follow(service, &answer, clinic, Some(&full), now, rng, &mut next);
                    Ok("submitted")
                }
                Err(error) => Err(refused("submit", error)),
            }
        }
        Action::Complete { clinic, id, facts } => {
            match requests::complete(service, cast.clinic(clinic), &id, &facts, None).await {
                Ok((answer, _)) => {
                    follow(service, &answer, clinic, None, now, rng, &mut next);
                    Ok("completed")
                }
                Err(error) => Err(refused("complete", error)),
            }
        }
        Action::Withdraw { clinic, id } => {
            let body = WithdrawalBody {
                reason: "The order was cancelled.".into(),
            };
            requests::withdraw(service, cast.clinic(clinic), &id, &body, None)
                .await
                .map(|_| "withdrawn")
                .map_err(|error| refused("withdraw", error))
        }
        Action::Extend {
            id,
            decide_after,
            then,
        } => {
            let body = RequestExtensionBody {
                reason: "Awaiting the treating oncologist's notes.".into(),
            };
            match review::extend(service, &cast.admin, &id, &body, None).await {
                Ok(_) => {
                    next.push((now + decide_after, *then));
                    Ok("request extended")
                }
                Err(error) => Err(refused("extend", error)),
            }
        }
        Action::Determine {
            id,
            clinic,
            recommended_deny,
            criterion,
        } => determine(
            service,
            cast,
            (&id, clinic, recommended_deny, criterion),
            now,
            rng,
            &mut next,
        )
        .await
        .map_err(|error| refused("determine", error)),
        Action::PeerToPeer { id, reviewer } => {
            let Some(caller) = reviewer_of(cast, &reviewer) else {
                return (Err("peer-to-peer: no reviewer".into()), next);
            };
            let body = PeerToPeerBody {
                prescriber: "The prescribing oncologist".into(),
                held_at: crate::lifecycle::timestamp(now - HOUR),
                outcome: *rng
                    .pick(&[
                        PeerToPeerOutcome::DeterminationStands,
                        PeerToPeerOutcome::InformationRequested,
                        PeerToPeerOutcome::AgreedToApprove,
                        PeerToPeerOutcome::PrescriberUnavailable,
                    ])
                    .unwrap_or(&PeerToPeerOutcome::DeterminationStands),
                notes: String::new(),
                appeal: None,
            };
            peer_to_peer::record(service, caller, &id, &body, None)
                .await
                .map(|_| "peer-to-peer")
                .map_err(|error| refused("peer-to-peer", error))
        }
        Action::Appeal {
            clinic,
            id,
            denier,
            expedited,
        } => {
            let body = AppealBody {
                appellant: *rng
                    .pick(&[Appellant::Prescriber, Appellant::Member, Appellant::Clinic])
                    .unwrap_or(&Appellant::Prescriber),
                urgency: if expedited {
                    Urgency::Expedited
                } else {
                    Urgency::Standard
                },
                grounds: "New clinical notes support the request.".into(),
                attachments: Vec::new(),
            };
            match appeals::file(service, cast.clinic(clinic), &id, &body, None).await {
                Ok((answer, _)) => {
                    let appeal = at(&answer, "/id").as_str().unwrap_or_default().to_string();
                    let clock = at(&answer, "/due_at")
                        .as_str()
                        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                        .map_or(72 * HOUR, |due| due.as_millisecond() - now);
                    let extendable = at(&answer, "/plan")
                        .as_str()
                        .and_then(|p| service.plans.get(p))
                        .is_some_and(|p| p.appeal_clocks().extension_days > 0);
                    if extendable && rng.chance(5) {
                        next.push((
                            now + clock / 2,
                            Action::ExtendAppeal {
                                appeal,
                                denier,
                                decide_after: clock * (60 + rng.below(30) as i64) / 100,
                            },
                        ));
                    } else {
                        next.push((
                            now + within(clock, rng),
                            Action::DecideAppeal { appeal, denier },
                        ));
                    }
                    Ok("appealed")
                }
                Err(error) => Err(refused("appeal", error)),
            }
        }
        Action::ExtendAppeal {
            appeal,
            denier,
            decide_after,
        } => {
            let body = ExtensionBody {
                reason: "Awaiting the transplant center's records.".into(),
            };
            match appeals::extend(service, &cast.admin, &appeal, &body, None).await {
                Ok(_) => {
                    next.push((now + decide_after, Action::DecideAppeal { appeal, denier }));
                    Ok("appeal extended")
                }
                Err(error) => Err(refused("extend appeal", error)),
            }
        }
        Action::DecideAppeal { appeal, denier } => {
            let overturn = rng.chance(45);
            let pool: Vec<&Caller> = if overturn {
                cast.specialists.iter().chain(&cast.others).collect()
            } else {
                cast.specialists.iter().collect()
            };
            let eligible: Vec<&Caller> = pool.into_iter().filter(|c| c.key_id != denier).collect();
            let Some(reviewer) = rng.pick(&eligible).copied() else {
                return (Err("decide appeal: no reviewer".into()), next);
            };
            let body = AppealDecisionBody {
                decision: if overturn {
                    AppealOutcome::Overturn
                } else {
                    AppealOutcome::Uphold
                },
                reason: if overturn {
                    "The new notes show the criteria are met."
                } else {
                    "The new information does not change the criteria not met."
                }
                .into(),
                changes: None,
            };
            appeals::decide(service, reviewer, &appeal, &body, None)
                .await
                .map(|_| if overturn { "overturned" } else { "upheld" })
                .map_err(|error| refused("decide appeal", error))
        }
        Action::Reopen { id, clinic } => {
            let Some(reviewer) = rng.pick(&cast.specialists) else {
                return (Err("reopen: no reviewer".into()), next);
            };
            let body = ReopeningBody {
                reason: "The clinic sent a new pathology report.".into(),
            };
            match review::reopen(service, reviewer, &id, &body, None).await {
                Ok((answer, _)) => {
                    next.push((
                        now + HOUR * (4 + rng.below(20) as i64),
                        determination_of(service, &answer, clinic),
                    ));
                    Ok("reopened")
                }
                Err(error) => Err(refused("reopen", error)),
            }
        }
    };
    (outcome, next)
}

/// A delay within a clock most of the time (94%), past it otherwise.
fn within(clock: i64, rng: &mut Rng) -> i64 {
    if rng.chance(94) {
        clock * (5 + rng.below(85) as i64) / 100
    } else {
        clock * (100 + rng.below(50) as i64) / 100
    }
}

fn reviewer_of<'a>(cast: &'a Cast, key_id: &str) -> Option<&'a Caller> {
    cast.specialists
        .iter()
        .chain(&cast.others)
        .find(|c| c.key_id == key_id)
}

/// What follows a request's answer: a completion or a withdrawal of an incomplete one (its
/// missing facts from the full case), a reviewer's work on one in review.
fn follow(
    service: &Service,
    answer: &Value,
    clinic: usize,
    full: Option<&Value>,
    now: i64,
    rng: &mut Rng,
    next: &mut Next,
) {
    let id = at(answer, "/id").as_str().unwrap_or_default().to_string();
    match at(answer, "/status").as_str() {
        Some("pending_information") => {
            let facts = full.and_then(|full| missing_facts(full, at(answer, "/decision/missing")));
            match facts {
                Some(facts) if rng.chance(85) => next.push((
                    now + HOUR * (4 + rng.below(68) as i64),
                    Action::Complete { clinic, id, facts },
                )),
                _ if rng.chance(60) => next.push((
                    now + DAY * (1 + rng.below(7) as i64),
                    Action::Withdraw { clinic, id },
                )),
                _ => {}
            }
        }
        Some("pending_review") => {
            let clock = at(answer, "/due_at")
                .as_str()
                .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                .map_or(72 * HOUR, |due| due.as_millisecond() - now);
            let extendable = at(answer, "/plan")
                .as_str()
                .and_then(|p| service.plans.get(p))
                .is_some_and(|p| p.clocks.extension_hours > 0)
                && at(answer, "/urgency") == "standard";
            let determination = determination_of(service, answer, clinic);
            if extendable && rng.chance(4) {
                next.push((
                    now + clock / 2,
                    Action::Extend {
                        id,
                        decide_after: clock * (60 + rng.below(60) as i64) / 100,
                        then: Box::new(determination),
                    },
                ));
            } else {
                next.push((now + within(clock, rng), determination));
            }
        }
        _ => {}
    }
}

/// The determination a request in review will get, from its answer: the criterion its
/// decision names first, else its policy's first.
fn determination_of(service: &Service, answer: &Value, clinic: usize) -> Action {
    let policy = at(answer, "/policy").as_str().unwrap_or_default();
    let criteria: Vec<String> = service
        .engine
        .policy_index(policy)
        .and_then(|i| service.engine.policies.get(i))
        .map(|p| p.criteria.iter().map(|c| c.id.clone()).collect())
        .unwrap_or_default();
    let named = at(answer, "/decision/reasons/0/id")
        .as_str()
        .filter(|r| criteria.iter().any(|c| c == r))
        .map(str::to_string);
    Action::Determine {
        id: at(answer, "/id").as_str().unwrap_or_default().to_string(),
        clinic,
        recommended_deny: at(answer, "/outcome") == "deny",
        criterion: named
            .or_else(|| criteria.first().cloned())
            .unwrap_or_default(),
    }
}

/// A reviewer's determination on a request in review, and what follows a denial or an
/// approval with changes: a peer-to-peer discussion, an appeal, a reopening.
async fn determine(
    service: &Service,
    cast: &Cast,
    (id, clinic, recommended_deny, criterion): (&str, usize, bool, String),
    now: i64,
    rng: &mut Rng,
    next: &mut Next,
) -> Result<&'static str, Error> {
    let roll = rng.below(100);
    let decision = match (recommended_deny, roll) {
        (true, r) if r < 70 => DeterminationDecision::Deny,
        (true, _) => DeterminationDecision::Approve,
        (false, r) if r < 60 => DeterminationDecision::Approve,
        (false, r) if r < 75 => DeterminationDecision::ApproveWithChanges,
        (false, _) => DeterminationDecision::Deny,
    };
    let reviewer = if decision == DeterminationDecision::Deny || rng.chance(70) {
        rng.pick(&cast.specialists)
    } else {
        rng.pick(&cast.others)
    }
    .unwrap_or(&cast.admin);
    // A denial cites what fails the request, as the reviewer is offered it; a request that
    // nothing fails (every criterion met, in review for a clinician's judgement) is approved.
    let mut decision = decision;
    let mut criterion = criterion;
    if decision == DeterminationDecision::Deny {
        let read = request_view::read(service, reviewer, id).await?;
        match at(&read, "/denial_grounds/0/id").as_str() {
            Some(ground) => criterion = ground.to_string(),
            None if !at(&read, "/policy").as_str().unwrap_or_default().is_empty() => {
                decision = DeterminationDecision::Approve;
            }
            None => {}
        }
    }
    let mut body = DeterminationBody {
        decision,
        reason: match decision {
            DeterminationDecision::Deny => "The documented facts do not meet the criterion.",
            DeterminationDecision::Approve => "The clinical notes meet the policy.",
            DeterminationDecision::ApproveWithChanges => "Approved for one cycle, then reassessed.",
        }
        .into(),
        criterion,
        changes: (decision == DeterminationDecision::ApproveWithChanges).then(|| Changes {
            cycles: Some(1),
            ..Changes::default()
        }),
    };
    let decided = match review::determine(service, reviewer, id, &body, None).await {
        Err(Error::Invalid(_)) if decision == DeterminationDecision::ApproveWithChanges => {
            body.decision = DeterminationDecision::Approve;
            body.changes = None;
            review::determine(service, reviewer, id, &body, None).await?
        }
        // More asked than may be approved: approved for one cycle, with its notice.
        Err(Error::Invalid(_)) if decision == DeterminationDecision::Approve => {
            body.decision = DeterminationDecision::ApproveWithChanges;
            body.reason = "Approved for one cycle, then reassessed.".into();
            body.changes = Some(Changes {
                cycles: Some(1),
                ..Changes::default()
            });
            review::determine(service, reviewer, id, &body, None).await?
        }
        other => other?,
    };
    let adverse = body.decision != DeterminationDecision::Approve;
    if adverse && at(&decided.0, "/status") != "withdrawn" {
        let denier = reviewer.key_id.clone();
        if body.decision == DeterminationDecision::Deny && rng.chance(20) {
            next.push((
                now + DAY * (1 + rng.below(3) as i64),
                Action::PeerToPeer {
                    id: id.to_string(),
                    reviewer: denier.clone(),
                },
            ));
        }
        let appeal_chance = if body.decision == DeterminationDecision::Deny {
            30
        } else {
            20
        };
        if rng.chance(appeal_chance) {
            next.push((
                now + DAY * (2 + rng.below(28) as i64),
                Action::Appeal {
                    clinic,
                    id: id.to_string(),
                    denier,
                    expedited: rng.chance(10),
                },
            ));
        } else if body.decision == DeterminationDecision::Deny && rng.chance(4) {
            next.push((
                now + DAY * (3 + rng.below(7) as i64),
                Action::Reopen {
                    id: id.to_string(),
                    clinic,
                },
            ));
        }
    }
    Ok(match body.decision {
        DeterminationDecision::Deny => "denied",
        DeterminationDecision::Approve => "approved by a reviewer",
        DeterminationDecision::ApproveWithChanges => "approved with changes",
    })
}

/// The generated case of request `index` on the day of `now`, for a plan that covers its
/// drug: (plan, the case as submitted, the full case its missing facts come from).
fn request_case(service: &Service, index: u64, now: i64) -> (String, Value, Value) {
    let mut rng = Rng::new(index.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5eed);
    let mut full = generate::case(&mut rng, index, 0);
    // Dates move with the request: its date becomes the day of receipt.
    let received = crate::lifecycle::day_of(now);
    let shift = at(&full, "/request/date")
        .as_str()
        .and_then(Date::parse)
        .map_or(0, |date| received.days_since(date));
    shift_dates(&mut full, shift);
    if let Some(request) = full.pointer_mut("/request").and_then(Value::as_object_mut) {
        // The plan gives the line of business.
        request.remove("line_of_business");
        // A renewal names the authorization it continues, which a generated case has not:
        // the clinic asks as for a course the payer has no record of.
        if request.get("kind").and_then(Value::as_str) == Some("renewal") {
            request.insert("kind".into(), Value::from("initial"));
        }
    }
    let drug = at(&full, "/request/drug")
        .as_str()
        .unwrap_or_default()
        .to_string();
    let plans: Vec<&str> = service
        .plans
        .plans
        .iter()
        .filter(|p| p.policies.contains_key(&drug))
        .map(|p| p.id.as_str())
        .collect();
    let plan = rng.pick(&plans).map(|p| p.to_string()).unwrap_or_default();
    // About one request in ten leaves out a fact or two, which it is asked for.
    let mut case = full.clone();
    if rng.chance(10) {
        for _ in 0..1 + rng.below(2) {
            let section = *rng
                .pick(&["diagnosis", "history", "patient"])
                .unwrap_or(&"diagnosis");
            if let Some(object) = case.get_mut(section).and_then(Value::as_object_mut) {
                let keys: Vec<String> = object.keys().cloned().collect();
                if let Some(key) = rng.pick(&keys) {
                    object.remove(key);
                }
            }
        }
    }
    (plan, case, full)
}

/// Every `YYYY-MM-DD` in the value, `days` later.
fn shift_dates(value: &mut Value, days: i64) {
    match value {
        Value::String(text) => {
            if let Some(moved) = Date::parse(text).and_then(|d| d.add_days(days)) {
                *text = moved.to_string();
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| shift_dates(v, days)),
        Value::Object(map) => map.values_mut().for_each(|v| shift_dates(v, days)),
        _ => {}
    }
}

/// The facts a decision's `missing` keys name, from the full case; None when the full case
/// lacks one (the clinic cannot give it).
fn missing_facts(full: &Value, missing: &Value) -> Option<Value> {
    let mut facts = json!({});
    for key in missing.as_array()? {
        let (section, name) = key.as_str()?.split_once('.')?;
        let value = full.get(section)?.get(name)?.clone();
        if let Some(object) = facts.as_object_mut() {
            object
                .entry(section.to_string())
                .or_insert_with(|| json!({}))
                .as_object_mut()?
                .insert(name.to_string(), value);
        }
    }
    Some(facts)
}

/// The value at a JSON pointer, null when there is none.
fn at<'a>(value: &'a Value, pointer: &str) -> &'a Value {
    value.pointer(pointer).unwrap_or(&Value::Null)
}

/// The kind of a refusal, for the summary (never a message with data in it).
fn kind_of(error: &Error) -> String {
    match error {
        Error::Forbidden(_) => "forbidden".into(),
        Error::NotFound => "not found".into(),
        Error::Invalid(problems) => format!(
            "invalid {}",
            problems
                .iter()
                .map(|(field, _)| field.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Error::Conflict(_) => "conflict".into(),
        Error::Internal(_) => "internal".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_move_together() {
        let mut case = json!({"request": {"date": "2026-01-10"}, "patient": {"birth_date": "2000-02-29"}, "n": 3});
        shift_dates(&mut case, 366);
        assert_eq!(case["request"]["date"], "2027-01-11");
        assert_eq!(case["patient"]["birth_date"], "2001-03-01");
        assert_eq!(case["n"], 3);
    }

    #[test]
    fn missing_facts_come_from_the_full_case_or_not_at_all() {
        let full = json!({"diagnosis": {"mrd_percent": 0.5, "ph": "negative"}});
        assert_eq!(
            missing_facts(&full, &json!(["diagnosis.mrd_percent"])),
            Some(json!({"diagnosis": {"mrd_percent": 0.5}}))
        );
        assert_eq!(missing_facts(&full, &json!(["labs.ast"])), None);
    }
}
