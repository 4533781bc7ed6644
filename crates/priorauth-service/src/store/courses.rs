//! A member's course held across the services of one PostgreSQL database: a transaction on a
//! connection of its own holding a transaction-scoped advisory lock keyed by the course, so a
//! second service deciding a request of the same member waits for the first's decision to be
//! stored. Rolled back when dropped, which releases the lock.

use super::{Store, StoreError, Tx};
use sha2::{Digest, Sha256};

/// Courses one service holds on the database at once: each is a request in flight between
/// reading its member's records and storing its decision; more wait for a connection.
pub const SHARED_HOLDS: u32 = 8;

/// Holds the course (`plan`, `member`, `drug`) on the database until the answer is dropped;
/// None where the store has no shared holds (SQLite: one service per file).
pub async fn hold_shared(
    store: &Store,
    plan: &str,
    member: &str,
    drug: &str,
) -> Result<Option<Tx>, StoreError> {
    let Some(pool) = &store.courses else {
        return Ok(None);
    };
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(lock_key(plan, member, drug))
        .execute(&mut *tx)
        .await?;
    Ok(Some(tx))
}

/// The advisory lock's key: the first 8 bytes of the course's SHA-256 (two courses sharing a
/// key only take turns). The migrator's own lock is a key of the same space; a course meeting
/// it would wait for a migration to finish, which a running service never starts.
fn lock_key(plan: &str, member: &str, drug: &str) -> i64 {
    let digest = Sha256::new()
        .chain_update(plan)
        .chain_update([0])
        .chain_update(member)
        .chain_update([0])
        .chain_update(drug)
        .finalize();
    let mut first = [0; 8];
    first
        .iter_mut()
        .zip(digest.iter())
        .for_each(|(to, from)| *to = *from);
    i64::from_be_bytes(first)
}

#[cfg(test)]
mod tests {
    use super::lock_key;

    #[test]
    fn a_course_is_one_key_and_its_parts_are_not_run_together() {
        assert_eq!(lock_key("p", "m", "d"), lock_key("p", "m", "d"));
        assert_ne!(lock_key("p", "m", "d"), lock_key("p", "md", ""));
        assert_ne!(lock_key("p", "m", "d"), lock_key("q", "m", "d"));
    }
}
