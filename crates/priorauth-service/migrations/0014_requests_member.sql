-- Who a request is for, as the case names them (`patient.member_id`, `patient.name`): reviewers
-- find a member's requests by these columns without unpacking every case, and lists show them.
-- Protected health information, as the case is: read only through the lifecycle, which audits
-- every read. Requests stored before keep them in their packed case only.
ALTER TABLE requests ADD COLUMN member_id TEXT;
ALTER TABLE requests ADD COLUMN member_name TEXT;
CREATE INDEX IF NOT EXISTS requests_by_member ON requests (member_id);
