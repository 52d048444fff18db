//! Rows of the metadata store. Plain data: the standard files' text plus lookup columns.

/// A domain; created when its first product is applied.
#[derive(Debug, Clone, PartialEq)]
pub struct DomainRecord {
    pub name: String,
    pub created_at: String,
    pub product_count: i64,
}

/// A product: its ODPS descriptor as written, and the columns it is listed by.
#[derive(Debug, Clone, PartialEq)]
pub struct ProductRecord {
    pub domain: String,
    pub name: String,
    pub product_id: String,
    pub version: Option<String>,
    pub status: String,
    pub description: Option<String>,
    pub owner: Option<String>,
    pub file_name: String,
    pub source: String,
    pub created_at: String,
    pub updated_at: String,
}

/// One version of a contract: the ODCS file as written. Versions are immutable once stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ContractRecord {
    pub contract_id: String,
    pub version: String,
    pub status: String,
    pub file_name: String,
    pub source: String,
    pub created_at: String,
}

/// A dataset: which contract version governs it and where its Delta table is.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetRecord {
    pub domain: String,
    pub product: String,
    pub name: String,
    pub contract_id: String,
    pub contract_version: String,
    pub location: String,
    pub created_at: String,
    pub updated_at: String,
}

/// An ingested batch and what became of it.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchRecord {
    pub domain: String,
    pub product: String,
    pub dataset: String,
    pub batch_id: String,
    pub accepted: i64,
    pub quarantined: i64,
    pub table_version: Option<i64>,
    pub committed_at: String,
}

/// Everything one `apply` of a product folder writes, committed in one transaction.
#[derive(Debug, Clone, Default)]
pub struct MetadataChange {
    /// Inserted or updated (by domain and name).
    pub product: Option<ProductRecord>,
    /// New contract versions (existing versions are never rewritten).
    pub contracts: Vec<ContractRecord>,
    /// Inserted or updated (by domain, product and name).
    pub datasets: Vec<DatasetRecord>,
}
