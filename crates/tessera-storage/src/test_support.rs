//! What the crate's unit tests share: a table in a storage root of its own.

use std::collections::HashMap;

use arrow::datatypes::SchemaRef;

use crate::Storage;

/// A storage root in a new temporary directory (kept while the first value lives) holding an
/// empty table of `schema` at `location`.
pub(crate) async fn storage_with_table(
    location: &str,
    schema: &SchemaRef,
) -> (tempfile::TempDir, Storage) {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::new(dir.path().to_str().unwrap(), HashMap::new()).unwrap();
    let name = location.rsplit('/').next().unwrap_or(location);
    storage
        .ensure_table(location, schema, name, None)
        .await
        .unwrap();
    (dir, storage)
}
