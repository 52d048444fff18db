//! Schema migrations, embedded in the binary and applied in order at startup, each in its own
//! transaction. A tiny runner rather than `sqlx::migrate!`, because the same files must run
//! through the `Any` driver on both SQLite and PostgreSQL.

use sqlx::{AnyPool, Executor};

use crate::error::{CatalogError, Result};

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/0001_init.sql")),
    (2, include_str!("../migrations/0002_checks.sql")),
    (
        3,
        include_str!("../migrations/0003_contracts_per_domain.sql"),
    ),
    (4, include_str!("../migrations/0004_principals.sql")),
    (5, include_str!("../migrations/0005_access.sql")),
    (6, include_str!("../migrations/0006_secrets.sql")),
    (7, include_str!("../migrations/0007_query_log.sql")),
    (8, include_str!("../migrations/0008_audit.sql")),
    (9, include_str!("../migrations/0009_governance.sql")),
    (10, include_str!("../migrations/0010_glossary.sql")),
    (11, include_str!("../migrations/0011_detections.sql")),
    (12, include_str!("../migrations/0012_sources.sql")),
    (13, include_str!("../migrations/0013_transforms.sql")),
    (14, include_str!("../migrations/0014_transform_runs.sql")),
    (15, include_str!("../migrations/0015_lineage_events.sql")),
    (16, include_str!("../migrations/0016_received_lineage.sql")),
    (
        17,
        include_str!("../migrations/0017_quality_generation.sql"),
    ),
    (
        18,
        include_str!("../migrations/0018_source_quarantine_counts.sql"),
    ),
    (
        19,
        include_str!("../migrations/0019_transform_run_notes.sql"),
    ),
];

pub(crate) async fn migrate(pool: &AnyPool) -> Result<()> {
    pool.execute(
        "CREATE TABLE IF NOT EXISTS tessera_schema_version (version BIGINT PRIMARY KEY, applied_at TEXT NOT NULL)",
    )
    .await?;
    let current: Option<i64> =
        sqlx::query_scalar("SELECT MAX(version) FROM tessera_schema_version")
            .fetch_one(pool)
            .await?;
    let current = current.unwrap_or(0);
    let known = MIGRATIONS.last().map(|(v, _)| *v).unwrap_or(0);
    if current > known {
        return Err(CatalogError::TooNew {
            found: current,
            known,
        });
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        let mut tx = pool.begin().await?;
        for statement in sql
            .split(';')
            .map(str::trim)
            .filter(|s| !strip_comments(s).is_empty())
        {
            tx.execute(statement).await?;
        }
        sqlx::query("INSERT INTO tessera_schema_version (version, applied_at) VALUES ($1, $2)")
            .bind(version)
            .bind(crate::store::now())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(version, "metadata schema migrated");
    }
    Ok(())
}

fn strip_comments(statement: &str) -> String {
    statement
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::MIGRATIONS;

    /// A file added to `migrations/` but not to [`MIGRATIONS`] is never applied: every file is
    /// listed, under the version its name starts with, in order.
    #[test]
    fn every_migration_file_is_applied_in_order() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let mut files: Vec<(i64, String)> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                let version = name.split('_').next().unwrap().parse().unwrap();
                (version, std::fs::read_to_string(&path).unwrap())
            })
            .collect();
        files.sort();
        let listed: Vec<(i64, String)> = MIGRATIONS
            .iter()
            .map(|(v, sql)| (*v, sql.to_string()))
            .collect();
        assert_eq!(
            files.iter().map(|(v, _)| *v).collect::<Vec<_>>(),
            listed.iter().map(|(v, _)| *v).collect::<Vec<_>>()
        );
        assert!(files == listed, "a listed migration is not its file's text");
    }
}
