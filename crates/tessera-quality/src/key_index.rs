//! A kept index of a table's keys, so that the commit gate's uniqueness checks cost what the
//! batch costs, not what the table holds.
//!
//! The index holds a 64-bit hash of every non-null key of the table (about 10–20 bytes a key
//! in memory). A batch's keys are hashed the same way: a key whose hash is not in the index is
//! certainly not in the table; the few whose hash is (a duplicate, or very rarely a hash
//! collision) are looked up in the table exactly, so the count of shared keys is exact. Built by
//! one scan of the key columns; kept up to date by adding each committed batch's keys. The same
//! hashes count a batch's distinct keys ([`BatchKeys::distinct`]) without a hash aggregate.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, UInt32Array};
use arrow::compute::{cast, filter_record_batch, take_record_batch};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, SortField};
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

/// A set of key hashes, used as they are.
type Hashes = HashSet<u64, BuildHasherDefault<PassThrough>>;

/// The same seed everywhere in the process, so a batch hashes as the table did.
fn random_state() -> RandomState {
    RandomState::with_seed(0x7e55_e7a0)
}

/// The hashes of a table's non-null keys over some columns.
#[derive(Default)]
pub struct KeyIndex {
    hashes: Hashes,
}

/// What building an index read: the table's non-null keys, and whether any hash came twice
/// (a duplicate key, or very rarely a collision).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexedKeys {
    pub keys: usize,
    pub hash_repeated: bool,
}

impl IndexedKeys {
    /// The table's distinct keys, when the build can tell: no hash came twice, so every key
    /// is distinct. `None` asks for an exact count.
    pub fn distinct(&self) -> Option<usize> {
        (!self.hash_repeated).then_some(self.keys)
    }
}

/// A batch's non-null keys: each one's hash and its row in the batch.
#[derive(Debug, Clone, Default)]
pub struct BatchKeys {
    pub hashes: Vec<u64>,
    rows: Vec<u32>,
}

impl KeyIndex {
    /// Reads the key columns of `table` once (streamed: only the hashes are kept), as `types`
    /// (the batches' key types, so both hash alike); says how many keys it read.
    pub async fn build(
        ctx: &SessionContext,
        table: &str,
        columns: &[String],
        types: &[DataType],
    ) -> Result<(Self, IndexedKeys)> {
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
        let mut keys = 0;
        let mut buffer = Vec::new();
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(query_failed)?;
            let arrays = as_types(batch.columns(), types)?;
            buffer.clear();
            buffer.resize(batch.num_rows(), 0);
            create_hashes(&arrays, &random_state(), &mut buffer)
                .map_err(|e| QualityError::Query(e.to_string()))?;
            index.hashes.extend(buffer.iter().copied());
            keys += buffer.len();
        }
        let read = IndexedKeys {
            keys,
            hash_repeated: index.hashes.len() < keys,
        };
        Ok((index, read))
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
        let candidates = key_rows(batch, columns, candidates)?;
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

impl BatchKeys {
    /// How many distinct keys the batch holds (what a `GROUP BY` over the key columns counts,
    /// without one): a key whose hash no other key has is distinct; only the keys of a repeated
    /// hash (a duplicate, or very rarely a collision) are compared exactly. `batch` and
    /// `columns` are those the keys were taken from.
    pub fn distinct(&self, batch: &RecordBatch, columns: &[String]) -> Result<usize> {
        let mut seen = Hashes::with_capacity_and_hasher(self.hashes.len(), Default::default());
        let mut repeated = Hashes::default();
        for hash in &self.hashes {
            if !seen.insert(*hash) {
                repeated.insert(*hash);
            }
        }
        if repeated.is_empty() {
            return Ok(seen.len());
        }
        // Keys of different hashes differ; those sharing one are told apart by their values.
        let rows: Vec<u32> = self
            .hashes
            .iter()
            .zip(&self.rows)
            .filter(|(hash, _)| repeated.contains(hash))
            .map(|(_, row)| *row)
            .collect();
        let taken = key_rows(batch, columns, rows)?;
        let converter = RowConverter::new(
            taken
                .columns()
                .iter()
                .map(|c| SortField::new(c.data_type().clone()))
                .collect(),
        )?;
        let values = converter.convert_columns(taken.columns())?;
        let exact: HashSet<_> = values.iter().collect();
        Ok(seen.len() - repeated.len() + exact.len())
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

/// The key columns of `batch`'s rows `rows`.
fn key_rows(batch: &RecordBatch, columns: &[String], rows: Vec<u32>) -> Result<RecordBatch> {
    Ok(take_record_batch(
        &key_columns(batch, columns)?,
        &UInt32Array::from(rows),
    )?)
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

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{Field, Schema};

    fn orders(regions: Vec<Option<&str>>, ids: Vec<Option<i64>>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("region", DataType::Utf8, true),
            Field::new("order_id", DataType::Int64, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(regions)),
                Arc::new(Int64Array::from(ids)),
            ],
        )
        .unwrap()
    }

    fn key() -> Vec<String> {
        vec!["region".to_string(), "order_id".to_string()]
    }

    #[test]
    fn distinct_keys_are_counted_as_a_group_by_counts_them() {
        // (eu, 1) three times, (us, 1) twice, (eu, 2) once; a null in either column is no key.
        let batch = orders(
            vec![
                Some("eu"),
                Some("us"),
                Some("eu"),
                Some("eu"),
                None,
                Some("us"),
                Some("eu"),
                Some("apac"),
            ],
            vec![
                Some(1),
                Some(1),
                Some(2),
                Some(1),
                Some(1),
                Some(1),
                Some(1),
                None,
            ],
        );
        let keys = batch_keys(&batch, &key()).unwrap();
        assert_eq!(keys.hashes.len(), 6, "six rows have a whole key");
        assert_eq!(keys.distinct(&batch, &key()).unwrap(), 3);

        let unique = orders(
            vec![Some("eu"), Some("eu"), Some("us")],
            vec![Some(1), Some(2), Some(1)],
        );
        let keys = batch_keys(&unique, &key()).unwrap();
        assert_eq!(keys.distinct(&unique, &key()).unwrap(), 3);

        let empty = orders(vec![], vec![]);
        assert_eq!(
            batch_keys(&empty, &key())
                .unwrap()
                .distinct(&empty, &key())
                .unwrap(),
            0
        );
    }

    #[test]
    fn keys_that_share_a_hash_are_told_apart_by_their_values() {
        // Every key given the same hash, as a collision would: only the values can tell them
        // apart, and (eu, 1) twice is still one key.
        let batch = orders(
            vec![Some("eu"), Some("us"), Some("eu"), Some("eu")],
            vec![Some(1), Some(1), Some(2), Some(1)],
        );
        let colliding = BatchKeys {
            hashes: vec![42; 4],
            rows: vec![0, 1, 2, 3],
        };
        assert_eq!(colliding.distinct(&batch, &key()).unwrap(), 3);
        // Two hashes, each shared: rows 0 and 3 are one key, rows 1 and 2 two.
        let paired = BatchKeys {
            hashes: vec![1, 2, 2, 1],
            rows: vec![0, 1, 2, 3],
        };
        assert_eq!(paired.distinct(&batch, &key()).unwrap(), 3);
    }
}
