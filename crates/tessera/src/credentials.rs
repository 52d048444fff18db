//! The credentials file: the server a CLI talks to and the API token it sends.
//!
//! `tessera login` writes it, and so does the first start of a new server (with its admin
//! token) and `tessera demo` (with the demo admin's). It is JSON, `{"server": URL, "token":
//! TOKEN}`, readable by its owner only. Its place is `--credentials` / `TESSERA_CREDENTIALS`,
//! else `$XDG_CONFIG_HOME/tessera/credentials`, else `~/.config/tessera/credentials`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// What the file holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Credentials {
    /// The server the token is for.
    pub server: String,
    pub token: String,
}

/// The file's default place, when no path is given.
pub fn default_path() -> Option<PathBuf> {
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))?;
    Some(config.join("tessera").join("credentials"))
}

/// The given path, else the default.
pub fn path(given: Option<&Path>) -> Option<PathBuf> {
    given.map(Path::to_path_buf).or_else(default_path)
}

/// The file's content; `None` when there is no file.
pub fn read(path: &Path) -> Result<Option<Credentials>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(e)
                .with_context(|| format!("cannot read the credentials file {}", path.display()));
        }
    };
    serde_json::from_str(&text)
        .with_context(|| {
            format!(
                "the credentials file {} is not {{\"server\": URL, \"token\": TOKEN}}: run `tessera login` to write it again",
                path.display()
            )
        })
        .map(Some)
}

/// Writes the file (and its folder) readable by the owner only, replacing it whole: a reader
/// sees the old content or the new, never a mix.
pub fn write(path: &Path, credentials: &Credentials) -> Result<()> {
    let context = || format!("cannot write the credentials file {}", path.display());
    if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_private_folder(folder).with_context(context)?;
    }
    let temporary = path.with_extension("tmp");
    let text = serde_json::to_string_pretty(credentials)? + "\n";
    write_private(&temporary, text.as_bytes()).with_context(context)?;
    std::fs::rename(&temporary, path).with_context(context)
}

#[cfg(unix)]
fn create_private_folder(folder: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(folder)
}

#[cfg(not(unix))]
fn create_private_folder(folder: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(folder)
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // A file that existed keeps its mode on open: set it.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

/// Two server URLs name the same server (a trailing slash aside).
pub fn same_server(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}
