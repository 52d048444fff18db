//! The CLI's HTTP client of the Tessera API. Answers are deserialised into the server's own
//! view types; error answers become messages that say what the server said.

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use reqwest::StatusCode;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tessera_server::views::{ErrorBody, IngestReport};
use url::Url;

pub struct Client {
    base: Url,
    http: reqwest::Client,
}

impl Client {
    pub fn new(server: &str) -> Result<Self> {
        let mut base = Url::parse(server)
            .with_context(|| format!("invalid server URL {server:?} (--server / TESSERA_URL)"))?;
        if base.cannot_be_a_base() || !matches!(base.scheme(), "http" | "https") {
            bail!("invalid server URL {server:?}: expected http://HOST:PORT");
        }
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        Ok(Self {
            base,
            http: reqwest::Client::new(),
        })
    }

    /// `segments` are joined as path segments, each percent-encoded.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("checked in new")
            .pop_if_empty()
            .extend(segments);
        url
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        let response = request.send().await.map_err(|e| {
            if e.is_connect() {
                anyhow!(
                    "cannot reach the Tessera server at {}: start one with `tessera serve` (or `tessera demo`), or point --server / TESSERA_URL at it",
                    self.base
                )
            } else {
                anyhow!("request to {} failed: {e}", self.base)
            }
        })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        match serde_json::from_str::<ErrorBody>(&text) {
            Ok(body) => Err(anyhow!("{}", body.error.message)),
            Err(_) if status == StatusCode::NOT_FOUND => Err(anyhow!(
                "{} answered 404: is this a Tessera server?",
                self.base
            )),
            Err(_) => Err(anyhow!("the server answered {status}: {}", text.trim())),
        }
    }

    pub async fn get<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        query: &[(&str, &str)],
    ) -> Result<T> {
        let response = self
            .send(self.http.get(self.url(segments)).query(query))
            .await?;
        response
            .json()
            .await
            .context("the server's answer is not what this client expects")
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        segments: &[&str],
        body: &B,
    ) -> Result<T> {
        let response = self
            .send(self.http.post(self.url(segments)).json(body))
            .await?;
        response
            .json()
            .await
            .context("the server's answer is not what this client expects")
    }

    /// Runs a query and returns the raw answer in the encoding `accept` asks for.
    pub async fn query(&self, sql: &str, accept: &str) -> Result<Bytes> {
        let request = self
            .http
            .post(self.url(&["api", "v1", "query"]))
            .header(reqwest::header::ACCEPT, accept)
            .json(&tessera_server::views::QueryRequest {
                sql: sql.to_string(),
            });
        Ok(self.send(request).await?.bytes().await?)
    }

    pub async fn ingest(
        &self,
        dataset: &[&str; 3],
        body: Vec<u8>,
        query: &[(&str, &str)],
    ) -> Result<IngestReport> {
        let [domain, product, name] = dataset;
        let request = self
            .http
            .post(self.url(&["api", "v1", "datasets", domain, product, name, "batches"]))
            .query(query)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(body);
        let response = self.send(request).await?;
        response
            .json()
            .await
            .context("the server's answer is not what this client expects")
    }
}
