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

/// Positions are kept per table version rather than read from the log each time: what this
/// `Storage` committed is known at once, what another writer of the same table committed in
/// the meantime (another server over shared storage) is read when the table moved.
#[tokio::test]
async fn positions_read_again_follow_this_writer_and_another() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap().to_string();
    let here = Storage::new(&root, HashMap::new()).unwrap();
    let there = Storage::new(&root, HashMap::new()).unwrap();
    let location = "shop/orders/orders";
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]));
    here.ensure_table(location, &schema, "orders", None)
        .await
        .unwrap();
    let rows = |ids: Vec<i64>| {
        RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(ids))]).unwrap()
    };
    async fn positions(storage: &Storage) -> Vec<Option<i64>> {
        storage
            .sequences("shop/orders/orders", &["events", "run"])
            .await
            .unwrap()
    }
    assert_eq!(positions(&here).await, vec![None, None]);
    here.append_sequenced(location, vec![rows(vec![1])], &[("events", 1)])
        .await
        .unwrap();
    assert_eq!(positions(&here).await, vec![Some(1), None]);
    assert_eq!(positions(&there).await, vec![Some(1), None]);
    // The other writer commits twice; this one reads the table as it now is.
    there
        .append_sequenced(location, vec![rows(vec![2])], &[("events", 2)])
        .await
        .unwrap();
    there
        .replace_sequenced(location, vec![rows(vec![3])], &[("run", 7)])
        .await
        .unwrap();
    assert_eq!(positions(&here).await, vec![Some(2), Some(7)]);
    // And this one commits on top: its own position and the other's, kept.
    here.append_sequenced(location, vec![rows(vec![4])], &[("events", 3)])
        .await
        .unwrap();
    assert_eq!(positions(&here).await, vec![Some(3), Some(7)]);
    assert_eq!(positions(&there).await, vec![Some(3), Some(7)]);
    // A batch id committed through `append` is known as committed, here and there.
    here.append(location, vec![rows(vec![5])], Some("batch-1"))
        .await
        .unwrap();
    assert!(here.committed(location, "batch-1").await.unwrap());
    assert!(there.committed(location, "batch-1").await.unwrap());
    assert!(!here.committed(location, "batch-2").await.unwrap());
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

/// A table sized for merges at its end (`size_files_for_merges`) is written in many files, and a
/// merge of its newest keys rewrites only the files holding them: the older files stay as they
/// are, and the rows are what an upsert gives.
#[tokio::test]
async fn a_merge_at_the_end_of_a_table_sized_for_it_rewrites_only_its_last_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap().to_string();
    let storage = Storage::new(&root, HashMap::new()).unwrap();
    let location = "stats/daily/visits";
    let schema = Arc::new(Schema::new(vec![
        Field::new("day", DataType::Int64, false),
        Field::new("page", DataType::Int64, false),
        Field::new("note", DataType::Utf8, false),
    ]));
    storage
        .ensure_table(location, &schema, "visits", None)
        .await
        .unwrap();
    let rows = |days: std::ops::Range<i64>, note: &str| {
        let (day, page): (Vec<i64>, Vec<i64>) =
            days.flat_map(|d| (0..1_000).map(move |p| (d, p))).unzip();
        // Notes that do not compress away, so the table has some size.
        let notes: Vec<String> = day
            .iter()
            .zip(&page)
            .map(|(d, p)| {
                format!(
                    "{note}-{:016x}",
                    ((d * 1_000 + p) as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
                )
            })
            .collect();
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(day)),
                Arc::new(Int64Array::from(page)),
                Arc::new(arrow::array::StringArray::from(notes)),
            ],
        )
        .unwrap()
    };
    storage.size_files_for_merges(location).await.unwrap();
    storage
        .replace_sequenced(location, vec![rows(0..400, "first")], &[("run", 1)])
        .await
        .unwrap();
    let before = file_uris(&storage, location).await;
    assert!(
        before.len() >= 8,
        "400,000 rows in files of at most 256 KiB: {} files",
        before.len()
    );
    // The newest day again and a new one, as a transform's run from its watermark computes.
    let ctx = datafusion::prelude::SessionContext::new();
    let source = ctx.read_batch(rows(399..401, "second")).unwrap();
    storage.size_files_for_merges(location).await.unwrap();
    storage
        .merge_sequenced(
            location,
            source,
            2_000,
            &["day".to_string(), "page".to_string()],
            &[("run", 2)],
        )
        .await
        .unwrap();
    let after = file_uris(&storage, location).await;
    let kept = before.iter().filter(|f| after.contains(f)).count();
    assert!(
        kept >= before.len() - 2,
        "the merge rewrote {} of {} files",
        before.len() - kept,
        before.len()
    );
    let counts = query(
        &storage,
        location,
        "SELECT count(*), count(DISTINCT (day, page)), sum(CAST(note LIKE 'second-%' AS BIGINT)) FROM t",
    )
    .await;
    let value = |i: usize| {
        counts[0]
            .column(i)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .value(0)
    };
    assert_eq!((value(0), value(1), value(2)), (401_000, 401_000, 2_000));
}

#[tokio::test]
async fn maintenance_compacts_a_table_sized_for_merges_to_its_own_file_size() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap().to_string();
    let storage = Storage::new(&root, HashMap::new()).unwrap();
    let location = "stats/daily/pages";
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("note", DataType::Utf8, false),
    ]));
    storage
        .ensure_table(location, &schema, "pages", None)
        .await
        .unwrap();
    // A small table: files of the smallest merge size, 256 KiB.
    storage.size_files_for_merges(location).await.unwrap();
    // 24 commits of 2,000 rows whose notes do not compress away (~50 KB each): small files
    // that add up to several of the table's own size, and to far less than the policy's.
    for commit in 0..24i64 {
        let ids: Vec<i64> = (commit * 2_000..(commit + 1) * 2_000).collect();
        let notes: Vec<String> = ids
            .iter()
            .map(|i| format!("{:016x}", (*i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)))
            .collect();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(ids)),
                Arc::new(arrow::array::StringArray::from(notes)),
            ],
        )
        .unwrap();
        storage
            .append_sequenced(location, vec![batch], &[("run", commit + 1)])
            .await
            .unwrap();
    }
    let policy = tessera_storage::MaintenancePolicy::default();
    assert_eq!(policy.target_file_bytes, 128 << 20);
    let report = storage.maintain(location, &policy).await.unwrap();
    assert_eq!(report.files_compacted, 24);
    assert!(
        report.files_written >= 3,
        "compacted to 256 KiB files, not to one of the policy's 128 MiB: {report:?}"
    );
    let sizes: Vec<u64> = file_uris(&storage, location)
        .await
        .iter()
        .map(|uri| {
            let path = uri.strip_prefix("file://").unwrap_or(uri);
            std::fs::metadata(path).unwrap().len()
        })
        .collect();
    assert_eq!(sizes.len() as u64, report.files_written);
    assert!(
        sizes.iter().all(|s| *s <= 512 << 10),
        "every file about the table's own size: {sizes:?}"
    );
    let counts = query(&storage, location, "SELECT count(DISTINCT id) FROM t").await;
    let rows = counts[0]
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap()
        .value(0);
    assert_eq!(rows, 48_000, "compaction keeps every row");
}

/// The data files of the table's current version.
async fn file_uris(storage: &Storage, location: &str) -> Vec<String> {
    let table = deltalake::open_table(storage.table_url(location).unwrap())
        .await
        .unwrap();
    table.get_file_uris().unwrap().collect()
}

/// `sql` over the table at `location`, named `t`, as a DataFusion reader sees it.
async fn query(storage: &Storage, location: &str, sql: &str) -> Vec<RecordBatch> {
    let ctx = datafusion::prelude::SessionContext::new();
    let provider = storage
        .table_provider(location, &ctx.state())
        .await
        .unwrap()
        .unwrap();
    ctx.register_table("t", provider).unwrap();
    ctx.sql(sql).await.unwrap().collect().await.unwrap()
}

/// The ids the table holds, in order, as a DataFusion reader sees them.
async fn ids(storage: &Storage) -> Vec<i64> {
    query(
        storage,
        "stats/daily/counts",
        "SELECT id FROM t ORDER BY id",
    )
    .await
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

/// The values one column holds in the rows added since a version: those of the appends after
/// it, none when only positions were committed, and not known (`None`) once a commit rewrote
/// rows — a transform then recomputes from the whole table.
#[tokio::test]
async fn the_values_appends_added_since_a_version_are_read_until_a_commit_rewrites_rows() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap().to_string();
    let storage = Storage::new(&root, HashMap::new()).unwrap();
    let location = "shop/orders/orders";
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("customer", DataType::Int64, true),
    ]));
    storage
        .ensure_table(location, &schema, "orders", None)
        .await
        .unwrap();
    let rows = |ids: Vec<i64>, customers: Vec<i64>| {
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(ids)),
                Arc::new(Int64Array::from(customers)),
            ],
        )
        .unwrap()
    };
    let first = storage
        .append_sequenced(location, vec![rows(vec![1, 2], vec![10, 20])], &[])
        .await
        .unwrap()
        .version
        .unwrap();
    // The values added after `since` up to `until` (none: the table's newest version).
    let added = |since: i64, until: Option<i64>| {
        let storage = &storage;
        async move {
            let newest = storage
                .table_info(location)
                .await
                .unwrap()
                .and_then(|t| t.version)
                .unwrap();
            storage
                .values_added_since(location, since, until.unwrap_or(newest), "customer")
                .await
                .unwrap()
                .map(|arrays| {
                    let mut values: Vec<i64> = arrays
                        .iter()
                        .flat_map(|a| {
                            a.as_any()
                                .downcast_ref::<Int64Array>()
                                .unwrap()
                                .values()
                                .to_vec()
                        })
                        .collect();
                    values.sort();
                    values
                })
        }
    };
    assert_eq!(added(first, None).await, Some(vec![]), "nothing since");
    let second = storage
        .append_sequenced(location, vec![rows(vec![3], vec![30])], &[])
        .await
        .unwrap()
        .version
        .unwrap();
    storage
        .append_sequenced(
            location,
            vec![RecordBatch::new_empty(schema.clone())],
            &[("run", 1)],
        )
        .await
        .unwrap();
    storage
        .append_sequenced(location, vec![rows(vec![4, 5], vec![20, 40])], &[])
        .await
        .unwrap();
    assert_eq!(added(first, None).await, Some(vec![20, 30, 40]));
    assert_eq!(added(first - 1, None).await, Some(vec![10, 20, 20, 30, 40]));
    assert_eq!(
        added(first, Some(second)).await,
        Some(vec![30]),
        "up to a version"
    );
    assert_eq!(
        storage
            .values_added_since(location, first, second, "no_such_column")
            .await
            .unwrap(),
        None
    );
    let replaced = storage
        .replace_sequenced(location, vec![rows(vec![6], vec![60])], &[])
        .await
        .unwrap()
        .version
        .unwrap();
    assert_eq!(added(first, None).await, None, "an overwrite rewrote rows");
    assert_eq!(added(replaced, None).await, Some(vec![]));
    assert_eq!(
        added(replaced, Some(replaced + 1)).await,
        None,
        "a version the table does not reach"
    );
}

/// A table read here is current however soon after the last read another writer commits: each
/// read looks for the next commit in the log (and lists it only now and then).
#[tokio::test]
async fn another_writers_commits_are_seen_by_the_next_read() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap().to_string();
    let here = Storage::new(&root, HashMap::new()).unwrap();
    let there = Storage::new(&root, HashMap::new()).unwrap();
    let location = "shop/orders/orders";
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]));
    let created = here
        .ensure_table(location, &schema, "orders", None)
        .await
        .unwrap()
        .version
        .unwrap();
    let rows = |ids: Vec<i64>| {
        RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(ids))]).unwrap()
    };
    for step in 1..=3 {
        assert_eq!(
            here.version(location).await.unwrap(),
            Some(created + step - 1)
        );
        there
            .append(location, vec![rows(vec![step])], None)
            .await
            .unwrap();
        assert_eq!(here.version(location).await.unwrap(), Some(created + step));
        assert_eq!(
            here.table_info(location).await.unwrap().unwrap().files,
            step as usize
        );
    }
    // And this writer's own commit on top of them is the next version, read as such there.
    here.append(location, vec![rows(vec![4])], None)
        .await
        .unwrap();
    assert_eq!(there.version(location).await.unwrap(), Some(created + 4));
}

/// A replacement from a day on (a transform's merge from its watermark) leaves what replaceWhere
/// would — the older rows, rows without a day among them, and the new ones — and writes the
/// rows it keeps and the new ones into files of their own, so that the next replacement, from
/// the newest day on, drops the newest file whole and leaves the others.
#[tokio::test]
async fn a_replacement_from_a_day_keeps_older_rows_apart_and_drops_whole_files_next_time() {
    use arrow::array::{Date32Array, StringArray};
    use datafusion::common::ScalarValue;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap().to_string();
    let storage = Storage::new(&root, HashMap::new()).unwrap();
    let location = "stats/daily/visits";
    let schema = Arc::new(Schema::new(vec![
        Field::new("day", DataType::Date32, true),
        Field::new("page", DataType::Int64, false),
        Field::new("run", DataType::Utf8, false),
    ]));
    storage
        .ensure_table(location, &schema, "visits", None)
        .await
        .unwrap();
    // 100 pages a day; `None` days: rows without one.
    let rows = |days: Vec<Option<i32>>, run: &str| {
        let (day, page): (Vec<Option<i32>>, Vec<i64>) = days
            .into_iter()
            .flat_map(|d| (0..100).map(move |p| (d, p)))
            .unzip();
        let runs = vec![run; day.len()];
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Date32Array::from(day)),
                Arc::new(Int64Array::from(page)),
                Arc::new(StringArray::from(runs)),
            ],
        )
        .unwrap()
    };
    let days = |range: std::ops::Range<i32>| range.map(Some).collect::<Vec<_>>();
    let mut first = days(0..10);
    first.push(None);
    storage
        .replace_sequenced(location, vec![rows(first, "first")], &[("run", 1)])
        .await
        .unwrap();
    let summary = || async {
        query(
            &storage,
            location,
            "SELECT run, count(*) AS n, min(day) AS first_day, max(day) AS last_day, \
             count(*) - count(day) AS no_day FROM t GROUP BY run ORDER BY run",
        )
        .await
        .iter()
        .flat_map(|b| {
            (0..b.num_rows()).map(move |i| {
                (0..b.num_columns())
                    .map(|c| arrow::util::display::array_value_to_string(b.column(c), i).unwrap())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
        })
        .collect::<Vec<_>>()
    };
    let day = |d: i32| ScalarValue::Date32(Some(d));

    // From day 9 on: days 9 to 11 computed again; the one file held partly.
    storage
        .replace_from_sequenced(
            location,
            vec![rows(days(9..12), "second")],
            "day",
            day(9),
            &[("run", 2)],
        )
        .await
        .unwrap();
    assert_eq!(
        summary().await,
        vec![
            "first 1000 1970-01-01 1970-01-09 100",
            "second 300 1970-01-10 1970-01-12 0"
        ]
    );
    let second = file_uris(&storage, location).await;
    assert_eq!(
        second.len(),
        3,
        "the kept rows, the new rows before the newest day, those of it: {second:?}"
    );

    // From the newest day on: its file is dropped whole, the others stay as they are.
    storage
        .replace_from_sequenced(
            location,
            vec![rows(days(11..13), "third")],
            "day",
            day(11),
            &[("run", 3)],
        )
        .await
        .unwrap();
    assert_eq!(
        summary().await,
        vec![
            "first 1000 1970-01-01 1970-01-09 100",
            "second 200 1970-01-10 1970-01-11 0",
            "third 200 1970-01-12 1970-01-13 0"
        ]
    );
    let third = file_uris(&storage, location).await;
    let kept = second.iter().filter(|f| third.contains(f)).count();
    assert_eq!(kept, 2, "before: {second:?}, after: {third:?}");
    assert_eq!(
        storage.sequences(location, &["run"]).await.unwrap(),
        vec![Some(3)]
    );

    // A new row before the day replaced from would stay beside the row it replaces: refused,
    // nothing committed.
    let version = storage.version(location).await.unwrap();
    let refused = storage
        .replace_from_sequenced(
            location,
            vec![rows(days(10..13), "fourth")],
            "day",
            day(12),
            &[("run", 4)],
        )
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("not in the range replaced"),
        "{refused}"
    );
    assert_eq!(storage.version(location).await.unwrap(), version);
}

/// A date's or an integer's greatest value is read from the log's statistics — across files,
/// past files of nulls only; a string's is not (its statistics are cut short), nor a table's
/// with no value.
#[tokio::test]
async fn the_greatest_date_is_read_from_the_statistics_and_a_strings_is_not() {
    use arrow::array::{Date32Array, StringArray};
    use datafusion::common::ScalarValue;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap().to_string();
    let storage = Storage::new(&root, HashMap::new()).unwrap();
    let location = "stats/daily/visits";
    let schema = Arc::new(Schema::new(vec![
        Field::new("day", DataType::Date32, true),
        Field::new("page", DataType::Utf8, true),
    ]));
    storage
        .ensure_table(location, &schema, "visits", None)
        .await
        .unwrap();
    let greatest = |column: &'static str| {
        let storage = &storage;
        async move { storage.max_from_statistics(location, column).await.unwrap() }
    };
    assert_eq!(greatest("day").await, None, "no rows yet");
    let rows = |days: Vec<Option<i32>>| {
        let pages: Vec<Option<&str>> = days.iter().map(|_| Some("home")).collect();
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Date32Array::from(days)),
                Arc::new(StringArray::from(pages)),
            ],
        )
        .unwrap()
    };
    storage
        .append(location, vec![rows(vec![Some(3), None, Some(7)])], None)
        .await
        .unwrap();
    storage
        .append(location, vec![rows(vec![None, None])], None)
        .await
        .unwrap();
    storage
        .append(location, vec![rows(vec![Some(5)])], None)
        .await
        .unwrap();
    assert_eq!(greatest("day").await, Some(ScalarValue::Date32(Some(7))));
    assert_eq!(
        greatest("page").await,
        None,
        "a string's statistics are cut short"
    );
}

#[tokio::test]
async fn the_greatest_timestamp_is_read_from_the_files_whose_statistics_come_within_a_millisecond()
{
    use arrow::array::TimestampMicrosecondArray;
    use arrow::datatypes::TimeUnit;
    use datafusion::common::ScalarValue;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap().to_string();
    let storage = Storage::new(&root, HashMap::new()).unwrap();
    let location = "stats/clicks/events";
    let utc: Arc<str> = Arc::from("UTC");
    let schema = Arc::new(Schema::new(vec![Field::new(
        "at",
        DataType::Timestamp(TimeUnit::Microsecond, Some(utc.clone())),
        true,
    )]));
    storage
        .ensure_table(location, &schema, "events", None)
        .await
        .unwrap();
    let append = |micros: Vec<Option<i64>>| {
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(
                TimestampMicrosecondArray::from(micros).with_timezone(utc.clone()),
            )],
        )
        .unwrap();
        let storage = &storage;
        async move { storage.append(location, vec![batch], None).await.unwrap() }
    };
    // 1,700,000,000 s past the epoch, and microseconds on: the log records each file's
    // maximum to the millisecond (…000 for the last two files), the rows hold microseconds.
    let second = 1_700_000_000_000_000i64;
    append(vec![Some(second - 5_000_000), Some(second - 2_000)]).await;
    append(vec![Some(second + 900), None]).await;
    append(vec![Some(second + 400)]).await;
    assert_eq!(
        storage.max_from_statistics(location, "at").await.unwrap(),
        Some(ScalarValue::TimestampMicrosecond(
            Some(second + 900),
            Some(utc.clone())
        )),
        "the microseconds past the recorded millisecond are read from the files"
    );
}
