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
