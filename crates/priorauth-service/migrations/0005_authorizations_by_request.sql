-- A request's read finds its authorization by the request's id: without this index every
-- read scanned the whole authorizations table.
CREATE INDEX IF NOT EXISTS authorizations_request ON authorizations (request_id);
