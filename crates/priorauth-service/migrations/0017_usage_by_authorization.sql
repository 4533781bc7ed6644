-- Usage is spent against an authorization at most its units per period in each of its
-- periods: each spend sums the authorization's usage of one period, found by this index
-- rather than by reading every usage row.
CREATE INDEX IF NOT EXISTS usage_by_authorization ON usage (authorization_number, service_date);
