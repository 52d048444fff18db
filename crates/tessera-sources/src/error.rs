//! Why a pull failed. Messages name the source's origin (a host, a folder, a topic) but never a
//! credential: a connection URL's password is cut out before anything is shown.

/// A pull or an open that failed.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The origin cannot be reached or refused us (the server backs off and retries).
    #[error("cannot reach the source: {0}")]
    Unreachable(String),
    /// The origin answered, but not with what the source says (a missing table or column).
    #[error("{0}")]
    Invalid(String),
    /// Reading failed half-way (nothing of the pull is committed).
    #[error("reading the source failed: {0}")]
    Read(String),
}

pub type Result<T, E = SourceError> = std::result::Result<T, E>;

/// `text` with every `scheme://user:password@` shortened to `scheme://user:***@`.
pub(crate) fn without_passwords(text: &str) -> String {
    let pattern = regex::Regex::new(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)[^@\s]*@")
        .expect("a valid pattern");
    pattern.replace_all(text, "${head}***@").into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_cut_out() {
        assert_eq!(
            super::without_passwords("connect to postgres://app:s3cr3t@db:5432/shop failed"),
            "connect to postgres://app:***@db:5432/shop failed"
        );
        assert_eq!(super::without_passwords("no url here"), "no url here");
    }
}
