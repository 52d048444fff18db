//! Batch ingestion: a file (CSV, NDJSON or Parquet) becomes the rows a dataset accepts and the
//! rows its quarantine table keeps.
//!
//! [`prepare`] reads the bytes, matches columns by name to the contract, casts every value to
//! the contract's type (a value that does not cast is a `type` violation), runs the row-level
//! rules, and splits the batch in two: valid rows with the table's schema, and refused rows as
//! received with the rule and the reason. It does no IO and commits nothing; the service layer
//! writes both halves. Streaming sources (HTTP events, Postgres, Kafka) will feed the same
//! function. [`personal_data_hits`] samples the accepted values for what looks like personal
//! data, for the governance policies.

mod detect;
mod error;
mod format;
mod prepare;

pub use detect::{DetectorHits, SAMPLED_VALUES, personal_data_hits};
pub use error::{IngestError, Result};
pub use format::{Format, batch_id_of};
pub use prepare::{
    BodyRows, Prepared, PreparedTogether, check_columns, ndjson_lines, prepare, prepare_batch,
    prepare_together, refused_rows, unreadable_rows,
};
