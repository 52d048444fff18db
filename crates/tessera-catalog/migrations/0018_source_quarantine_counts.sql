-- Tessera metadata, version 18: of the rows a source pulled, how many went to the quarantine
-- (a pull that the gate refused whole read rows, yet committed none of them to the dataset).
ALTER TABLE source_states ADD COLUMN last_quarantined BIGINT NOT NULL DEFAULT 0;
ALTER TABLE source_states ADD COLUMN total_quarantined BIGINT NOT NULL DEFAULT 0
