-- Keys, requests and their events, determinations, authorizations and their usage, and the
-- audit log with its head.
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    key_hash TEXT NOT NULL UNIQUE,
    organization TEXT NOT NULL,
    role TEXT NOT NULL,
    name TEXT NOT NULL,
    credentials TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE TABLE IF NOT EXISTS requests (
    id TEXT PRIMARY KEY,
    organization TEXT NOT NULL,
    submitted_by TEXT NOT NULL,
    plan TEXT NOT NULL,
    policy TEXT NOT NULL,
    policy_version TEXT NOT NULL,
    idempotency_key TEXT,
    body_hash TEXT NOT NULL,
    status TEXT NOT NULL,
    outcome TEXT NOT NULL,
    urgency TEXT NOT NULL,
    due_at BIGINT,
    case_json TEXT NOT NULL,
    decision_json TEXT NOT NULL,
    response_json TEXT NOT NULL,
    renews TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (organization, idempotency_key)
);
CREATE INDEX IF NOT EXISTS requests_queue ON requests (status, due_at);
CREATE TABLE IF NOT EXISTS request_events (
    request_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    at BIGINT NOT NULL,
    outcome TEXT NOT NULL,
    case_json TEXT NOT NULL,
    decision_json TEXT NOT NULL,
    PRIMARY KEY (request_id, seq)
);
CREATE TABLE IF NOT EXISTS determinations (
    request_id TEXT PRIMARY KEY,
    decision TEXT NOT NULL,
    reason TEXT NOT NULL,
    criterion TEXT NOT NULL,
    reviewer_key TEXT NOT NULL,
    reviewer_name TEXT NOT NULL,
    reviewer_credentials TEXT NOT NULL,
    changes_json TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS authorizations (
    number TEXT PRIMARY KEY,
    request_id TEXT NOT NULL,
    organization TEXT NOT NULL,
    drug TEXT NOT NULL,
    hcpcs TEXT NOT NULL,
    start_date TEXT NOT NULL,
    end_date TEXT NOT NULL,
    units_per_period BIGINT NOT NULL,
    period_days BIGINT NOT NULL,
    cycles BIGINT NOT NULL,
    first_cycle BIGINT NOT NULL,
    approved_units BIGINT NOT NULL,
    used_units BIGINT NOT NULL,
    renews TEXT,
    created_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS usage (
    id TEXT PRIMARY KEY,
    authorization_number TEXT NOT NULL,
    units BIGINT NOT NULL,
    service_date TEXT NOT NULL,
    actor TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_head (
    id BIGINT PRIMARY KEY,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '') ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS audit_log (
    seq BIGINT PRIMARY KEY,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    organization TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
