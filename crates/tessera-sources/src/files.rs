//! The files connector: a folder on the server (relative to its data directory, or absolute) or
//! an object store prefix (`s3://bucket/prefix`), watched for new CSV, NDJSON or Parquet files.
//! Each file is one batch whose id is its content's SHA-256, so a file is committed once however
//! often it is seen (renamed, copied again, or read again after a crash), and a changed file is
//! a new batch. Files whose names start with `.` or `_` are skipped: write a file under such a
//! name and rename it when it is whole.
//!
//! Options (`files:`): `path`, `format` (`csv`, `ndjson`, `parquet`; default from each file's
//! extension), `pattern` (a glob on file names, e.g. `*.csv`). A secret, if named, holds object
//! store options as JSON (e.g. `{"AWS_ACCESS_KEY_ID": …}`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt};
use sha2::Digest;
use tessera_core::SourceSpec;

use crate::error::{Result, SourceError};
use crate::{Committed, Connector, OpenContext, OptionProblem, Pull, PulledRows, SourceReader};

pub struct FilesConnector;

#[async_trait]
impl Connector for FilesConnector {
    fn kind(&self) -> &'static str {
        "files"
    }

    fn needs_secret(&self) -> bool {
        false
    }

    fn check(&self, source: &SourceSpec, _columns: &[String]) -> Vec<OptionProblem> {
        let mut problems = Vec::new();
        let path = source.options.get("path").and_then(|p| p.as_str());
        match path {
            None => problems.push(OptionProblem::new(
                "/files",
                "missing `path`: the folder or object store prefix to watch",
            )),
            Some(p) if p.contains("://") => {
                if let Err(e) = url::Url::parse(p) {
                    problems.push(OptionProblem::new(
                        "/files/path",
                        format!("{p:?} is not a URL: {e}"),
                    ));
                }
            }
            Some(p) if p.split('/').any(|part| part == "..") => problems.push(OptionProblem::new(
                "/files/path",
                "a folder may not climb out with `..`",
            )),
            Some(_) => {}
        }
        if let Some(pattern) = source.options.get("pattern").and_then(|p| p.as_str())
            && let Err(e) = glob_regex(pattern)
        {
            problems.push(OptionProblem::new("/files/pattern", e));
        }
        problems
    }

    fn origin(
        &self,
        source: &SourceSpec,
        _secret: Option<&str>,
        context: &OpenContext,
    ) -> Option<(String, String)> {
        let path = source.options.get("path")?.as_str()?;
        if path.contains("://") {
            let url = url::Url::parse(path).ok()?;
            let namespace = match url.host_str() {
                Some(host) => format!("{}://{host}", url.scheme()),
                None => url.scheme().to_string(),
            };
            let name = url.path().trim_start_matches('/');
            Some((
                namespace,
                if name.is_empty() { "/" } else { name }.to_string(),
            ))
        } else {
            let dir = context.data_dir.join(path);
            Some(("file".into(), dir.display().to_string()))
        }
    }

    async fn open(
        &self,
        source: &SourceSpec,
        secret: Option<String>,
        context: &OpenContext,
    ) -> Result<Box<dyn SourceReader>> {
        let path = source
            .options
            .get("path")
            .and_then(|p| p.as_str())
            .unwrap_or_default();
        let origin = if path.contains("://") {
            let url = url::Url::parse(path)
                .map_err(|e| SourceError::Invalid(format!("{path:?} is not a URL: {e}")))?;
            let mut options: HashMap<String, String> = std::env::vars()
                .filter(|(k, _)| k.starts_with("AWS_"))
                .collect();
            if let Some(secret) = secret {
                let given: HashMap<String, String> =
                    serde_json::from_str(&secret).map_err(|_| {
                        SourceError::Invalid(
                            "the secret of a files source holds object store options as a JSON object of strings".into(),
                        )
                    })?;
                options.extend(given);
            }
            let (store, prefix) = object_store::parse_url_opts(&url, options)
                .map_err(|e| SourceError::Invalid(format!("cannot open {path}: {e}")))?;
            Origin::Store(Arc::from(store), prefix)
        } else {
            let dir = context.data_dir.join(path);
            std::fs::create_dir_all(&dir).map_err(|e| {
                SourceError::Unreachable(format!("cannot create the folder {}: {e}", dir.display()))
            })?;
            Origin::Folder(dir)
        };
        let pattern = match source.options.get("pattern").and_then(|p| p.as_str()) {
            Some(p) => Some(glob_regex(p).map_err(SourceError::Invalid)?),
            None => None,
        };
        Ok(Box::new(FilesReader {
            origin,
            format: source
                .options
                .get("format")
                .and_then(|f| f.as_str())
                .map(str::to_string),
            pattern,
            seen: HashMap::new(),
        }))
    }
}

/// A glob over file names (`*`, `?`) as an anchored regular expression.
fn glob_regex(glob: &str) -> std::result::Result<regex::Regex, String> {
    let mut pattern = String::from("^");
    for c in glob.chars() {
        match c {
            '*' => pattern.push_str("[^/]*"),
            '?' => pattern.push_str("[^/]"),
            c => pattern.push_str(&regex::escape(&c.to_string())),
        }
    }
    pattern.push('$');
    regex::Regex::new(&pattern).map_err(|e| format!("{glob:?} is not a file name pattern: {e}"))
}

/// The format a file's extension says, if Tessera reads it.
fn format_of(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".csv") {
        Some("csv")
    } else if lower.ends_with(".ndjson") || lower.ends_with(".jsonl") || lower.ends_with(".json") {
        Some("ndjson")
    } else if lower.ends_with(".parquet") {
        Some("parquet")
    } else {
        None
    }
}

/// Where the files are.
enum Origin {
    /// A folder on the server (listed with the file system: object_store's local store is not
    /// built into Tessera).
    Folder(PathBuf),
    Store(Arc<dyn ObjectStore>, StorePath),
}

/// A file as listed: where, its name, size and modification time.
struct Listed {
    location: String,
    name: String,
    size: u64,
    modified: chrono::DateTime<chrono::Utc>,
}

impl Origin {
    async fn list(&self) -> Result<Vec<Listed>> {
        match self {
            Origin::Folder(dir) => {
                let dir = dir.clone();
                tokio::task::spawn_blocking(move || -> Result<Vec<Listed>> {
                    let failed = |e: std::io::Error| {
                        SourceError::Unreachable(format!("listing {}: {e}", dir.display()))
                    };
                    let mut out = Vec::new();
                    for entry in std::fs::read_dir(&dir).map_err(failed)? {
                        let entry = entry.map_err(failed)?;
                        let meta = entry.metadata().map_err(failed)?;
                        if !meta.is_file() {
                            continue;
                        }
                        out.push(Listed {
                            location: entry.path().display().to_string(),
                            name: entry.file_name().to_string_lossy().into_owned(),
                            size: meta.len(),
                            modified: meta.modified().map_err(failed)?.into(),
                        });
                    }
                    Ok(out)
                })
                .await
                .map_err(|e| SourceError::Read(e.to_string()))?
            }
            Origin::Store(store, prefix) => {
                let listed: Vec<object_store::ObjectMeta> = store
                    .list(Some(prefix))
                    .try_collect()
                    .await
                    .map_err(|e| SourceError::Unreachable(format!("listing the files: {e}")))?;
                Ok(listed
                    .into_iter()
                    .map(|m| Listed {
                        name: m.location.filename().unwrap_or_default().to_string(),
                        location: m.location.to_string(),
                        size: m.size,
                        modified: m.last_modified,
                    })
                    .collect())
            }
        }
    }

    async fn read(&self, file: &Listed) -> Result<Bytes> {
        let failed = |e: String| SourceError::Read(format!("{}: {e}", file.location));
        match self {
            Origin::Folder(_) => tokio::fs::read(&file.location)
                .await
                .map(Bytes::from)
                .map_err(|e| failed(e.to_string())),
            Origin::Store(store, _) => store
                .get(&StorePath::from(file.location.as_str()))
                .await
                .map_err(|e| failed(e.to_string()))?
                .bytes()
                .await
                .map_err(|e| failed(e.to_string())),
        }
    }
}

struct FilesReader {
    origin: Origin,
    format: Option<String>,
    pattern: Option<regex::Regex>,
    /// Files known to be committed, with the size and time they had then.
    seen: HashMap<String, (u64, i64)>,
}

#[async_trait]
impl SourceReader for FilesReader {
    async fn pull(&mut self, committed: &dyn Committed, _max_rows: usize) -> Result<Option<Pull>> {
        let mut candidates: Vec<Listed> = self
            .origin
            .list()
            .await?
            .into_iter()
            .filter(|f| {
                !f.name.starts_with('.')
                    && !f.name.starts_with('_')
                    && self.pattern.as_ref().is_none_or(|p| p.is_match(&f.name))
                    && (self.format.is_some() || format_of(&f.name).is_some())
            })
            .filter(|f| {
                self.seen.get(&f.location) != Some(&(f.size, f.modified.timestamp_millis()))
            })
            .collect();
        candidates.sort_by(|a, b| a.location.cmp(&b.location));
        for (i, file) in candidates.iter().enumerate() {
            let bytes = self.origin.read(file).await?;
            let batch_id = format!("file-{}", hex::encode(sha2::Sha256::digest(&bytes)));
            let stamp = (file.size, file.modified.timestamp_millis());
            if committed.has_batch(&batch_id).await? {
                self.seen.insert(file.location.clone(), stamp);
                continue;
            }
            let format = self
                .format
                .clone()
                .or_else(|| format_of(&file.name).map(str::to_string));
            let age = (chrono::Utc::now() - file.modified).num_milliseconds() as f64 / 1000.0;
            return Ok(Some(Pull {
                count: 0,
                rows: PulledRows::File {
                    bytes,
                    format,
                    name: file.name.clone(),
                },
                positions: Vec::new(),
                batch_id: Some(batch_id),
                merge_on: None,
                describe: format!("file {}", file.name),
                lag_seconds: Some(age.max(0.0)),
                unreadable: Vec::new(),
                more: i + 1 < candidates.len(),
            }));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_file_names() {
        let re = glob_regex("orders-*.csv").unwrap();
        assert!(re.is_match("orders-2026-12-05.csv"));
        assert!(!re.is_match("orders-2026.csv.tmp"));
        assert!(!re.is_match("refunds-1.csv"));
        assert_eq!(format_of("A.PARQUET"), Some("parquet"));
        assert_eq!(format_of("notes.txt"), None);
    }
}
