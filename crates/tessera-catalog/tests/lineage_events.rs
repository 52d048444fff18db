//! The kept OpenLineage events are pruned by age: delivered ones, and undelivered ones only
//! when no endpoint waits for them.

use tessera_catalog::{Catalog, KeyFiles, LineageEventRecord};

fn event(id: &str, created_at: &str) -> LineageEventRecord {
    LineageEventRecord {
        event_id: id.to_string(),
        run_id: format!("run-{id}"),
        event_type: "COMPLETE".into(),
        job: "tessera://test/ingest.shop.orders.orders".into(),
        event_time: created_at.to_string(),
        body: "{}".into(),
        created_at: created_at.to_string(),
        ..Default::default()
    }
}

#[tokio::test]
async fn old_events_are_pruned_once_delivered_or_when_no_endpoint_waits() {
    let dir = tempfile::tempdir().expect("a scratch directory");
    let url = format!("sqlite://{}", dir.path().join("meta.db").display());
    let catalog = Catalog::connect(&url, &KeyFiles::in_dir(dir.path()))
        .await
        .expect("open the store");
    for (id, at) in [
        ("old-delivered", "2026-11-01T00:00:00.000000Z"),
        ("old-waiting", "2026-11-01T00:00:01.000000Z"),
        ("new-delivered", "2026-12-04T00:00:00.000000Z"),
    ] {
        catalog.record_lineage_event(&event(id, at)).await.unwrap();
    }
    for id in ["old-delivered", "new-delivered"] {
        catalog
            .lineage_event_tried(id, Some("2026-12-04T00:00:01.000000Z"))
            .await
            .unwrap();
    }
    assert_eq!(catalog.lineage_event_counts().await.unwrap(), (3, 1));

    // An endpoint is configured: what it has not taken yet stays, however old.
    let before = "2026-11-28T00:00:00.000000Z";
    assert_eq!(
        catalog.prune_lineage_events(before, false).await.unwrap(),
        1
    );
    let waiting = catalog.undelivered_lineage_events(10).await.unwrap();
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0].event_id, "old-waiting");
    assert_eq!(catalog.lineage_event_counts().await.unwrap(), (2, 1));

    // No endpoint: old events go whether delivered or not.
    assert_eq!(catalog.prune_lineage_events(before, true).await.unwrap(), 1);
    assert_eq!(catalog.lineage_event_counts().await.unwrap(), (1, 0));
}
