-- PAS: the later Claim (an update or a cancellation) that withdrew a request, by that Claim's
-- identifier, so that an inquiry by it finds the requests it cancelled: a cancellation stores
-- no request of its own, and an item an update cancels stays a request of the Claim it named.
CREATE TABLE IF NOT EXISTS fhir_claim_successors (
    request_id TEXT NOT NULL,
    organization TEXT NOT NULL,
    claim_identifier TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (request_id, claim_identifier)
);
CREATE INDEX IF NOT EXISTS fhir_claim_successors_identifier ON fhir_claim_successors (organization, claim_identifier);
