//! The audit log: every change to the mesh, every access decision that denied and every query,
//! appended to a hash chain in the metadata store.
//!
//! Each entry holds the SHA-256 of its canonical encoding (see [`entry_hash`]), which covers
//! the previous entry's hash, and a MAC of that hash under a key kept in a file outside the
//! store: whoever can write the database can edit an entry and recompute every hash after it,
//! but cannot make the MACs agree. The newest entry this instance wrote (its sequence number
//! and hash) is kept in a second file beside the key, so cutting off the newest entries, which
//! leaves a chain that is whole in itself, is found too.
//!
//! Entries are appended inside the transaction of the change they record, after locking the
//! one `audit_head` row, so entries are chained in commit order on SQLite and on PostgreSQL
//! alike and a change is never stored without its entry (nor an entry without its change).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Row, Transaction};

use crate::error::{CatalogError, Result};
use crate::store::{Catalog, now};

/// The hash a chain starts from (the `prev_hash` of entry 1).
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// How many entries verification reads at a time.
const VERIFY_PAGE: i64 = 1000;

/// The files the store's keys and the audit chain's head live in, outside the metadata store:
/// whoever can write the database cannot read them.
#[derive(Debug, Clone)]
pub struct KeyFiles {
    /// The audit log's MAC key, made (owner-only) on the first start of a mesh.
    pub key_file: PathBuf,
    /// The newest audit entry this instance wrote: `SEQ HASH`.
    pub head_file: PathBuf,
    /// The key secrets are sealed with (see `sources.rs`), made on the first start of a mesh.
    pub secrets_key_file: PathBuf,
}

impl KeyFiles {
    /// `audit.key`, `audit.head` and `secrets.key` in `dir` (the server's data directory).
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            key_file: dir.join("audit.key"),
            head_file: dir.join("audit.head"),
            secrets_key_file: dir.join("secrets.key"),
        }
    }
}

/// A change or decision to record, before it is chained.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    /// Who did it: `user alice`, `system:scheduler`.
    pub actor: String,
    /// What was done: `apply`, `token.create`, `access.denied`, `query`, ...
    pub action: String,
    /// What it was done to: a product, a token id, a grant id, a query id.
    pub subject: String,
    /// The rest, as JSON.
    pub detail: serde_json::Value,
}

impl AuditEvent {
    pub fn new(
        actor: impl Into<String>,
        action: &str,
        subject: impl Into<String>,
        detail: serde_json::Value,
    ) -> Self {
        Self {
            actor: actor.into(),
            action: action.to_string(),
            subject: subject.into(),
            detail,
        }
    }
}

/// One stored entry of the chain.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntryRecord {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub subject: String,
    /// JSON text, as hashed.
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
    pub mac: String,
}

/// The newest entry of a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainHead {
    pub seq: i64,
    pub hash: [u8; 32],
}

impl ChainHead {
    pub fn hash_hex(&self) -> String {
        hex::encode(self.hash)
    }
}

/// What is wrong with a chain: the first entry found edited, forged, removed or cut off.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditProblem {
    /// The entry concerned.
    pub seq: i64,
    /// `edited`, `forged`, `removed`, `truncated`, `head_mismatch` or `head_missing`.
    pub kind: &'static str,
    pub message: String,
}

/// The result of verifying the whole chain.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditVerification {
    /// Entries read.
    pub entries: i64,
    /// The chain head kept outside the store, if any.
    pub head_seq: Option<i64>,
    /// `None` when the chain is whole and authentic.
    pub problem: Option<AuditProblem>,
}

/// The key and the head file, as an open catalog holds them.
#[derive(Debug)]
pub(crate) struct AuditSeal {
    key: Vec<u8>,
    head_file: PathBuf,
    /// The newest head this instance has written to `head_file`.
    written: Mutex<Option<ChainHead>>,
}

impl AuditSeal {
    /// Loads the key, or makes one if the store's chain is empty; a chain without its key
    /// cannot be verified or extended, so that is refused.
    pub(crate) async fn open(conn: &mut AnyConnection, files: &KeyFiles) -> Result<Self> {
        let entries: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_log")
            .fetch_one(&mut *conn)
            .await?;
        let key = private_key(
            &files.key_file,
            "audit key",
            (entries > 0).then(|| {
                format!(
                    "the metadata store's audit log has {entries} entries but their key is missing; copy the audit key of the instance that wrote them here (or point --audit-key-file at it)"
                )
            }),
        )?;
        let mut written = read_head(&files.head_file)?;
        if written.is_none() && entries > 0 {
            // Trust on first use: an instance that joins a mesh, or whose head file was lost,
            // starts from the store's newest entry (whoever could remove the file could read
            // the key beside it, so this opens nothing to a writer of the database alone).
            let row = sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
                .fetch_one(&mut *conn)
                .await?;
            let seq: i64 = row.try_get("seq")?;
            let hash: String = row.try_get("hash")?;
            let head = read_head_text(&format!("{seq} {hash}"), &files.head_file)?;
            write_private(&files.head_file, &format!("{seq} {hash}\n"))?;
            tracing::warn!(path = %files.head_file.display(), seq, "no audit chain head was kept here: the store's newest entry is the head from now on");
            written = head;
        }
        Ok(Self {
            key,
            head_file: files.head_file.clone(),
            written: Mutex::new(written),
        })
    }

    fn keyed(&self, hash: &[u8; 32]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key");
        mac.update(hash);
        mac
    }

    fn mac(&self, hash: &[u8; 32]) -> [u8; 32] {
        self.keyed(hash).finalize().into_bytes().into()
    }

    /// Whether `mac_hex` is this mesh's MAC of `hash` (compared in constant time).
    fn verify_mac(&self, hash: &[u8; 32], mac_hex: &str) -> bool {
        hex::decode(mac_hex).is_ok_and(|mac| self.keyed(hash).verify_slice(&mac).is_ok())
    }

    /// Keeps `head` in the head file, unless a newer head is kept there already.
    fn advance(&self, head: ChainHead) {
        let mut written = self.written.lock().expect("audit head");
        if written.is_some_and(|w| w.seq >= head.seq) {
            return;
        }
        let text = format!("{} {}\n", head.seq, head.hash_hex());
        match write_private(&self.head_file, &text) {
            Ok(()) => *written = Some(head),
            // The entry is stored; a head file that lags only shortens what truncation
            // checks can see, so this is worth a warning, not a failed change.
            Err(e) => tracing::warn!(error = %e, "the audit chain head could not be kept"),
        }
    }
}

/// The SHA-256 of an entry's canonical encoding: the JSON array of its fields in a fixed
/// order, `detail` as its stored text, `prev_hash` last.
pub fn entry_hash(
    seq: i64,
    at: &str,
    actor: &str,
    action: &str,
    subject: &str,
    detail: &str,
    prev_hash: &str,
) -> [u8; 32] {
    let canonical = serde_json::to_vec(&(seq, at, actor, action, subject, detail, prev_hash))
        .expect("strings and integers encode");
    Sha256::digest(&canonical).into()
}

impl Catalog {
    /// Appends `events` in `tx` and commits it: the change and its entries are stored together
    /// or not at all.
    pub(crate) async fn commit_audited(
        &self,
        mut tx: Transaction<'static, Any>,
        events: &[AuditEvent],
    ) -> Result<()> {
        let head = self.append(&mut tx, events).await?;
        tx.commit().await?;
        if let Some(head) = head {
            self.audit.advance(head);
        }
        // Entries of queries and denied decisions alone change nothing cached views depend on.
        if events
            .iter()
            .any(|e| e.action != "query" && e.action != "access.denied")
            || events.is_empty()
        {
            self.changed();
        }
        Ok(())
    }

    async fn append(
        &self,
        conn: &mut AnyConnection,
        events: &[AuditEvent],
    ) -> Result<Option<ChainHead>> {
        if events.is_empty() {
            return Ok(None);
        }
        // An update takes the row lock on PostgreSQL and the write lock on SQLite: appends
        // wait for each other, so each sees the head the one before it left.
        let row = sqlx::query("UPDATE audit_head SET seq = seq WHERE id = 1 RETURNING seq, hash")
            .fetch_one(&mut *conn)
            .await?;
        let mut seq: i64 = row.try_get("seq")?;
        let mut prev_hash: String = row.try_get("hash")?;
        // The store's head never moves back by itself: behind the head this instance wrote,
        // it was reset or restored, and appending would overwrite the head file's evidence of
        // the entries that are gone.
        let written = *self.audit.written.lock().expect("audit head");
        if let Some(written) = written.filter(|w| w.seq > seq) {
            return Err(CatalogError::KeyFile {
                path: self.audit.head_file.clone(),
                message: format!(
                    "the metadata store's audit chain ends at entry {seq}, behind entry {} that this chain head names: the store was rolled back or its audit log edited, so changes are refused until an admin looks (`tessera audit verify`; after a deliberate restore, move the head file away)",
                    written.seq
                ),
            });
        }
        let at = now();
        let mut hash = [0u8; 32];
        let mut entries = Vec::with_capacity(events.len());
        for event in events {
            seq += 1;
            let detail = event.detail.to_string();
            hash = entry_hash(
                seq,
                &at,
                &event.actor,
                &event.action,
                &event.subject,
                &detail,
                &prev_hash,
            );
            let hash_hex = hex::encode(hash);
            let mac = hex::encode(self.audit.mac(&hash));
            entries.push((seq, event, detail, prev_hash, hash_hex.clone(), mac));
            prev_hash = hash_hex;
        }
        // A few statements for many entries (a group of the query log's).
        crate::store::execute_rows(
            conn,
            "INSERT INTO audit_log (seq, at, actor, action, subject, detail, prev_hash, hash, mac)",
            "",
            9,
            &entries,
            |query, (seq, event, detail, prev_hash, hash, mac)| {
                query
                    .bind(*seq)
                    .bind(at.clone())
                    .bind(event.actor.clone())
                    .bind(event.action.clone())
                    .bind(event.subject.clone())
                    .bind(detail.clone())
                    .bind(prev_hash.clone())
                    .bind(hash.clone())
                    .bind(mac.clone())
            },
        )
        .await?;
        sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
            .bind(seq)
            .bind(prev_hash)
            .execute(&mut *conn)
            .await?;
        Ok(Some(ChainHead { seq, hash }))
    }

    /// Records events that change nothing else (denied decisions), in one transaction.
    pub async fn record_audit_events(&self, events: &[AuditEvent]) -> Result<()> {
        let tx = self.pool.begin().await?;
        self.commit_audited(tx, events).await
    }

    /// Entries after `after`, oldest first, at most `limit`; without `after`, the newest
    /// `limit` entries (still oldest first).
    pub async fn audit_entries(
        &self,
        after: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AuditEntryRecord>> {
        let rows = match after {
            Some(after) => {
                sqlx::query(
                    "SELECT seq, at, actor, action, subject, detail, prev_hash, hash, mac FROM audit_log
                     WHERE seq > $1 ORDER BY seq LIMIT $2",
                )
                .bind(after)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                let mut rows = sqlx::query(
                    "SELECT seq, at, actor, action, subject, detail, prev_hash, hash, mac FROM audit_log
                     ORDER BY seq DESC LIMIT $1",
                )
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                rows.reverse();
                rows
            }
        };
        rows.iter().map(entry_row).collect()
    }

    /// Walks the whole chain and reports the first entry that was edited, forged (inserted, or
    /// edited with its hash recomputed), removed, or cut off the end, or `problem: None`.
    pub async fn verify_audit(&self) -> Result<AuditVerification> {
        let head = read_head(&self.audit.head_file)?;
        let mut entries = 0i64;
        let mut expected_seq = 1i64;
        let mut prev_hash = GENESIS_HASH.to_string();
        let problem =
            |seq: i64, kind: &'static str, message: String| AuditProblem { seq, kind, message };
        let found = 'walk: loop {
            let page = self
                .audit_entries(Some(expected_seq - 1), VERIFY_PAGE)
                .await?;
            if page.is_empty() {
                break None;
            }
            for e in &page {
                if e.seq != expected_seq {
                    let last = e.seq - 1;
                    let which = if last == expected_seq {
                        format!("entry {expected_seq} was removed")
                    } else {
                        format!("entries {expected_seq} to {last} were removed")
                    };
                    break 'walk Some(problem(
                        expected_seq,
                        "removed",
                        format!("{which}: the chain goes on at entry {}", e.seq),
                    ));
                }
                let hash = entry_hash(
                    e.seq,
                    &e.at,
                    &e.actor,
                    &e.action,
                    &e.subject,
                    &e.detail,
                    &e.prev_hash,
                );
                if hex::encode(hash) != e.hash {
                    break 'walk Some(problem(
                        e.seq,
                        "edited",
                        format!(
                            "entry {} was edited: its content does not match its hash",
                            e.seq
                        ),
                    ));
                }
                if !self.audit.verify_mac(&hash, &e.mac) {
                    break 'walk Some(problem(
                        e.seq,
                        "forged",
                        format!(
                            "entry {} was not written by this mesh: its MAC does not match (inserted, or edited with its hash recomputed)",
                            e.seq
                        ),
                    ));
                }
                if e.prev_hash != prev_hash {
                    break 'walk Some(problem(
                        e.seq,
                        "removed",
                        format!(
                            "the entry before entry {} was removed or replaced: its previous hash does not match",
                            e.seq
                        ),
                    ));
                }
                if head.is_some_and(|h| h.seq == e.seq && h.hash_hex() != e.hash) {
                    break 'walk Some(problem(
                        e.seq,
                        "head_mismatch",
                        format!(
                            "entry {} is not the one the chain head in {} names: the newest entries were replaced",
                            e.seq,
                            self.audit.head_file.display()
                        ),
                    ));
                }
                entries += 1;
                expected_seq += 1;
                prev_hash = e.hash.clone();
            }
        };
        let problem = found.or_else(|| match head {
            Some(h) if h.seq > entries => Some(problem(
                entries + 1,
                "truncated",
                format!(
                    "the newest entries were cut off: the chain ends at entry {entries}, the chain head in {} is entry {}",
                    self.audit.head_file.display(),
                    h.seq
                ),
            )),
            None if entries > 0 => Some(problem(
                entries,
                "head_missing",
                format!(
                    "the chain head file {} is missing, so cut-off entries could not be told",
                    self.audit.head_file.display()
                ),
            )),
            _ => None,
        });
        Ok(AuditVerification {
            entries,
            head_seq: head.map(|h| h.seq),
            problem,
        })
    }
}

fn entry_row(r: &AnyRow) -> Result<AuditEntryRecord> {
    Ok(AuditEntryRecord {
        seq: r.try_get("seq")?,
        at: r.try_get("at")?,
        actor: r.try_get("actor")?,
        action: r.try_get("action")?,
        subject: r.try_get("subject")?,
        detail: r.try_get("detail")?,
        prev_hash: r.try_get("prev_hash")?,
        hash: r.try_get("hash")?,
        mac: r.try_get("mac")?,
    })
}

fn read_head(path: &Path) -> Result<Option<ChainHead>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(CatalogError::KeyFile {
                path: path.to_path_buf(),
                message: e.to_string(),
            });
        }
    };
    read_head_text(&text, path)
}

fn read_head_text(text: &str, path: &Path) -> Result<Option<ChainHead>> {
    let bad = |why: &str| CatalogError::KeyFile {
        path: path.to_path_buf(),
        message: format!("the audit chain head is not `SEQ HASH`: {why}"),
    };
    let (seq, hash) = text.trim().split_once(' ').ok_or_else(|| bad("no space"))?;
    let seq = seq.parse().map_err(|_| bad("the sequence number"))?;
    let hash: [u8; 32] = hex::decode(hash)
        .ok()
        .and_then(|h| h.try_into().ok())
        .ok_or_else(|| bad("the hash"))?;
    Ok(Some(ChainHead { seq, hash }))
}

/// A key kept in a file outside the store (hex): read, or made (32 random bytes, owner-only)
/// when there is none and nothing in the store needs the old one — `needed` says why it is
/// needed when it is.
pub(crate) fn private_key(path: &Path, what: &str, needed: Option<String>) -> Result<Vec<u8>> {
    let key = match std::fs::read_to_string(path) {
        Ok(text) => hex::decode(text.trim()).map_err(|e| CatalogError::KeyFile {
            path: path.to_path_buf(),
            message: format!("the {what} is not hex: {e}"),
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => match needed {
            None => {
                let mut key = vec![0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut key);
                write_private(path, &hex::encode(&key))?;
                tracing::info!(path = %path.display(), "made the {what}");
                key
            }
            Some(why) => {
                return Err(CatalogError::KeyFile {
                    path: path.to_path_buf(),
                    message: why,
                });
            }
        },
        Err(e) => {
            return Err(CatalogError::KeyFile {
                path: path.to_path_buf(),
                message: e.to_string(),
            });
        }
    };
    if key.len() < 16 {
        return Err(CatalogError::KeyFile {
            path: path.to_path_buf(),
            message: format!("the {what} is shorter than 16 bytes"),
        });
    }
    Ok(key)
}

/// Writes `text` to `path` readable by the owner only, replacing it whole (a crash leaves the
/// old file or the new one).
fn write_private(path: &Path, text: &str) -> Result<()> {
    let fail = |e: std::io::Error| CatalogError::KeyFile {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let mut temp = path.as_os_str().to_owned();
    temp.push(".tmp");
    let temp = PathBuf::from(temp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&temp).map_err(fail)?;
    file.write_all(text.as_bytes()).map_err(fail)?;
    file.sync_all().map_err(fail)?;
    std::fs::rename(&temp, path).map_err(fail)
}
