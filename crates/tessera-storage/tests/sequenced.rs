//! A stream's position committed with its rows: `append_sequenced` records each position as a
//! Delta application transaction, with rows or (nothing to write) alone, and `sequences` reads
//! them back — on a fresh `Storage`, as after a restart.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::Int64Array;
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use tessera_storage::Storage;

#[tokio::test]
async fn positions_are_committed_with_rows_and_alone() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap().to_string();
    let storage = Storage::new(&root, HashMap::new()).unwrap();
    let schema = Schema::new(vec![Field::new("id", DataType::Int64, true)]);
    let created = storage
        .ensure_table("shop/orders/orders", &schema, "orders", None)
        .await
        .unwrap();
    assert_eq!(
        storage
            .sequences("shop/orders/orders", &["events", "other"])
            .await
            .unwrap(),
        vec![None, None]
    );
    let rows = RecordBatch::try_new(
        Arc::new(schema.clone()),
        vec![Arc::new(Int64Array::from(vec![1, 2, 3]))],
    )
    .unwrap();
    let with_rows = storage
        .append_sequenced("shop/orders/orders", vec![rows], &[("events", 5)])
        .await
        .unwrap();
    assert_eq!(with_rows.version, created.version.map(|v| v + 1));
    // Nothing to write: the commit holds the positions alone.
    let alone = storage
        .append_sequenced(
            "shop/orders/orders",
            vec![RecordBatch::new_empty(Arc::new(schema))],
            &[("events", 9), ("other", 2)],
        )
        .await
        .unwrap();
    assert_eq!(alone.version, with_rows.version.map(|v| v + 1));
    let reopened = Storage::new(&root, HashMap::new()).unwrap();
    assert_eq!(
        reopened
            .sequences("shop/orders/orders", &["events", "other", "none"])
            .await
            .unwrap(),
        vec![Some(9), Some(2), None]
    );
    assert_eq!(
        reopened
            .sequences("no/such/table", &["events"])
            .await
            .unwrap(),
        vec![None]
    );
}

/// A full refresh: `replace_sequenced` leaves exactly the new rows (or none), with its position
/// in the same commit.
#[tokio::test]
async fn a_replace_leaves_only_the_new_rows_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap().to_string();
    let storage = Storage::new(&root, HashMap::new()).unwrap();
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]));
    storage
        .ensure_table("stats/daily/counts", &schema, "counts", None)
        .await
        .unwrap();
    let rows = |ids: Vec<i64>| {
        RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(ids))]).unwrap()
    };
    storage
        .append_sequenced(
            "stats/daily/counts",
            vec![rows(vec![1, 2, 3])],
            &[("run", 1)],
        )
        .await
        .unwrap();
    storage
        .replace_sequenced("stats/daily/counts", vec![rows(vec![7, 8])], &[("run", 2)])
        .await
        .unwrap();
    assert_eq!(ids(&storage).await, vec![7, 8]);
    storage
        .replace_sequenced(
            "stats/daily/counts",
            vec![RecordBatch::new_empty(schema.clone())],
            &[("run", 3)],
        )
        .await
        .unwrap();
    assert_eq!(ids(&storage).await, Vec::<i64>::new());
    let reopened = Storage::new(&root, HashMap::new()).unwrap();
    assert_eq!(
        reopened
            .sequences("stats/daily/counts", &["run"])
            .await
            .unwrap(),
        vec![Some(3)]
    );
}

/// The ids the table holds, in order, as a DataFusion reader sees them.
async fn ids(storage: &Storage) -> Vec<i64> {
    let ctx = datafusion::prelude::SessionContext::new();
    let provider = storage
        .table_provider("stats/daily/counts", &ctx.state())
        .await
        .unwrap()
        .unwrap();
    ctx.register_table("t", provider).unwrap();
    let batches = ctx
        .sql("SELECT id FROM t ORDER BY id")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    batches
        .iter()
        .flat_map(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .values()
                .to_vec()
        })
        .collect()
}
