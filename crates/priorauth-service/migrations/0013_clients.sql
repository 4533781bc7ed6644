-- Clients that sign their own credentials (SMART Backend Services, CDS Hooks): each has an
-- id (the JWT `iss`, and for SMART the `client_id`), the organization and role its calls act
-- as, and the public keys it signs with (a JWKS). Registered by `priorauth clients register`.
CREATE TABLE IF NOT EXISTS clients (
    id TEXT PRIMARY KEY,
    organization TEXT NOT NULL,
    role TEXT NOT NULL,
    name TEXT NOT NULL,
    jwks_json TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
-- Access tokens issued to SMART clients, stored as SHA-256 hashes like API keys, with what
-- their scopes allow and when they expire.
CREATE TABLE IF NOT EXISTS access_tokens (
    token_hash TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    writes INTEGER NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS access_tokens_by_expiry ON access_tokens (expires_at);
-- Each signed JWT's `jti`, kept until the JWT expires, so that none is accepted twice.
CREATE TABLE IF NOT EXISTS client_jwt_ids (
    client_id TEXT NOT NULL,
    jti TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (client_id, jti)
);
