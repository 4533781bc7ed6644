//! Peer-to-peer discussions: a reviewer and the prescriber talk a request over, before a
//! determination, after it or during an appeal, and the reviewer records who, when, the
//! outcome and the notes, as part of the request's audited state.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::appeals::GROUNDS_MAX;
use super::requests::fetch;
use super::retries::{Begun, Retry, begin};
use super::{Error, Service, invalid, require, text, timestamp};
use crate::keys::{Caller, Role};
use crate::store::appeals::{self as records, PeerToPeer};
use crate::store::{self, now_ms, random_id};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PeerToPeerOutcome {
    /// The reviewer will approve (or overturn) on what was discussed.
    AgreedToApprove,
    /// The determination stands.
    DeterminationStands,
    /// The prescriber will send more information.
    InformationRequested,
    /// The prescriber could not be reached.
    PrescriberUnavailable,
}

impl PeerToPeerOutcome {
    fn as_str(self) -> &'static str {
        match self {
            PeerToPeerOutcome::AgreedToApprove => "agreed_to_approve",
            PeerToPeerOutcome::DeterminationStands => "determination_stands",
            PeerToPeerOutcome::InformationRequested => "information_requested",
            PeerToPeerOutcome::PrescriberUnavailable => "prescriber_unavailable",
        }
    }
}

/// A peer-to-peer discussion the reviewer held with the prescriber.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PeerToPeerBody {
    /// The prescriber's name (and NPI).
    pub prescriber: String,
    /// When it was held, RFC 3339.
    pub held_at: String,
    pub outcome: PeerToPeerOutcome,
    #[serde(default)]
    pub notes: String,
    /// The appeal it was held during, if any.
    #[serde(default)]
    pub appeal: Option<String>,
}

/// Records a peer-to-peer discussion a reviewer held with the prescriber on a request,
/// before or during an appeal.
pub async fn record(
    service: &Service,
    caller: &Caller,
    request_id: &str,
    body: &PeerToPeerBody,
    retry: Option<&Retry>,
) -> Result<(Value, bool), Error> {
    require(caller, &[Role::Reviewer])?;
    let prescriber = text("prescriber", &body.prescriber, 200)?;
    let notes = body.notes.trim().to_string();
    if notes.chars().count() > GROUNDS_MAX {
        return Err(invalid(
            "notes",
            format!("at most {GROUNDS_MAX} characters"),
        ));
    }
    let held_at = body
        .held_at
        .parse::<jiff::Timestamp>()
        .map_err(|_| invalid("held_at", "a time as RFC 3339 (2026-03-01T14:30:00Z)"))?
        .as_millisecond();
    let now = now_ms();
    // A clock a few minutes apart is not a discussion in the future.
    if held_at > now + 5 * 60_000 {
        return Err(invalid("held_at", "is in the future"));
    }
    let mut tx = match begin(service, caller, retry).await? {
        Begun::Fresh(tx) => tx,
        Begun::Replayed(answer) => return Ok((answer, true)),
    };
    let row = fetch(&mut tx, caller, request_id).await?;
    // A time given to the minute may fall in the minute the request came in.
    if held_at < row.created_at - 5 * 60_000 {
        return Err(invalid("held_at", "is before the request was received"));
    }
    if let Some(appeal) = &body.appeal {
        let of_this = records::fetch(&mut tx, appeal)
            .await?
            .is_some_and(|a| a.request_id == row.id);
        if !of_this {
            return Err(invalid(
                "appeal",
                format!("no appeal `{appeal}` of this request"),
            ));
        }
    }
    let record = PeerToPeer {
        id: random_id("p2p_"),
        request_id: row.id.clone(),
        appeal_id: body.appeal.clone(),
        prescriber,
        held_at,
        outcome: body.outcome.as_str().to_string(),
        notes,
        reviewer_key: caller.key_id.clone(),
        reviewer_name: caller.name.clone(),
        reviewer_credentials: caller.credentials.clone(),
        recorded_at: now,
    };
    records::insert_peer_to_peer(&mut tx, &record).await?;
    store::audit(
        &mut tx,
        &caller
            .audit_record("request.peer_to_peer", &row.id)
            .binding(store::Binds::Request),
    )
    .await?;
    let answer = view(&record);
    if let Some(retry) = retry {
        retry.remember(&mut tx, caller, &answer).await?;
    }
    tx.commit().await?;
    Ok((answer, false))
}

pub(super) fn view(record: &PeerToPeer) -> Value {
    json!({
        "id": record.id,
        "request_id": record.request_id,
        "appeal": record.appeal_id,
        "prescriber": record.prescriber,
        "held_at": timestamp(record.held_at),
        "outcome": record.outcome,
        "notes": record.notes,
        "reviewer": {"name": record.reviewer_name, "credentials": record.reviewer_credentials},
        "recorded_at": timestamp(record.recorded_at),
    })
}
