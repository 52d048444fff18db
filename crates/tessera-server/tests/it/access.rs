//! Who may call (issue 8): API tokens, what a request without a valid one gets, and who may
//! make, see and revoke tokens.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::on_both_stores;
use crate::support::*;

on_both_stores!(
    every_request_but_health_needs_a_valid_token,
    admins_make_tokens_that_stand_for_a_user_with_groups_and_teams,
    a_revoked_token_is_refused_from_then_on,
    tokens_are_stored_as_hashes_only,
);

/// Status and body of `GET path` with `token` (or none).
async fn get_as(server: &TestServer, token: Option<&str>, path: &str) -> (u16, Value, String) {
    let r = server
        .client(token)
        .get(format!("{}{path}", server.url))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let challenge = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, r.json().await.unwrap_or(Value::Null), challenge)
}

async fn every_request_but_health_needs_a_valid_token(store: Store) {
    let server = TestServer::start(store, Tables::Local).await;
    server.apply(&shop_folder(), false).await;

    let (status, _, _) = get_as(&server, None, "/health").await;
    assert_eq!(status, 200, "/health needs no token");
    let (status, _, _) = get_as(&server, None, "/api/openapi.json").await;
    assert_eq!(status, 200, "the API's description needs no token");

    let forged = format!("{}x", server.admin_token);
    for token in [
        None,
        Some("not-a-token"),
        Some("tsr_000000000000_0"),
        Some(forged.as_str()),
    ] {
        for path in [
            "/api/v1/domains",
            "/api/v1/products/shop/orders",
            "/api/v1/datasets/shop/orders/orders",
            "/api/v1/contracts",
            "/api/v1/whoami",
            "/api/v1/tokens",
        ] {
            let (status, body, challenge) = get_as(&server, token, path).await;
            assert_eq!(status, 401, "{path} with {token:?}: {body}");
            assert_eq!(body["error"]["code"], "unauthenticated", "{body}");
            assert!(challenge.starts_with("Bearer"), "{path}: {challenge:?}");
        }
        let (status, body) = server
            .post_json_as(
                token,
                "/api/v1/query",
                &json!({"sql": "SELECT * FROM shop.orders.customers"}),
            )
            .await;
        assert_eq!(status, 401, "{body}");
        let (status, body) = server
            .post_json_as(token, "/api/v1/apply", &json!({"files": []}))
            .await;
        assert_eq!(
            status, 401,
            "a request without a valid token is refused before its body is read: {body}"
        );
    }
    // The token itself is never echoed, even when it is refused.
    let (_, body, _) = get_as(&server, Some(&forged), "/api/v1/domains").await;
    assert!(!body.to_string().contains(&forged), "{body}");

    let (status, me, _) = get_as(&server, Some(&server.admin_token), "/api/v1/whoami").await;
    assert_eq!(status, 200);
    assert_eq!(
        me,
        json!({"name": "admin", "kind": "user", "groups": ["admins"], "teams": []})
    );
}

async fn admins_make_tokens_that_stand_for_a_user_with_groups_and_teams(store: Store) {
    let server = TestServer::start(store, Tables::Local).await;
    let (status, created) = server
        .post_json(
            "/api/v1/tokens",
            &json!({"user": "ada", "groups": ["analysts"], "teams": ["shop team"], "description": "laptop"}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let ada = created["token"].as_str().unwrap().to_string();
    assert!(
        ada.starts_with(&format!("tsr_{}_", created["token_id"].as_str().unwrap())),
        "{created}"
    );
    let (_, me, _) = get_as(&server, Some(&ada), "/api/v1/whoami").await;
    assert_eq!(
        me,
        json!({"name": "ada", "kind": "user", "groups": ["analysts"], "teams": ["shop team"]})
    );

    // A second token for the same user adds memberships; both tokens stand for the same user.
    let second = server.token_for("ada", &[], &["ops"]).await;
    let (_, me, _) = get_as(&server, Some(&second), "/api/v1/whoami").await;
    assert_eq!(me["teams"], json!(["ops", "shop team"]));
    let (_, me, _) = get_as(&server, Some(&ada), "/api/v1/whoami").await;
    assert_eq!(me["teams"], json!(["ops", "shop team"]));

    // Only admins make tokens; the answer names the action and nothing else.
    let (status, refused) = server
        .post_json_as(
            Some(&ada),
            "/api/v1/tokens",
            &json!({"user": "mallory", "groups": ["admins"]}),
        )
        .await;
    assert_eq!(status, 403, "{refused}");
    assert_eq!(refused["error"]["code"], "forbidden");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("user ada may not manage the platform"),
        "{refused}"
    );
    let (_, me, _) = get_as(&server, Some(&server.admin_token), "/api/v1/tokens").await;
    assert!(
        !me.to_string().contains("mallory"),
        "a refused request made no user: {me}"
    );

    // Admins see every token, a user only their own; no listing holds a token.
    let (_, all, _) = get_as(&server, Some(&server.admin_token), "/api/v1/tokens").await;
    let users: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["user"].as_str().unwrap())
        .collect();
    assert_eq!(users, ["admin", "ada", "ada"], "{all}");
    let (_, own, _) = get_as(&server, Some(&ada), "/api/v1/tokens").await;
    assert_eq!(own.as_array().unwrap().len(), 2, "{own}");
    assert!(
        own.as_array().unwrap().iter().all(|t| t["user"] == "ada"),
        "{own}"
    );
    assert_eq!(own[0]["description"], "laptop");
    for listing in [&all, &own] {
        assert!(!listing.to_string().contains("tsr_"), "{listing}");
    }

    // Bad names are refused with a 400 that says what a name may be.
    for bad in [
        json!({"user": ""}),
        json!({"user": "x\u{7}y"}),
        json!({"user": "ok", "groups": [" padded "]}),
    ] {
        let (status, body) = server.post_json("/api/v1/tokens", &bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
}

async fn a_revoked_token_is_refused_from_then_on(store: Store) {
    let server = TestServer::start(store, Tables::Local).await;
    let ada = server.token_for("ada", &[], &[]).await;
    let bob = server.token_for("bob", &[], &[]).await;
    let (_, own, _) = get_as(&server, Some(&ada), "/api/v1/tokens").await;
    let ada_id = own[0]["token_id"].as_str().unwrap().to_string();

    // Another user's token is not found for bob: he may neither revoke nor learn of it.
    let r = server
        .client(Some(&bob))
        .delete(format!("{}/api/v1/tokens/{ada_id}", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let (status, _, _) = get_as(&server, Some(&ada), "/api/v1/whoami").await;
    assert_eq!(status, 200);

    // Ada revokes her own token; it is refused from then on, bob's still works.
    let r = server
        .client(Some(&ada))
        .delete(format!("{}/api/v1/tokens/{ada_id}", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let revoked: Value = r.json().await.unwrap();
    assert!(revoked["revoked_at"].is_string(), "{revoked}");
    let (status, body, _) = get_as(&server, Some(&ada), "/api/v1/whoami").await;
    assert_eq!(status, 401, "{body}");
    let (status, _, _) = get_as(&server, Some(&bob), "/api/v1/whoami").await;
    assert_eq!(status, 200);

    // Revoking again is a conflict; the admin sees the revocation in the listing.
    let r = server
        .http
        .delete(format!("{}/api/v1/tokens/{ada_id}", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 409);
    let (_, all, _) = get_as(&server, Some(&server.admin_token), "/api/v1/tokens").await;
    let listed = all
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["token_id"] == ada_id.as_str())
        .unwrap();
    assert!(listed["revoked_at"].is_string(), "{listed}");

    // A restart keeps it so.
    let server = server.stop().await.restart().await;
    let (status, _, _) = get_as(&server, Some(&ada), "/api/v1/whoami").await;
    assert_eq!(status, 401);
    let (status, _, _) = get_as(&server, Some(&bob), "/api/v1/whoami").await;
    assert_eq!(status, 200);
}

async fn tokens_are_stored_as_hashes_only(store: Store) {
    let server = TestServer::start(store, Tables::Local).await;
    let ada = server.token_for("ada", &[], &[]).await;
    let stored: Vec<(String, String)> = stored_rows(
        &server.config.metadata_url(),
        "SELECT token_id, secret_sha256 FROM api_tokens ORDER BY created_at, token_id",
    )
    .await;
    assert_eq!(stored.len(), 2);
    for token in [&server.admin_token, &ada] {
        let (id, secret) = token.strip_prefix("tsr_").unwrap().split_once('_').unwrap();
        let row = stored.iter().find(|(i, _)| i == id).expect("stored by id");
        assert_eq!(row.1, hex::encode(Sha256::digest(secret.as_bytes())));
        assert!(!stored.iter().any(|(_, h)| h.contains(secret)));
    }
}
