use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use crate::audit::{AuditEvent, AuditSeal, KeyFiles};
use crate::error::{CatalogError, Result};
use crate::migrate::migrate;
use crate::records::*;

/// The metadata store. Cheap to clone; every clone shares one connection pool.
#[derive(Clone, Debug)]
pub struct Catalog {
    pub(crate) pool: AnyPool,
    url_for_display: String,
    /// The audit key and chain head, kept outside the store.
    pub(crate) audit: std::sync::Arc<crate::audit::AuditSeal>,
    /// The key secrets are sealed with, kept outside the store.
    pub(crate) secrets: std::sync::Arc<crate::sources::SecretSeal>,
    /// What the generation counters said when last read (see [`Catalog::generations`]).
    generations: std::sync::Arc<GenerationCache>,
}

/// The store's generation counters: what cached views of the store (the access state, the
/// query snapshot, `tessera_meta`) are keyed by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generations {
    /// Users, tokens, grants, policies and products' owners.
    pub access: i64,
    /// Datasets added or moved to another contract version.
    pub datasets: String,
    /// Governance policies, their results, glossary terms, detections.
    pub governance: i64,
    /// Check runs stored.
    pub quality: i64,
}

/// How long another instance's change may take to be seen here: generations are read from the
/// store at most this often, and again at once after a change made through this instance.
pub const GENERATIONS_RECHECK: std::time::Duration = std::time::Duration::from_millis(250);

/// The generations last read, when, and at which count of this instance's changes.
#[derive(Debug, Default)]
pub(crate) struct GenerationCache {
    /// Changes committed through this instance (bumped after each commit that may move a
    /// generation).
    changes: std::sync::atomic::AtomicU64,
    read: std::sync::Mutex<Option<(std::time::Instant, u64, Generations)>>,
    /// Held by the one task reading the store; the others wait for its answer rather than
    /// each reading too (hundreds of requests find the cache stale at the same moment).
    refresh: tokio::sync::Mutex<()>,
}

impl GenerationCache {
    /// The generations last read, if still fresh for `changes`.
    fn fresh(&self, changes: u64) -> Option<Generations> {
        match self.read.lock().expect("generations").as_ref() {
            Some((at, seen, g)) if *seen == changes && at.elapsed() < GENERATIONS_RECHECK => {
                Some(g.clone())
            }
            _ => None,
        }
    }
}

/// A time as the store keeps it: RFC 3339 in UTC with microseconds, so that the text sorts
/// as the time does. Every time written to the store, and compared with one there, is this.
pub fn store_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

pub(crate) fn now() -> String {
    store_time(chrono::Utc::now())
}

impl Catalog {
    /// Connects to `sqlite://PATH` (created if missing) or `postgres://...`, and migrates the
    /// schema to this binary's version. `audit` names the audit key (made if the store's
    /// chain is empty) and the chain head, outside the store.
    pub async fn connect(url: &str, audit: &KeyFiles) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let (url, max_connections) = if let Some(path) = url.strip_prefix("sqlite://") {
            // `mode=rwc` creates the file; SQLite serialises writers anyway, so a small pool.
            let sep = if path.contains('?') { '&' } else { '?' };
            (format!("sqlite://{path}{sep}mode=rwc"), 4)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (url.to_string(), 8)
        } else {
            return Err(CatalogError::UnsupportedUrl {
                url: url.to_string(),
            });
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .connect(&url)
            .await?;
        if url.starts_with("sqlite:") {
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await?;
        }
        migrate(&pool).await?;
        let seal = AuditSeal::open(&mut *pool.acquire().await?, audit).await?;
        let secrets =
            crate::sources::SecretSeal::open_key(&mut *pool.acquire().await?, audit).await?;
        Ok(Self {
            pool,
            url_for_display: redact(&url),
            audit: std::sync::Arc::new(seal),
            secrets: std::sync::Arc::new(secrets),
            generations: Default::default(),
        })
    }

    /// The generation counters, as of at most [`GENERATIONS_RECHECK`] ago (as of now after a
    /// change made through this instance): one read of the store for many requests.
    pub async fn generations(&self) -> Result<Generations> {
        use std::sync::atomic::Ordering;
        let changes = self.generations.changes.load(Ordering::Acquire);
        if let Some(g) = self.generations.fresh(changes) {
            return Ok(g);
        }
        let _reading = self.generations.refresh.lock().await;
        // Another task may have read the store while this one waited.
        let changes = self.generations.changes.load(Ordering::Acquire);
        if let Some(g) = self.generations.fresh(changes) {
            return Ok(g);
        }
        let read_at = std::time::Instant::now();
        let rows = sqlx::query("SELECT name, value FROM generations")
            .fetch_all(&self.pool)
            .await?;
        let counter = |name: &str| -> Result<i64> {
            for row in &rows {
                let n: String = row.try_get("name")?;
                if n == name {
                    return Ok(row.try_get("value")?);
                }
            }
            Ok(0)
        };
        let g = Generations {
            access: counter("access")?,
            governance: counter("governance")?,
            quality: counter("quality")?,
            datasets: self.datasets_generation().await?,
        };
        *self.generations.read.lock().expect("generations") = Some((read_at, changes, g.clone()));
        Ok(g)
    }

    /// Notes a change committed through this instance: the next [`Catalog::generations`]
    /// reads the store again.
    pub(crate) fn changed(&self) {
        self.generations
            .changes
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// The store's URL with any password removed, for logs.
    pub fn display_url(&self) -> &str {
        &self.url_for_display
    }

    pub async fn domains(&self) -> Result<Vec<DomainRecord>> {
        let rows = sqlx::query(
            "SELECT d.name, d.created_at, COUNT(p.name) AS product_count
             FROM domains d LEFT JOIN products p ON p.domain = d.name
             GROUP BY d.name, d.created_at ORDER BY d.name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DomainRecord {
                    name: r.try_get("name")?,
                    created_at: r.try_get("created_at")?,
                    product_count: r.try_get("product_count")?,
                })
            })
            .collect()
    }

    /// All products, or those of one domain.
    pub async fn products(&self, domain: Option<&str>) -> Result<Vec<ProductRecord>> {
        let rows = match domain {
            Some(d) => {
                sqlx::query(constant_sql(format!(
                    "{PRODUCT_SELECT} WHERE domain = $1 ORDER BY domain, name"
                )))
                .bind(d.to_string())
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(constant_sql(format!(
                    "{PRODUCT_SELECT} ORDER BY domain, name"
                )))
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(product_row).collect()
    }

    pub async fn product(&self, domain: &str, name: &str) -> Result<Option<ProductRecord>> {
        let row = sqlx::query(constant_sql(format!(
            "{PRODUCT_SELECT} WHERE domain = $1 AND name = $2"
        )))
        .bind(domain.to_string())
        .bind(name.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(product_row).transpose()
    }

    /// The product of a domain with an ODPS id (ids are unique within a domain).
    pub async fn product_by_id(
        &self,
        domain: &str,
        product_id: &str,
    ) -> Result<Option<ProductRecord>> {
        let row = sqlx::query(constant_sql(format!(
            "{PRODUCT_SELECT} WHERE domain = $1 AND product_id = $2"
        )))
        .bind(domain.to_string())
        .bind(product_id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(product_row).transpose()
    }

    /// Every version of a domain's contract, oldest first.
    pub async fn contract_versions(
        &self,
        domain: &str,
        contract_id: &str,
    ) -> Result<Vec<ContractRecord>> {
        let rows = sqlx::query(constant_sql(format!(
            "{CONTRACT_SELECT} WHERE domain = $1 AND contract_id = $2 ORDER BY created_at, version"
        )))
        .bind(domain.to_string())
        .bind(contract_id.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(contract_row).collect()
    }

    pub async fn contract(
        &self,
        domain: &str,
        contract_id: &str,
        version: &str,
    ) -> Result<Option<ContractRecord>> {
        let row = sqlx::query(constant_sql(format!(
            "{CONTRACT_SELECT} WHERE domain = $1 AND contract_id = $2 AND version = $3"
        )))
        .bind(domain.to_string())
        .bind(contract_id.to_string())
        .bind(version.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(contract_row).transpose()
    }

    /// Every version of every contract, by domain and id, each id's versions oldest first.
    pub async fn contracts(&self) -> Result<Vec<ContractRecord>> {
        let rows = sqlx::query(constant_sql(format!(
            "{CONTRACT_SELECT} ORDER BY domain, contract_id, created_at, version"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(contract_row).collect()
    }

    /// All datasets, or those of one product.
    pub async fn datasets(&self, product: Option<(&str, &str)>) -> Result<Vec<DatasetRecord>> {
        let rows = match product {
            Some((domain, name)) => sqlx::query(constant_sql(format!(
                "{DATASET_SELECT} WHERE domain = $1 AND product = $2 ORDER BY domain, product, name"
            )))
            .bind(domain.to_string())
            .bind(name.to_string())
            .fetch_all(&self.pool)
            .await?,
            None => {
                sqlx::query(constant_sql(format!(
                    "{DATASET_SELECT} ORDER BY domain, product, name"
                )))
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(dataset_row).collect()
    }

    /// A value that changes whenever a dataset is added or changes contract, so a reader can
    /// tell cheaply whether its snapshot of the mesh is stale (another instance may write).
    pub async fn datasets_generation(&self) -> Result<String> {
        let row = sqlx::query("SELECT COUNT(*) AS n, MAX(updated_at) AS latest FROM datasets")
            .fetch_one(&self.pool)
            .await?;
        let n: i64 = row.try_get("n")?;
        let latest: Option<String> = row.try_get("latest")?;
        Ok(format!("{n}@{}", latest.unwrap_or_default()))
    }

    /// Writes everything one apply changes, and its audit entries (the apply, each new
    /// contract version), in one transaction: all of it or none of it.
    pub async fn apply(&self, change: &MetadataChange, actor: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let now = now();
        if let Some(p) = &change.product {
            sqlx::query("INSERT INTO domains (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
                .bind(p.domain.clone())
                .bind(now.clone())
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO products (domain, name, product_id, version, status, description, owner, file_name, source, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)
                 ON CONFLICT (domain, name) DO UPDATE SET product_id = excluded.product_id,
                   version = excluded.version, status = excluded.status, description = excluded.description,
                   owner = excluded.owner, file_name = excluded.file_name, source = excluded.source,
                   updated_at = excluded.updated_at",
            )
            .bind(p.domain.clone())
            .bind(p.name.clone())
            .bind(p.product_id.clone())
            .bind(p.version.clone())
            .bind(p.status.clone())
            .bind(p.description.clone())
            .bind(p.owner.clone())
            .bind(p.file_name.clone())
            .bind(p.source.clone())
            .bind(now.clone())
            .execute(&mut *tx)
            .await?;
            // The product's owner team may have changed.
            crate::access::bump_access_generation(&mut tx).await?;
        }
        for c in &change.contracts {
            sqlx::query(
                "INSERT INTO contracts (domain, contract_id, version, status, file_name, source, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(c.domain.clone())
            .bind(c.contract_id.clone())
            .bind(c.version.clone())
            .bind(c.status.clone())
            .bind(c.file_name.clone())
            .bind(c.source.clone())
            .bind(now.clone())
            .execute(&mut *tx)
            .await?;
        }
        for d in &change.datasets {
            sqlx::query(
                "INSERT INTO datasets (domain, product, name, contract_id, contract_version, location, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
                 ON CONFLICT (domain, product, name) DO UPDATE SET contract_id = excluded.contract_id,
                   contract_version = excluded.contract_version, location = excluded.location,
                   updated_at = excluded.updated_at",
            )
            .bind(d.domain.clone())
            .bind(d.product.clone())
            .bind(d.name.clone())
            .bind(d.contract_id.clone())
            .bind(d.contract_version.clone())
            .bind(d.location.clone())
            .bind(now.clone())
            .execute(&mut *tx)
            .await?;
        }
        if let Some((domain, product, policies)) = &change.product_policies {
            crate::governance::replace_product_policies(
                &mut tx, domain, product, policies, &now, actor,
            )
            .await?;
        }
        if let Some((domain, product, sources)) = &change.product_sources {
            crate::sources::replace_product_sources(&mut tx, domain, product, sources, &now)
                .await?;
        }
        if let Some((domain, product, transforms)) = &change.product_transforms {
            crate::transforms::replace_product_transforms(
                &mut tx, domain, product, transforms, &now,
            )
            .await?;
        }
        self.commit_audited(tx, &apply_events(change, actor)).await
    }

    /// Records an ingested batch, and `actor`'s ingest in the audit log; a batch id seen before
    /// keeps its first record.
    pub async fn record_batch(&self, b: &BatchRecord, actor: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let stored = sqlx::query(
            "INSERT INTO batches (domain, product, dataset, batch_id, accepted, quarantined, table_version, committed_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (domain, product, dataset, batch_id) DO NOTHING",
        )
        .bind(b.domain.clone())
        .bind(b.product.clone())
        .bind(b.dataset.clone())
        .bind(b.batch_id.clone())
        .bind(b.accepted)
        .bind(b.quarantined)
        .bind(b.table_version)
        .bind(b.committed_at.clone())
        .execute(&mut *tx)
        .await?;
        let events = if stored.rows_affected() > 0 {
            vec![AuditEvent::new(
                actor,
                "ingest",
                format!("{}.{}.{}", b.domain, b.product, b.dataset),
                serde_json::json!({
                    "batch_id": b.batch_id, "accepted": b.accepted,
                    "quarantined": b.quarantined, "table_version": b.table_version,
                }),
            )]
        } else {
            Vec::new()
        };
        self.commit_audited(tx, &events).await
    }

    pub async fn batch(
        &self,
        domain: &str,
        product: &str,
        dataset: &str,
        batch_id: &str,
    ) -> Result<Option<BatchRecord>> {
        let row = sqlx::query(
            "SELECT domain, product, dataset, batch_id, accepted, quarantined, table_version, committed_at
             FROM batches WHERE domain = $1 AND product = $2 AND dataset = $3 AND batch_id = $4",
        )
        .bind(domain.to_string())
        .bind(product.to_string())
        .bind(dataset.to_string())
        .bind(batch_id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(BatchRecord {
                domain: r.try_get("domain")?,
                product: r.try_get("product")?,
                dataset: r.try_get("dataset")?,
                batch_id: r.try_get("batch_id")?,
                accepted: r.try_get("accepted")?,
                quarantined: r.try_get("quarantined")?,
                table_version: r.try_get("table_version")?,
                committed_at: r.try_get("committed_at")?,
            })
        })
        .transpose()
    }

    /// Stores a check run and its results in one transaction.
    pub async fn record_check_run(
        &self,
        run: &CheckRunRecord,
        results: &[CheckResultRecord],
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO check_runs (run_id, domain, product, dataset, contract_id, contract_version, trigger, started_at, finished_at, result, score, table_version)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(run.run_id.clone())
        .bind(run.domain.clone())
        .bind(run.product.clone())
        .bind(run.dataset.clone())
        .bind(run.contract_id.clone())
        .bind(run.contract_version.clone())
        .bind(run.trigger.clone())
        .bind(run.started_at.clone())
        .bind(run.finished_at.clone())
        .bind(run.result.clone())
        .bind(run.score)
        .bind(run.table_version)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE generations SET value = value + 1 WHERE name = 'quality'")
            .execute(&mut *tx)
            .await?;
        for r in results {
            sqlx::query(
                "INSERT INTO check_results (run_id, position, check_key, check_type, name, model, field, dimension, severity, quality_id, result, measured, threshold, reason, samples)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
            )
            .bind(run.run_id.clone())
            .bind(r.position)
            .bind(r.check_key.clone())
            .bind(r.check_type.clone())
            .bind(r.name.clone())
            .bind(r.model.clone())
            .bind(r.field.clone())
            .bind(r.dimension.clone())
            .bind(r.severity.clone())
            .bind(r.quality_id.clone())
            .bind(r.result.clone())
            .bind(r.measured)
            .bind(r.threshold.clone())
            .bind(r.reason.clone())
            .bind(r.samples.clone())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.changed();
        Ok(())
    }

    /// The check runs `filter` selects, newest first.
    pub async fn check_runs(&self, filter: RunFilter<'_>) -> Result<Vec<CheckRunRecord>> {
        let mut sql = String::from(
            "SELECT run_id, domain, product, dataset, contract_id, contract_version, trigger, started_at, finished_at, result, score, table_version
             FROM check_runs WHERE domain = $1 AND product = $2",
        );
        let mut binds: Vec<String> = vec![filter.domain.into(), filter.product.into()];
        let param = |binds: &mut Vec<String>, value: &str| {
            binds.push(value.to_string());
            format!("${}", binds.len())
        };
        if let Some(dataset) = filter.dataset {
            sql += &format!(" AND dataset = {}", param(&mut binds, dataset));
        }
        if let Some(before) = filter.before {
            sql += &format!(" AND started_at < {}", param(&mut binds, before));
        }
        match filter.triggers {
            Triggers::Any | Triggers::Except([]) => {}
            // `IN ()` is not SQL: an empty list keeps nothing.
            Triggers::Only([]) => sql += " AND 1 = 0",
            Triggers::Only(list) | Triggers::Except(list) => {
                let params: Vec<String> = list.iter().map(|t| param(&mut binds, t)).collect();
                let not = match filter.triggers {
                    Triggers::Except(_) => "NOT ",
                    _ => "",
                };
                sql += &format!(" AND trigger {not}IN ({})", params.join(", "));
            }
        }
        sql += &format!(
            " ORDER BY started_at DESC, run_id DESC LIMIT ${}",
            binds.len() + 1
        );
        // Values are bound; only placeholders are put into the text.
        let mut query = sqlx::query(constant_sql(sql));
        for value in binds {
            query = query.bind(value);
        }
        let rows = query.bind(filter.limit).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(CheckRunRecord {
                    run_id: r.try_get("run_id")?,
                    domain: r.try_get("domain")?,
                    product: r.try_get("product")?,
                    dataset: r.try_get("dataset")?,
                    contract_id: r.try_get("contract_id")?,
                    contract_version: r.try_get("contract_version")?,
                    trigger: r.try_get("trigger")?,
                    started_at: r.try_get("started_at")?,
                    finished_at: r.try_get("finished_at")?,
                    result: r.try_get("result")?,
                    score: r.try_get("score")?,
                    table_version: r.try_get("table_version")?,
                })
            })
            .collect()
    }

    /// The blocking checks that fail in each dataset's latest check run (a refused batch's run
    /// is not one: its data was never committed): (domain, product, dataset, when the run
    /// started, the check's name), by dataset and check order.
    pub async fn failing_blocking_checks(
        &self,
    ) -> Result<Vec<(String, String, String, String, String)>> {
        let rows = sqlx::query(
            "SELECT r.domain, r.product, r.dataset, r.started_at, c.name
             FROM check_runs r JOIN check_results c ON c.run_id = r.run_id
             WHERE r.result = 'failed' AND c.result = 'failed' AND c.severity = 'error'
               AND r.trigger <> 'refused_commit'
               AND r.run_id = (SELECT l.run_id FROM check_runs l
                               WHERE l.domain = r.domain AND l.product = r.product
                                 AND l.dataset = r.dataset AND l.trigger <> 'refused_commit'
                               ORDER BY l.started_at DESC, l.run_id DESC LIMIT 1)
             ORDER BY r.domain, r.product, r.dataset, c.position",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("domain")?,
                    r.try_get("product")?,
                    r.try_get("dataset")?,
                    r.try_get("started_at")?,
                    r.try_get("name")?,
                ))
            })
            .collect()
    }

    /// The results of one run, in check order.
    pub async fn check_results(&self, run_id: &str) -> Result<Vec<CheckResultRecord>> {
        let rows = sqlx::query(
            "SELECT position, check_key, check_type, name, model, field, dimension, severity, quality_id, result, measured, threshold, reason, samples
             FROM check_results WHERE run_id = $1 ORDER BY position",
        )
        .bind(run_id.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(CheckResultRecord {
                    position: r.try_get("position")?,
                    check_key: r.try_get("check_key")?,
                    check_type: r.try_get("check_type")?,
                    name: r.try_get("name")?,
                    model: r.try_get("model")?,
                    field: r.try_get("field")?,
                    dimension: r.try_get("dimension")?,
                    severity: r.try_get("severity")?,
                    quality_id: r.try_get("quality_id")?,
                    result: r.try_get("result")?,
                    measured: r.try_get("measured")?,
                    threshold: r.try_get("threshold")?,
                    reason: r.try_get("reason")?,
                    samples: r.try_get("samples")?,
                })
            })
            .collect()
    }

    /// When the latest batch of a dataset was committed (RFC 3339), if any.
    pub async fn last_batch_at(
        &self,
        domain: &str,
        product: &str,
        dataset: &str,
    ) -> Result<Option<String>> {
        let latest: Option<String> = sqlx::query_scalar(
            "SELECT MAX(committed_at) FROM batches WHERE domain = $1 AND product = $2 AND dataset = $3",
        )
        .bind(domain.to_string())
        .bind(product.to_string())
        .bind(dataset.to_string())
        .fetch_one(&self.pool)
        .await?;
        Ok(latest)
    }

    /// Whether any user exists (a new metadata store has none).
    pub async fn has_users(&self) -> Result<bool> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&self.pool)
            .await?;
        Ok(n > 0)
    }

    /// Stores a token (made now, whatever its `created_at`), creating its user if new and
    /// adding `groups` and `teams` to the user's memberships, in one transaction.
    pub async fn create_token(
        &self,
        token: &TokenRecord,
        groups: &[String],
        teams: &[String],
        actor: &str,
    ) -> Result<()> {
        let user = token.user_name.as_str();
        let mut tx = self.pool.begin().await?;
        let now = now();
        sqlx::query(
            "INSERT INTO users (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(user.to_string())
        .bind(now.clone())
        .execute(&mut *tx)
        .await?;
        for (kind, names) in [("group", groups), ("team", teams)] {
            for name in names {
                sqlx::query(
                    "INSERT INTO memberships (user_name, kind, name) VALUES ($1, $2, $3) ON CONFLICT (user_name, kind, name) DO NOTHING",
                )
                .bind(user.to_string())
                .bind(kind)
                .bind(name.clone())
                .execute(&mut *tx)
                .await?;
            }
        }
        sqlx::query(
            "INSERT INTO api_tokens (token_id, user_name, secret_sha256, description, created_at, revoked_at) VALUES ($1, $2, $3, $4, $5, NULL)",
        )
        .bind(token.token_id.clone())
        .bind(user.to_string())
        .bind(token.secret_sha256.clone())
        .bind(token.description.clone())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        crate::access::bump_access_generation(&mut tx).await?;
        let event = AuditEvent::new(
            actor,
            "token.create",
            token.token_id.clone(),
            serde_json::json!({"user": user, "groups": groups, "teams": teams, "description": token.description}),
        );
        self.commit_audited(tx, &[event]).await
    }

    pub async fn token(&self, token_id: &str) -> Result<Option<TokenRecord>> {
        let row = sqlx::query(constant_sql(format!("{TOKEN_SELECT} WHERE token_id = $1")))
            .bind(token_id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(token_row).transpose()
    }

    /// Every token, or those of one user, oldest first.
    pub async fn tokens(&self, user: Option<&str>) -> Result<Vec<TokenRecord>> {
        let only_user = if user.is_some() {
            " WHERE user_name = $1"
        } else {
            ""
        };
        let mut query = sqlx::query(constant_sql(format!(
            "{TOKEN_SELECT}{only_user} ORDER BY created_at, token_id"
        )));
        if let Some(u) = user {
            query = query.bind(u.to_string());
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(token_row).collect()
    }

    /// Marks a token revoked; `false` when there is no such token or it was revoked before.
    pub async fn revoke_token(&self, token_id: &str, actor: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 WHERE token_id = $2 AND revoked_at IS NULL",
        )
        .bind(now())
        .bind(token_id.to_string())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        // Instances forget the principals they cached by token.
        crate::access::bump_access_generation(&mut tx).await?;
        let event = AuditEvent::new(actor, "token.revoke", token_id, serde_json::json!({}));
        self.commit_audited(tx, &[event]).await?;
        Ok(true)
    }

    pub async fn user(&self, name: &str) -> Result<Option<UserRecord>> {
        let Some(row) = sqlx::query("SELECT name, created_at FROM users WHERE name = $1")
            .bind(name.to_string())
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let memberships = sqlx::query(
            "SELECT kind, name FROM memberships WHERE user_name = $1 ORDER BY kind, name",
        )
        .bind(name.to_string())
        .fetch_all(&self.pool)
        .await?;
        let mut user = UserRecord {
            name: row.try_get("name")?,
            created_at: row.try_get("created_at")?,
            groups: Vec::new(),
            teams: Vec::new(),
        };
        for m in memberships {
            let kind: String = m.try_get("kind")?;
            let member_of: String = m.try_get("name")?;
            match kind.as_str() {
                "group" => user.groups.push(member_of),
                _ => user.teams.push(member_of),
            }
        }
        Ok(Some(user))
    }

    /// Closes the pool, waiting for connections in use.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The audit entries of an apply: the apply itself, then each new contract version.
fn apply_events(change: &MetadataChange, actor: &str) -> Vec<AuditEvent> {
    let subject = change
        .product
        .as_ref()
        .map(|p| format!("{}.{}", p.domain, p.name))
        .or_else(|| {
            change
                .datasets
                .first()
                .map(|d| format!("{}.{}", d.domain, d.product))
        })
        .or_else(|| change.contracts.first().map(|c| c.domain.clone()))
        .or_else(|| {
            change
                .product_policies
                .as_ref()
                .map(|(d, p, _)| format!("{d}.{p}"))
        })
        .or_else(|| {
            change
                .product_sources
                .as_ref()
                .map(|(d, p, _)| format!("{d}.{p}"))
        })
        .or_else(|| {
            change
                .product_transforms
                .as_ref()
                .map(|(d, p, _)| format!("{d}.{p}"))
        });
    let Some(subject) = subject else {
        return Vec::new();
    };
    let mut events = vec![AuditEvent::new(
        actor,
        "apply",
        subject,
        serde_json::json!({
            "product": change.product.as_ref().map(|p| serde_json::json!({
                "version": p.version, "status": p.status, "owner": p.owner,
                "source_sha256": sha256_hex(&p.source),
            })),
            "contracts": change.contracts.iter().map(|c| format!("{}@{}", c.contract_id, c.version)).collect::<Vec<_>>(),
            "policies": change.product_policies.as_ref().map(|(_, _, ps)| ps.iter().map(|p| serde_json::json!({
                "policy": p.policy_id, "severity": p.severity, "source_sha256": sha256_hex(&p.source),
            })).collect::<Vec<_>>()),
            "sources": change.product_sources.as_ref().map(|(_, _, ss)| ss.iter().map(|s| serde_json::json!({
                "source": s.name, "dataset": s.dataset, "connector": s.connector, "source_sha256": sha256_hex(&s.source),
            })).collect::<Vec<_>>()),
            "transforms": change.product_transforms.as_ref().map(|(_, _, ts)| ts.iter().map(|t| serde_json::json!({
                "dataset": t.dataset, "file": t.file_name, "source_sha256": sha256_hex(&t.source),
            })).collect::<Vec<_>>()),
            "datasets": change.datasets.iter().map(|d| serde_json::json!({
                "dataset": format!("{}.{}.{}", d.domain, d.product, d.name),
                "contract": format!("{}@{}", d.contract_id, d.contract_version),
            })).collect::<Vec<_>>(),
        }),
    )];
    events.extend(change.contracts.iter().map(|c| {
        AuditEvent::new(
            actor,
            "contract.version",
            format!("{}/{}@{}", c.domain, c.contract_id, c.version),
            serde_json::json!({"status": c.status, "file": c.file_name, "source_sha256": sha256_hex(&c.source)}),
        )
    }));
    events
}

/// A stored text's digest, so an audit entry pins the exact file without repeating it.
pub(crate) fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

const PRODUCT_SELECT: &str = "SELECT domain, name, product_id, version, status, description, owner, file_name, source, created_at, updated_at FROM products";
const CONTRACT_SELECT: &str =
    "SELECT domain, contract_id, version, status, file_name, source, created_at FROM contracts";
const TOKEN_SELECT: &str = "SELECT token_id, user_name, secret_sha256, description, created_at, revoked_at FROM api_tokens";
const DATASET_SELECT: &str = "SELECT domain, product, name, contract_id, contract_version, location, created_at, updated_at FROM datasets";

fn product_row(r: &AnyRow) -> Result<ProductRecord> {
    Ok(ProductRecord {
        domain: r.try_get("domain")?,
        name: r.try_get("name")?,
        product_id: r.try_get("product_id")?,
        version: r.try_get("version")?,
        status: r.try_get("status")?,
        description: r.try_get("description")?,
        owner: r.try_get("owner")?,
        file_name: r.try_get("file_name")?,
        source: r.try_get("source")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn contract_row(r: &AnyRow) -> Result<ContractRecord> {
    Ok(ContractRecord {
        domain: r.try_get("domain")?,
        contract_id: r.try_get("contract_id")?,
        version: r.try_get("version")?,
        status: r.try_get("status")?,
        file_name: r.try_get("file_name")?,
        source: r.try_get("source")?,
        created_at: r.try_get("created_at")?,
    })
}

fn token_row(r: &AnyRow) -> Result<TokenRecord> {
    Ok(TokenRecord {
        token_id: r.try_get("token_id")?,
        user_name: r.try_get("user_name")?,
        secret_sha256: r.try_get("secret_sha256")?,
        description: r.try_get("description")?,
        created_at: r.try_get("created_at")?,
        revoked_at: r.try_get("revoked_at")?,
    })
}

fn dataset_row(r: &AnyRow) -> Result<DatasetRecord> {
    Ok(DatasetRecord {
        domain: r.try_get("domain")?,
        product: r.try_get("product")?,
        name: r.try_get("name")?,
        contract_id: r.try_get("contract_id")?,
        contract_version: r.try_get("contract_version")?,
        location: r.try_get("location")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// SQL assembled from this file's constants only, never from input (sqlx 0.9 wants it said).
pub(crate) fn constant_sql(sql: String) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(sql)
}

/// A statement under construction, its values bound as it goes.
pub(crate) type AnyQuery = sqlx::query::Query<'static, sqlx::Any, sqlx::any::AnyArguments>;

/// Rows per multi-row statement: well under SQLite's and PostgreSQL's bound-parameter limits
/// at ten values a row, and few enough statements that thousands of rows are one round trip
/// each few hundred.
const ROWS_PER_STATEMENT: usize = 200;

/// Runs `{head} VALUES ($1, …), (…) {tail}` over `rows`, a few hundred a statement, each row's
/// `width` values bound in order by `bind`: one statement instead of one per row. On SQLite the
/// placeholders are anonymous (`?`): sqlx looks up each numbered one's name, a linear search in
/// SQLite, which made binding a statement of 1,600 values cost more than running it.
pub(crate) async fn execute_rows<T>(
    conn: &mut sqlx::AnyConnection,
    head: &str,
    tail: &str,
    width: usize,
    rows: &[T],
    bind: impl Fn(AnyQuery, &T) -> AnyQuery,
) -> Result<()> {
    fetch_rows(conn, head, tail, width, rows, bind).await?;
    Ok(())
}

/// [`execute_rows`], returning what the statements return (`tail` ending in `RETURNING ...`).
pub(crate) async fn fetch_rows<T>(
    conn: &mut sqlx::AnyConnection,
    head: &str,
    tail: &str,
    width: usize,
    rows: &[T],
    bind: impl Fn(AnyQuery, &T) -> AnyQuery,
) -> Result<Vec<sqlx::any::AnyRow>> {
    let mut returned = Vec::new();
    let numbered = conn.backend_name() != <sqlx::Sqlite as sqlx::Database>::NAME;
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let values: Vec<String> = (0..chunk.len())
            .map(|row| {
                let cells: Vec<String> = (1..=width)
                    .map(|cell| match numbered {
                        true => format!("${}", row * width + cell),
                        false => "?".to_string(),
                    })
                    .collect();
                format!("({})", cells.join(", "))
            })
            .collect();
        let sql = format!("{head} VALUES {} {tail}", values.join(", "));
        let mut query = sqlx::query(constant_sql(sql));
        for row in chunk {
            query = bind(query, row);
        }
        returned.extend(query.fetch_all(&mut *conn).await?);
    }
    Ok(returned)
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("postgres://u:pw@h:5/db"), "postgres://u:***@h:5/db");
        assert_eq!(redact("sqlite://x.db"), "sqlite://x.db");
    }
}
