//! Reviewers' comments on a request or on one of its policy's criteria ("MRD measured by
//! flow, not PCR: asked the lab"): the notes a team leaves for the next reviewer and the
//! medical director. They stay inside the payer: a requester never reads them, and no notice
//! quotes them.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::requests::fetch;
use super::{Error, Service, invalid, raced, require, text, timestamp};
use crate::keys::{Caller, Role};
use crate::store::attachments::{self as records, Comment};
use crate::store::{self, Tx, now_ms};

const TEXT_MAX: usize = 2_000;

/// A reviewer's comment.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommentBody {
    /// The id of the criterion of the request's policy it is about; absent for the request
    /// as a whole.
    #[serde(default)]
    pub criterion: Option<String>,
    /// The comment, 1 to 2,000 characters.
    pub text: String,
}

/// Adds a reviewer's comment to a request (in any status: a decided request is read again on
/// appeal). The answer: the request's comments.
pub async fn add(
    service: &Service,
    caller: &Caller,
    id: &str,
    body: &CommentBody,
) -> Result<Value, Error> {
    require(caller, &[Role::Reviewer])?;
    let words = text("text", &body.text, TEXT_MAX)?;
    let mut tx = service.store.pool.begin().await?;
    let row = fetch(&mut tx, caller, id).await?;
    if let Some(criterion) = &body.criterion {
        let known = service
            .engine
            .policy_index(&row.policy)
            .and_then(|i| service.engine.policies.get(i))
            .is_some_and(|policy| policy.criteria.iter().any(|c| &c.id == criterion));
        if !known {
            return Err(invalid(
                "criterion",
                if row.policy.is_empty() {
                    "no policy governs this request: comment on the request as a whole".to_string()
                } else {
                    format!("`{criterion}` is not a criterion of {}", row.policy)
                },
            ));
        }
    }
    let comment = Comment {
        n: 0,
        criterion: body.criterion.clone(),
        body: words,
        author_key: caller.key_id.clone(),
        author_name: caller.name.clone(),
        at: now_ms(),
    };
    records::comment(&mut tx, id, &comment)
        .await
        .map_err(|error| raced(error, "comment"))?;
    // Bound to the request, whose audited state now holds it (the entry's target is the
    // request, as every entry that binds one).
    store::audit(
        &mut tx,
        &caller
            .audit_record("request.comment", id)
            .binding(store::Binds::Request),
    )
    .await?;
    let comments = listed(&mut tx, id).await?;
    tx.commit().await?;
    Ok(json!({"request_id": id, "comments": comments}))
}

/// The comments on a request, for the payer's readers.
pub(super) async fn listed(tx: &mut Tx, id: &str) -> Result<Value, Error> {
    Ok(Value::Array(
        records::comments(tx, id)
            .await?
            .iter()
            .map(|c| {
                json!({
                    "n": c.n,
                    "criterion": c.criterion,
                    "text": c.body,
                    "by": c.author_name,
                    "at": timestamp(c.at),
                })
            })
            .collect(),
    ))
}
