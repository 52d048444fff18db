//! Transforms: a product's `transforms/<dataset>.sql` files, replaced in the apply's transaction
//! (see `Catalog::apply`). The file's text is the source of truth; the server reads it again
//! with `tessera_spec::transform_from_file`.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::error::Result;
use crate::store::{Catalog, constant_sql};

/// A transform file as stored with its product.
#[derive(Debug, Clone, PartialEq)]
pub struct TransformRecord {
    pub domain: String,
    pub product: String,
    /// The product's dataset it computes.
    pub dataset: String,
    pub file_name: String,
    /// The file's text.
    pub source: String,
    pub updated_at: String,
}

const TRANSFORM_SELECT: &str =
    "SELECT domain, product, dataset, file_name, source, updated_at FROM transforms";

fn transform_row(row: &AnyRow) -> Result<TransformRecord> {
    Ok(TransformRecord {
        domain: row.try_get("domain")?,
        product: row.try_get("product")?,
        dataset: row.try_get("dataset")?,
        file_name: row.try_get("file_name")?,
        source: row.try_get("source")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Replaces the transforms a product's folder holds, in the apply's transaction.
pub(crate) async fn replace_product_transforms(
    conn: &mut sqlx::AnyConnection,
    domain: &str,
    product: &str,
    transforms: &[TransformRecord],
    at: &str,
) -> Result<()> {
    sqlx::query("DELETE FROM transforms WHERE domain = $1 AND product = $2")
        .bind(domain.to_string())
        .bind(product.to_string())
        .execute(&mut *conn)
        .await?;
    for t in transforms {
        sqlx::query(
            "INSERT INTO transforms (domain, product, dataset, file_name, source, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(t.domain.clone())
        .bind(t.product.clone())
        .bind(t.dataset.clone())
        .bind(t.file_name.clone())
        .bind(t.source.clone())
        .bind(at.to_string())
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

impl Catalog {
    /// Every transform, or those of one product, ordered by domain, product and dataset.
    pub async fn transforms(&self, product: Option<(&str, &str)>) -> Result<Vec<TransformRecord>> {
        let rows = match product {
            Some((domain, name)) => {
                sqlx::query(constant_sql(format!(
                    "{TRANSFORM_SELECT} WHERE domain = $1 AND product = $2 ORDER BY dataset"
                )))
                .bind(domain.to_string())
                .bind(name.to_string())
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(constant_sql(format!(
                    "{TRANSFORM_SELECT} ORDER BY domain, product, dataset"
                )))
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(transform_row).collect()
    }
}
