//! Callers that sign their own credentials, beside API keys: SMART Backend Services clients
//! (a signed client assertion, `private_key_jwt`, traded at `POST /oauth/token` for a
//! short-lived access token) and CDS Hooks clients (a JWT signed for each hook call). Each
//! registered client names the organization and role its calls act as, as a key does, and
//! the public keys it signs with (a JWKS). JWTs are verified with jsonwebtoken: RS384 or
//! ES384 only, the audience this service's own URL, at most five minutes to live, and each
//! `jti` accepted once.

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sqlx::Row;

use crate::keys::{self, Caller, Role};
use crate::store::{Store, StoreError, now_ms, random_id, sha256_hex};

/// How long an access token lives.
pub const TOKEN_SECONDS: i64 = 300;
/// The longest a signed JWT may live (SMART: "no more than five minutes in the future").
const JWT_MAX_SECONDS: i64 = 300;
/// Clock skew allowed on `exp` and `iat`.
const LEEWAY_SECONDS: u64 = 60;

/// A registered client.
#[derive(Debug, Clone)]
pub struct Client {
    pub id: String,
    pub organization: String,
    pub role: Role,
    pub name: String,
    pub jwks: JwkSet,
}

/// Registers a client, or replaces its keys, organization, role and name.
pub async fn register(
    store: &Store,
    id: &str,
    organization: &str,
    role: Role,
    name: &str,
    jwks_json: &str,
) -> Result<(), String> {
    if id.is_empty() || id.len() > 255 || id.chars().any(char::is_control) {
        return Err("the client id must be 1 to 255 printable characters".into());
    }
    let jwks: JwkSet = serde_json::from_str(jwks_json).map_err(|e| format!("not a JWKS: {e}"))?;
    if jwks.keys.is_empty() {
        return Err("the JWKS holds no key".into());
    }
    for key in &jwks.keys {
        DecodingKey::from_jwk(key).map_err(|e| format!("a key of the JWKS is not usable: {e}"))?;
    }
    sqlx::query("INSERT INTO clients (id, organization, role, name, jwks_json, created_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, NULL) ON CONFLICT (id) DO UPDATE SET organization = excluded.organization, role = excluded.role, name = excluded.name, jwks_json = excluded.jwks_json, revoked_at = NULL")
        .bind(id)
        .bind(organization)
        .bind(role.as_str())
        .bind(name)
        .bind(jwks_json)
        .bind(now_ms())
        .execute(&store.pool)
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// Revokes a client: its JWTs and access tokens are refused from the next call on.
pub async fn revoke(store: &Store, id: &str) -> Result<bool, StoreError> {
    let done =
        sqlx::query("UPDATE clients SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now_ms())
            .bind(id)
            .execute(&store.pool)
            .await?;
    Ok(done.rows_affected() == 1)
}

/// Every client: (id, organization, role, name, revoked), never a key.
pub async fn list(
    store: &Store,
) -> Result<Vec<(String, String, String, String, bool)>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, organization, role, name, revoked_at FROM clients ORDER BY created_at, id",
    )
    .fetch_all(&store.pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok((
                row.try_get("id")?,
                row.try_get("organization")?,
                row.try_get("role")?,
                row.try_get("name")?,
                row.try_get::<Option<i64>, _>("revoked_at")?.is_some(),
            ))
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(StoreError::from)
}

async fn client(store: &Store, id: &str) -> Result<Option<Client>, StoreError> {
    let row = sqlx::query("SELECT id, organization, role, name, jwks_json FROM clients WHERE id = $1 AND revoked_at IS NULL")
        .bind(id)
        .fetch_optional(&store.reads)
        .await?;
    let Some(row) = row else { return Ok(None) };
    let role: String = row.try_get("role")?;
    let jwks: String = row.try_get("jwks_json")?;
    let (Some(role), Ok(jwks)) = (Role::parse(&role), serde_json::from_str(&jwks)) else {
        return Ok(None);
    };
    Ok(Some(Client {
        id: row.try_get("id")?,
        organization: row.try_get("organization")?,
        role,
        name: row.try_get("name")?,
        jwks,
    }))
}

/// Why a credential was refused; the words go to the caller (they name no record).
#[derive(Debug)]
pub enum Refused {
    /// Not a credential this service accepts: 401.
    Invalid(String),
    /// A valid token whose scopes do not allow this call: 403.
    Scope(String),
    Store(StoreError),
}

impl From<StoreError> for Refused {
    fn from(error: StoreError) -> Refused {
        Refused::Store(error)
    }
}

impl From<sqlx::Error> for Refused {
    fn from(error: sqlx::Error) -> Refused {
        Refused::Store(StoreError(error))
    }
}

#[derive(Debug, Deserialize)]
struct Claims {
    iss: String,
    #[serde(default)]
    sub: Option<String>,
    exp: i64,
    #[serde(default)]
    jti: Option<String>,
}

/// Whether a bearer credential has a JWT's shape (three base64url parts).
pub fn is_jwt(credential: &str) -> bool {
    credential.split('.').count() == 3
}

/// Verifies a JWT signed by a registered client: the algorithm, the key (by `kid`, or the
/// client's only key), the signature, `iss` (and `sub`, if `sub_is_iss`), the audience, the
/// expiry (at most five minutes ahead), and a `jti` not seen before.
async fn verify(
    store: &Store,
    jwt: &str,
    audiences: &[String],
    sub_is_iss: bool,
) -> Result<Client, Refused> {
    let header =
        jsonwebtoken::decode_header(jwt).map_err(|_| Refused::Invalid("not a JWT".into()))?;
    if !matches!(header.alg, Algorithm::RS384 | Algorithm::ES384) {
        return Err(Refused::Invalid(
            "the JWT must be signed with RS384 or ES384".into(),
        ));
    }
    // The issuer, read before the signature is checked only to find whose keys check it.
    let unverified: Claims = {
        let mut peek = Validation::new(header.alg);
        peek.insecure_disable_signature_validation();
        peek.validate_exp = false;
        peek.validate_aud = false;
        jsonwebtoken::decode::<Claims>(jwt, &DecodingKey::from_secret(&[]), &peek)
            .map_err(|_| Refused::Invalid("the JWT's claims do not read".into()))?
            .claims
    };
    let unknown = || {
        Refused::Invalid(
            "the JWT's issuer is not a registered client, or its key does not verify it".into(),
        )
    };
    let client = client(store, &unverified.iss).await?.ok_or_else(unknown)?;
    let key: &Jwk = match &header.kid {
        Some(kid) => client.jwks.find(kid).ok_or_else(unknown)?,
        None if client.jwks.keys.len() == 1 => client.jwks.keys.first().ok_or_else(unknown)?,
        None => return Err(Refused::Invalid("the JWT names no `kid`".into())),
    };
    let decoding = DecodingKey::from_jwk(key).map_err(|_| unknown())?;
    let mut validation = Validation::new(header.alg);
    validation.leeway = LEEWAY_SECONDS;
    validation.set_audience(audiences);
    validation.set_issuer(&[client.id.as_str()]);
    validation.set_required_spec_claims(&["exp", "iss", "aud"]);
    let claims = jsonwebtoken::decode::<Claims>(jwt, &decoding, &validation)
        .map_err(|e| Refused::Invalid(format!("the JWT is not accepted: {e}")))?
        .claims;
    let now = now_ms() / 1000;
    if claims.exp > now + JWT_MAX_SECONDS + LEEWAY_SECONDS as i64 {
        return Err(Refused::Invalid(
            "the JWT lives more than five minutes".into(),
        ));
    }
    if sub_is_iss && claims.sub.as_deref() != Some(client.id.as_str()) {
        return Err(Refused::Invalid(
            "the client assertion's `sub` must be its `iss`".into(),
        ));
    }
    let jti = claims
        .jti
        .filter(|j| !j.is_empty() && j.len() <= 255)
        .ok_or_else(|| Refused::Invalid("the JWT has no `jti`".into()))?;
    // Once only: the insert fails for a `jti` this client used before.
    sqlx::query("DELETE FROM client_jwt_ids WHERE client_id = $1 AND expires_at < $2")
        .bind(&client.id)
        .bind(now_ms())
        .execute(&store.pool)
        .await
        .map_err(StoreError::from)?;
    let fresh = sqlx::query("INSERT INTO client_jwt_ids (client_id, jti, expires_at) VALUES ($1, $2, $3) ON CONFLICT (client_id, jti) DO NOTHING")
        .bind(&client.id)
        .bind(&jti)
        .bind((claims.exp + LEEWAY_SECONDS as i64) * 1000)
        .execute(&store.pool)
        .await
        .map_err(StoreError::from)?;
    if fresh.rows_affected() != 1 {
        return Err(Refused::Invalid("this JWT was used before (`jti`)".into()));
    }
    Ok(client)
}

/// An access token issued at the token endpoint.
#[derive(Debug, Clone)]
pub struct Issued {
    pub access_token: String,
    pub scope: String,
    pub expires_in: i64,
}

/// SMART Backend Services: trades a client assertion for an access token with the scopes
/// asked for that this service grants (`system/…`). `token_url` is this endpoint's URL(s),
/// the assertion's audience.
pub async fn issue(
    store: &Store,
    assertion: &str,
    scope: &str,
    token_urls: &[String],
) -> Result<Issued, Refused> {
    let client = verify(store, assertion, token_urls, true).await?;
    let granted: Vec<&str> = scope
        .split_whitespace()
        .filter(|s| s.starts_with("system/"))
        .collect();
    if granted.is_empty() {
        return Err(Refused::Scope(
            "ask for `system/` scopes (for example `system/*.read system/Claim.write`)".into(),
        ));
    }
    let writes = granted.iter().any(|s| scope_writes(s));
    let token = random_id("sat_");
    let now = now_ms();
    sqlx::query("DELETE FROM access_tokens WHERE expires_at < $1")
        .bind(now)
        .execute(&store.pool)
        .await?;
    let mut tx = store.pool.begin().await?;
    sqlx::query("INSERT INTO access_tokens (token_hash, client_id, scope, writes, expires_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(sha256_hex(&token))
        .bind(&client.id)
        .bind(granted.join(" "))
        .bind(i32::from(writes))
        .bind(now + TOKEN_SECONDS * 1000)
        .execute(&mut *tx)
        .await?;
    crate::store::audit(
        &mut tx,
        &caller_of(&client).audit_record("token.issue", &client.id),
    )
    .await?;
    tx.commit().await?;
    Ok(Issued {
        access_token: token,
        scope: granted.join(" "),
        expires_in: TOKEN_SECONDS,
    })
}

/// Whether a SMART scope allows writing: v1 `.write` or `.*`, v2 any of `c`, `u`, `d`.
fn scope_writes(scope: &str) -> bool {
    let permission = scope.rsplit('.').next().unwrap_or_default();
    permission == "write"
        || permission == "*"
        || (permission.chars().all(|c| "cruds".contains(c))
            && permission.chars().any(|c| "cud".contains(c)))
}

/// The caller of a bearer credential: an API key, a SMART access token, or (on the CDS
/// Hooks routes) a CDS client's JWT whose audience is one of `audiences`. A read-only token
/// may only read (`GET`). `None` when the credential is none of these.
pub async fn authenticate(
    store: &Store,
    credential: &str,
    method: &str,
    audiences: &[String],
) -> Result<Option<Caller>, Refused> {
    if credential.starts_with("sat_") {
        return access_token(store, credential, method).await;
    }
    if is_jwt(credential) && !audiences.is_empty() {
        return match verify(store, credential, audiences, false).await {
            Ok(client) => Ok(Some(caller_of(&client))),
            Err(Refused::Store(error)) => Err(Refused::Store(error)),
            Err(_) => Ok(None),
        };
    }
    Ok(keys::authenticate(store, credential).await?)
}

async fn access_token(store: &Store, token: &str, method: &str) -> Result<Option<Caller>, Refused> {
    let row = sqlx::query(
        "SELECT t.client_id, t.writes, t.expires_at FROM access_tokens t WHERE t.token_hash = $1",
    )
    .bind(sha256_hex(token))
    .fetch_optional(&store.reads)
    .await
    .map_err(StoreError::from)?;
    let Some(row) = row else { return Ok(None) };
    let expires_at: i64 = row.try_get("expires_at").map_err(StoreError::from)?;
    if expires_at < now_ms() {
        return Ok(None);
    }
    let client_id: String = row.try_get("client_id").map_err(StoreError::from)?;
    let Some(client) = client(store, &client_id).await? else {
        return Ok(None);
    };
    let writes: i32 = row.try_get("writes").map_err(StoreError::from)?;
    if writes == 0 && method != "GET" && method != "HEAD" {
        return Err(Refused::Scope(
            "the access token's scopes allow reading only".into(),
        ));
    }
    Ok(Some(caller_of(&client)))
}

/// This service's URLs for a path, as a client addresses it: by the `Host` it called, over
/// https (behind the TLS proxy) or http. A JWT's audience must be one of them.
pub fn own_urls(headers: &axum::http::HeaderMap, paths: &[&str]) -> Vec<String> {
    let Some(host) = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
    else {
        return Vec::new();
    };
    paths
        .iter()
        .flat_map(|path| ["https", "http"].map(|scheme| format!("{scheme}://{host}{path}")))
        .collect()
}

/// The audiences a CDS Hooks client's JWT may name on a call to `path`: the service's URL,
/// or (as earlier CDS Hooks drafts had it) the discovery endpoint's.
pub fn hook_audiences(headers: &axum::http::HeaderMap, path: &str) -> Vec<String> {
    if !path.starts_with("/cds-services/") {
        return Vec::new();
    }
    own_urls(headers, &[path, "/cds-services"])
}

fn caller_of(client: &Client) -> Caller {
    Caller {
        key_id: format!("client:{}", client.id),
        organization: client.organization.clone(),
        role: client.role,
        name: client.name.clone(),
        credentials: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_scopes_are_told_from_read_scopes_in_both_smart_versions() {
        for writes in [
            "system/Claim.write",
            "system/*.*",
            "system/Claim.c",
            "system/*.cruds",
            "system/Subscription.cud",
        ] {
            assert!(scope_writes(writes), "{writes}");
        }
        for reads in [
            "system/*.read",
            "system/Claim.rs",
            "system/Patient.r",
            "system/Claim.s",
        ] {
            assert!(!scope_writes(reads), "{reads}");
        }
    }
}
