//! Storage and query together, through their public surfaces: tables created, batches
//! appended once even when sent twice, data still there after reopening, SQL read-only.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use tessera_core::{FrontEnd, Principal, RequestContext};
use tessera_query::{
    DatasetEntry, MeshSnapshot, QueryConfig, QueryEngine, QueryError, TableAccess,
};
use tessera_storage::Storage;

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("name", DataType::Utf8, true),
    ]))
}

fn batch(ids: &[i64]) -> RecordBatch {
    let names: Vec<String> = ids.iter().map(|i| format!("n{i}")).collect();
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from(ids.to_vec())),
            Arc::new(StringArray::from(names)),
        ],
    )
    .unwrap()
}

fn snapshot() -> MeshSnapshot {
    MeshSnapshot {
        tables: vec![
            DatasetEntry {
                reference: "shop.orders.items".parse().unwrap(),
                location: "shop/orders/items".into(),
                schema: schema(),
                access: TableAccess::Read,
                personal: vec![],
                row_filter: None,
            },
            DatasetEntry {
                reference: "crm.people.names".parse().unwrap(),
                location: "crm/people/names".into(),
                schema: schema(),
                access: TableAccess::Read,
                personal: vec![],
                row_filter: None,
            },
        ],
        ..Default::default()
    }
}

/// The tests' requests: a user's, over HTTP.
fn cx() -> RequestContext {
    RequestContext::new(
        Principal::user("tester", vec![], vec![]),
        "test",
        FrontEnd::Http,
    )
}

async fn count(engine: &QueryEngine, sql: &str) -> i64 {
    let (_, batches) = engine.collect(&snapshot(), sql, &cx()).await.unwrap();
    batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap()
        .value(0)
}

#[tokio::test]
async fn batches_are_appended_once_and_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    {
        let storage = Arc::new(Storage::new(root, HashMap::new()).unwrap());
        for entry in snapshot().tables {
            storage
                .ensure_table(&entry.location, &schema(), "t", Some("test"))
                .await
                .unwrap();
        }
        let first = storage
            .append("shop/orders/items", vec![batch(&[1, 2, 3])], Some("b1"))
            .await
            .unwrap();
        assert_eq!((first.version, first.duplicate), (Some(1), false));
        let again = storage
            .append("shop/orders/items", vec![batch(&[1, 2, 3])], Some("b1"))
            .await
            .unwrap();
        assert!(again.duplicate);
        storage
            .append("shop/orders/items", vec![batch(&[4])], Some("b2"))
            .await
            .unwrap();
        storage
            .append("crm/people/names", vec![batch(&[1, 4])], None)
            .await
            .unwrap();

        let engine = QueryEngine::new(storage, QueryConfig::default()).unwrap();
        assert_eq!(
            count(&engine, "SELECT count(*) FROM shop.orders.items").await,
            4
        );
        assert_eq!(
            count(
                &engine,
                "SELECT count(*) FROM shop.orders.items i JOIN crm.people.names n ON i.id = n.id"
            )
            .await,
            2
        );
    }
    // A new process over the same directory sees everything, and still knows batch b1.
    let storage = Arc::new(Storage::new(root, HashMap::new()).unwrap());
    let again = storage
        .append("shop/orders/items", vec![batch(&[1, 2, 3])], Some("b1"))
        .await
        .unwrap();
    assert!(again.duplicate);
    let engine = QueryEngine::new(storage, QueryConfig::default()).unwrap();
    assert_eq!(
        count(&engine, "SELECT count(*) FROM shop.orders.items").await,
        4
    );
    // information_schema lists every dataset.
    assert_eq!(
        count(&engine, "SELECT count(*) FROM information_schema.tables WHERE table_catalog IN ('shop', 'crm') AND table_schema <> 'information_schema'").await,
        2
    );
}

#[tokio::test]
async fn the_query_interface_is_read_only_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Arc::new(Storage::new(dir.path().to_str().unwrap(), HashMap::new()).unwrap());
    storage
        .ensure_table("shop/orders/items", &schema(), "t", None)
        .await
        .unwrap();
    let engine = QueryEngine::new(storage, QueryConfig::default()).unwrap();
    for sql in [
        "DROP TABLE shop.orders.items",
        "INSERT INTO shop.orders.items VALUES (1, 'a')",
        "CREATE TABLE x AS SELECT 1",
        "SET datafusion.execution.batch_size = 1",
    ] {
        match engine.execute(&snapshot(), sql, &cx()).await {
            Err(QueryError::ReadOnly(m)) => assert!(!m.is_empty()),
            other => panic!(
                "{sql}: expected read-only refusal, got {:?}",
                other.map(|_| ())
            ),
        }
    }
    match engine
        .execute(&snapshot(), "SELECT * FROM items", &cx())
        .await
    {
        Err(QueryError::Invalid(m)) => assert!(m.contains("domain.product.dataset"), "{m}"),
        other => panic!("expected a hint, got {:?}", other.map(|_| ())),
    }
    match engine.execute(&snapshot(), "SELEC 1", &cx()).await {
        Err(QueryError::Invalid(_)) => {}
        other => panic!("expected a parse error, got {:?}", other.map(|_| ())),
    }
    // An empty table answers with no rows, not an error.
    let (_, batches) = engine
        .collect(&snapshot(), "SELECT * FROM shop.orders.items", &cx())
        .await
        .unwrap();
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 0);
    let _ = batches.first().map(|b| b.column(0).len());
}

#[tokio::test]
async fn a_table_the_principal_may_only_discover_is_listed_but_never_read() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Arc::new(Storage::new(dir.path().to_str().unwrap(), HashMap::new()).unwrap());
    let mut governed = snapshot();
    governed.tables[1].access = TableAccess::DiscoverOnly;
    for entry in &governed.tables {
        storage
            .ensure_table(&entry.location, &schema(), "t", None)
            .await
            .unwrap();
    }
    storage
        .append("crm/people/names", vec![batch(&[1, 4])], None)
        .await
        .unwrap();
    let engine = QueryEngine::new(storage, QueryConfig::default()).unwrap();
    // Every way of reading it is refused before it runs, naming who and what.
    for sql in [
        "SELECT * FROM crm.people.names",
        "SELECT count(*) FROM crm.people.names",
        "SELECT id FROM shop.orders.items WHERE id IN (SELECT id FROM crm.people.names)",
        "SELECT * FROM shop.orders.items i JOIN crm.people.names n ON i.id = n.id",
        "WITH n AS (SELECT * FROM crm.people.names) SELECT max(id) FROM n",
        "SELECT id FROM shop.orders.items UNION ALL SELECT id FROM crm.people.names",
        "EXPLAIN SELECT * FROM crm.people.names",
        "SELECT (SELECT max(id) FROM crm.people.names) AS m",
    ] {
        match engine.execute(&governed, sql, &cx()).await {
            Err(QueryError::Forbidden(m)) => assert!(
                m.contains("user tester may not read dataset crm.people.names"),
                "{sql}: {m}"
            ),
            other => panic!("{sql}: expected a refusal, got {:?}", other.map(|_| ())),
        }
    }
    // It is listed and described; the readable table is read as before.
    let (_, described) = engine
        .collect(&governed, "DESCRIBE crm.people.names", &cx())
        .await
        .unwrap();
    assert_eq!(described.iter().map(|b| b.num_rows()).sum::<usize>(), 2);
    let listed = engine
        .collect(
            &governed,
            "SELECT count(*) FROM information_schema.tables WHERE table_catalog = 'crm' AND table_schema <> 'information_schema'",
            &cx(),
        )
        .await
        .unwrap()
        .1;
    assert_eq!(
        listed[0]
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .value(0),
        1
    );
    assert!(
        engine
            .collect(&governed, "SELECT * FROM shop.orders.items", &cx())
            .await
            .is_ok()
    );
}

mod lineage;

/// An engine over empty tables for both datasets of [`snapshot`], in `dir`.
async fn engine_over_the_snapshots_tables(
    dir: &tempfile::TempDir,
    config: QueryConfig,
) -> QueryEngine {
    let storage = Arc::new(Storage::new(dir.path().to_str().unwrap(), HashMap::new()).unwrap());
    for location in ["shop/orders/items", "crm/people/names"] {
        storage
            .ensure_table(location, &schema(), "t", None)
            .await
            .unwrap();
    }
    QueryEngine::new(storage, config).unwrap()
}

/// The SQLSTATE each kind of error gets, from the errors the engine really returns: what every
/// PostgreSQL client (and the Flight SQL front end's status codes) see.
#[tokio::test]
async fn errors_carry_the_sqlstate_postgresql_would_give() {
    let dir = tempfile::tempdir().unwrap();
    let config = QueryConfig {
        max_sql_bytes: 200,
        ..QueryConfig::default()
    };
    let engine = engine_over_the_snapshots_tables(&dir, config).await;
    let mut discover_only = snapshot();
    discover_only.tables[1].access = TableAccess::DiscoverOnly;
    for (sql, sqlstate) in [
        ("SELEC 1", "42601"),
        ("SELECT 1; SELECT 2", "42601"),
        ("SELECT * FROM shop.orders.nothing", "42P01"),
        ("SELECT nothing FROM shop.orders.items", "42703"),
        ("SELECT no_such_function(1)", "42883"),
        ("DROP TABLE shop.orders.items", "25006"),
        ("SELECT * FROM crm.people.names", "42501"),
        ("SELECT 1 / 0", "22012"),
        ("SELECT 9223372036854775807 + 1", "22003"),
        (&format!("SELECT '{}'", "x".repeat(300)), "54001"),
    ] {
        let answer = match engine.execute(&discover_only, sql, &cx()).await {
            Err(e) => e,
            Ok(stream) => {
                use futures::TryStreamExt;
                match stream.try_collect::<Vec<_>>().await {
                    Err(e) => e,
                    Ok(_) => panic!("{sql}: expected an error"),
                }
            }
        };
        assert_eq!(answer.sqlstate(), sqlstate, "{sql}: {answer}");
    }
}

/// A front end's shape: `product.dataset` resolves in its default catalog (a PostgreSQL
/// client's database), `domain.product.dataset` still everywhere, its extension runs.
#[tokio::test]
async fn a_shaped_session_resolves_in_its_default_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_over_the_snapshots_tables(&dir, QueryConfig::default()).await;
    let extended = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = extended.clone();
    let shape = tessera_query::SessionShape {
        default_catalog: Some("shop".into()),
        extend: Some(Arc::new(move |_| {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        })),
        ..Default::default()
    };
    let stream = engine
        .execute_shaped(
            &snapshot(),
            "SELECT count(*) FROM orders.items i JOIN crm.people.names n ON i.id = n.id",
            &cx(),
            Box::new(|_| {}),
            Box::new(Ok),
            &shape,
        )
        .await
        .unwrap();
    use futures::TryStreamExt;
    let batches: Vec<RecordBatch> = stream.try_collect().await.unwrap();
    assert_eq!(batches[0].num_rows(), 1);
    assert_eq!(extended.load(std::sync::atomic::Ordering::SeqCst), 1);
    // Without the shape, `orders.items` names nothing.
    assert!(
        engine
            .execute(&snapshot(), "SELECT count(*) FROM orders.items", &cx())
            .await
            .is_err()
    );
}

/// The count a statement answers in a connection's kept session, or its error.
async fn kept_count(
    engine: &QueryEngine,
    kept: &tessera_query::KeptSession,
    sql: &str,
    prepared: Option<&tessera_query::PreparedPlan>,
) -> Result<i64, QueryError> {
    use futures::TryStreamExt;
    let stream = engine
        .execute_kept(kept, sql, prepared, None, &cx(), Box::new(|_| {}))
        .await?;
    let batches: Vec<RecordBatch> = stream.try_collect().await?;
    Ok(batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap()
        .value(0))
}

/// A session kept for a connection's statements answers each as a new session would: rows
/// committed between two statements are read by the second, each statement has the memory
/// limit to itself (one over it fails, the next runs), a prepared plan runs in the session it
/// was planned in, and one from another session is planned again from its SQL.
#[tokio::test]
async fn a_kept_session_answers_each_statement_as_a_new_session_would() {
    let dir = tempfile::tempdir().unwrap();
    let config = QueryConfig {
        memory_limit_bytes: 4 << 20,
        ..QueryConfig::default()
    };
    let engine = engine_over_the_snapshots_tables(&dir, config).await;
    let storage = Storage::new(dir.path().to_str().unwrap(), HashMap::new()).unwrap();
    let shape = tessera_query::SessionShape::default();
    let kept = engine.keep_session(&snapshot(), &cx(), &shape).unwrap();
    let count_items = "SELECT count(*) FROM shop.orders.items";
    assert_eq!(
        kept_count(&engine, &kept, count_items, None).await.unwrap(),
        0
    );
    storage
        .append("shop/orders/items", vec![batch(&[1, 2, 3])], None)
        .await
        .unwrap();
    assert_eq!(
        kept_count(&engine, &kept, count_items, None).await.unwrap(),
        3
    );

    // A statement over its memory limit fails; the next one has the whole limit again.
    let too_big = "SELECT count(*) FROM generate_series(1, 1000000) a \
                   JOIN generate_series(1, 1000000) b ON a.value = b.value";
    for _ in 0..2 {
        let failed = kept_count(&engine, &kept, too_big, None).await.unwrap_err();
        assert_eq!(failed.sqlstate(), "53200", "{failed}");
        assert_eq!(
            kept_count(&engine, &kept, count_items, None).await.unwrap(),
            3
        );
    }

    // A prepared plan runs where it was planned (with the data as of when it runs); in another
    // session its SQL is planned again (here: to a different statement, which shows which ran).
    let prepared = engine.plan_kept(&kept, count_items, &cx()).await.unwrap();
    storage
        .append("shop/orders/items", vec![batch(&[4])], None)
        .await
        .unwrap();
    let sql_given = "SELECT count(*) FROM crm.people.names";
    assert_eq!(
        kept_count(&engine, &kept, sql_given, Some(&prepared))
            .await
            .unwrap(),
        4
    );
    let other = engine.keep_session(&snapshot(), &cx(), &shape).unwrap();
    assert_eq!(
        kept_count(&engine, &other, sql_given, Some(&prepared))
            .await
            .unwrap(),
        0
    );
}

/// A prepared statement of constants (what drivers and pools send to check a connection) runs
/// from the plan it was prepared to, answering and being reported each time; one that calls a
/// function whose answer changes (`now()`, `random()`) is not frozen at its first answer.
#[tokio::test]
async fn prepared_constants_answer_each_time_and_changing_functions_are_not_frozen() {
    use futures::TryStreamExt;
    use std::sync::Mutex;
    use tessera_query::{QueryOutcome, QueryReport};
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_over_the_snapshots_tables(&dir, QueryConfig::default()).await;
    let shape = tessera_query::SessionShape::default();
    let kept = engine.keep_session(&snapshot(), &cx(), &shape).unwrap();
    let answer = |sql: &'static str, prepared: tessera_query::PreparedPlan| {
        let (engine, kept) = (&engine, &kept);
        async move {
            let reports: Arc<Mutex<Vec<QueryReport>>> = Arc::default();
            let told = reports.clone();
            let stream = engine
                .execute_kept(
                    kept,
                    sql,
                    Some(&prepared),
                    None,
                    &cx(),
                    Box::new(move |r| told.lock().unwrap().push(r)),
                )
                .await
                .unwrap();
            let batches: Vec<RecordBatch> = stream.try_collect().await.unwrap();
            let text = arrow::util::pretty::pretty_format_batches(&batches)
                .unwrap()
                .to_string();
            let report = reports
                .lock()
                .unwrap()
                .pop()
                .expect("the statement is reported");
            (text, report)
        }
    };

    let constant = "SELECT 1 AS one, upper('ab') || 'c' AS letters WHERE 2 > 1";
    let prepared = engine.plan_kept(&kept, constant, &cx()).await.unwrap();
    for _ in 0..3 {
        let (text, report) = answer(constant, prepared.clone()).await;
        assert!(text.contains("| 1   | ABc     |"), "{text}");
        assert!(matches!(report.outcome, QueryOutcome::Finished));
        assert_eq!(report.rows_returned, 1);
    }
    let none = "SELECT 1 AS one WHERE 1 > 2";
    let prepared = engine.plan_kept(&kept, none, &cx()).await.unwrap();
    let (text, report) = answer(none, prepared).await;
    assert!(!text.contains("| 1"), "{text}");
    assert_eq!(report.rows_returned, 0);

    for changing in ["SELECT CAST(now() AS VARCHAR) AS t", "SELECT random() AS r"] {
        let prepared = engine.plan_kept(&kept, changing, &cx()).await.unwrap();
        let (first, _) = answer(changing, prepared.clone()).await;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let (second, _) = answer(changing, prepared).await;
        assert_ne!(first, second, "{changing}");
    }
}

/// Sorting an aggregation's groups counts each group's memory once. An aggregation emits its
/// groups as slices of one large batch; counted by the buffers each slice holds, 400,000
/// groups (~15 MB) would count as gigabytes: the sort would spill again and again and then
/// fail its 64 MiB limit. EXPLAIN ANALYZE shows what a user would look at: the sort spilled
/// nothing, and the groups come out whole and in order.
#[tokio::test]
async fn sorting_many_groups_counts_their_memory_once_and_does_not_spill() {
    let dir = tempfile::tempdir().unwrap();
    let config = QueryConfig {
        memory_limit_bytes: 64 << 20,
        target_partitions: 2,
        ..QueryConfig::default()
    };
    let engine = engine_over_the_snapshots_tables(&dir, config).await;
    let grouped = "SELECT concat('asset-', value % 400000) AS asset, count(*) AS n \
                   FROM generate_series(1, 1200000) GROUP BY 1 ORDER BY 1";
    let (_, explained) = engine
        .collect(&snapshot(), &format!("EXPLAIN ANALYZE {grouped}"), &cx())
        .await
        .unwrap();
    let plan: Vec<String> = explained
        .iter()
        .flat_map(|batch| {
            let text = batch.column(1).as_string::<i32>();
            (0..text.len())
                .map(|i| text.value(i).to_string())
                .collect::<Vec<_>>()
        })
        .flat_map(|text| text.lines().map(str::to_string).collect::<Vec<_>>())
        .collect();
    let sorts: Vec<&String> = plan
        .iter()
        .filter(|line| line.contains("SortExec"))
        .collect();
    assert!(
        !sorts.is_empty(),
        "no sort in the plan:\n{}",
        plan.join("\n")
    );
    for sort in sorts {
        assert!(sort.contains("spill_count=0"), "{}", plan.join("\n"));
    }

    let (_, batches) = engine.collect(&snapshot(), grouped, &cx()).await.unwrap();
    let mut assets = Vec::new();
    let mut counted = 0;
    for batch in &batches {
        let column = arrow::compute::cast(batch.column(0), &DataType::Utf8).unwrap();
        let asset = column.as_string::<i32>();
        assets.extend((0..asset.len()).map(|i| asset.value(i).to_string()));
        let n = batch
            .column(1)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        counted += (0..n.len()).map(|i| n.value(i)).sum::<i64>();
    }
    assert_eq!(assets.len(), 400_000);
    assert!(
        assets.windows(2).all(|pair| pair[0] < pair[1]),
        "not in order"
    );
    assert_eq!(counted, 1_200_000);
}
