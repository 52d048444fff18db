use std::fmt;

/// Errors of the domain model: a name or a type that the model cannot accept.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CoreError {
    /// A name that is not a lowercase snake_case SQL identifier.
    #[error("invalid name {name:?}: {reason}")]
    InvalidName { name: String, reason: String },
    /// A `domain.product.dataset` reference that does not have three parts.
    #[error("invalid dataset reference {reference:?}: expected DOMAIN.PRODUCT.DATASET")]
    InvalidDatasetRef { reference: String },
    /// A column whose logical/physical type has no Arrow mapping.
    #[error("column {column:?}: {reason}")]
    UnsupportedType { column: String, reason: String },
    /// A rule that cannot be evaluated (e.g. a pattern that is not a valid regular expression).
    #[error("column {column:?}: invalid rule {rule}: {reason}")]
    InvalidRule {
        column: String,
        rule: String,
        reason: String,
    },
}

/// Result with [`CoreError`].
pub type Result<T, E = CoreError> = std::result::Result<T, E>;

/// Shortens a value for an error message, so that long input never floods a message.
pub(crate) fn clip(value: &str) -> impl fmt::Display + '_ {
    struct Clip<'a>(&'a str);
    impl fmt::Display for Clip<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self.0.char_indices().nth(64) {
                Some((i, _)) => write!(f, "{}…", &self.0[..i]),
                None => f.write_str(self.0),
            }
        }
    }
    Clip(value)
}
