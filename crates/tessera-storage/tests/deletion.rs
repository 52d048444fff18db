//! A merge that marks the rows it replaces deleted (deletion vectors) rather than writing their
//! files again: readers see the table as if the rows were rewritten, and so does compaction.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use tessera_storage::Storage;

const LOCATION: &str = "shop/owners/owners";

fn rows(schema: &Arc<Schema>, assets: &[&str], owner: i64) -> RecordBatch {
    RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(assets.to_vec())),
            Arc::new(Int64Array::from(vec![owner; assets.len()])),
        ],
    )
    .unwrap()
}

fn keys(assets: &[&str]) -> Vec<ArrayRef> {
    vec![Arc::new(StringArray::from(assets.to_vec()))]
}

/// `sql` over the table, named `t`, as a DataFusion reader sees it.
async fn query(storage: &Storage, sql: &str) -> Vec<RecordBatch> {
    let ctx = datafusion::prelude::SessionContext::new();
    let provider = storage
        .table_provider(LOCATION, &ctx.state())
        .await
        .unwrap()
        .unwrap();
    ctx.register_table("t", provider).unwrap();
    ctx.sql(sql).await.unwrap().collect().await.unwrap()
}

/// (asset, owner) of every row a DataFusion reader sees, by asset.
async fn held(storage: &Storage) -> Vec<(String, i64)> {
    let batches = query(storage, "SELECT asset_id, owner FROM t ORDER BY asset_id").await;
    let mut out = Vec::new();
    for b in batches {
        let assets = arrow::compute::cast(b.column(0), &DataType::Utf8).unwrap();
        let assets = assets.as_any().downcast_ref::<StringArray>().unwrap();
        let owners = b.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
        for i in 0..b.num_rows() {
            out.push((assets.value(i).to_string(), owners.value(i)));
        }
    }
    out
}

/// `count(*)` as a DataFusion reader answers it.
async fn count(storage: &Storage) -> i64 {
    query(storage, "SELECT count(*) FROM t").await[0]
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap()
        .value(0)
}

/// Replaces the rows of the assets `replaced` with `assets` owned by `owner`, at position `run`.
async fn replace(
    storage: &Storage,
    schema: &Arc<Schema>,
    assets: &[&str],
    owner: i64,
    replaced: &[&str],
    run: i64,
) {
    storage
        .replace_keys_sequenced(
            LOCATION,
            vec![rows(schema, assets, owner)],
            &["asset_id".to_string()],
            &keys(replaced),
            &[("run", run)],
        )
        .await
        .unwrap();
}

fn expect(pairs: &[(&str, i64)]) -> Vec<(String, i64)> {
    pairs.iter().map(|(a, o)| (a.to_string(), *o)).collect()
}

#[tokio::test]
async fn replaced_rows_are_marked_deleted_and_readers_and_compaction_leave_them_out() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap().to_string();
    let storage = Storage::new(&root, HashMap::new()).unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("asset_id", DataType::Utf8, true),
        Field::new("owner", DataType::Int64, true),
    ]));
    storage
        .ensure_table(LOCATION, &schema, "owners", None)
        .await
        .unwrap();
    for part in [
        ["A1", "A2", "A3", "A4", "A5"],
        ["A6", "A7", "A8", "A9", "A10"],
    ] {
        storage
            .append_sequenced(LOCATION, vec![rows(&schema, &part, 1)], &[])
            .await
            .unwrap();
    }
    let files_before = std::fs::read_dir(dir.path().join(LOCATION))
        .unwrap()
        .count();
    // A2 and A7 get a new owner, A9 goes.
    replace(&storage, &schema, &["A2", "A7"], 2, &["A2", "A7", "A9"], 1).await;
    let first = expect(&[
        ("A1", 1),
        ("A10", 1),
        ("A2", 2),
        ("A3", 1),
        ("A4", 1),
        ("A5", 1),
        ("A6", 1),
        ("A7", 2),
        ("A8", 1),
    ]);
    assert_eq!(held(&storage).await, first);
    // Only the new rows' file and two small vectors were written.
    let written: Vec<String> = std::fs::read_dir(dir.path().join(LOCATION))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(written.len(), files_before + 3, "{written:?}");
    assert_eq!(
        written
            .iter()
            .filter(|f| f.starts_with("deletion_vector_"))
            .count(),
        2
    );
    // A2 again: its row in the new file is deleted too, the old one stays deleted.
    replace(&storage, &schema, &["A2"], 3, &["A2"], 2).await;
    let second = expect(&[
        ("A1", 1),
        ("A10", 1),
        ("A2", 3),
        ("A3", 1),
        ("A4", 1),
        ("A5", 1),
        ("A6", 1),
        ("A7", 2),
        ("A8", 1),
    ]);
    assert_eq!(held(&storage).await, second);
    assert_eq!(
        count(&storage).await,
        9,
        "a count is not taken from the files' statistics"
    );
    // Read as the table's own upkeep (what a merge that writes the table again keeps).
    let upkeep: usize = storage
        .rows(LOCATION)
        .await
        .unwrap()
        .iter()
        .map(RecordBatch::num_rows)
        .sum();
    assert_eq!(upkeep, 9);
    assert_eq!(
        storage.sequences(LOCATION, &["run"]).await.unwrap(),
        vec![Some(2)]
    );
    // A fresh reader (another process) sees the same, and replaces rows from what the files
    // and their vectors say: A5 goes, A7 gets owner 4.
    let reopened = Storage::new(&root, HashMap::new()).unwrap();
    assert_eq!(held(&reopened).await, second);
    replace(&reopened, &schema, &["A7"], 4, &["A5", "A7"], 3).await;
    let third = expect(&[
        ("A1", 1),
        ("A10", 1),
        ("A2", 3),
        ("A3", 1),
        ("A4", 1),
        ("A6", 1),
        ("A7", 4),
        ("A8", 1),
    ]);
    assert_eq!(held(&reopened).await, third);
    // The first `Storage` sees the other's commit, and its next replacement follows it.
    replace(&storage, &schema, &["A3"], 5, &["A3"], 4).await;
    let second = expect(&[
        ("A1", 1),
        ("A10", 1),
        ("A2", 3),
        ("A3", 5),
        ("A4", 1),
        ("A6", 1),
        ("A7", 4),
        ("A8", 1),
    ]);
    assert_eq!(held(&storage).await, second);
    assert_eq!(held(&reopened).await, second);
    // Compaction drops the deleted rows for good.
    let policy = tessera_storage::MaintenancePolicy {
        min_small_files: 2,
        ..Default::default()
    };
    let report = storage.maintain(LOCATION, &policy).await.unwrap();
    assert!(report.files_compacted > 0, "{report:?}");
    assert_eq!(held(&storage).await, second);
    // After the compaction (another version, other files) the rows are found again.
    replace(&storage, &schema, &["A1"], 6, &["A1", "A10"], 5).await;
    let last = expect(&[
        ("A1", 6),
        ("A2", 3),
        ("A3", 5),
        ("A4", 1),
        ("A6", 1),
        ("A7", 4),
        ("A8", 1),
    ]);
    assert_eq!(held(&storage).await, last);
    assert_eq!(count(&storage).await, 7);
}
