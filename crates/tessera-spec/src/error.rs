use std::fmt;

/// One problem in one file: where it is (file, line, field) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file as the user named it.
    pub file: String,
    /// 1-based line; `None` when the problem is about the whole file.
    pub line: Option<usize>,
    /// The field as a path, e.g. `schema[0].properties[2].logicalType`; empty for the root.
    pub field: String,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// A file that could not be read, parsed, validated or converted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpecError {
    #[error("{file}: cannot read: {reason}")]
    Io { file: String, reason: String },
    /// One or more problems, each with its place; never empty.
    #[error("{}", render(.0))]
    Invalid(Vec<Diagnostic>),
}

impl SpecError {
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            SpecError::Io { .. } => &[],
            SpecError::Invalid(d) => d,
        }
    }
}

fn render(diagnostics: &[Diagnostic]) -> String {
    let lines: Vec<String> = diagnostics.iter().map(|d| d.to_string()).collect();
    lines.join("\n")
}

/// Result with [`SpecError`].
pub type Result<T, E = SpecError> = std::result::Result<T, E>;
