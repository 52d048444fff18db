-- Tessera metadata, version 8: the audit log. Every change, every denied access decision and
-- every query, as a hash chain: each entry holds the SHA-256 of the one before it over a
-- canonical encoding, and a MAC under a key kept outside this store. The one row of
-- audit_head is the chain's newest entry as the store sees it, and is locked by every append
-- so that entries are chained in commit order (the head kept outside the store is what
-- verification trusts).
CREATE TABLE audit_log (
    seq BIGINT PRIMARY KEY,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    mac TEXT NOT NULL
);

CREATE TABLE audit_head (
    id BIGINT PRIMARY KEY,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);

INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000')
