//! A kept index of a table's keys, so that the commit gate's uniqueness checks cost what the
//! batch costs, not what the table holds.
//!
//! The index holds a 64-bit hash of every non-null key of the table (about 10–20 bytes a key
//! in memory). A batch's keys are hashed the same way: a key whose hash is not in the index is
//! certainly not in the table; the few whose hash is (a duplicate, or very rarely a hash
//! collision) are looked up in the table exactly, so the count of shared keys is exact. Built by
//! one scan of the key columns; kept up to date by adding each committed batch's keys.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, UInt32Array};
use arrow::compute::{cast, filter_record_batch, take};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use datafusion::common::hash_utils::{RandomState, create_hashes};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use futures::StreamExt;

use crate::checks::{all_present, ident, shared_keys};
use crate::error::{QualityError, Result};

/// The table a batch's candidate keys are registered as while they are looked up.
const CANDIDATES: &str = "tessera.public.key_candidates";

/// The hashes are already uniform: the set uses them as they are.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// The same seed everywhere in the process, so a batch hashes as the table did.
fn random_state() -> RandomState {
    RandomState::with_seed(0x7e55_e7a0)
}

/// The hashes of a table's non-null keys over some columns.
#[derive(Default)]
pub struct KeyIndex {
    hashes: HashSet<u64, BuildHasherDefault<PassThrough>>,
}

/// A batch's non-null keys: each one's hash and its row in the batch.
#[derive(Debug, Clone, Default)]
pub struct BatchKeys {
    pub hashes: Vec<u64>,
    rows: Vec<u32>,
}

impl KeyIndex {
    /// Reads the key columns of `table` once (streamed: only the hashes are kept), as `types`
    /// (the batches' key types, so both hash alike).
    pub async fn build(
        ctx: &SessionContext,
        table: &str,
        columns: &[String],
        types: &[DataType],
    ) -> Result<Self> {
        let cols: Vec<String> = columns.iter().map(|c| ident(c)).collect();
        let not_null = all_present(&cols);
        let sql = format!("SELECT {} FROM {table} WHERE {not_null}", cols.join(", "));
        let query_failed = |e: datafusion::error::DataFusionError| {
            QualityError::Query(tessera_query::QueryError::from_datafusion(e).to_string())
        };
        let df = tessera_query::plan_sql(ctx, &sql)
            .await
            .map_err(|e| QualityError::Query(e.to_string()))?;
        let mut stream = df.execute_stream().await.map_err(query_failed)?;
        let mut index = KeyIndex::default();
        let mut buffer = Vec::new();
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(query_failed)?;
            let arrays = as_types(batch.columns(), types)?;
            buffer.clear();
            buffer.resize(batch.num_rows(), 0);
            create_hashes(&arrays, &random_state(), &mut buffer)
                .map_err(|e| QualityError::Query(e.to_string()))?;
            index.hashes.extend(buffer.iter().copied());
        }
        Ok(index)
    }

    /// The distinct keys the index holds (a collision counts once).
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// Adds a committed batch's keys.
    pub fn insert(&mut self, keys: &BatchKeys) {
        self.hashes.extend(keys.hashes.iter().copied());
    }

    /// How many distinct keys of `batch` (over `columns`) `table` already holds: candidates by
    /// hash, each confirmed in the table, so a collision never counts.
    pub async fn shared(
        &self,
        ctx: &SessionContext,
        table: &str,
        columns: &[String],
        batch: &RecordBatch,
        keys: &BatchKeys,
    ) -> Result<f64> {
        let candidates: Vec<u32> = keys
            .hashes
            .iter()
            .zip(&keys.rows)
            .filter(|(h, _)| self.hashes.contains(h))
            .map(|(_, row)| *row)
            .collect();
        if candidates.is_empty() {
            return Ok(0.0);
        }
        let indices = UInt32Array::from(candidates);
        let projected = key_columns(batch, columns)?;
        let taken: Vec<ArrayRef> = projected
            .columns()
            .iter()
            .map(|c| take(c, &indices, None))
            .collect::<std::result::Result<_, _>>()?;
        let candidates = RecordBatch::try_new(projected.schema(), taken)?;
        let table_failed = |e: datafusion::error::DataFusionError| {
            QualityError::Query(format!("looking up candidate keys: {e}"))
        };
        let memory =
            MemTable::try_new(candidates.schema(), vec![vec![candidates]]).map_err(table_failed)?;
        ctx.register_table(CANDIDATES, Arc::new(memory))
            .map_err(table_failed)?;
        let shared = shared_keys(ctx, CANDIDATES, table, columns).await;
        ctx.deregister_table(CANDIDATES).map_err(table_failed)?;
        shared
    }
}

/// The non-null keys of `batch` over `columns`, hashed as [`KeyIndex`] hashes a table's.
pub fn batch_keys(batch: &RecordBatch, columns: &[String]) -> Result<BatchKeys> {
    let projected = key_columns(batch, columns)?;
    let all_present: BooleanArray = (0..projected.num_rows())
        .map(|row| Some(projected.columns().iter().all(|c| c.is_valid(row))))
        .collect();
    let rows: Vec<u32> = all_present
        .iter()
        .enumerate()
        .filter(|(_, present)| *present == Some(true))
        .map(|(row, _)| row as u32)
        .collect();
    let present = filter_record_batch(&projected, &all_present)?;
    let mut hashes = vec![0; present.num_rows()];
    create_hashes(present.columns(), &random_state(), &mut hashes)
        .map_err(|e| QualityError::Query(e.to_string()))?;
    Ok(BatchKeys { hashes, rows })
}

/// `arrays` cast to `types` where they differ (a scan may read a column as another encoding of
/// the same values).
fn as_types(arrays: &[ArrayRef], types: &[DataType]) -> Result<Vec<ArrayRef>> {
    arrays
        .iter()
        .zip(types)
        .map(|(a, t)| {
            if a.data_type() == t {
                Ok(a.clone())
            } else {
                Ok(cast(a, t)?)
            }
        })
        .collect()
}

/// `batch` with only the key columns, in the key's order.
fn key_columns(batch: &RecordBatch, columns: &[String]) -> Result<RecordBatch> {
    let indices: Vec<usize> = columns
        .iter()
        .map(|c| {
            batch
                .schema()
                .index_of(c)
                .map_err(|_| QualityError::InvalidRule {
                    column: c.clone(),
                    rule: "unique".into(),
                    reason: "the batch has no such column".into(),
                })
        })
        .collect::<Result<_>>()?;
    Ok(batch.project(&indices)?)
}
