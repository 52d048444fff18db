//! The PostgreSQL connector: a table or a query, read incrementally by a cursor.
//!
//! A timestamp cursor alone loses rows: two rows share a timestamp, and a transaction that
//! started earlier commits later with an older timestamp than rows already read. So the cursor
//! is (timestamp, key): pages are read in that order with a keyset bound, and every pull starts
//! a new sweep `lookback` before the newest timestamp committed, so rows that committed late are
//! read then. Rows are merged into the dataset by the key, so reading a row again is harmless;
//! rows of a sweep that were read before with the same timestamp are left out, so a quiet table
//! makes no commits. The newest committed timestamp is the Delta application transaction
//! `tessera-source:NAME:cursor` (microseconds since the epoch), and a pull counter
//! `tessera-source:NAME:pulls` tells whether the previous pull was committed.
//!
//! Options (`postgres:`): `table` (`schema.table`) or `query` (a SELECT), `cursor` (`timestamp`,
//! `key`: the key is a column of the dataset), `lookback` (default 5m), `initialLoad` (`full`,
//! the default: the first pull reads every row; `none`: it starts at the newest), `batchRows`
//! (rows a commit holds at most, default 50,000). The secret is the connection URL. The session
//! is read-only and in UTC. Rows whose timestamp or key is NULL are not read. Values arrive as
//! JSON (`to_jsonb`), so every PostgreSQL type reaches the contract's casts as text or number
//! with nothing lost (numerics keep their digits, timestamps their zone).

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use tessera_core::{SourceSpec, parse_duration};

use crate::error::{Result, SourceError, without_passwords};
use crate::{
    Committed, Connector, OpenContext, OptionProblem, Pull, PulledRows, SourceReader, position_id,
};

pub struct PostgresConnector;

const DEFAULT_LOOKBACK: Duration = Duration::from_secs(300);
const DEFAULT_BATCH_ROWS: usize = 50_000;
/// Pairs per `jsonb_build_object` call (PostgreSQL takes at most 100 arguments).
const PAIRS_PER_OBJECT: usize = 40;

/// A SQL identifier, quoted.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A SQL string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// `schema.table` or `table`, each part a plain name, quoted.
fn table_name(text: &str) -> std::result::Result<String, String> {
    let parts: Vec<&str> = text.split('.').collect();
    let plain = |p: &str| {
        !p.is_empty()
            && p.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    if parts.len() > 2 || !parts.iter().all(|p| plain(p)) {
        return Err(format!(
            "{text:?} is not a table name (schema.table, letters, digits and _; use `query` for anything else)"
        ));
    }
    Ok(parts.iter().map(|p| ident(p)).collect::<Vec<_>>().join("."))
}

/// The options as the reader uses them.
#[derive(Debug, Clone)]
struct Options {
    /// What the rows are read from: a table, or a query in parentheses.
    relation: String,
    timestamp: String,
    key: String,
    lookback: Duration,
    initial_full: bool,
    batch_rows: usize,
}

fn options(
    source: &SourceSpec,
    columns: &[String],
) -> std::result::Result<Options, Vec<OptionProblem>> {
    let o = &source.options;
    let mut problems = Vec::new();
    let relation = match (
        o.get("table").and_then(|t| t.as_str()),
        o.get("query").and_then(|q| q.as_str()),
    ) {
        (Some(_), Some(_)) => {
            problems.push(OptionProblem::new(
                "/postgres/query",
                "give `table` or `query`, not both",
            ));
            None
        }
        (Some(table), None) => match table_name(table) {
            Ok(t) => Some(t),
            Err(e) => {
                problems.push(OptionProblem::new("/postgres/table", e));
                None
            }
        },
        (None, Some(query)) => {
            let trimmed = query.trim().trim_end_matches(';');
            let first = trimmed
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase();
            if first != "select" && first != "with" {
                problems.push(OptionProblem::new(
                    "/postgres/query",
                    "the query must be a SELECT (it runs in a read-only session)",
                ));
            }
            Some(format!("({trimmed})"))
        }
        (None, None) => {
            problems.push(OptionProblem::new(
                "/postgres",
                "missing `table` or `query`: what the rows are read from",
            ));
            None
        }
    };
    let cursor = o.get("cursor");
    let timestamp = cursor
        .and_then(|c| c.get("timestamp"))
        .and_then(|t| t.as_str())
        .map(str::to_string);
    let key = cursor
        .and_then(|c| c.get("key"))
        .and_then(|k| k.as_str())
        .map(str::to_string);
    if timestamp.is_none() || key.is_none() {
        problems.push(OptionProblem::new(
            "/postgres",
            "missing `cursor: {timestamp: COLUMN, key: COLUMN}`: the column that says when a row last changed, and the key rows are merged by",
        ));
    }
    if let Some(key) = &key
        && !columns.contains(key)
    {
        problems.push(OptionProblem::new(
            "/postgres/cursor/key",
            format!(
                "the cursor's key {key:?} is not a column of dataset {} (rows are merged into it by that column)",
                source.dataset
            ),
        ));
    }
    let lookback = match o.get("lookback").and_then(|l| l.as_str()) {
        Some(text) => match parse_duration(text) {
            Some(d) => d,
            None => {
                problems.push(OptionProblem::new(
                    "/postgres/lookback",
                    format!("{text:?} is not a duration (e.g. 5m)"),
                ));
                DEFAULT_LOOKBACK
            }
        },
        None => DEFAULT_LOOKBACK,
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Options {
        relation: relation.expect("a relation when there is no problem"),
        timestamp: timestamp.expect("a timestamp"),
        key: key.expect("a key"),
        lookback,
        initial_full: o.get("initialLoad").and_then(|i| i.as_str()) != Some("none"),
        batch_rows: o
            .get("batchRows")
            .and_then(|b| b.as_u64())
            .map_or(DEFAULT_BATCH_ROWS, |b| b as usize),
    })
}

#[async_trait]
impl Connector for PostgresConnector {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn needs_secret(&self) -> bool {
        true
    }

    fn check(&self, source: &SourceSpec, columns: &[String]) -> Vec<OptionProblem> {
        options(source, columns).err().unwrap_or_default()
    }

    fn origin(
        &self,
        source: &SourceSpec,
        secret: Option<&str>,
        _context: &OpenContext,
    ) -> Option<(String, String)> {
        let table = source.options.get("table")?.as_str()?;
        let url = url::Url::parse(secret?).ok()?;
        let host = url.host_str()?;
        let database = url.path().trim_start_matches('/');
        let database = if database.is_empty() {
            url.username()
        } else {
            database
        };
        let (schema, table) = table.split_once('.').unwrap_or(("public", table));
        Some((
            format!("postgres://{host}:{}", url.port().unwrap_or(5432)),
            format!("{database}.{schema}.{table}"),
        ))
    }

    async fn open(
        &self,
        source: &SourceSpec,
        secret: Option<String>,
        context: &OpenContext,
    ) -> Result<Box<dyn SourceReader>> {
        let options = options(source, &context.columns).map_err(|problems| {
            SourceError::Invalid(
                problems
                    .iter()
                    .map(|p| p.message.clone())
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        let url = secret.ok_or_else(|| {
            SourceError::Invalid("a postgres source needs a secret: its connection URL".into())
        })?;
        let connect: PgConnectOptions = url.parse().map_err(|_| {
            SourceError::Invalid(
                "the source's secret is not a PostgreSQL connection URL (postgres://USER:PASSWORD@HOST:PORT/DB)".into(),
            )
        })?;
        let connect =
            connect.options([("default_transaction_read_only", "on"), ("TimeZone", "UTC")]);
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy_with(connect);
        Ok(Box::new(PostgresReader {
            name: source.name.clone(),
            pool,
            options,
            columns: context.columns.clone(),
            types: None,
            sweep: None,
            recent: HashMap::new(),
            pending: None,
        }))
    }
}

/// Where the previous pull's sweep stopped, and what it read.
struct Pending {
    /// The pull counter its commit records.
    pull: i64,
    rows: Vec<(String, i64)>,
}

struct PostgresReader {
    name: String,
    pool: PgPool,
    options: Options,
    columns: Vec<String>,
    /// The timestamp's and the key's PostgreSQL types, asked once.
    types: Option<(String, String)>,
    /// The (timestamp, key) of the last row of the page before, while a sweep goes on.
    sweep: Option<(i64, String)>,
    /// Rows committed within the lookback window: key → timestamp (µs). A sweep leaves them out
    /// while their timestamp is the same.
    recent: HashMap<String, i64>,
    /// What the last pull returned, until its commit is seen.
    pending: Option<Pending>,
}

/// Where a page starts.
enum Bound {
    Beginning,
    AtLeast(i64),
    After(i64, String),
}

fn unreachable(e: sqlx::Error) -> SourceError {
    match e {
        sqlx::Error::Database(db) => SourceError::Invalid(format!(
            "PostgreSQL refused the source's query: {}",
            without_passwords(db.message())
        )),
        other => SourceError::Unreachable(without_passwords(&other.to_string())),
    }
}

impl PostgresReader {
    async fn types(&mut self) -> Result<Option<(String, String)>> {
        if self.types.is_none() {
            let o = &self.options;
            let sql = format!(
                "SELECT pg_typeof(s.{ts})::text AS ts_type, pg_typeof(s.{key})::text AS key_type FROM {rel} s LIMIT 1",
                ts = ident(&o.timestamp),
                key = ident(&o.key),
                rel = o.relation
            );
            let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                .fetch_optional(&self.pool)
                .await
                .map_err(unreachable)?;
            if let Some(row) = row {
                self.types = Some((
                    row.try_get("ts_type").map_err(unreachable)?,
                    row.try_get("key_type").map_err(unreachable)?,
                ));
            }
        }
        Ok(self.types.clone())
    }

    /// One page from `bound`, in (timestamp, key) order: (row as JSON, timestamp µs, key).
    async fn page(&mut self, bound: &Bound, limit: usize) -> Result<Vec<(String, i64, String)>> {
        let Some((ts_type, key_type)) = self.types().await? else {
            return Ok(Vec::new());
        };
        let o = &self.options;
        let (ts, key) = (ident(&o.timestamp), ident(&o.key));
        let objects: Vec<String> = self
            .columns
            .chunks(PAIRS_PER_OBJECT)
            .map(|chunk| {
                let pairs: Vec<String> = chunk
                    .iter()
                    .map(|c| format!("{}, s.{}", literal(c), ident(c)))
                    .collect();
                format!("jsonb_build_object({})", pairs.join(", "))
            })
            .collect();
        // Bounds are bound as text in the column's own type, so the comparison is exact and an
        // index on (timestamp, key) serves it.
        let condition = match bound {
            Bound::Beginning => String::new(),
            Bound::AtLeast(_) => format!("AND s.{ts} >= $1::{ts_type}"),
            Bound::After(..) => format!("AND (s.{ts}, s.{key}) > ($1::{ts_type}, $2::{key_type})"),
        };
        let sql = format!(
            "SELECT ({json})::text AS row, (extract(epoch from s.{ts}) * 1000000)::bigint AS ts_us, s.{key}::text AS k
             FROM {rel} s
             WHERE s.{ts} IS NOT NULL AND s.{key} IS NOT NULL {condition}
             ORDER BY s.{ts}, s.{key}
             LIMIT {limit}",
            json = objects.join(" || "),
            rel = o.relation,
        );
        let query = sqlx::query(sqlx::AssertSqlSafe(sql));
        let query = match bound {
            Bound::Beginning => query,
            Bound::AtLeast(from) => query.bind(as_literal(&ts_type, *from)),
            Bound::After(from, after) => {
                query.bind(as_literal(&ts_type, *from)).bind(after.clone())
            }
        };
        let rows = query.fetch_all(&self.pool).await.map_err(unreachable)?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get::<String, _>("row").map_err(unreachable)?,
                    r.try_get::<i64, _>("ts_us").map_err(unreachable)?,
                    r.try_get::<String, _>("k").map_err(unreachable)?,
                ))
            })
            .collect()
    }

    async fn newest(&mut self) -> Result<Option<i64>> {
        let o = &self.options;
        let sql = format!(
            "SELECT (extract(epoch from max(s.{ts})) * 1000000)::bigint AS newest FROM {rel} s",
            ts = ident(&o.timestamp),
            rel = o.relation
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_one(&self.pool)
            .await
            .map_err(unreachable)?;
        row.try_get::<Option<i64>, _>("newest").map_err(unreachable)
    }
}

/// Microseconds since the epoch as the text PostgreSQL reads as a value of `ts_type` exactly:
/// with the zone for `timestamp with time zone`, without it for `timestamp`, the day for `date`.
fn as_literal(ts_type: &str, micros: i64) -> String {
    let Some(at) = chrono::DateTime::from_timestamp_micros(micros) else {
        return micros.to_string();
    };
    match ts_type {
        "date" => at.format("%Y-%m-%d").to_string(),
        "timestamp without time zone" => at.format("%Y-%m-%d %H:%M:%S%.6f").to_string(),
        _ => at.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string(),
    }
}

/// Microseconds since the epoch as RFC 3339, for people.
fn when(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        .unwrap_or_else(|| micros.to_string())
}

#[async_trait]
impl SourceReader for PostgresReader {
    async fn pull(&mut self, committed: &dyn Committed, max_rows: usize) -> Result<Option<Pull>> {
        let cursor_id = position_id(&self.name, "cursor");
        let pulls_id = position_id(&self.name, "pulls");
        let high_water = committed.position(&cursor_id).await?;
        let pulls = committed.position(&pulls_id).await?.unwrap_or(0);
        // The pull before: committed (its rows join what the window has seen), or not (its
        // sweep starts over; the merge makes reading its rows again harmless).
        if let Some(pending) = self.pending.take() {
            if pulls >= pending.pull {
                self.recent.extend(pending.rows);
            } else {
                self.sweep = None;
            }
        }
        let lookback = self.options.lookback.as_micros() as i64;
        if let Some(hw) = high_water {
            self.recent.retain(|_, ts| *ts >= hw - lookback);
        }
        let limit = max_rows.min(self.options.batch_rows).max(1);
        let mut bound = match (&self.sweep, high_water) {
            (Some((ts, key)), _) => Bound::After(*ts, key.clone()),
            (None, Some(hw)) => Bound::AtLeast(hw - lookback),
            (None, None) if self.options.initial_full => Bound::Beginning,
            (None, None) => {
                // Start at the newest row: commit that position alone.
                let Some(newest) = self.newest().await? else {
                    return Ok(None);
                };
                self.pending = Some(Pending {
                    pull: pulls + 1,
                    rows: Vec::new(),
                });
                return Ok(Some(Pull {
                    rows: PulledRows::Ndjson(Bytes::new()),
                    count: 0,
                    positions: vec![(cursor_id, newest), (pulls_id, pulls + 1)],
                    batch_id: None,
                    merge_on: Some(vec![self.options.key.clone()]),
                    describe: format!(
                        "{} {} (initial load skipped)",
                        self.options.timestamp,
                        when(newest)
                    ),
                    lag_seconds: None,
                    unreadable: Vec::new(),
                    more: false,
                }));
            }
        };
        // Pages until one holds a row not read before (or the sweep ends).
        loop {
            let page = self.page(&bound, limit).await?;
            let full = page.len() == limit;
            let last = page.last().map(|(_, ts, key)| (*ts, key.clone()));
            self.sweep = if full { last.clone() } else { None };
            let fresh: Vec<(String, i64, String)> = page
                .into_iter()
                .filter(|(_, ts, key)| self.recent.get(key) != Some(ts))
                .collect();
            if fresh.is_empty() {
                match (full, last) {
                    (true, Some((ts, key))) => {
                        bound = Bound::After(ts, key);
                        continue;
                    }
                    _ => return Ok(None),
                }
            }
            let newest = fresh.iter().map(|(_, ts, _)| *ts).max().unwrap_or(0);
            let high = high_water.map_or(newest, |hw| hw.max(newest));
            let mut ndjson = Vec::with_capacity(fresh.iter().map(|(r, ..)| r.len() + 1).sum());
            for (row, ..) in &fresh {
                ndjson.extend_from_slice(row.as_bytes());
                ndjson.push(b'\n');
            }
            let lag = (chrono::Utc::now().timestamp_micros() - high) as f64 / 1e6;
            self.pending = Some(Pending {
                pull: pulls + 1,
                rows: fresh
                    .iter()
                    .map(|(_, ts, key)| (key.clone(), *ts))
                    .collect(),
            });
            return Ok(Some(Pull {
                rows: PulledRows::Ndjson(Bytes::from(ndjson)),
                count: fresh.len(),
                positions: vec![(cursor_id, high), (pulls_id, pulls + 1)],
                batch_id: None,
                merge_on: Some(vec![self.options.key.clone()]),
                describe: format!("{} {}", self.options.timestamp, when(high)),
                lag_seconds: Some(lag.max(0.0)),
                unreadable: Vec::new(),
                more: full,
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(options: serde_json::Value) -> SourceSpec {
        SourceSpec {
            name: "shop_db".into(),
            description: None,
            dataset: "orders".into(),
            connector: "postgres".into(),
            trigger: tessera_core::SourceTrigger::Continuous,
            options,
            secret: None,
        }
    }

    #[test]
    fn options_are_checked_where_they_are_written() {
        let columns = vec!["order_id".to_string(), "updated_at".to_string()];
        let good = serde_json::json!({"table": "public.orders", "cursor": {"timestamp": "updated_at", "key": "order_id"}});
        assert!(PostgresConnector.check(&spec(good), &columns).is_empty());
        let both = serde_json::json!({"table": "t", "query": "SELECT 1", "cursor": {"timestamp": "a", "key": "order_id"}});
        assert_eq!(
            PostgresConnector.check(&spec(both), &columns)[0].pointer,
            "/postgres/query"
        );
        let bad_table = serde_json::json!({"table": "orders; DROP TABLE x", "cursor": {"timestamp": "a", "key": "order_id"}});
        assert_eq!(
            PostgresConnector.check(&spec(bad_table), &columns)[0].pointer,
            "/postgres/table"
        );
        let not_a_column =
            serde_json::json!({"table": "t", "cursor": {"timestamp": "a", "key": "id"}});
        assert_eq!(
            PostgresConnector.check(&spec(not_a_column), &columns)[0].pointer,
            "/postgres/cursor/key"
        );
        let write = serde_json::json!({"query": "DELETE FROM t", "cursor": {"timestamp": "a", "key": "order_id"}});
        assert!(
            PostgresConnector.check(&spec(write), &columns)[0]
                .message
                .contains("must be a SELECT")
        );
    }

    #[test]
    fn a_table_is_named_as_openlineage_names_postgres_tables_without_its_credentials() {
        let context = OpenContext {
            data_dir: std::path::PathBuf::from("/data"),
            columns: Vec::new(),
        };
        let table = spec(serde_json::json!({"table": "orders"}));
        assert_eq!(
            PostgresConnector.origin(
                &table,
                Some("postgres://reader:secret@db.internal:5433/shop"),
                &context
            ),
            Some((
                "postgres://db.internal:5433".to_string(),
                "shop.public.orders".to_string()
            ))
        );
        let in_schema = spec(serde_json::json!({"table": "sales.orders"}));
        assert_eq!(
            PostgresConnector
                .origin(&in_schema, Some("postgres://reader@db/shop"), &context)
                .map(|(namespace, name)| format!("{namespace} {name}")),
            Some("postgres://db:5432 shop.sales.orders".to_string())
        );
        // A query reads no one table; a secret that is no URL names nothing.
        let query = spec(serde_json::json!({"query": "SELECT 1"}));
        assert_eq!(
            PostgresConnector.origin(&query, Some("postgres://db/shop"), &context),
            None
        );
        assert_eq!(
            PostgresConnector.origin(&table, Some("secret"), &context),
            None
        );
    }
}
