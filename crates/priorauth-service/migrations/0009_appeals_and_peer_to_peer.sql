-- Appeals of a clinician's adverse determination (a denial, or an approval with changes), with
-- their clocks, extensions and decisions; the files an appellant sends with one; and the
-- peer-to-peer discussions held on a request. Each is part of its request's audited state.
CREATE TABLE IF NOT EXISTS appeals (
    id TEXT PRIMARY KEY,
    request_id TEXT NOT NULL,
    filed_by TEXT NOT NULL,
    appellant TEXT NOT NULL,
    urgency TEXT NOT NULL,
    status TEXT NOT NULL,
    grounds TEXT NOT NULL,
    attachments_json TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    due_at BIGINT NOT NULL,
    extension_reason TEXT,
    decision_reason TEXT,
    reviewer_key TEXT,
    reviewer_name TEXT,
    reviewer_credentials TEXT,
    decided_at BIGINT
);
CREATE INDEX IF NOT EXISTS appeals_by_request ON appeals (request_id);
CREATE INDEX IF NOT EXISTS appeals_open ON appeals (status, due_at);
-- One open appeal per request: a second is filed after the first is decided.
CREATE UNIQUE INDEX IF NOT EXISTS appeals_one_open ON appeals (request_id) WHERE status = 'pending';
CREATE TABLE IF NOT EXISTS appeal_attachments (
    appeal_id TEXT NOT NULL,
    n BIGINT NOT NULL,
    content_type TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (appeal_id, n)
);
CREATE TABLE IF NOT EXISTS peer_to_peer (
    id TEXT PRIMARY KEY,
    request_id TEXT NOT NULL,
    appeal_id TEXT,
    prescriber TEXT NOT NULL,
    held_at BIGINT NOT NULL,
    outcome TEXT NOT NULL,
    notes TEXT NOT NULL,
    reviewer_key TEXT NOT NULL,
    reviewer_name TEXT NOT NULL,
    reviewer_credentials TEXT NOT NULL,
    recorded_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS peer_to_peer_by_request ON peer_to_peer (request_id);
