-- The first answer to a write sent with an Idempotency-Key (usage, determinations,
-- completions; a submission keeps its key on its request row). A retry with the same key and
-- body is given this answer again instead of being applied twice.
CREATE TABLE IF NOT EXISTS idempotent_answers (
    organization TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    action TEXT NOT NULL,
    body_sha256 TEXT NOT NULL,
    answer TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (organization, idempotency_key)
);
