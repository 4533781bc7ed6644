//! The audit log's SQL: an append-only chain of entries, each hashing the one before, with
//! its head in a row of its own; and the walk that verifies it.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreError, Tx, now_ms, sha256_hex};

/// One entry of the audit log, as it is hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub seq: i64,
    pub at: i64,
    pub actor: String,
    pub organization: String,
    pub action: String,
    pub target: String,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditEntry {
    fn digest(&self) -> String {
        // Fields are joined with a separator that none of them contains (ids, actions).
        sha256_hex(&format!(
            "{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}",
            self.prev_hash,
            self.seq,
            self.at,
            self.actor,
            self.organization,
            self.action,
            self.target
        ))
    }

    fn from_row(row: &AnyRow) -> Result<AuditEntry, sqlx::Error> {
        Ok(AuditEntry {
            seq: row.try_get("seq")?,
            at: row.try_get("at")?,
            actor: row.try_get("actor")?,
            organization: row.try_get("organization")?,
            action: row.try_get("action")?,
            target: row.try_get("target")?,
            prev_hash: row.try_get("prev_hash")?,
            hash: row.try_get("hash")?,
        })
    }
}

/// Who did what to which record, as the audit log records it (with its time and links).
#[derive(Debug, Clone)]
pub struct AuditRecord {
    pub actor: String,
    pub organization: String,
    pub action: &'static str,
    pub target: String,
}

/// Appends to the audit log inside `tx`. The head row is updated first, which holds its lock
/// until commit, so appends from concurrent transactions (and instances) chain in order.
pub async fn audit(tx: &mut Tx, record: &AuditRecord) -> Result<(), StoreError> {
    let mut chain = AuditChain::lock(tx).await?;
    chain.append(tx, record).await?;
    chain.save(tx).await
}

/// The end of the audit chain, held for one transaction: `lock` takes the head row (its row
/// lock lasts until commit), `append` links entries in memory and inserts them, `save` writes
/// the new head. Many entries then cost one head read and one head write.
#[derive(Debug)]
pub struct AuditChain {
    seq: i64,
    hash: String,
}

impl AuditChain {
    pub async fn lock(tx: &mut Tx) -> Result<AuditChain, StoreError> {
        // An update, not a select: it takes the row lock on PostgreSQL (SQLite has one writer).
        let head = sqlx::query("UPDATE audit_head SET seq = seq WHERE id = 1 RETURNING seq, hash")
            .fetch_one(&mut **tx)
            .await?;
        Ok(AuditChain {
            seq: head.try_get("seq")?,
            hash: head.try_get("hash")?,
        })
    }

    pub async fn append(&mut self, tx: &mut Tx, record: &AuditRecord) -> Result<(), StoreError> {
        let mut entry = AuditEntry {
            seq: self.seq + 1,
            at: now_ms(),
            actor: record.actor.clone(),
            organization: record.organization.clone(),
            action: record.action.to_string(),
            target: record.target.clone(),
            prev_hash: self.hash.clone(),
            hash: String::new(),
        };
        entry.hash = entry.digest();
        sqlx::query("INSERT INTO audit_log (seq, at, actor, organization, action, target, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
            .bind(entry.seq)
            .bind(entry.at)
            .bind(&entry.actor)
            .bind(&entry.organization)
            .bind(&entry.action)
            .bind(&entry.target)
            .bind(&entry.prev_hash)
            .bind(&entry.hash)
            .execute(&mut **tx)
            .await?;
        self.seq = entry.seq;
        self.hash = entry.hash;
        Ok(())
    }

    pub async fn save(self, tx: &mut Tx) -> Result<(), StoreError> {
        sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
            .bind(self.seq)
            .bind(&self.hash)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

/// What `priorauth audit verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditReport {
    pub entries: i64,
    /// Empty when the chain is intact.
    pub problems: Vec<String>,
}

/// Walks the whole log: each entry's hash, its link to the one before, the sequence without
/// gaps, and the head (which catches entries deleted from the end).
pub async fn verify_audit(store: &Store) -> Result<AuditReport, StoreError> {
    let rows = sqlx::query("SELECT seq, at, actor, organization, action, target, prev_hash, hash FROM audit_log ORDER BY seq")
        .fetch_all(&store.pool)
        .await?;
    let mut problems = Vec::new();
    let mut previous_hash = String::new();
    let mut expected_seq = 1;
    for row in &rows {
        let entry = AuditEntry::from_row(row)?;
        if entry.seq != expected_seq {
            problems.push(format!(
                "entry {expected_seq} is missing (next is {})",
                entry.seq
            ));
        }
        if entry.prev_hash != previous_hash {
            problems.push(format!(
                "entry {} does not follow the entry before it",
                entry.seq
            ));
        }
        if entry.digest() != entry.hash {
            problems.push(format!(
                "entry {} was changed after it was written",
                entry.seq
            ));
        }
        previous_hash = entry.hash.clone();
        expected_seq = entry.seq + 1;
    }
    let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
        .fetch_one(&store.pool)
        .await?;
    let (head_seq, head_hash): (i64, String) = (head.try_get("seq")?, head.try_get("hash")?);
    if head_seq != expected_seq - 1 || head_hash != previous_hash {
        problems.push(format!(
            "the log ends at entry {} but {head_seq} were written",
            expected_seq - 1
        ));
    }
    Ok(AuditReport {
        entries: rows.len() as i64,
        problems,
    })
}
