-- Tessera metadata, version 6: secrets every instance of a mesh shares, made once by whichever
-- instance needs one first (the key that masks personal data alike on every instance).
CREATE TABLE mesh_secrets (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    created_at TEXT NOT NULL
)
