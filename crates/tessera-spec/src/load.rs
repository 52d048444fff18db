//! One entry point for a standard file: parse, validate, convert. `tessera lint`, `tessera apply`
//! and the server all go through [`load`], so a file gets the same verdict everywhere.

use tessera_core::{Contract, GlossaryTerm, GovernancePolicy, Product, SourceSpec};

use crate::document::{DocumentKind, SpecDocument};
use crate::error::{Result, SpecError};
use crate::odcs::contract_from_document;
use crate::odps::product_from_document;
use crate::policy::{policy_from_document, term_from_document};
use crate::source::source_from_document;
use crate::validate::validate;

/// A standard file, validated and converted.
#[derive(Debug, Clone)]
pub enum Loaded {
    Contract(Contract),
    Product(Product),
    Policy(GovernancePolicy),
    GlossaryTerm(GlossaryTerm),
    Source(SourceSpec),
}

impl Loaded {
    pub fn kind(&self) -> DocumentKind {
        match self {
            Loaded::Contract(_) => DocumentKind::Contract,
            Loaded::Product(_) => DocumentKind::Product,
            Loaded::Policy(_) => DocumentKind::Policy,
            Loaded::GlossaryTerm(_) => DocumentKind::GlossaryTerm,
            Loaded::Source(_) => DocumentKind::Source,
        }
    }
}

/// How large a file may be, so that a huge contract is refused before it costs the server its
/// memory and time. The server takes them from its options; `tessera lint` uses the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileLimits {
    /// Bytes of one file (`--contract-max-bytes`).
    pub max_bytes: usize,
    /// Schema objects (datasets) of one contract (`--contract-max-datasets`).
    pub max_datasets: usize,
    /// Properties (columns, nested ones included) of one schema object
    /// (`--contract-max-columns`).
    pub max_columns: usize,
}

impl Default for FileLimits {
    fn default() -> Self {
        Self {
            max_bytes: 1 << 20,
            max_datasets: 100,
            max_columns: 1_000,
        }
    }
}

impl FileLimits {
    /// No limits: for files that were checked when they were published.
    pub const NONE: FileLimits = FileLimits {
        max_bytes: usize::MAX,
        max_datasets: usize::MAX,
        max_columns: usize::MAX,
    };

    fn refuse(file: &str, line: Option<usize>, field: &str, message: String) -> SpecError {
        SpecError::Invalid(vec![crate::Diagnostic {
            file: file.to_string(),
            line,
            field: field.to_string(),
            message,
        }])
    }

    /// Refuses a text over the size limit, before it is parsed.
    pub fn check_size(&self, file: &str, text: &str) -> Result<()> {
        if text.len() > self.max_bytes {
            return Err(Self::refuse(
                file,
                None,
                "",
                format!(
                    "the file is {} bytes, more than the limit of {} bytes (--contract-max-bytes)",
                    text.len(),
                    self.max_bytes
                ),
            ));
        }
        Ok(())
    }

    /// Refuses a contract with more schema objects or properties than the limits allow, before
    /// it is validated.
    pub fn check_counts(&self, doc: &SpecDocument) -> Result<()> {
        let Some(schema) = doc.value.get("schema").and_then(|s| s.as_array()) else {
            return Ok(());
        };
        if schema.len() > self.max_datasets {
            return Err(Self::refuse(
                &doc.file,
                doc.line_of("/schema"),
                "schema",
                format!(
                    "the contract has {} schema objects (datasets), more than the limit of {} (--contract-max-datasets)",
                    schema.len(),
                    self.max_datasets
                ),
            ));
        }
        for (i, object) in schema.iter().enumerate() {
            let columns = count_properties(object);
            if columns > self.max_columns {
                let pointer = format!("/schema/{i}/properties");
                return Err(Self::refuse(
                    &doc.file,
                    doc.line_of(&pointer),
                    &format!("schema[{i}].properties"),
                    format!(
                        "schema object {} has {columns} properties (columns, nested ones included), more than the limit of {} (--contract-max-columns)",
                        object.get("name").and_then(|n| n.as_str()).unwrap_or("?"),
                        self.max_columns
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Properties under a schema object, nested ones (`properties`, `items`) included, counted
/// without recursion.
fn count_properties(object: &serde_json::Value) -> usize {
    let mut count = 0;
    let mut pending = vec![object];
    while let Some(node) = pending.pop() {
        if let Some(properties) = node.get("properties").and_then(|p| p.as_array()) {
            count += properties.len();
            pending.extend(properties.iter());
        }
        if let Some(items) = node.get("items") {
            pending.push(items);
        }
    }
    count
}

/// Parses `text` (named `file` in diagnostics), validates it strictly against its standard's
/// JSON Schema, and converts it into the model, with everything Tessera needs on top checked.
/// The default [`FileLimits`] apply.
pub fn load(file: &str, text: &str) -> Result<Loaded> {
    load_with(file, text, &FileLimits::default())
}

/// [`load`] under the given limits.
pub fn load_with(file: &str, text: &str, limits: &FileLimits) -> Result<Loaded> {
    limits.check_size(file, text)?;
    let doc = SpecDocument::parse(file, text)?;
    limits.check_counts(&doc)?;
    Ok(match validate(&doc)? {
        DocumentKind::Contract => Loaded::Contract(contract_from_document(&doc)?),
        DocumentKind::Product => Loaded::Product(product_from_document(&doc)?),
        DocumentKind::Policy => Loaded::Policy(policy_from_document(&doc)?),
        DocumentKind::GlossaryTerm => Loaded::GlossaryTerm(term_from_document(&doc)?),
        DocumentKind::Source => Loaded::Source(source_from_document(&doc)?),
    })
}

/// Loads a contract that was published before (no limits: they applied when it was); a file
/// of another kind is an error naming it.
pub fn load_contract(file: &str, text: &str) -> Result<Contract> {
    match load_with(file, text, &FileLimits::NONE)? {
        Loaded::Contract(c) => Ok(c),
        other => Err(crate::SpecError::Invalid(vec![crate::Diagnostic {
            file: file.to_string(),
            line: Some(1),
            field: "kind".into(),
            message: format!(
                "expected a data contract (kind: DataContract), found {}",
                match other.kind() {
                    DocumentKind::Product => "a data product",
                    _ => "a policy",
                }
            ),
        }])),
    }
}

/// What `tessera lint` says of one file: problems with the standard are errors; what the
/// standard allows but Tessera could not publish (a dataset name that is not a SQL identifier, a
/// type it cannot store) are warnings.
#[derive(Debug, Clone, Default)]
pub struct LintOutcome {
    pub kind: Option<DocumentKind>,
    /// `id@version` (contracts) or `domain.name` (products), when readable.
    pub title: Option<String>,
    pub errors: Vec<crate::Diagnostic>,
    pub warnings: Vec<crate::Diagnostic>,
}

/// Lints one file's text.
pub fn lint(file: &str, text: &str) -> LintOutcome {
    let mut outcome = LintOutcome::default();
    let limits = FileLimits::default();
    let doc = match limits
        .check_size(file, text)
        .and_then(|()| SpecDocument::parse(file, text))
        .and_then(|doc| limits.check_counts(&doc).map(|()| doc))
    {
        Ok(doc) => doc,
        Err(e) => {
            outcome.errors = e.diagnostics().to_vec();
            return outcome;
        }
    };
    let field = |key: &str| {
        doc.value
            .get(key)
            .and_then(|v| v.as_str())
            .unwrap_or("?")
            .to_string()
    };
    match validate(&doc) {
        Ok(kind) => {
            outcome.kind = Some(kind);
            let converted = match kind {
                DocumentKind::Contract => {
                    outcome.title = Some(format!("{}@{}", field("id"), field("version")));
                    contract_from_document(&doc).map(|_| ())
                }
                DocumentKind::Product => {
                    outcome.title = Some(format!("{}.{}", field("domain"), field("name")));
                    product_from_document(&doc).map(|_| ())
                }
                DocumentKind::Policy => {
                    outcome.title = Some(format!("policy {}", field("id")));
                    // A policy's form is Tessera's own rule, not an extra: an error.
                    if let Err(e) = policy_from_document(&doc) {
                        outcome.errors = e.diagnostics().to_vec();
                    }
                    Ok(())
                }
                DocumentKind::GlossaryTerm => {
                    outcome.title = Some(format!(
                        "glossary term {}@{}",
                        field("name"),
                        field("version")
                    ));
                    if let Err(e) = term_from_document(&doc) {
                        outcome.errors = e.diagnostics().to_vec();
                    }
                    Ok(())
                }
                DocumentKind::Source => {
                    outcome.title = Some(format!("source {}", field("name")));
                    if let Err(e) = source_from_document(&doc) {
                        outcome.errors = e.diagnostics().to_vec();
                    }
                    Ok(())
                }
            };
            if let Err(e) = converted {
                outcome.warnings = e.diagnostics().to_vec();
            }
        }
        Err(e) => outcome.errors = e.diagnostics().to_vec(),
    }
    outcome
}
