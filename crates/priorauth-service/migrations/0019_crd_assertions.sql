-- CRD: the coverage assertion given for an order a policy governs, by its id, with the
-- organization, plan, policy and the facts CRD read, so that DTR's $questionnaire-package
-- called with that id as its `context` finds the form and fills it in. A re-sign of the
-- same order (the same id) replaces it.
CREATE TABLE IF NOT EXISTS crd_assertions (
    id TEXT PRIMARY KEY,
    organization TEXT NOT NULL,
    plan TEXT NOT NULL,
    policy TEXT NOT NULL,
    case_json TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
