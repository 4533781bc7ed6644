-- A notification whose delivery failed on every attempt of its schedule is dead-lettered: no
-- longer retried, kept with its last error for the payer's administrators to see.
ALTER TABLE notifications ADD COLUMN dead_at BIGINT;
