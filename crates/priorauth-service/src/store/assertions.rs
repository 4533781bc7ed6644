//! CRD coverage assertions: the case CRD read for an order a policy governs, kept under the
//! assertion id it answered, which DTR's `$questionnaire-package` is later given as its
//! `context`. Patient data: written and read under audit (`lifecycle/assertions.rs`).

use sqlx::Row;

use super::StoreError;
use super::packed::{pack, unpack};

/// A CRD coverage assertion as stored: what DTR's `context` finds.
#[derive(Debug, Clone)]
pub struct Assertion {
    pub organization: String,
    pub plan: String,
    pub policy: String,
    /// The case CRD read for the order (restored).
    pub case_json: String,
}

/// Stores (or, for the same id, replaces) a CRD coverage assertion within `tx`, which holds
/// its audit entry too.
pub async fn put(
    tx: &mut super::Tx,
    id: &str,
    assertion: &Assertion,
    at: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO crd_assertions (id, organization, plan, policy, case_json, created_at) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (id) DO UPDATE SET organization = $2, plan = $3, policy = $4, case_json = $5, created_at = $6",
    )
    .bind(id)
    .bind(&assertion.organization)
    .bind(&assertion.plan)
    .bind(&assertion.policy)
    .bind(pack(&assertion.case_json))
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The CRD coverage assertion `id`, if one is stored.
pub async fn get(pool: &sqlx::AnyPool, id: &str) -> Result<Option<Assertion>, StoreError> {
    let Some(row) = sqlx::query(
        "SELECT organization, plan, policy, case_json FROM crd_assertions WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?
    else {
        return Ok(None);
    };
    Ok(Some(Assertion {
        organization: row.try_get("organization")?,
        plan: row.try_get("plan")?,
        policy: row.try_get("policy")?,
        case_json: unpack(row.try_get("case_json")?)?,
    }))
}
