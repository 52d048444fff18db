-- Tessera metadata, version 11: personal data found in the values at ingest. For each column of
-- a dataset and each detector (email, phone, ip_address, payment_card), how many of the values
-- sampled from the latest batch with a hit matched. The governance policies read them.
CREATE TABLE personal_data_detections (
    domain TEXT NOT NULL,
    product TEXT NOT NULL,
    dataset TEXT NOT NULL,
    column_name TEXT NOT NULL,
    detector TEXT NOT NULL,
    matched BIGINT NOT NULL,
    sampled BIGINT NOT NULL,
    detected_at TEXT NOT NULL,
    PRIMARY KEY (domain, product, dataset, column_name, detector)
)
