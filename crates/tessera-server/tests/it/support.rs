//! A real server on port 0 for each test, on the metadata store and table storage the test asks
//! for. PostgreSQL and S3 are the real servers `scripts/test` starts (their addresses come in
//! `TESSERA_TEST_POSTGRES_URL` and `TESSERA_TEST_S3_ENDPOINT`); each test gets its own database
//! or bucket.

use std::collections::HashMap;

use serde_json::Value;
use tessera_server::{Application, ServerConfig};
use tokio::sync::oneshot;

/// Which metadata store a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    Sqlite,
    Postgres,
}

/// Where the tables go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tables {
    Local,
    S3,
}

fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the suite with scripts/test, which starts PostgreSQL and an S3 server")
    })
}

/// A fresh PostgreSQL database on the test server; returns its URL.
pub async fn postgres_database() -> String {
    use sqlx::Connection;
    let admin = required_env("TESSERA_TEST_POSTGRES_URL");
    let name = format!("tessera_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .expect("connect to the test PostgreSQL");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create a test database");
    let base = admin.rsplit_once('/').expect("URL with a database").0;
    format!("{base}/{name}")
}

/// A fresh bucket on the test S3 server; returns (bucket URL, object store options).
pub async fn s3_bucket() -> (String, HashMap<String, String>) {
    let endpoint = required_env("TESSERA_TEST_S3_ENDPOINT");
    let bucket = format!("tessera-{}", uuid::Uuid::new_v4().simple());
    let response = reqwest::Client::new()
        .put(format!("{endpoint}/{bucket}"))
        .send()
        .await
        .expect("reach the test S3 server");
    assert!(
        response.status().is_success(),
        "create bucket: {}",
        response.status()
    );
    let options = HashMap::from([
        ("AWS_ENDPOINT_URL".to_string(), endpoint),
        ("AWS_ALLOW_HTTP".to_string(), "true".to_string()),
        ("AWS_ACCESS_KEY_ID".to_string(), "test".to_string()),
        ("AWS_SECRET_ACCESS_KEY".to_string(), "test".to_string()),
        ("AWS_REGION".to_string(), "us-east-1".to_string()),
        ("AWS_S3_ALLOW_UNSAFE_RENAME".to_string(), "true".to_string()),
    ]);
    (format!("s3://{bucket}/mesh"), options)
}

/// A running server and a client for it, authenticated as the mesh's first admin. Dropping it
/// stops the server.
pub struct TestServer {
    pub url: String,
    /// Sends the admin token with every request.
    pub http: reqwest::Client,
    pub config: ServerConfig,
    /// The token the first start of the mesh made for `admin`.
    pub admin_token: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    _dir: Option<tempfile::TempDir>,
}

impl TestServer {
    /// A new mesh whose governance council turned the standard policies off: the tests of
    /// everything but governance publish the small fixtures below, which do not document
    /// themselves as the standard library asks.
    pub async fn start(store: Store, tables: Tables) -> Self {
        Self::start_with(store, tables, |_| {}).await
    }

    /// A new mesh with the standard policies on, as a real one starts.
    pub async fn start_governed(store: Store, tables: Tables) -> Self {
        Self::start_new(store, tables, |_| {}).await
    }

    /// Turns every standard governance policy off, as the council may.
    pub async fn disable_standard_policies(&self) {
        let (status, policies) = self.get("/api/v1/governance/policies").await;
        assert_eq!(status, 200, "{policies}");
        for p in policies.as_array().unwrap() {
            if p["origin"] == "standard" {
                let id = p["id"].as_str().unwrap();
                let (status, body) = self
                    .post_json(
                        &format!("/api/v1/governance/policies/{id}/disable"),
                        &serde_json::json!({}),
                    )
                    .await;
                assert_eq!(status, 200, "{body}");
            }
        }
    }

    /// [`start`](Self::start) on a configuration `adjust` changes.
    pub async fn start_with(
        store: Store,
        tables: Tables,
        adjust: impl FnOnce(&mut ServerConfig),
    ) -> Self {
        let server = Self::start_new(store, tables, adjust).await;
        server.disable_standard_policies().await;
        server
    }

    async fn start_new(
        store: Store,
        tables: Tables,
        adjust: impl FnOnce(&mut ServerConfig),
    ) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = ServerConfig::new(dir.path(), "127.0.0.1:0".parse().unwrap());
        if store == Store::Postgres {
            config.metadata_url = Some(postgres_database().await);
        }
        if tables == Tables::S3 {
            let (url, options) = s3_bucket().await;
            config.storage_url = Some(url);
            config.storage_options = options;
        }
        adjust(&mut config);
        let mut server = Self::run(config).await;
        server._dir = Some(dir);
        server
    }

    /// Starts a server on the configuration of a new mesh.
    async fn run(config: ServerConfig) -> Self {
        Self::run_with_token(config, None).await
    }

    /// Starts a server on `config`; `admin_token` is the one of an earlier start of the same
    /// mesh (a new mesh makes its own).
    async fn run_with_token(config: ServerConfig, admin_token: Option<String>) -> Self {
        let app = Application::build(&config).await.expect("server starts");
        let admin_token = match (app.first_admin_token(), admin_token) {
            (Some(first), None) => first.to_string(),
            (None, Some(earlier)) => earlier,
            (first, earlier) => panic!(
                "a new mesh makes an admin token and a restarted one does not: made {first:?}, had {earlier:?}"
            ),
        };
        let url = format!("http://{}", app.address());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            app.run_until_stopped(async {
                let _ = stopped.await;
            })
            .await
            .expect("server runs");
        });
        Self {
            url,
            http: client_with_token(Some(&admin_token)),
            config,
            admin_token,
            stop: Some(stop),
            task: Some(task),
            _dir: None,
        }
    }

    /// Stops the server gracefully; [`Stopped::restart`] starts it again on the same data.
    pub async fn stop(mut self) -> Stopped {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task");
        }
        Stopped {
            config: self.config.clone(),
            admin_token: self.admin_token.clone(),
            dir: self._dir.take(),
        }
    }

    /// `PUT path` with `{"files": [{name, content}]}` as `token`'s principal: how the council
    /// publishes policy and glossary files.
    pub async fn put_files(&self, token: &str, path: &str, files: &[(&str, &str)]) -> (u16, Value) {
        let files: Vec<Value> = files
            .iter()
            .map(|(name, content)| serde_json::json!({"name": name, "content": content}))
            .collect();
        let r = self
            .client(Some(token))
            .put(format!("{}{path}", self.url))
            .json(&serde_json::json!({"files": files}))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// A client that sends `token` (or none) instead of the admin's.
    pub fn client(&self, token: Option<&str>) -> reqwest::Client {
        client_with_token(token)
    }

    /// A new token for `user` in `groups` and `teams`, made by the admin.
    pub async fn token_for(&self, user: &str, groups: &[&str], teams: &[&str]) -> String {
        let (status, body) = self
            .post_json(
                "/api/v1/tokens",
                &serde_json::json!({"user": user, "groups": groups, "teams": teams}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["token"].as_str().unwrap().to_string()
    }

    /// Status and body of `GET path` as the admin.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.get_as(&self.admin_token, path).await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        post_json_with(&self.http, &self.url, path, body).await
    }

    /// `post_json` with `token` (or none) instead of the admin's.
    pub async fn post_json_as(
        &self,
        token: Option<&str>,
        path: &str,
        body: &Value,
    ) -> (u16, Value) {
        post_json_with(&self.client(token), &self.url, path, body).await
    }

    /// Applies a folder given as (file name, content) pairs, as the admin.
    pub async fn apply(&self, files: &[(&str, &str)], dry_run: bool) -> (u16, Value) {
        let admin = self.admin_token.clone();
        self.apply_as(&admin, files, dry_run).await
    }

    /// Applies a folder as `token`.
    pub async fn apply_as(
        &self,
        token: &str,
        files: &[(&str, &str)],
        dry_run: bool,
    ) -> (u16, Value) {
        let files: Vec<Value> = files
            .iter()
            .map(|(name, content)| serde_json::json!({"name": name, "content": content}))
            .collect();
        self.post_json_as(
            Some(token),
            "/api/v1/apply",
            &serde_json::json!({"files": files, "dry_run": dry_run}),
        )
        .await
    }

    /// Status and body of `GET path` as `token`.
    pub async fn get_as(&self, token: &str, path: &str) -> (u16, Value) {
        let r = self
            .client(Some(token))
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Status and body of one query as `token`.
    pub async fn query_as(&self, token: &str, sql: &str) -> (u16, Value) {
        self.post_json_as(
            Some(token),
            "/api/v1/query",
            &serde_json::json!({ "sql": sql }),
        )
        .await
    }

    pub async fn ingest(
        &self,
        dataset: &str,
        query: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> (u16, Value) {
        let path = dataset.replace('.', "/");
        let r = self
            .http
            .post(format!(
                "{}/api/v1/datasets/{path}/batches?{query}",
                self.url
            ))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Runs SQL and returns the JSON rows; panics with the server's message on error.
    pub async fn rows(&self, sql: &str) -> Vec<Value> {
        let (status, body) = self
            .post_json("/api/v1/query", &serde_json::json!({"sql": sql}))
            .await;
        assert_eq!(status, 200, "{sql}: {body}");
        body["rows"].as_array().cloned().unwrap_or_default()
    }

    /// The single value of a one-row, one-column result.
    pub async fn scalar(&self, sql: &str) -> Value {
        let rows = self.rows(sql).await;
        assert_eq!(rows.len(), 1, "{sql}: {rows:?}");
        rows[0]
            .as_object()
            .unwrap()
            .values()
            .next()
            .cloned()
            .unwrap()
    }
}

/// A stopped server: its configuration, admin token and data directory.
pub struct Stopped {
    pub config: ServerConfig,
    admin_token: String,
    dir: Option<tempfile::TempDir>,
}

impl Stopped {
    /// Starts the server again on the same metadata and tables.
    pub async fn restart(self) -> TestServer {
        let mut server = TestServer::run_with_token(self.config, Some(self.admin_token)).await;
        server._dir = self.dir;
        server
    }
}

async fn post_json_with(
    http: &reqwest::Client,
    url: &str,
    path: &str,
    body: &Value,
) -> (u16, Value) {
    let r = http
        .post(format!("{url}{path}"))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// A client that sends `Authorization: Bearer TOKEN` with every request (or nothing).
pub fn client_with_token(token: Option<&str>) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = token {
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
    }
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A small product used across tests: `shop.orders` with datasets `orders` and `customers`.
pub const SHOP_PRODUCT: &str = r#"apiVersion: v1.0.0
kind: DataProduct
id: shop-orders
name: orders
domain: shop
status: active
version: 1.0.0
description:
  purpose: Orders of the web shop.
team:
  name: shop team
outputPorts:
  - name: orders
    version: 1.0.0
    contractId: shop-orders-contract
"#;

pub const SHOP_CONTRACT: &str = r#"apiVersion: v3.1.0
kind: DataContract
id: shop-orders-contract
version: 1.0.0
status: active
description:
  purpose: Orders and customers of the web shop.
schema:
  - name: orders
    description: One row per order.
    properties:
      - name: order_id
        logicalType: integer
        primaryKey: true
        required: true
      - name: customer_id
        logicalType: string
        required: true
        logicalTypeOptions:
          pattern: "^U[0-9]{8}$"
      - name: amount
        logicalType: number
        physicalType: decimal(10,2)
        logicalTypeOptions:
          minimum: 0
      - name: status
        logicalType: string
        quality:
          - metric: invalidValues
            arguments:
              validValues: [open, shipped, returned]
            mustBe: 0
      - name: placed_at
        logicalType: timestamp
  - name: customers
    properties:
      - name: customer_id
        logicalType: string
        required: true
      - name: email
        logicalType: string
        classification: pii
"#;

/// Posts `sql` to the query API as the admin in a task of its own, so that a slow query holds a
/// query slot while the test goes on; the task ends with the query's answer.
pub fn query_in_background(
    server: &TestServer,
    sql: &str,
) -> tokio::task::JoinHandle<reqwest::Response> {
    let (http, url, sql) = (server.http.clone(), server.url.clone(), sql.to_string());
    tokio::spawn(async move {
        http.post(format!("{url}/api/v1/query"))
            .json(&serde_json::json!({ "sql": sql }))
            .send()
            .await
            .unwrap()
    })
}

pub fn shop_folder() -> Vec<(&'static str, &'static str)> {
    vec![
        ("shop/product.odps.yaml", SHOP_PRODUCT),
        ("shop/orders.odcs.yaml", SHOP_CONTRACT),
    ]
}

/// A CSV batch for `shop.orders.orders`: 4 good rows and 3 that break the contract.
pub const ORDERS_CSV: &str = "order_id,customer_id,amount,status,placed_at
1,U00000001,10.50,open,2026-01-01T10:00:00Z
2,U00000002,99.99,shipped,2026-01-02T11:00:00Z
3,U00000001,0,returned,2026-01-03T12:00:00Z
4,U00000003,5,open,2026-01-04T13:00:00Z
5,X1,7,open,2026-01-05T14:00:00Z
6,U00000004,-1,open,2026-01-06T15:00:00Z
seven,U00000005,3,lost,2026-01-07T16:00:00Z
";

/// Every row of `sql` (two text columns unless asked otherwise), read straight from the
/// metadata store.
pub async fn stored_rows<T>(url: &str, sql: &str) -> Vec<T>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
        + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
        + Send
        + Unpin,
{
    use sqlx::Connection;
    let sql = sqlx::AssertSqlSafe(sql.to_string());
    if url.starts_with("postgres") {
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query_as(sql).fetch_all(&mut conn).await.unwrap()
    } else {
        let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::query_as(sql).fetch_all(&mut conn).await.unwrap()
    }
}

/// Runs `sql` straight on the metadata store, past Tessera (what another instance, or the
/// passing of time, would have done).
pub async fn execute_in_store(url: &str, sql: &str) {
    use sqlx::Connection;
    let sql = sqlx::AssertSqlSafe(sql.to_string());
    if url.starts_with("postgres") {
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query(sql).execute(&mut conn).await.unwrap();
    } else {
        let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::query(sql).execute(&mut conn).await.unwrap();
    }
}
