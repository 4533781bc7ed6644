-- Decisions are recomputed on read from the case and the policy version that made them;
-- each decision event keeps the SHA-256 of the decision as it was answered, so that a read
-- proves it shows that decision. Events written before keep their stored decisions (this
-- column is NULL there).
ALTER TABLE request_events ADD COLUMN decision_sha256 TEXT;
