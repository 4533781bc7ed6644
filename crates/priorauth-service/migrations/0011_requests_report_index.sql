-- The UM report reads a period's requests from one index alone (SQLite uses it as a covering
-- index; PostgreSQL as an index-only scan once vacuumed), not from the rows, whose packed texts
-- are most of their size; and a request's clinician determination (its decision, kept with the
-- request from now on) without a lookup per request. The index replaces the one on receipt
-- alone, which it begins with. Requests stored before the drug was recorded keep no copy: the
-- report looks their determination up.
ALTER TABLE requests ADD COLUMN determination TEXT;
UPDATE requests SET determination = (SELECT d.decision FROM determinations d WHERE d.request_id = requests.id) WHERE drug IS NOT NULL;
DROP INDEX IF EXISTS requests_by_receipt;
CREATE INDEX IF NOT EXISTS requests_report ON requests (created_at, plan, drug, urgency, status, decided_at, due_at, extension_reason, determination, id);
