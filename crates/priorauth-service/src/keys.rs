//! API keys: random secrets shown once, stored as SHA-256 hashes, each with an organization
//! and a role. A key is looked up by its hash, so no secret is ever compared in the clear,
//! and the hash found is compared with the caller's in constant time.

use sqlx::Row;
use subtle::ConstantTimeEq;

use crate::store::{AuditRecord, Store, StoreError, now_ms, random_id, sha256_hex};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A provider's system: submits and follows its own organization's requests.
    Submitter,
    /// A clinician at the payer: works the review queue and records determinations.
    Reviewer,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Submitter => "submitter",
            Role::Reviewer => "reviewer",
            Role::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "submitter" => Some(Role::Submitter),
            "reviewer" => Some(Role::Reviewer),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// Who is calling.
#[derive(Debug, Clone)]
pub struct Caller {
    pub key_id: String,
    pub organization: String,
    pub role: Role,
    pub name: String,
    /// Licence and degree of a reviewer (`MD, Hematology`), recorded on determinations.
    pub credentials: String,
}

impl Caller {
    /// The audit record of this caller doing `action` to `target`.
    pub fn audit_record(&self, action: &'static str, target: &str) -> AuditRecord {
        AuditRecord {
            actor: self.key_id.clone(),
            organization: self.organization.clone(),
            action,
            target: target.to_string(),
            binds: None,
            state: None,
        }
    }
}

/// Creates a key and returns (key id, secret). The secret is not stored.
pub async fn create(
    store: &Store,
    organization: &str,
    role: Role,
    name: &str,
    credentials: &str,
) -> Result<(String, String), StoreError> {
    let secret = random_id("pak_");
    let id = random_id("key_");
    sqlx::query("INSERT INTO api_keys (id, key_hash, organization, role, name, credentials, created_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)")
        .bind(&id)
        .bind(sha256_hex(&secret))
        .bind(organization)
        .bind(role.as_str())
        .bind(name)
        .bind(credentials)
        .bind(now_ms())
        .execute(&store.pool)
        .await?;
    Ok((id, secret))
}

/// A key as an administrator sees it: never its secret nor its hash.
#[derive(Debug, Clone)]
pub struct KeyListing {
    pub id: String,
    pub organization: String,
    pub role: String,
    pub name: String,
    pub credentials: String,
    /// Milliseconds since the epoch.
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// Every key, oldest first.
pub async fn list(store: &Store) -> Result<Vec<KeyListing>, StoreError> {
    let rows = sqlx::query("SELECT id, organization, role, name, credentials, created_at, revoked_at FROM api_keys ORDER BY created_at, id")
        .fetch_all(&store.pool)
        .await?;
    rows.iter()
        .map(|row| {
            Ok(KeyListing {
                id: row.try_get("id")?,
                organization: row.try_get("organization")?,
                role: row.try_get("role")?,
                name: row.try_get("name")?,
                credentials: row.try_get("credentials")?,
                created_at: row.try_get("created_at")?,
                revoked_at: row.try_get("revoked_at")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(StoreError::from)
}

pub async fn revoke(store: &Store, id: &str) -> Result<bool, StoreError> {
    let done =
        sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now_ms())
            .bind(id)
            .execute(&store.pool)
            .await?;
    Ok(done.rows_affected() == 1)
}

/// The caller a secret belongs to, if the key exists and is not revoked. Asked of the database
/// on every call, so a revocation holds from the moment it commits.
pub async fn authenticate(store: &Store, secret: &str) -> Result<Option<Caller>, StoreError> {
    let hash = sha256_hex(secret);
    let row = sqlx::query("SELECT id, key_hash, organization, role, name, credentials FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL")
        .bind(&hash)
        .fetch_optional(&store.reads)
        .await?;
    let Some(row) = row else { return Ok(None) };
    let stored: String = row.try_get("key_hash")?;
    if !hashes_match(&stored, &hash) {
        return Ok(None);
    }
    let role: String = row.try_get("role")?;
    Ok(Role::parse(&role).map(|role| Caller {
        key_id: row.try_get("id").unwrap_or_default(),
        organization: row.try_get("organization").unwrap_or_default(),
        role,
        name: row.try_get("name").unwrap_or_default(),
        credentials: row.try_get("credentials").unwrap_or_default(),
    }))
}

/// Whether a stored key hash is the caller's, in time independent of where they differ.
/// The index lookup above already matched them; this check does not rely on the database's
/// comparison (its collation, its timing) to decide who is authenticated.
fn hashes_match(stored: &str, computed: &str) -> bool {
    // Both are 64 hexadecimal digits, so the length check reveals nothing.
    stored.len() == computed.len() && bool::from(stored.as_bytes().ct_eq(computed.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::hashes_match;
    use crate::store::sha256_hex;

    #[test]
    fn only_the_same_hash_matches() {
        let hash = sha256_hex("pak_secret");
        assert!(hashes_match(&hash, &sha256_hex("pak_secret")));
        assert!(!hashes_match(&hash, &sha256_hex("pak_secreT")));
        // One digit off, first and last.
        let mut first = hash.clone().into_bytes();
        first[0] = if first[0] == b'0' { b'1' } else { b'0' };
        let mut last = hash.clone().into_bytes();
        last[63] = if last[63] == b'0' { b'1' } else { b'0' };
        for other in [first, last] {
            assert!(!hashes_match(&hash, &String::from_utf8(other).unwrap()));
        }
        // Case matters: a database that compares text case-insensitively does not decide.
        assert_ne!(hash, hash.to_uppercase());
        assert!(!hashes_match(&hash.to_uppercase(), &hash));
        assert!(!hashes_match(&hash, &hash[..63]));
        assert!(!hashes_match("", &hash));
    }
}
