-- Da Vinci PAS: the Bundle a request came in, subscriptions, and the notifications outbox.
CREATE TABLE IF NOT EXISTS fhir_claims (
    request_id TEXT PRIMARY KEY,
    organization TEXT NOT NULL,
    claim_identifier TEXT NOT NULL,
    item_sequence BIGINT NOT NULL,
    bundle_json TEXT NOT NULL,
    base TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS fhir_claims_identifier ON fhir_claims (organization, claim_identifier);
CREATE TABLE IF NOT EXISTS subscriptions (
    id TEXT PRIMARY KEY,
    organization TEXT NOT NULL UNIQUE,
    endpoint TEXT NOT NULL,
    headers_json TEXT NOT NULL,
    resource_json TEXT NOT NULL,
    events BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS notifications (
    id TEXT PRIMARY KEY,
    subscription_id TEXT NOT NULL,
    request_id TEXT NOT NULL,
    event_number BIGINT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    delivered_at BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS notifications_due ON notifications (delivered_at, next_attempt_at);
