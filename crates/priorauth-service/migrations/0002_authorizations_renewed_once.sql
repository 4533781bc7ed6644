-- An authorization is renewed at most once (NULLs, the first authorizations, are distinct in a
-- unique index on both databases).
CREATE UNIQUE INDEX IF NOT EXISTS authorizations_renews ON authorizations (renews);
