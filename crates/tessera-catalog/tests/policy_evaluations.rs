//! Storing policy evaluations at mesh scale: hundreds of outcomes and violations written in
//! multi-row statements, on SQLite and on the test PostgreSQL, with where each product stands
//! moving as a row-by-row write would move it.

use tessera_catalog::{
    Catalog, KeyFiles, PolicyEvaluationRecord, PolicyOutcomeRecord, PolicyViolationRecord,
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

#[tokio::test]
async fn evaluations_at_scale_on_sqlite() {
    let dir = tempfile::tempdir().expect("a scratch directory");
    let url = format!("sqlite://{}", dir.path().join("meta.db").display());
    let catalog = Catalog::connect(&url, &KeyFiles::in_dir(dir.path()))
        .await
        .expect("open the store");
    stores_evaluations_at_scale(catalog).await;
}

#[tokio::test]
async fn evaluations_at_scale_on_postgres() {
    use sqlx::Connection;
    let admin = std::env::var("TESSERA_TEST_POSTGRES_URL").expect(
        "TESSERA_TEST_POSTGRES_URL is not set: run the suite with scripts/test, which starts PostgreSQL",
    );
    let name = format!("tessera_catalog_{}", std::process::id());
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
    let dir = tempfile::tempdir().expect("a scratch directory");
    let catalog = Catalog::connect(&format!("{base}/{name}"), &KeyFiles::in_dir(dir.path()))
        .await
        .expect("open the store");
    stores_evaluations_at_scale(catalog).await;
}
