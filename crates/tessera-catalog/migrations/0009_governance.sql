-- Tessera metadata, version 9: governance policies and their evaluations. A policy is global
-- (domain NULL, applied by the governance council) or a domain's own (kept with the product
-- whose folder holds it, replaced whole when that product is applied). A standard policy
-- shipped with Tessera is on unless the council turned it off here. Every evaluation is kept
-- with the outcome of each policy on each product it looked at and every violation it found;
-- one that reflects the mesh as it was (not a refused, dry-run or test one) is the history of
-- the compliance scorecard, and policy_status holds where each product stands on each policy
-- now, and since when.
CREATE TABLE governance_policies (
    policy_id TEXT PRIMARY KEY,
    domain TEXT,
    product TEXT,
    severity TEXT NOT NULL,
    file_name TEXT NOT NULL,
    source TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL
);

CREATE TABLE standard_policy_switches (
    policy_id TEXT PRIMARY KEY,
    enabled BIGINT NOT NULL,
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL
);

CREATE TABLE policy_evaluations (
    evaluation_id TEXT PRIMARY KEY,
    target TEXT NOT NULL,
    trigger_kind TEXT NOT NULL,
    evaluated_at TEXT NOT NULL,
    evaluated_by TEXT NOT NULL,
    policies BIGINT NOT NULL,
    blocking BIGINT NOT NULL,
    warnings BIGINT NOT NULL,
    reflects_mesh BIGINT NOT NULL
);

CREATE INDEX policy_evaluations_by_time ON policy_evaluations (evaluated_at);

CREATE TABLE policy_outcomes (
    evaluation_id TEXT NOT NULL,
    domain TEXT NOT NULL,
    product TEXT NOT NULL,
    policy_id TEXT NOT NULL,
    severity TEXT NOT NULL,
    violations BIGINT NOT NULL,
    PRIMARY KEY (evaluation_id, domain, product, policy_id)
);

CREATE INDEX policy_outcomes_by_product ON policy_outcomes (domain, product);

CREATE TABLE policy_violations (
    evaluation_id TEXT NOT NULL,
    position BIGINT NOT NULL,
    policy_id TEXT NOT NULL,
    severity TEXT NOT NULL,
    domain TEXT NOT NULL,
    product TEXT NOT NULL,
    object TEXT NOT NULL,
    message TEXT NOT NULL,
    file_name TEXT,
    line BIGINT,
    PRIMARY KEY (evaluation_id, position)
)
;

CREATE TABLE policy_status (
    domain TEXT NOT NULL,
    product TEXT NOT NULL,
    policy_id TEXT NOT NULL,
    severity TEXT NOT NULL,
    violations BIGINT NOT NULL,
    since TEXT NOT NULL,
    evaluated_at TEXT NOT NULL,
    evaluation_id TEXT NOT NULL,
    PRIMARY KEY (domain, product, policy_id)
)
;

INSERT INTO generations (name, value) VALUES ('governance', 0)
