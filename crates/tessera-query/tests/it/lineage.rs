//! Column lineage read from hand-written queries' plans — projections, renames, filters, joins,
//! aggregates, CASE, window functions, UNION, subqueries and CTEs — equals the graph written
//! here by hand.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::catalog::{MemoryCatalogProvider, MemorySchemaProvider};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use tessera_query::query_lineage;

fn table(columns: &[(&str, DataType)]) -> Arc<MemTable> {
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|(n, t)| Field::new(*n, t.clone(), true))
            .collect::<Vec<_>>(),
    ));
    Arc::new(MemTable::try_new(schema, vec![vec![]]).unwrap())
}

/// `shop.orders.orders`, `shop.orders.customers` and `web.clicks.events`, empty.
fn session() -> SessionContext {
    let ctx = SessionContext::new();
    for (catalog, schema, name, columns) in [
        (
            "shop",
            "orders",
            "orders",
            vec![
                ("order_id", DataType::Int64),
                ("customer_id", DataType::Utf8),
                ("amount", DataType::Float64),
                ("status", DataType::Utf8),
                (
                    "placed_at",
                    DataType::Timestamp(TimeUnit::Microsecond, None),
                ),
            ],
        ),
        (
            "shop",
            "orders",
            "customers",
            vec![("customer_id", DataType::Utf8), ("country", DataType::Utf8)],
        ),
        (
            "web",
            "clicks",
            "events",
            vec![("user_id", DataType::Utf8), ("url", DataType::Utf8)],
        ),
    ] {
        if ctx.catalog(catalog).is_none() {
            ctx.register_catalog(catalog, Arc::new(MemoryCatalogProvider::new()));
        }
        let c = ctx.catalog(catalog).unwrap();
        if c.schema(schema).is_none() {
            c.register_schema(schema, Arc::new(MemorySchemaProvider::new()))
                .unwrap();
        }
        c.schema(schema)
            .unwrap()
            .register_table(name.to_string(), table(&columns))
            .unwrap();
    }
    ctx
}

/// The lineage as lines: `column <- dataset.column: how, how` (rows for what decides rows).
async fn lineage(sql: &str) -> Vec<String> {
    let frame = tessera_query::plan_sql(&session(), sql).await.unwrap();
    let lineage = query_lineage(frame.logical_plan()).unwrap();
    let mut lines = Vec::new();
    let mut show = |to: &str, sources: &tessera_core::Sources| {
        for (from, how) in sources {
            let how: Vec<&str> = how.iter().map(|d| d.as_str()).collect();
            lines.push(format!("{to} <- {from}: {}", how.join(", ")));
        }
    };
    for (column, sources) in &lineage.columns {
        show(column, sources);
    }
    show("(rows)", &lineage.rows);
    lines
}

#[tokio::test]
async fn selected_and_renamed_columns_are_identities_and_a_filter_decides_rows() {
    assert_eq!(
        lineage(
            "SELECT order_id, amount AS total FROM shop.orders.orders WHERE status = 'shipped'"
        )
        .await,
        [
            "order_id <- shop.orders.orders.order_id: identity",
            "total <- shop.orders.orders.amount: identity",
            "(rows) <- shop.orders.orders.status: filter",
        ]
    );
}

#[tokio::test]
async fn a_join_and_an_aggregate() {
    assert_eq!(
        lineage(
            "SELECT c.country, count(*) AS orders, sum(o.amount) AS revenue
             FROM shop.orders.orders o JOIN shop.orders.customers c ON o.customer_id = c.customer_id
             GROUP BY c.country"
        )
        .await,
        [
            "country <- shop.orders.customers.country: identity",
            "revenue <- shop.orders.orders.amount: aggregation",
            "(rows) <- shop.orders.customers.country: group_by",
            "(rows) <- shop.orders.customers.customer_id: join",
            "(rows) <- shop.orders.orders.customer_id: join",
        ]
    );
}

#[tokio::test]
async fn a_case_condition_decides_its_column() {
    assert_eq!(
        lineage(
            "SELECT order_id, CASE WHEN amount > 100 THEN 'big' ELSE lower(status) END AS size
             FROM shop.orders.orders"
        )
        .await,
        [
            "order_id <- shop.orders.orders.order_id: identity",
            "size <- shop.orders.orders.amount: conditional",
            "size <- shop.orders.orders.status: transformation",
        ]
    );
}

#[tokio::test]
async fn window_functions_aggregate_or_transform_and_their_windows_decide() {
    assert_eq!(
        lineage(
            "SELECT order_id,
                    sum(amount) OVER (PARTITION BY customer_id ORDER BY placed_at) AS running,
                    row_number() OVER (ORDER BY amount DESC) AS rank,
                    lag(status) OVER (ORDER BY placed_at) AS previous_status
             FROM shop.orders.orders
             ORDER BY order_id"
        )
        .await,
        [
            "order_id <- shop.orders.orders.order_id: identity",
            "running <- shop.orders.orders.amount: aggregation",
            "running <- shop.orders.orders.customer_id: window",
            "running <- shop.orders.orders.placed_at: window",
            "rank <- shop.orders.orders.amount: window",
            "previous_status <- shop.orders.orders.placed_at: window",
            "previous_status <- shop.orders.orders.status: transformation",
            "(rows) <- shop.orders.orders.order_id: sort",
        ]
    );
}

#[tokio::test]
async fn a_union_takes_each_branch() {
    assert_eq!(
        lineage(
            "SELECT customer_id AS id FROM shop.orders.orders
             UNION ALL
             SELECT user_id FROM web.clicks.events WHERE url LIKE '%/buy%'"
        )
        .await,
        [
            "id <- shop.orders.orders.customer_id: identity",
            "id <- web.clicks.events.user_id: identity",
            "(rows) <- web.clicks.events.url: filter",
        ]
    );
}

#[tokio::test]
async fn subqueries_and_ctes_are_followed() {
    assert_eq!(
        lineage(
            "WITH big AS (SELECT * FROM shop.orders.orders WHERE amount > 100)
             SELECT order_id,
                    (SELECT max(amount) FROM shop.orders.orders) - amount AS below_max,
                    upper(status) AS status
             FROM big
             WHERE customer_id IN (SELECT customer_id FROM shop.orders.customers WHERE country = 'DE')"
        )
        .await,
        [
            "order_id <- shop.orders.orders.order_id: identity",
            "below_max <- shop.orders.orders.amount: transformation, aggregation",
            "status <- shop.orders.orders.status: transformation",
            "(rows) <- shop.orders.customers.country: filter",
            "(rows) <- shop.orders.customers.customer_id: filter",
            "(rows) <- shop.orders.orders.amount: filter",
            "(rows) <- shop.orders.orders.customer_id: filter",
        ]
    );
}

#[tokio::test]
async fn a_table_read_for_no_column_is_still_an_input() {
    // `count(*)` reads no column of its table, nor does an EXISTS of a constant: the query
    // still depends on both tables, so both are among its datasets.
    let frame = tessera_query::plan_sql(
        &session(),
        "SELECT count(*) AS n FROM shop.orders.orders
         WHERE EXISTS (SELECT 1 FROM shop.orders.customers)",
    )
    .await
    .unwrap();
    let lineage = query_lineage(frame.logical_plan()).unwrap();
    assert_eq!(
        lineage.datasets().into_iter().collect::<Vec<_>>(),
        ["shop.orders.customers", "shop.orders.orders"]
    );
    assert_eq!(lineage.columns, [("n".to_string(), Default::default())]);
}
