//! Sources, where each stands, and the secrets they name. A product's sources are its folder's
//! `kind: Source` files, replaced in the apply's transaction (see `Catalog::apply`). A source's
//! state is written after every pull by whichever instance ran it.
//!
//! Secrets are stored sealed (ChaCha20-Poly1305, the secret's name as associated data, so a
//! sealed value moved to another name does not open) with a key kept in a file outside the
//! store (`KeyFiles::secrets_key_file`): a copy of the database alone reveals no secret.
//! Instances sharing a store share the key file, as they share the audit key.

use sqlx::Row;
use sqlx::any::AnyRow;

use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};

use crate::audit::{AuditEvent, private_key};
use crate::error::{CatalogError, Result};
use crate::store::{Catalog, constant_sql, now};

/// A source file as stored with its product.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRecord {
    pub domain: String,
    pub product: String,
    pub name: String,
    pub dataset: String,
    pub connector: String,
    pub file_name: String,
    /// The file's text: the source of truth.
    pub source: String,
    pub updated_at: String,
}

/// Where a source stands after its last pull.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SourceStateRecord {
    pub domain: String,
    pub product: String,
    pub name: String,
    /// `idle` (its last pull succeeded, or it has not run), `failing` (its last pull failed).
    pub state: String,
    /// The last committed position, as the connector says it (an offset, a timestamp, files).
    pub position: Option<String>,
    pub last_pull_at: Option<String>,
    pub last_success_at: Option<String>,
    /// Rows the last pull read, and all pulls since the source was first applied: each one
    /// committed to the dataset or to its quarantine.
    pub last_rows: i64,
    pub total_rows: i64,
    /// Of those, the rows that went to the quarantine (a rule broken, or the pull refused
    /// whole by the commit gate).
    pub last_quarantined: i64,
    pub total_quarantined: i64,
    /// How far behind its origin the source was after its last pull, where the connector
    /// can tell.
    pub lag_seconds: Option<f64>,
    /// Pulls that failed in a row (0 after a success).
    pub failures: i64,
    pub last_error: Option<String>,
    pub updated_at: String,
}

/// A secret's public facts; its value is never part of it.
#[derive(Debug, Clone, PartialEq)]
pub struct SecretRecord {
    pub name: String,
    /// The team whose products' sources may use it.
    pub team: String,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
}

const SOURCE_SELECT: &str =
    "SELECT domain, product, name, dataset, connector, file_name, source, updated_at FROM sources";
const STATE_SELECT: &str = "SELECT domain, product, name, state, position, last_pull_at, last_success_at, last_rows, total_rows, last_quarantined, total_quarantined, lag_seconds, failures, last_error, updated_at FROM source_states";

fn source_record(row: &AnyRow) -> Result<SourceRecord> {
    Ok(SourceRecord {
        domain: row.try_get("domain")?,
        product: row.try_get("product")?,
        name: row.try_get("name")?,
        dataset: row.try_get("dataset")?,
        connector: row.try_get("connector")?,
        file_name: row.try_get("file_name")?,
        source: row.try_get("source")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn state_record(row: &AnyRow) -> Result<SourceStateRecord> {
    Ok(SourceStateRecord {
        domain: row.try_get("domain")?,
        product: row.try_get("product")?,
        name: row.try_get("name")?,
        state: row.try_get("state")?,
        position: row.try_get("position")?,
        last_pull_at: row.try_get("last_pull_at")?,
        last_success_at: row.try_get("last_success_at")?,
        last_rows: row.try_get("last_rows")?,
        total_rows: row.try_get("total_rows")?,
        last_quarantined: row.try_get("last_quarantined")?,
        total_quarantined: row.try_get("total_quarantined")?,
        lag_seconds: row.try_get("lag_seconds")?,
        failures: row.try_get("failures")?,
        last_error: row.try_get("last_error")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Replaces the sources a product's folder holds, in the apply's transaction. A source that is
/// no longer there loses its state too; one that stays keeps it (its position is in its table).
pub(crate) async fn replace_product_sources(
    conn: &mut sqlx::AnyConnection,
    domain: &str,
    product: &str,
    sources: &[SourceRecord],
    at: &str,
) -> Result<()> {
    sqlx::query("DELETE FROM sources WHERE domain = $1 AND product = $2")
        .bind(domain.to_string())
        .bind(product.to_string())
        .execute(&mut *conn)
        .await?;
    for s in sources {
        sqlx::query(
            "INSERT INTO sources (domain, product, name, dataset, connector, file_name, source, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(s.domain.clone())
        .bind(s.product.clone())
        .bind(s.name.clone())
        .bind(s.dataset.clone())
        .bind(s.connector.clone())
        .bind(s.file_name.clone())
        .bind(s.source.clone())
        .bind(at.to_string())
        .execute(&mut *conn)
        .await?;
    }
    sqlx::query(
        "DELETE FROM source_states WHERE domain = $1 AND product = $2
         AND name NOT IN (SELECT name FROM sources WHERE domain = $1 AND product = $2)",
    )
    .bind(domain.to_string())
    .bind(product.to_string())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

impl Catalog {
    /// Every source, or those of one product, ordered by domain, product and name.
    pub async fn sources(&self, product: Option<(&str, &str)>) -> Result<Vec<SourceRecord>> {
        let rows = match product {
            Some((domain, name)) => {
                sqlx::query(constant_sql(format!(
                    "{SOURCE_SELECT} WHERE domain = $1 AND product = $2 ORDER BY name"
                )))
                .bind(domain.to_string())
                .bind(name.to_string())
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(constant_sql(format!(
                    "{SOURCE_SELECT} ORDER BY domain, product, name"
                )))
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(source_record).collect()
    }

    /// Where every source stands (those that have pulled at least once).
    pub async fn source_states(&self) -> Result<Vec<SourceStateRecord>> {
        let rows = sqlx::query(constant_sql(format!(
            "{STATE_SELECT} ORDER BY domain, product, name"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(state_record).collect()
    }

    /// Where the source `domain.product.name` stands, if it has pulled.
    pub async fn source_state(
        &self,
        domain: &str,
        product: &str,
        name: &str,
    ) -> Result<Option<SourceStateRecord>> {
        let row = sqlx::query(constant_sql(format!(
            "{STATE_SELECT} WHERE domain = $1 AND product = $2 AND name = $3"
        )))
        .bind(domain.to_string())
        .bind(product.to_string())
        .bind(name.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(state_record).transpose()
    }

    /// Stores where a source stands after a pull.
    pub async fn put_source_state(&self, s: &SourceStateRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO source_states (domain, product, name, state, position, last_pull_at, last_success_at, last_rows, total_rows, last_quarantined, total_quarantined, lag_seconds, failures, last_error, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
             ON CONFLICT (domain, product, name) DO UPDATE SET
               state = excluded.state, position = excluded.position,
               last_pull_at = excluded.last_pull_at, last_success_at = excluded.last_success_at,
               last_rows = excluded.last_rows, total_rows = excluded.total_rows,
               last_quarantined = excluded.last_quarantined,
               total_quarantined = excluded.total_quarantined,
               lag_seconds = excluded.lag_seconds, failures = excluded.failures,
               last_error = excluded.last_error, updated_at = excluded.updated_at",
        )
        .bind(s.domain.clone())
        .bind(s.product.clone())
        .bind(s.name.clone())
        .bind(s.state.clone())
        .bind(s.position.clone())
        .bind(s.last_pull_at.clone())
        .bind(s.last_success_at.clone())
        .bind(s.last_rows)
        .bind(s.total_rows)
        .bind(s.last_quarantined)
        .bind(s.total_quarantined)
        .bind(s.lag_seconds)
        .bind(s.failures)
        .bind(s.last_error.clone())
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every secret's public facts, by name.
    pub async fn secrets(&self) -> Result<Vec<SecretRecord>> {
        let rows = sqlx::query(
            "SELECT name, team, created_by, created_at, updated_at FROM secrets ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(SecretRecord {
                    name: row.try_get("name")?,
                    team: row.try_get("team")?,
                    created_by: row.try_get("created_by")?,
                    created_at: row.try_get("created_at")?,
                    updated_at: row.try_get("updated_at")?,
                })
            })
            .collect()
    }

    /// A secret's facts and its value, opened; `None` if there is none. Only for handing a
    /// credential to a connector: no answer of the API holds a value.
    pub async fn secret_value(&self, name: &str) -> Result<Option<(SecretRecord, String)>> {
        match self.sealed_secret(name).await? {
            Some((record, sealed)) => {
                let value = self.secrets.open(name, &sealed)?;
                Ok(Some((record, value)))
            }
            None => Ok(None),
        }
    }

    async fn sealed_secret(&self, name: &str) -> Result<Option<(SecretRecord, String)>> {
        let row = sqlx::query(
            "SELECT name, team, sealed, created_by, created_at, updated_at FROM secrets WHERE name = $1",
        )
        .bind(name.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok((
                SecretRecord {
                    name: row.try_get("name")?,
                    team: row.try_get("team")?,
                    created_by: row.try_get("created_by")?,
                    created_at: row.try_get("created_at")?,
                    updated_at: row.try_get("updated_at")?,
                },
                row.try_get("sealed")?,
            ))
        })
        .transpose()
    }

    /// Sets a secret for `team`, sealed, with its audit entry (which holds no value). Setting
    /// it again replaces the value and keeps who made it first.
    pub async fn put_secret(&self, name: &str, team: &str, value: &str, actor: &str) -> Result<()> {
        let sealed = self.secrets.seal(name, value)?;
        let sealed = sealed.as_str();
        let mut tx = self.pool.begin().await?;
        let at = now();
        sqlx::query(
            "INSERT INTO secrets (name, team, sealed, created_by, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $5)
             ON CONFLICT (name) DO UPDATE SET team = excluded.team, sealed = excluded.sealed, updated_at = excluded.updated_at",
        )
        .bind(name.to_string())
        .bind(team.to_string())
        .bind(sealed.to_string())
        .bind(actor.to_string())
        .bind(at)
        .execute(&mut *tx)
        .await?;
        self.commit_audited(
            tx,
            &[AuditEvent::new(
                actor,
                "secret.set",
                name,
                serde_json::json!({"team": team}),
            )],
        )
        .await
    }

    /// Deletes a secret; whether there was one.
    pub async fn delete_secret(&self, name: &str, actor: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let deleted = sqlx::query("DELETE FROM secrets WHERE name = $1")
            .bind(name.to_string())
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0;
        if !deleted {
            return Ok(false);
        }
        self.commit_audited(
            tx,
            &[AuditEvent::new(
                actor,
                "secret.delete",
                name,
                serde_json::json!({}),
            )],
        )
        .await?;
        Ok(true)
    }
}

/// The key secrets are sealed with.
pub(crate) struct SecretSeal {
    key: LessSafeKey,
}

impl std::fmt::Debug for SecretSeal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretSeal")
    }
}

impl SecretSeal {
    /// Loads the key, or makes one while the store holds no secret (a store with secrets and
    /// no key is refused: they could not be opened).
    pub(crate) async fn open_key(
        conn: &mut sqlx::AnyConnection,
        files: &crate::KeyFiles,
    ) -> Result<Self> {
        let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM secrets")
            .fetch_one(&mut *conn)
            .await?;
        let key = private_key(
            &files.secrets_key_file,
            "secrets key",
            (stored > 0).then(|| {
                format!(
                    "the metadata store holds {stored} secret(s) but the key they are sealed with is missing; copy the secrets key of the instance that set them here"
                )
            }),
        )?;
        let unbound =
            UnboundKey::new(&CHACHA20_POLY1305, &key[..32.min(key.len())]).map_err(|_| {
                CatalogError::KeyFile {
                    path: files.secrets_key_file.clone(),
                    message: "the secrets key must be 32 bytes".into(),
                }
            })?;
        Ok(Self {
            key: LessSafeKey::new(unbound),
        })
    }

    /// `value` sealed for `name`: hex of a fresh nonce, the ciphertext and its tag.
    fn seal(&self, name: &str, value: &str) -> Result<String> {
        use rand::RngCore;
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let mut sealed = value.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(name.as_bytes()),
                &mut sealed,
            )
            .map_err(|_| CatalogError::Secret(format!("secret {name} could not be sealed")))?;
        let mut out = nonce.to_vec();
        out.extend(sealed);
        Ok(hex::encode(out))
    }

    /// The value sealed for `name`.
    fn open(&self, name: &str, sealed: &str) -> Result<String> {
        let broken = || {
            CatalogError::Secret(format!(
                "secret {name} does not open with this instance's secrets key (set it again, or use the key it was set with)"
            ))
        };
        let bytes = hex::decode(sealed).map_err(|_| broken())?;
        if bytes.len() < 12 {
            return Err(broken());
        }
        let (nonce, rest) = bytes.split_at(12);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| broken())?;
        let mut rest = rest.to_vec();
        let opened = self
            .key
            .open_in_place(nonce, Aad::from(name.as_bytes()), &mut rest)
            .map_err(|_| broken())?;
        String::from_utf8(opened.to_vec()).map_err(|_| broken())
    }
}
