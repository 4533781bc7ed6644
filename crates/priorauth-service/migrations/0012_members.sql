-- The payer's eligibility: who is a member of which plan, and when. CRD and PAS find a
-- request's plan here by the member id on the EHR's Coverage (`Coverage.subscriberId` or a
-- member identifier), so the plan a request declares does not decide it. One row per
-- enrolment span; `effective_to` is the last day covered (inclusive), NULL while open.
-- Loaded by `priorauth members import FILE.csv` (rows with the same member, plan and start
-- are replaced).
CREATE TABLE IF NOT EXISTS members (
    member_id TEXT NOT NULL,
    plan TEXT NOT NULL,
    effective_from TEXT NOT NULL,
    effective_to TEXT,
    birth_date TEXT,
    imported_at BIGINT NOT NULL,
    PRIMARY KEY (member_id, plan, effective_from)
);
