//! The CLI's HTTP client of the Tessera API. Answers are deserialised into the server's own
//! view types; error answers become messages that say what the server said.

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use reqwest::StatusCode;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tessera_server::views::{ErrorBody, IngestReport};
use url::Url;

use crate::cli::{ClientArgs, DEFAULT_SERVER};
use crate::credentials;

pub struct Client {
    base: Url,
    http: reqwest::Client,
    token: Option<String>,
    /// Said when the server refuses the request for want of a valid token.
    token_hint: String,
}

impl Client {
    /// A client of the server and with the token `args` name, falling back to the credentials
    /// file for both. The file's token is sent only to the file's server.
    pub fn connect(args: &ClientArgs) -> Result<Self> {
        let path = credentials::path(args.credentials.as_deref());
        let stored = match &path {
            Some(p) => credentials::read(p)?,
            None => None,
        };
        let server = args
            .url
            .clone()
            .or_else(|| stored.as_ref().map(|c| c.server.clone()))
            .unwrap_or_else(|| DEFAULT_SERVER.to_string());
        let shown_path = path
            .as_ref()
            .map_or("~/.config/tessera/credentials".into(), |p| {
                p.display().to_string()
            });
        let (token, token_hint) = match (&args.token, &stored) {
            (Some(t), _) => (
                Some(t.clone()),
                "the token of --token / TESSERA_TOKEN".to_string(),
            ),
            (None, Some(c)) if credentials::same_server(&c.server, &server) => {
                (Some(c.token.clone()), format!("the token in {shown_path}"))
            }
            (None, Some(c)) => (
                None,
                format!(
                    "no token was sent: the one in {shown_path} is for {}, not {server}",
                    c.server
                ),
            ),
            (None, None) => (
                None,
                format!(
                    "no token was sent: pass --token, set TESSERA_TOKEN, or run `tessera login` (it writes {shown_path})"
                ),
            ),
        };
        let mut client = Self::new(&server)?;
        client.token = token;
        client.token_hint = token_hint;
        Ok(client)
    }

    pub fn new(server: &str) -> Result<Self> {
        let mut base = Url::parse(server)
            .with_context(|| format!("invalid server URL {server:?} (--server / TESSERA_URL)"))?;
        if base.cannot_be_a_base() || !matches!(base.scheme(), "http" | "https") {
            bail!("invalid server URL {server:?}: expected http://HOST:PORT");
        }
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let mut http = reqwest::Client::builder();
        // A server whose certificate a private CA signed (or a self-signed one): trust it too.
        if let Some(path) = std::env::var_os("TESSERA_CA_CERT") {
            let pem = std::fs::read(&path).with_context(|| {
                format!("cannot read TESSERA_CA_CERT {}", Path::new(&path).display())
            })?;
            let certificate = reqwest::Certificate::from_pem(&pem).with_context(|| {
                format!(
                    "TESSERA_CA_CERT {} is not a PEM certificate",
                    Path::new(&path).display()
                )
            })?;
            http = http.add_root_certificate(certificate);
        }
        Ok(Self {
            base,
            http: http.build().context("the HTTP client cannot start")?,
            token: None,
            token_hint: String::new(),
        })
    }

    /// The server's URL.
    pub fn server(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    /// The same server with another token.
    pub fn with_token(mut self, token: String) -> Self {
        self.token = Some(token);
        self.token_hint = "the token given".into();
        self
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
        let response = self.dispatch(request).await?;
        self.checked(response).await
    }

    /// Sends a request with the token; only a failure to reach the server is an error here.
    async fn dispatch(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        let request = match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let response = request.send().await.map_err(|e| {
            if let Some(why) = untrusted_certificate(&e) {
                anyhow!(
                    "the Tessera server at {} has a TLS certificate this client does not trust ({why}): set TESSERA_CA_CERT to the PEM certificate of the CA that signed it (or to the certificate itself)",
                    self.base
                )
            } else if e.is_connect() {
                anyhow!(
                    "cannot reach the Tessera server at {}: start one with `tessera serve` (or `tessera demo`), or point --server / TESSERA_URL at it",
                    self.base
                )
            } else {
                anyhow!("request to {} failed: {e}", self.base)
            }
        })?;
        Ok(response)
    }

    /// The response if it succeeded, else its error message as the server wrote it.
    async fn checked(&self, response: reqwest::Response) -> Result<reqwest::Response> {
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        match serde_json::from_str::<ErrorBody>(&text) {
            Ok(body) if status == StatusCode::UNAUTHORIZED => {
                Err(anyhow!("{} ({})", body.error.message, self.token_hint))
            }
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

    /// A GET whose answer is text as the server wrote it (CSV, say), not JSON.
    pub async fn get_text(&self, segments: &[&str], query: &[(&str, &str)]) -> Result<String> {
        let response = self
            .send(self.http.get(self.url(segments)).query(query))
            .await?;
        Ok(response.text().await?)
    }

    pub async fn delete<T: DeserializeOwned>(&self, segments: &[&str]) -> Result<T> {
        let response = self.send(self.http.delete(self.url(segments))).await?;
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
        self.send_json(reqwest::Method::POST, segments, body).await
    }

    /// A POST with `query` parameters and no body.
    pub async fn post_query<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        query: &[(&str, &str)],
    ) -> Result<T> {
        let request = self.http.post(self.url(segments)).query(query);
        self.send(request)
            .await?
            .json()
            .await
            .context("the server's answer is not what this client expects")
    }

    pub async fn put<B: Serialize, T: DeserializeOwned>(
        &self,
        segments: &[&str],
        body: &B,
    ) -> Result<T> {
        self.send_json(reqwest::Method::PUT, segments, body).await
    }

    async fn send_json<B: Serialize, T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        segments: &[&str],
        body: &B,
    ) -> Result<T> {
        let request = self.http.request(method, self.url(segments)).json(body);
        self.send(request)
            .await?
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
        let response = self.send(request).await?;
        // The datasets read whose blocking checks fail: said on stderr, the answer on stdout.
        for warning in response
            .headers()
            .get_all(tessera_server::api::QUALITY_WARNING)
        {
            eprintln!("warning: {}", String::from_utf8_lossy(warning.as_bytes()));
        }
        Ok(response.bytes().await?)
    }

    /// Sends events, waiting out a full event log (429 with `Retry-After`) a few times.
    pub async fn send_events(
        &self,
        dataset: &[&str; 3],
        body: Bytes,
        idempotency_key: &str,
    ) -> Result<tessera_server::views::EventsReceipt> {
        let [domain, product, name] = dataset;
        let url = self.url(&["api", "v1", "datasets", domain, product, name, "events"]);
        let request = || {
            self.http
                .post(url.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/x-ndjson")
                .header("Idempotency-Key", idempotency_key)
                .body(body.clone())
        };
        let mut waits = 30;
        let response = loop {
            let response = self.dispatch(request()).await?;
            if response.status() != StatusCode::TOO_MANY_REQUESTS || waits == 0 {
                break response;
            }
            waits -= 1;
            let seconds = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(1)
                .clamp(1, 30);
            tokio::time::sleep(std::time::Duration::from_secs(seconds)).await;
        };
        self.checked(response)
            .await?
            .json()
            .await
            .context("the server's answer is not what this client expects")
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

/// Why the server's certificate was refused, when that is why a request failed.
fn untrusted_certificate(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(rustls::Error::InvalidCertificate(why)) = e.downcast_ref::<rustls::Error>() {
            return Some(format!("{why:?}"));
        }
        // An I/O error's `source` skips the error it wraps.
        current = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
}
