//! The audit log (issue 8, part 6): every change, denied decision and query is chained, and
//! `verify` finds each kind of tampering done straight on the metadata store — an edited entry,
//! an edit with every hash after it recomputed, a removed entry, an inserted one, and the
//! newest entries cut off — naming the entry, on SQLite and on PostgreSQL.

use serde_json::{Value, json};

use crate::on_both_stores;
use crate::support::*;

on_both_stores!(
    every_change_denial_and_query_is_chained,
    verify_names_the_entry_of_each_kind_of_tampering,
    the_chain_goes_on_across_restarts_and_needs_its_key,
);

/// One stored entry: seq, at, actor, action, subject, detail, prev_hash, hash, mac.
type Row = (
    i64,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
);

const COLUMNS: &str = "seq, at, actor, action, subject, detail, prev_hash, hash, mac";

async fn audit_rows(url: &str) -> Vec<Row> {
    stored_rows(
        url,
        &format!("SELECT {COLUMNS} FROM audit_log ORDER BY seq"),
    )
    .await
}

fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn insert_sql(r: &Row) -> String {
    format!(
        "INSERT INTO audit_log ({COLUMNS}) VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {})",
        r.0,
        quoted(&r.1),
        quoted(&r.2),
        quoted(&r.3),
        quoted(&r.4),
        quoted(&r.5),
        quoted(&r.6),
        quoted(&r.7),
        quoted(&r.8)
    )
}

/// Puts the stored chain back as `rows` (what a tamperer cannot do without a copy).
async fn restore(url: &str, rows: &[Row]) {
    execute_in_store(url, "DELETE FROM audit_log").await;
    for r in rows {
        execute_in_store(url, &insert_sql(r)).await;
    }
}

fn hash_of(r: &Row) -> String {
    hex::encode(tessera_catalog::entry_hash(
        r.0, &r.1, &r.2, &r.3, &r.4, &r.5, &r.6,
    ))
}

async fn verify(server: &TestServer) -> Value {
    let (status, body) = server.get("/api/v1/audit/verify").await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Asserts the chain verifies, and returns how many entries it has.
async fn verified(server: &TestServer) -> i64 {
    let body = verify(server).await;
    assert_eq!(body["ok"], true, "{body}");
    assert!(body["problem"].is_null(), "{body}");
    body["entries"].as_i64().unwrap()
}

/// Asserts verification finds `kind` at entry `seq`.
async fn found(server: &TestServer, kind: &str, seq: i64) -> String {
    let body = verify(server).await;
    assert_eq!(body["ok"], false, "tampering not found: {body}");
    assert_eq!(body["problem"]["kind"], kind, "{body}");
    assert_eq!(body["problem"]["seq"], seq, "{body}");
    body["problem"]["message"].as_str().unwrap().to_string()
}

async fn entries(server: &TestServer) -> Vec<Value> {
    let (status, body) = server.get("/api/v1/audit?after=0&limit=1000").await;
    assert_eq!(status, 200, "{body}");
    body["entries"].as_array().unwrap().clone()
}

/// Waits for the entries that arrive in groups (queries, denials) to be written.
async fn entries_with(server: &TestServer, action: &str, n: usize) -> Vec<Value> {
    for _ in 0..100 {
        let all = entries(server).await;
        if all.iter().filter(|e| e["action"] == action).count() >= n {
            return all;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!(
        "the audit log never held {n} {action} entries: {:?}",
        entries(server).await
    )
}

/// A mesh with some history: an apply, tokens, a grant and its revocation, a denied read and
/// two queries.
async fn mesh_with_history(store: Store) -> (TestServer, String) {
    let server = TestServer::start(store, Tables::Local).await;
    let (status, body) = server.apply(&shop_folder(), false).await;
    assert_eq!(status, 200, "{body}");
    let bob = server.token_for("bob", &[], &[]).await;
    let (status, _) = server
        .post_json_as(
            Some(&bob),
            "/api/v1/query",
            &json!({"sql": "SELECT * FROM shop.orders.orders"}),
        )
        .await;
    assert_eq!(status, 403);
    let (status, grant) = server
        .post_json(
            "/api/v1/grants",
            &json!({"product": "shop.orders", "grantee": "user:bob"}),
        )
        .await;
    assert_eq!(status, 201, "{grant}");
    let (status, _) = server
        .post_json_as(
            Some(&bob),
            "/api/v1/query",
            &json!({"sql": "SELECT count(*) FROM shop.orders.orders"}),
        )
        .await;
    assert_eq!(status, 200);
    let revoked = server
        .http
        .delete(format!(
            "{}/api/v1/grants/{}",
            server.url,
            grant["grant_id"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status().as_u16(), 200);
    entries_with(&server, "query", 2).await;
    entries_with(&server, "access.denied", 1).await;
    (server, bob)
}

async fn every_change_denial_and_query_is_chained(store: Store) {
    let (server, bob) = mesh_with_history(store).await;
    let all = entries(&server).await;
    let said = |action: &str| -> Vec<(String, String)> {
        all.iter()
            .filter(|e| e["action"] == action)
            .map(|e| {
                (
                    e["actor"].as_str().unwrap().to_string(),
                    e["subject"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    // The first admin's token was made by the system, bob's by the admin.
    let tokens = said("token.create");
    assert_eq!(tokens.len(), 2, "{all:?}");
    assert_eq!(tokens[0].0, "system:bootstrap");
    assert_eq!(tokens[1].0, "user admin");
    assert_eq!(
        said("apply"),
        vec![("user admin".into(), "shop.orders".into())]
    );
    assert_eq!(said("contract.version").len(), 1, "{all:?}");
    assert_eq!(said("grant.create").len(), 1);
    assert_eq!(said("grant.revoke").len(), 1);
    // The query refused by policy is audited as a query and as the decision that denied it.
    let denied = said("access.denied");
    assert_eq!(denied[0].0, "user bob");
    assert!(denied[0].1.contains("shop.orders"), "{denied:?}");
    let queries: Vec<&Value> = all.iter().filter(|e| e["action"] == "query").collect();
    let statuses: Vec<&str> = queries
        .iter()
        .map(|e| e["detail"]["status"].as_str().unwrap())
        .collect();
    assert!(
        statuses.contains(&"denied") && statuses.contains(&"finished"),
        "{statuses:?}"
    );
    // Sequence numbers count up from 1 without a gap, each entry naming the one before.
    for (i, e) in all.iter().enumerate() {
        assert_eq!(e["seq"], i as i64 + 1);
    }
    assert_eq!(verified(&server).await, all.len() as i64);

    // Paging: a full page says where the next one starts; the last page does not.
    let (_, first) = server.get("/api/v1/audit?after=0&limit=2").await;
    assert_eq!(first["entries"].as_array().unwrap().len(), 2);
    assert_eq!(first["next_after"], 2);
    let last_two = format!("/api/v1/audit?after={}&limit=2", all.len() - 2);
    let (_, last) = server.get(&last_two).await;
    assert_eq!(last["entries"].as_array().unwrap().len(), 2);
    assert!(last["next_after"].is_null(), "{last}");
    let (_, newest) = server.get("/api/v1/audit?limit=1").await;
    assert_eq!(newest["entries"][0]["seq"], all.len() as i64);
    assert!(newest["next_after"].is_null());
    let (status, _) = server.get("/api/v1/audit?after=-1").await;
    assert_eq!(status, 400);

    // The log is the admins'.
    for path in ["/api/v1/audit", "/api/v1/audit/verify"] {
        let r = server
            .client(Some(&bob))
            .get(format!("{}{path}", server.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 403, "{path}");
        let r = server
            .client(None)
            .get(format!("{}{path}", server.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 401, "{path}");
    }
}

async fn verify_names_the_entry_of_each_kind_of_tampering(store: Store) {
    let (server, _bob) = mesh_with_history(store).await;
    let url = server.config.metadata_url();
    let rows = audit_rows(&url).await;
    let n = rows.len() as i64;
    assert!(n >= 8, "{rows:?}");
    assert_eq!(verified(&server).await, n);

    // An entry edited: who did it.
    execute_in_store(
        &url,
        "UPDATE audit_log SET actor = 'user mallory' WHERE seq = 3",
    )
    .await;
    let message = found(&server, "edited", 3).await;
    assert!(message.contains("entry 3"), "{message}");
    restore(&url, &rows).await;
    assert_eq!(verified(&server).await, n);

    // Edited, and its hash and every later one recomputed so that the chain links up.
    let mut forged = rows.clone();
    forged[3].5 = r#"{"forged":true}"#.to_string();
    for i in 3..forged.len() {
        if i > 0 {
            forged[i].6 = forged[i - 1].7.clone();
        }
        forged[i].7 = hash_of(&forged[i]);
    }
    restore(&url, &forged).await;
    let message = found(&server, "forged", 4).await;
    assert!(message.contains("entry 4"), "{message}");
    restore(&url, &rows).await;

    // An entry removed from the middle.
    execute_in_store(&url, "DELETE FROM audit_log WHERE seq = 5").await;
    let message = found(&server, "removed", 5).await;
    assert!(message.contains("entry 5 was removed"), "{message}");
    restore(&url, &rows).await;

    // An entry inserted: later entries moved up one to make room, the new one chained to the
    // one before it with a correct hash (but no key for its MAC).
    execute_in_store(&url, "UPDATE audit_log SET seq = -(seq + 1) WHERE seq >= 4").await;
    execute_in_store(&url, "UPDATE audit_log SET seq = -seq WHERE seq < 0").await;
    let mut inserted: Row = rows[3].clone();
    inserted.2 = "user mallory".into();
    inserted.3 = "grant.create".into();
    inserted.6 = rows[2].7.clone();
    inserted.7 = hash_of(&inserted);
    execute_in_store(&url, &insert_sql(&inserted)).await;
    found(&server, "forged", 4).await;
    restore(&url, &rows).await;

    // The same entry appended at the end instead.
    let mut appended: Row = inserted.clone();
    appended.0 = n + 1;
    appended.6 = rows[rows.len() - 1].7.clone();
    appended.7 = hash_of(&appended);
    execute_in_store(&url, &insert_sql(&appended)).await;
    found(&server, "forged", n + 1).await;
    restore(&url, &rows).await;

    // The newest entries cut off: what is left is a whole chain, but shorter than the head
    // kept outside the store.
    execute_in_store(
        &url,
        &format!("DELETE FROM audit_log WHERE seq > {}", n - 2),
    )
    .await;
    let message = found(&server, "truncated", n - 1).await;
    assert!(
        message.contains(&format!("ends at entry {}", n - 2)) && message.contains(&n.to_string()),
        "{message}"
    );

    // Cut off with the store's own head moved back to match: verification still finds it,
    // and no change is appended over the evidence until an admin looks.
    execute_in_store(
        &url,
        &format!(
            "UPDATE audit_head SET seq = {}, hash = '{}' WHERE id = 1",
            n - 2,
            rows[(n - 3) as usize].7
        ),
    )
    .await;
    found(&server, "truncated", n - 1).await;
    let (status, body) = server
        .post_json("/api/v1/tokens", &serde_json::json!({"user": "mallory"}))
        .await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|e| e.contains("rolled back")),
        "{body}"
    );
    execute_in_store(
        &url,
        &format!(
            "UPDATE audit_head SET seq = {n}, hash = '{}' WHERE id = 1",
            rows[(n - 1) as usize].7
        ),
    )
    .await;
    restore(&url, &rows).await;
    assert_eq!(verified(&server).await, n);
}

async fn the_chain_goes_on_across_restarts_and_needs_its_key(store: Store) {
    let (server, _bob) = mesh_with_history(store).await;
    let before = verified(&server).await;
    let stopped = server.stop().await;
    let key_file = stopped.config.key_files().key_file;
    // The key is the owner's only.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    let server = stopped.restart().await;
    server.token_for("carol", &[], &[]).await;
    assert_eq!(verified(&server).await, before + 1);
    let stopped = server.stop().await;

    // Without its key a mesh with a chain does not start (it could neither verify nor extend
    // the chain), and says what to do.
    let key = std::fs::read(&key_file).unwrap();
    std::fs::remove_file(&key_file).unwrap();
    let refused = tessera_server::Application::build(&stopped.config)
        .await
        .err()
        .expect("a mesh whose audit key is missing does not start")
        .to_string();
    assert!(
        refused.contains("audit key") && refused.contains(&key_file.display().to_string()),
        "{refused}"
    );
    // A different key does not verify what the first one wrote.
    std::fs::write(&key_file, hex::encode([7u8; 32])).unwrap();
    let server = stopped.restart().await;
    found(&server, "forged", 1).await;
    let stopped = server.stop().await;
    std::fs::write(&key_file, key).unwrap();
    let server = stopped.restart().await;
    assert_eq!(verified(&server).await, before + 1);
}
