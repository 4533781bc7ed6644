//! CRD coverage assertions (see `store/assertions.rs`): recorded by CRD for each order a
//! policy governs, found by DTR for the caller's organization only, each write and read
//! audited.

use serde_json::Value;

use super::{Error, Service, now_ms};
use crate::keys::Caller;
use crate::store::writer::Write;
use crate::store::{self, assertions};

/// A CRD coverage assertion given for an order a policy of `plan` governs: its id, the
/// policy, and the case CRD read for the order (the order's facts and the chart's), kept so
/// that DTR's `$questionnaire-package` called with the id as its `context` (as a DTR client
/// does after CRD: the context "May be used to determine what Questionnaires to return and/or
/// to support pre-population") finds the form and fills it in. Audited
/// (`crd.assertion`).
pub async fn record(
    service: &Service,
    caller: &Caller,
    id: &str,
    plan: &str,
    policy: &str,
    case: &Value,
) -> Result<(), Error> {
    let assertion = assertions::Assertion {
        organization: caller.organization.clone(),
        plan: plan.to_string(),
        policy: policy.to_string(),
        case_json: case.to_string(),
    };
    // The assertion and its audit entry in one transaction: neither is kept without the other.
    let mut tx = service.store.pool.begin().await?;
    assertions::put(&mut tx, id, &assertion, now_ms()).await?;
    store::audit(&mut tx, &caller.audit_record("crd.assertion", id)).await?;
    tx.commit().await?;
    Ok(())
}

/// The CRD coverage assertion `id` of the caller's organization: (plan, policy, case); None
/// for an unknown id or another organization's, alike. The read is audited
/// (`crd.assertion.read`).
pub async fn find(
    service: &Service,
    caller: &Caller,
    id: &str,
) -> Result<Option<(String, String, String)>, Error> {
    if !super::could_be_id(id) {
        return Ok(None);
    }
    let Some(found) = assertions::get(&service.store.pool, id).await? else {
        return Ok(None);
    };
    if found.organization != caller.organization {
        return Ok(None);
    }
    service
        .writer
        .write(Write::Audit(caller.audit_record("crd.assertion.read", id)))
        .await?;
    Ok(Some((found.plan, found.policy, found.case_json)))
}
