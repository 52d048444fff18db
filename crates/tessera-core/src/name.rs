use std::fmt;
use std::str::FromStr;

use crate::error::{CoreError, Result, clip};

/// Suffix of the table that holds a dataset's quarantined rows: `orders` → `orders_quarantine`.
pub const QUARANTINE_SUFFIX: &str = "_quarantine";

const MAX_NAME_LEN: usize = 63;

/// Names a domain or product may not have: SQL resolves `tessera_meta.products`, say, as the
/// schema of that name in the default catalog `tessera`, and PostgreSQL clients look for
/// `pg_catalog`, `information_schema` and `public`; a domain or product of such a name would
/// shadow them, or be shadowed.
pub const RESERVED_NAMES: [&str; 5] = [
    "tessera",
    "tessera_meta",
    "pg_catalog",
    "information_schema",
    "public",
];

/// A name in the mesh (domain, product, dataset): a lowercase snake_case SQL identifier that
/// starts with a letter, at most 63 bytes (PostgreSQL's identifier limit), so it can be used
/// unquoted in SQL from every front end.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name(String);

impl Name {
    /// Checks `name` and wraps it.
    pub fn parse(name: &str) -> Result<Self> {
        let invalid = |reason: &str| CoreError::InvalidName {
            name: clip(name).to_string(),
            reason: reason.to_string(),
        };
        let first = name.chars().next().ok_or_else(|| invalid("empty"))?;
        if !first.is_ascii_lowercase() {
            return Err(invalid("must start with a lowercase letter a-z"));
        }
        if let Some(bad) = name
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
        {
            return Err(invalid(&format!(
                "character {bad:?} is not allowed; use lowercase snake_case (a-z, 0-9, _)"
            )));
        }
        if name.len() > MAX_NAME_LEN {
            return Err(invalid("longer than 63 characters"));
        }
        Ok(Self(name.to_string()))
    }

    /// Checks `name` as the name of a domain or product: [`Name::parse`], and not one of the
    /// [`RESERVED_NAMES`].
    pub fn parse_namespace(name: &str) -> Result<Self> {
        let parsed = Self::parse(name)?;
        if RESERVED_NAMES.contains(&name) {
            return Err(CoreError::InvalidName {
                name: name.to_string(),
                reason: format!(
                    "is reserved (the names {} are Tessera's and SQL's own)",
                    RESERVED_NAMES.join(", ")
                ),
            });
        }
        Ok(parsed)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// `domain.product.dataset`: how a dataset is named in SQL (DataFusion catalog.schema.table), on
/// the command line and in the REST API.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DatasetRef {
    pub domain: Name,
    pub product: Name,
    pub dataset: Name,
}

impl DatasetRef {
    pub fn new(domain: Name, product: Name, dataset: Name) -> Self {
        Self {
            domain,
            product,
            dataset,
        }
    }

    /// The reference of this dataset's quarantine table (`..._quarantine`).
    pub fn quarantine(&self) -> DatasetRef {
        DatasetRef {
            domain: self.domain.clone(),
            product: self.product.clone(),
            dataset: Name(format!("{}{QUARANTINE_SUFFIX}", self.dataset)),
        }
    }

    /// Where the dataset's table lives relative to the storage root: `domain/product/dataset`.
    pub fn relative_path(&self) -> String {
        format!("{}/{}/{}", self.domain, self.product, self.dataset)
    }
}

impl fmt::Display for DatasetRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.domain, self.product, self.dataset)
    }
}

impl FromStr for DatasetRef {
    type Err = CoreError;

    fn from_str(reference: &str) -> Result<Self> {
        let parts: Vec<&str> = reference.split('.').collect();
        let [domain, product, dataset] = parts.as_slice() else {
            return Err(CoreError::InvalidDatasetRef {
                reference: clip(reference).to_string(),
            });
        };
        Ok(Self::new(
            Name::parse(domain)?,
            Name::parse(product)?,
            Name::parse(dataset)?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_snake_case_identifiers() {
        assert!(Name::parse("virality_daily").is_ok());
        assert!(Name::parse("a1").is_ok());
        for bad in ["", "1abc", "Abc", "a-b", "a b", "ä", "_a", &"a".repeat(64)] {
            assert!(Name::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn dataset_refs_parse_and_print() {
        let r: DatasetRef = "marketplace.provenance.sales".parse().unwrap();
        assert_eq!(r.to_string(), "marketplace.provenance.sales");
        assert_eq!(
            r.quarantine().to_string(),
            "marketplace.provenance.sales_quarantine"
        );
        assert_eq!(r.relative_path(), "marketplace/provenance/sales");
        assert!("a.b".parse::<DatasetRef>().is_err());
        assert!("a.b.c.d".parse::<DatasetRef>().is_err());
        let err = "a.B.c".parse::<DatasetRef>().unwrap_err().to_string();
        assert!(err.contains("\"B\""), "{err}");
    }
}
