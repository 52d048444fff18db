//! Checks measured over real files, with the verdicts datacontract-cli's own tests assert for
//! the same fixtures (`tests/standards/datacontract-cli/tests/fixtures`).

use std::path::{Path, PathBuf};

use std::sync::Arc;

use datafusion::prelude::{CsvReadOptions, SessionContext};
use tessera_core::{FrontEnd, RequestContext};
use tessera_quality::{CheckResult, Outcome, TableFacts, run_checks};
use tessera_query::{MeshSnapshot, QueryConfig, QueryEngine};
use tessera_storage::Storage;

/// A session from the one session constructor, over no datasets; the engine must outlive it.
fn session() -> (QueryEngine, SessionContext) {
    let storage = Storage::new(".", Default::default()).unwrap();
    let engine = QueryEngine::new(Arc::new(storage), QueryConfig::default()).unwrap();
    let cx = RequestContext::system("quality-tests", "test", FrontEnd::System);
    let ctx = engine.session(&MeshSnapshot::default(), &cx).unwrap();
    (engine, ctx)
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/standards/datacontract-cli/tests/fixtures")
}

async fn run(contract: &str, csv: &str) -> Vec<CheckResult> {
    let contract = tessera_spec::load_contract("contract.yaml", contract).unwrap();
    let dataset = &contract.datasets[0];
    let (_engine, ctx) = session();
    let path = fixtures().join(csv);
    ctx.register_csv(
        dataset.name.as_str(),
        path.to_str().unwrap(),
        CsvReadOptions::new(),
    )
    .await
    .unwrap();
    // CSV types are only inferred.
    measure(&ctx, &contract, false).await
}

/// The checks of the first dataset of `contract` over `batch`, a typed in-memory table.
async fn run_on_batch(contract: &str, batch: arrow::record_batch::RecordBatch) -> Vec<CheckResult> {
    let contract = tessera_spec::load_contract("contract.yaml", contract).unwrap();
    let dataset = &contract.datasets[0];
    let (_engine, ctx) = session();
    ctx.register_batch(dataset.name.as_str(), batch).unwrap();
    measure(&ctx, &contract, true).await
}

/// The checks of the first dataset of `contract`, registered in `ctx` under its name.
async fn measure(
    ctx: &SessionContext,
    contract: &tessera_core::Contract,
    typed: bool,
) -> Vec<CheckResult> {
    let dataset = &contract.datasets[0];
    let facts = TableFacts {
        now_seconds: 0.0,
        last_commit_seconds: None,
        typed,
    };
    run_checks(
        ctx,
        dataset.name.as_str(),
        dataset,
        &dataset.checks(&contract.sla),
        &facts,
    )
    .await
    .unwrap()
}

fn find<'a>(results: &'a [CheckResult], check_type: &str, field: Option<&str>) -> &'a CheckResult {
    results
        .iter()
        .find(|r| r.check.check_type == check_type && r.check.field.as_deref() == field)
        .unwrap_or_else(|| panic!("no {check_type} on {field:?}"))
}

/// `fixtures/diagnostics/datacontract.yaml` (a Data Contract Specification file) as ODCS.
const DIAGNOSTICS: &str = r#"apiVersion: v3.1.0
kind: DataContract
id: diagnostics_test
version: 1.0.0
status: active
schema:
  - name: orders
    properties:
      - name: order_id
        logicalType: integer
        required: true
        unique: true
      - name: email
        logicalType: string
        required: true
        logicalTypeOptions:
          minLength: 5
          maxLength: 20
          pattern: ^.+@.+$
      - name: amount
        logicalType: integer
        logicalTypeOptions:
          minimum: 0
          maximum: 100
"#;

#[tokio::test]
async fn diagnostics_fail_where_datacontract_cli_says_with_the_same_counts() {
    let results = run(DIAGNOSTICS, "diagnostics/data/orders.csv").await;
    let unique = find(&results, "field_unique", Some("order_id"));
    assert_eq!(
        (unique.outcome, unique.measured),
        (Outcome::Failed, Some(1.0))
    );
    assert_eq!(
        unique.samples,
        vec![
            serde_json::from_str::<serde_json::Map<_, _>>(
                r#"{"order_id": 2, "duplicate_count": 2}"#
            )
            .unwrap()
        ]
    );
    let long = find(&results, "field_max_length", Some("email"));
    assert_eq!((long.outcome, long.measured), (Outcome::Failed, Some(1.0)));
    assert_eq!(long.samples[0]["email"], "verylongaddress@example.com");
    let regex = find(&results, "field_regex", Some("email"));
    assert_eq!(
        (regex.outcome, regex.measured),
        (Outcome::Failed, Some(1.0))
    );
    assert_eq!(regex.samples[0]["email"], "no-at-sign");
    let minimum = find(&results, "field_minimum", Some("amount"));
    assert_eq!(
        (minimum.outcome, minimum.measured),
        (Outcome::Failed, Some(1.0))
    );
    assert_eq!(minimum.samples[0]["amount"], -5);
    let maximum = find(&results, "field_maximum", Some("amount"));
    assert_eq!(
        (maximum.outcome, maximum.measured),
        (Outcome::Failed, Some(1.0))
    );
    assert_eq!(maximum.samples[0]["amount"], 200);
    for passing in [
        ("field_required", "email"),
        ("field_min_length", "email"),
        ("field_required", "order_id"),
        ("field_is_present", "amount"),
    ] {
        let r = find(&results, passing.0, Some(passing.1));
        assert_eq!(r.outcome, Outcome::Passed, "{passing:?}: {}", r.reason);
    }
    // CSV types are only inferred: no field_type checks, as in datacontract-cli.
    assert!(results.iter().all(|r| r.check.check_type != "field_type"));
}

#[tokio::test]
async fn row_count_quality_id_and_percent_severity_rules() {
    let row_filter =
        std::fs::read_to_string(fixtures().join("row-filter/datacontract.yaml")).unwrap();
    let results = run(&row_filter, "diagnostics/data/orders.csv").await;
    let rows = find(&results, "row_count", None);
    assert_eq!((rows.outcome, rows.measured), (Outcome::Failed, Some(5.0)));

    let quality_id =
        std::fs::read_to_string(fixtures().join("quality-id/datacontract.yaml")).unwrap();
    let results = run(&quality_id, "diagnostics/data/orders.csv").await;
    let rows = find(&results, "row_count", None);
    assert_eq!(rows.outcome, Outcome::Passed);
    assert_eq!(rows.check.quality_id.as_deref(), Some("orders_not_empty"));
    assert_eq!(rows.check.tags, vec!["critical", "cheap"]);

    // quality-dimensions (ODCS v3.0.2): `rowCount > 1` with its own dimension passes; the
    // built-in checks keep datacontract-cli's default dimensions.
    let dimensions =
        std::fs::read_to_string(fixtures().join("quality-dimensions/datacontract.yaml")).unwrap();
    let results = run(&dimensions, "diagnostics/data/orders.csv").await;
    let rows = find(&results, "row_count", None);
    assert_eq!(
        (rows.outcome, rows.measured, rows.check.dimension.as_str()),
        (Outcome::Passed, Some(5.0), "completeness")
    );
    let present = find(&results, "field_is_present", Some("email"));
    assert_eq!(present.outcome, Outcome::Passed);
    assert!(results.iter().all(|r| r.outcome == Outcome::Passed));

    // tests/test_test_quality_percent_severity.py, inline there: 40 % invalid amounts, 0 % null
    // emails, and a warning that does not fail the run.
    let percent = r#"apiVersion: v3.1.0
kind: DataContract
id: percent
version: 1.0.0
status: active
schema:
  - name: orders
    properties:
      - name: email
        logicalType: string
        quality:
          - metric: nullValues
            mustBe: 0
            unit: percent
      - name: amount
        logicalType: integer
        quality:
          - metric: invalidValues
            arguments:
              validValues: [10, 30, 50]
            mustBeLessThan: 50
            unit: percent
          - metric: invalidValues
            arguments:
              validValues: [10, 30, 50]
            mustBe: 0
            severity: warning
"#;
    let results = run(percent, "diagnostics/data/orders.csv").await;
    let nulls = find(&results, "field_null_values", Some("email"));
    assert_eq!(
        (nulls.outcome, nulls.measured),
        (Outcome::Passed, Some(0.0))
    );
    let invalid: Vec<&CheckResult> = results
        .iter()
        .filter(|r| r.check.check_type == "field_invalid_values")
        .collect();
    assert_eq!(
        (invalid[0].outcome, invalid[0].measured),
        (Outcome::Passed, Some(40.0))
    );
    assert_eq!(
        (invalid[1].outcome, invalid[1].measured),
        (Outcome::Warning, Some(2.0))
    );
}

#[tokio::test]
async fn failed_samples_are_capped_and_leave_pii_out() {
    let contract = r#"apiVersion: v3.1.0
kind: DataContract
id: samples
version: 1.0.0
status: active
schema:
  - name: orders
    properties:
      - name: id
        logicalType: integer
        unique: true
      - name: email
        logicalType: string
        classification: pii
        logicalTypeOptions:
          pattern: ^.+@.+$
      - name: amount
        logicalType: integer
        logicalTypeOptions:
          maximum: 100
      - name: region
        logicalType: string
        required: true
"#;
    let results = run(contract, "failed_samples/orders.csv").await;
    let unique = find(&results, "field_unique", Some("id"));
    assert_eq!(
        serde_json::Value::from(unique.samples.clone()),
        serde_json::json!([{"id": 2, "duplicate_count": 2}])
    );
    let pattern = find(&results, "field_regex", Some("email"));
    assert_eq!(pattern.measured, Some(6.0));
    assert_eq!(pattern.samples.len(), 5);
    assert!(
        pattern.samples.iter().all(|s| !s.contains_key("email")),
        "{:?}",
        pattern.samples
    );
    let amount = find(&results, "field_maximum", Some("amount"));
    assert_eq!(amount.samples.len(), 1);
    assert_eq!(
        (
            amount.samples[0]["id"].clone(),
            amount.samples[0]["amount"].clone()
        ),
        (serde_json::json!(3), serde_json::json!(200))
    );
    let region = find(&results, "field_required", Some("region"));
    let ids: Vec<&serde_json::Value> = region.samples.iter().map(|s| &s["id"]).collect();
    assert_eq!(ids, vec![&serde_json::json!(3), &serde_json::json!(5)]);
}

#[tokio::test]
async fn sql_rules_take_placeholders_and_must_return_one_number() {
    let contract = r#"apiVersion: v3.1.0
kind: DataContract
id: sql
version: 1.0.0
status: active
schema:
  - name: orders
    quality:
      - type: sql
        query: SELECT count(*) FROM {object} WHERE amount < 0
        mustBe: 0
      - type: sql
        query: SELECT avg(amount) FROM ${table}
        mustBeBetween: [0, 100]
      - type: sql
        query: SELECT order_id FROM {object}
        mustBe: 0
    properties:
      - name: order_id
        logicalType: integer
      - name: amount
        logicalType: integer
        quality:
          - type: sql
            query: SELECT max({property}) FROM {object}
            mustBeLessOrEqualTo: 200
"#;
    let results = run(contract, "diagnostics/data/orders.csv").await;
    let sql: Vec<&CheckResult> = results
        .iter()
        .filter(|r| r.check.check_type.ends_with("quality_sql"))
        .collect();
    assert_eq!(
        (sql[0].outcome, sql[0].measured),
        (Outcome::Failed, Some(1.0))
    );
    assert_eq!(
        (sql[1].outcome, sql[1].measured),
        (Outcome::Passed, Some(57.0))
    );
    assert_eq!(sql[2].outcome, Outcome::Error);
    assert!(
        sql[2].reason.contains("one row with one number"),
        "{}",
        sql[2].reason
    );
    assert_eq!(
        (sql[3].check.check_type, sql[3].outcome, sql[3].measured),
        ("field_quality_sql", Outcome::Passed, Some(200.0))
    );
}

/// ODCS reads a timestamp without a zone in `defaultTimezone` (UTC): a naive timestamp column
/// passes `logicalType: timestamp` unless the contract states the zone kind.
#[tokio::test]
async fn naive_timestamps_pass_unless_the_contract_states_a_zone() {
    use std::sync::Arc;

    use arrow::array::TimestampMicrosecondArray;
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use arrow::record_batch::RecordBatch;

    let naive = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new(
            "at",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            true,
        )])),
        vec![Arc::new(TimestampMicrosecondArray::from(vec![0, 1]))],
    )
    .unwrap();
    let type_check = |options: &str| {
        let contract = format!(
            "apiVersion: v3.1.0\nkind: DataContract\nid: ts\nversion: 1.0.0\nstatus: active\n\
             schema:\n  - name: events\n    properties:\n      - name: at\n        \
             logicalType: timestamp\n{options}"
        );
        let naive = naive.clone();
        async move {
            let results = run_on_batch(&contract, naive).await;
            let check = find(&results, "field_type", Some("at")).clone();
            (check.check.name.clone(), check.outcome, check.reason)
        }
    };
    let (name, outcome, reason) = type_check("").await;
    assert_eq!(
        (name.as_str(), outcome),
        ("at has type timestamp", Outcome::Passed),
        "{reason}"
    );
    assert_eq!(reason, "the column is Timestamp(µs)");
    let (_, outcome, reason) =
        type_check("        logicalTypeOptions:\n          timezone: false\n").await;
    assert_eq!(outcome, Outcome::Passed, "{reason}");
    let (_, outcome, reason) =
        type_check("        logicalTypeOptions:\n          timezone: true\n").await;
    assert_eq!(outcome, Outcome::Failed);
    assert!(reason.contains("found Timestamp(µs)"), "{reason}");
}

/// SLA `completeness`: the share of rows with a value in every element column, judged against
/// the promised percentage; the incomplete rows are the samples.
#[tokio::test]
async fn completeness_slo_is_the_share_of_complete_rows() {
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::record_batch::RecordBatch;

    let ids: Vec<i64> = (1..=10).collect();
    let emails: Vec<Option<String>> = ids
        .iter()
        .map(|i| (*i != 7).then(|| format!("u{i}@example.com")))
        .collect();
    let customers = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("email", DataType::Utf8, true),
        ])),
        vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(StringArray::from(emails)),
        ],
    )
    .unwrap();
    let completeness = |percent: u32| {
        let contract = format!(
            "apiVersion: v3.1.0\nkind: DataContract\nid: c\nversion: 1.0.0\nstatus: active\n\
             schema:\n  - name: customers\n    properties:\n      - name: id\n        \
             logicalType: integer\n      - name: email\n        logicalType: string\n\
             slaProperties:\n  - property: completeness\n    value: {percent}\n    \
             unit: percent\n    element: customers.id, customers.email\n"
        );
        let customers = customers.clone();
        async move {
            let results = run_on_batch(&contract, customers).await;
            find(&results, "servicelevel_completeness", None).clone()
        }
    };
    let met = completeness(90).await;
    assert_eq!((met.outcome, met.measured), (Outcome::Passed, Some(90.0)));
    assert_eq!(met.threshold, ">= 90 %");
    let broken = completeness(95).await;
    assert_eq!(
        (broken.outcome, broken.measured),
        (Outcome::Failed, Some(90.0))
    );
    assert_eq!(
        broken.reason,
        "90 % of 10 rows complete, which does not meet >= 95 %"
    );
    assert_eq!(broken.samples.len(), 1);
    assert_eq!(broken.samples[0]["id"], 7);
}

/// The commit gate's key index answers how many of a batch's keys a table holds exactly:
/// compound keys, nulls left out, and a hash in the index that the table does not hold (a stale
/// or colliding entry) never counted.
#[tokio::test]
async fn the_key_index_counts_shared_keys_exactly() {
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::record_batch::RecordBatch;
    use tessera_quality::{IndexedKeys, KeyIndex, batch_keys};

    let schema = Arc::new(Schema::new(vec![
        Field::new("region", DataType::Utf8, true),
        Field::new("order_id", DataType::Int64, true),
    ]));
    let batch = |regions: Vec<Option<&str>>, ids: Vec<Option<i64>>| {
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(regions)),
                Arc::new(Int64Array::from(ids)),
            ],
        )
        .unwrap()
    };
    let (_engine, ctx) = session();
    let table = batch(
        vec![Some("eu"), Some("eu"), Some("us"), None],
        vec![Some(1), Some(2), Some(1), Some(3)],
    );
    ctx.register_batch("orders", table).unwrap();
    let columns = vec!["region".to_string(), "order_id".to_string()];
    let types = [DataType::Utf8, DataType::Int64];
    let (mut index, read) = KeyIndex::build(&ctx, "orders", &columns, &types)
        .await
        .unwrap();
    // The row with a null region is no key; the other three are distinct, and the build says so.
    assert_eq!(index.len(), 3);
    assert_eq!(read.distinct(), Some(3));

    // (eu, 2) is there twice in the batch but counts once; (us, 2) and the null key are not.
    let incoming = batch(
        vec![Some("eu"), Some("eu"), Some("us"), Some("us"), None],
        vec![Some(2), Some(2), Some(2), None, Some(3)],
    );
    let keys = batch_keys(&incoming, &columns).unwrap();
    assert_eq!(keys.hashes.len(), 3, "three non-null keys");
    let shared = index
        .shared(&ctx, "orders", &columns, &incoming, &keys)
        .await
        .unwrap();
    assert_eq!(shared, 1.0);

    // Keys added to the index without being in the table (a batch whose commit failed) are
    // candidates, but the table is asked, and they do not count.
    let never_committed = batch(vec![Some("apac")], vec![Some(9)]);
    let stale = batch_keys(&never_committed, &columns).unwrap();
    index.insert(&stale);
    assert_eq!(
        index
            .shared(&ctx, "orders", &columns, &never_committed, &stale)
            .await
            .unwrap(),
        0.0
    );

    // A table holding a key twice: the build read two keys and cannot say how many differ.
    ctx.register_batch(
        "orders_twice",
        batch(vec![Some("eu"), Some("eu")], vec![Some(1), Some(1)]),
    )
    .unwrap();
    let (_, read) = KeyIndex::build(&ctx, "orders_twice", &columns, &types)
        .await
        .unwrap();
    assert_eq!(
        read,
        IndexedKeys {
            keys: 2,
            hash_repeated: true
        }
    );
    assert_eq!(read.distinct(), None);
}
