//! Storing at mesh scale in multi-row statements, on SQLite and on the test PostgreSQL:
//! policy evaluations (hundreds of outcomes and violations, with where each product stands
//! moving as a row-by-row write would move it) and the query log's groups (hundreds of queries
//! with their audit entries, a query stored before kept as it was).

use tessera_catalog::{
    AuditEvent, Catalog, KeyFiles, PolicyEvaluationRecord, PolicyOutcomeRecord,
    PolicyViolationRecord, QueryRecord,
};

const PRODUCTS: usize = 250;

fn outcome(product: usize, policy: &str, violations: i64) -> PolicyOutcomeRecord {
    PolicyOutcomeRecord {
        domain: format!("d{}", product % 7),
        product: format!("p{product:03}"),
        policy_id: policy.to_string(),
        severity: "warn".to_string(),
        violations,
    }
}

fn evaluation(id: &str, at: &str, outcomes: Vec<PolicyOutcomeRecord>) -> PolicyEvaluationRecord {
    let violations: Vec<PolicyViolationRecord> = outcomes
        .iter()
        .filter(|o| o.violations > 0)
        .map(|o| PolicyViolationRecord {
            policy_id: o.policy_id.clone(),
            severity: o.severity.clone(),
            domain: o.domain.clone(),
            product: o.product.clone(),
            object: format!("product {}", o.product),
            message: format!("{} breaks {}", o.product, o.policy_id),
            file_name: Some(format!("{}/product.odps.yaml", o.product)),
            line: Some(3),
        })
        .collect();
    PolicyEvaluationRecord {
        evaluation_id: id.to_string(),
        target: "mesh".to_string(),
        trigger: "check".to_string(),
        evaluated_at: at.to_string(),
        evaluated_by: "system:test".to_string(),
        policies: 2,
        blocking: 0,
        warnings: violations.len() as i64,
        outcomes,
        violations,
    }
}

async fn stores_evaluations_at_scale(catalog: Catalog) {
    let first_at = "2026-01-01T00:00:00.000000Z";
    let second_at = "2026-01-02T00:00:00.000000Z";
    // First: every product on policies `a` (passing) and `b` (failing on even products).
    let mut outcomes = Vec::new();
    for p in 0..PRODUCTS {
        outcomes.push(outcome(p, "a", 0));
        outcomes.push(outcome(p, "b", i64::from(p % 2 == 0)));
    }
    let first = evaluation("first", first_at, outcomes);
    catalog
        .record_policy_evaluation(&first, true)
        .await
        .expect("store the first evaluation");
    let status = catalog.policy_status(None).await.expect("standing");
    assert_eq!(status.len(), 2 * PRODUCTS);
    assert_eq!(
        status.iter().filter(|s| s.violations > 0).count(),
        PRODUCTS / 2
    );
    let stored = catalog
        .policy_violations("first")
        .await
        .expect("violations");
    assert_eq!(stored, first.violations, "every violation, in order");

    // Second: policy `b` is gone and `a` now fails on every third product, four times on p001.
    let outcomes: Vec<PolicyOutcomeRecord> = (0..PRODUCTS)
        .map(|p| outcome(p, "a", if p == 1 { 4 } else { i64::from(p % 3 == 0) }))
        .collect();
    let second = evaluation("second", second_at, outcomes);
    catalog
        .record_policy_evaluation(&second, true)
        .await
        .expect("store the second evaluation");
    let status = catalog.policy_status(None).await.expect("standing");
    assert_eq!(
        status.len(),
        PRODUCTS,
        "the standing on policy b is dropped"
    );
    for s in &status {
        let p: usize = s.product[1..].parse().expect("a product number");
        let expected = match p {
            1 => 4,
            p if p % 3 == 0 => 1,
            _ => 0,
        };
        assert_eq!(s.violations, expected, "{}", s.product);
        // `since` moves only where passing turned to failing.
        let turned = expected > 0;
        assert_eq!(
            s.since,
            if turned { second_at } else { first_at },
            "{}",
            s.product
        );
        assert_eq!(s.evaluation_id, "second");
    }

    // An evaluation that does not reflect the mesh (a refused apply) is kept, standings not.
    let refused = evaluation(
        "refused",
        "2026-01-03T00:00:00.000000Z",
        vec![outcome(0, "a", 9)],
    );
    catalog
        .record_policy_evaluation(&refused, false)
        .await
        .expect("store a refused evaluation");
    let status = catalog
        .policy_status(Some(("d0", "p000")))
        .await
        .expect("standing");
    assert_eq!(status.len(), 1);
    assert_eq!(status[0].violations, 1);
    assert_eq!(
        catalog
            .policy_violations("refused")
            .await
            .expect("violations")
            .len(),
        1
    );
}

fn query(n: usize) -> QueryRecord {
    QueryRecord {
        query_id: format!("q{n:04}"),
        request_id: format!("r{n}"),
        principal: format!("user u{}", n % 3),
        front_end: "postgres".to_string(),
        sql: format!("SELECT {n}"),
        datasets: vec![format!("d.p{}.t", n % 5)],
        products: vec![format!("d.p{}", n % 5), "d.shared".to_string()],
        started_at: format!("2026-01-01T00:00:{:02}.{n:06}Z", n % 60),
        wall_ms: 0.5,
        cpu_ms: 0.25,
        rows_returned: 1,
        bytes_returned: 8,
        rows_scanned: 0,
        bytes_scanned: 0,
        status: "finished".to_string(),
        error_class: None,
        error: None,
    }
}

async fn stores_query_log_groups(catalog: Catalog) {
    let before = catalog
        .verify_audit()
        .await
        .expect("verify the chain")
        .entries;
    // A group larger than one statement takes, with a denial.
    let first: Vec<QueryRecord> = (0..450).map(query).collect();
    let denial = AuditEvent::new(
        "user u1",
        "access.denied",
        "d.p1.t",
        serde_json::json!({"action": "read"}),
    );
    catalog
        .record_activity(&first, std::slice::from_ref(&denial))
        .await
        .expect("store the first group");
    // The next group repeats 50 queries (a retried write): those are kept as they were and
    // not audited again.
    let mut second: Vec<QueryRecord> = (400..600).map(query).collect();
    second[0].status = "failed".to_string();
    catalog
        .record_activity(&second, &[])
        .await
        .expect("store the second group");
    let stored = catalog.queries(None, 1000).await.expect("the log");
    assert_eq!(stored.len(), 600);
    let q400 = stored.iter().find(|q| q.query_id == "q0400").unwrap();
    assert_eq!(q400.status, "finished");
    // What a principal ran, and what read its products.
    let p2_readers = catalog
        .queries(Some(("user nobody", &["d.p2".to_string()])), 1000)
        .await
        .expect("by product");
    assert_eq!(p2_readers.len(), 120);
    let audit = catalog.verify_audit().await.expect("verify the chain");
    assert!(audit.problem.is_none(), "{:?}", audit.problem);
    assert_eq!(
        audit.entries - before,
        600 + 1,
        "one entry per stored query, and the denial"
    );
}

#[tokio::test]
async fn query_log_groups_on_sqlite() {
    let dir = tempfile::tempdir().expect("a scratch directory");
    stores_query_log_groups(sqlite_catalog(&dir).await).await;
}

#[tokio::test]
async fn query_log_groups_on_postgres() {
    let dir = tempfile::tempdir().expect("a scratch directory");
    stores_query_log_groups(postgres_catalog(&dir, "querylog").await).await;
}

#[tokio::test]
async fn evaluations_at_scale_on_sqlite() {
    let dir = tempfile::tempdir().expect("a scratch directory");
    stores_evaluations_at_scale(sqlite_catalog(&dir).await).await;
}

#[tokio::test]
async fn evaluations_at_scale_on_postgres() {
    let dir = tempfile::tempdir().expect("a scratch directory");
    stores_evaluations_at_scale(postgres_catalog(&dir, "evaluations").await).await;
}

async fn sqlite_catalog(dir: &tempfile::TempDir) -> Catalog {
    let url = format!("sqlite://{}", dir.path().join("meta.db").display());
    Catalog::connect(&url, &KeyFiles::in_dir(dir.path()))
        .await
        .expect("open the store")
}

/// A new database `what` of this process on the test PostgreSQL.
async fn postgres_catalog(dir: &tempfile::TempDir, what: &str) -> Catalog {
    use sqlx::Connection;
    let admin = std::env::var("TESSERA_TEST_POSTGRES_URL").expect(
        "TESSERA_TEST_POSTGRES_URL is not set: run the suite with scripts/test, which starts PostgreSQL",
    );
    let name = format!("tessera_catalog_{what}_{}", std::process::id());
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .expect("connect to the test PostgreSQL");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name}"
    )))
    .execute(&mut conn)
    .await
    .expect("drop an old test database");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create a test database");
    let base = admin.rsplit_once('/').expect("URL with a database").0;
    Catalog::connect(&format!("{base}/{name}"), &KeyFiles::in_dir(dir.path()))
        .await
        .expect("open the store")
}
