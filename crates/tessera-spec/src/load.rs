//! One entry point for a standard file: parse, validate, convert. `tessera lint`, `tessera apply`
//! and the server all go through [`load`], so a file gets the same verdict everywhere.

use tessera_core::{Contract, Product};

use crate::document::{DocumentKind, SpecDocument};
use crate::error::Result;
use crate::odcs::contract_from_document;
use crate::odps::product_from_document;
use crate::validate::validate;

/// A standard file, validated and converted.
#[derive(Debug, Clone)]
pub enum Loaded {
    Contract(Contract),
    Product(Product),
}

impl Loaded {
    pub fn kind(&self) -> DocumentKind {
        match self {
            Loaded::Contract(_) => DocumentKind::Contract,
            Loaded::Product(_) => DocumentKind::Product,
        }
    }
}

/// Parses `text` (named `file` in diagnostics), validates it strictly against its standard's
/// JSON Schema, and converts it into the model, with everything Tessera needs on top checked.
pub fn load(file: &str, text: &str) -> Result<Loaded> {
    let doc = SpecDocument::parse(file, text)?;
    Ok(match validate(&doc)? {
        DocumentKind::Contract => Loaded::Contract(contract_from_document(&doc)?),
        DocumentKind::Product => Loaded::Product(product_from_document(&doc)?),
    })
}

/// Loads a contract; a file of another kind is an error naming it.
pub fn load_contract(file: &str, text: &str) -> Result<Contract> {
    match load(file, text)? {
        Loaded::Contract(c) => Ok(c),
        Loaded::Product(_) => Err(crate::SpecError::Invalid(vec![crate::Diagnostic {
            file: file.to_string(),
            line: Some(1),
            field: "kind".into(),
            message: "expected a data contract (kind: DataContract), found a data product".into(),
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
    let doc = match SpecDocument::parse(file, text) {
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
            };
            if let Err(e) = converted {
                outcome.warnings = e.diagnostics().to_vec();
            }
        }
        Err(e) => outcome.errors = e.diagnostics().to_vec(),
    }
    outcome
}
