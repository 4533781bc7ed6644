-- What the UM report reads by SQL without unpacking a request's case: its drug, and when it was
-- decided (approved, denied or not applicable), for its turnaround and its clock; and the
-- reason a plan's clock was extended, when it was.
ALTER TABLE requests ADD COLUMN drug TEXT;
ALTER TABLE requests ADD COLUMN decided_at BIGINT;
ALTER TABLE requests ADD COLUMN extension_reason TEXT;
-- Requests decided before: by a clinician, at the determination; otherwise when last updated
-- (their submission, or the completion that decided them). Their drug stays unrecorded: it is
-- in the packed case only, and the report counts them apart.
UPDATE requests SET decided_at = (SELECT d.at FROM determinations d WHERE d.request_id = requests.id)
    WHERE status IN ('approved', 'denied') AND EXISTS (SELECT 1 FROM determinations d WHERE d.request_id = requests.id);
UPDATE requests SET decided_at = updated_at WHERE decided_at IS NULL AND status IN ('approved', 'not_applicable');
CREATE INDEX IF NOT EXISTS requests_by_receipt ON requests (created_at);
