-- An audit entry of a write may carry the SHA-256 of the record's rows as that write left
-- them (`request:<hex>` or `authorization:<hex>`), inside the entry's own hash: `audit verify`
-- then finds an edit to a record, not only to the log. Entries written before stay without.
ALTER TABLE audit_log ADD COLUMN record_sha256 TEXT;
