-- The reviewer a request in review is assigned to (their key id, and their name as the queue
-- shows it), so that a team works one queue without two people deciding the same request.
-- Null: nobody has taken it. Bound into the audit with the request's other columns.
ALTER TABLE requests ADD COLUMN assigned_to TEXT;
ALTER TABLE requests ADD COLUMN assigned_name TEXT;
