-- The files sent with a request while it is pending (clinical notes as PDF, images of reports),
-- stored in the database as base64 like an appeal's, with what was checked of each when it
-- came (its type by its content, its size and SHA-256) and who sent it; and the reviewers'
-- comments on a request or on one of its policy's criteria, which stay inside the payer.
-- Both are part of their request's audited state.
CREATE TABLE IF NOT EXISTS request_attachments (
    request_id TEXT NOT NULL,
    n BIGINT NOT NULL,
    title TEXT NOT NULL,
    content_type TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    data TEXT NOT NULL,
    added_by TEXT NOT NULL,
    added_name TEXT NOT NULL,
    added_at BIGINT NOT NULL,
    PRIMARY KEY (request_id, n)
);
CREATE TABLE IF NOT EXISTS request_comments (
    request_id TEXT NOT NULL,
    n BIGINT NOT NULL,
    criterion TEXT,
    body TEXT NOT NULL,
    author_key TEXT NOT NULL,
    author_name TEXT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (request_id, n)
);
