-- Tessera metadata, version 19: what a transform run says beside its outcome (e.g. why a merge
-- by the keys of new input rows recomputed the whole dataset instead).
ALTER TABLE transform_runs ADD COLUMN note TEXT
