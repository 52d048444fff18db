//! A source: where one of a product's datasets pulls its rows from (a PostgreSQL table, a Kafka
//! topic, a folder of files), when, and with which credentials — declared in the product's
//! folder (`sources/*.yaml`, `kind: Source`) and run by the server as the product's owner team.
//! What a connector's own options mean is the connector's business (`tessera-sources`); here
//! they are kept as the document gave them.

use std::time::Duration;

use crate::model::duration_seconds;

/// Where a credential comes from: never the product file itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// A secret kept encrypted in the metadata store (`tessera secret set NAME`), owned by a team.
    Stored(String),
    /// An environment variable of the server; only `TESSERA_SECRET_*` ones, so that a product
    /// file cannot name the server's other variables.
    Env(String),
}

/// The prefix every environment variable a source may name starts with.
pub const SECRET_ENV_PREFIX: &str = "TESSERA_SECRET_";

impl std::fmt::Display for SecretRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretRef::Stored(name) => write!(f, "secret {name}"),
            SecretRef::Env(var) => write!(f, "environment variable {var}"),
        }
    }
}

/// When a source pulls.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceTrigger {
    /// Every so often, counted from the end of the last pull.
    Every(Duration),
    /// On a cron schedule (five or six fields, as contracts' check schedules).
    Schedule(String),
    /// Again as soon as a pull ends (with a short pause when there was nothing new).
    Continuous,
}

impl std::fmt::Display for SourceTrigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourceTrigger::Every(d) => write!(f, "every {}s", d.as_secs_f64()),
            SourceTrigger::Schedule(cron) => write!(f, "schedule {cron}"),
            SourceTrigger::Continuous => write!(f, "continuous"),
        }
    }
}

/// A source as declared.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceSpec {
    /// Unique within the product (snake_case).
    pub name: String,
    pub description: Option<String>,
    /// The product's output dataset the source fills.
    pub dataset: String,
    /// Which connector reads it: `postgres`, `kafka`, `files`.
    pub connector: String,
    pub trigger: SourceTrigger,
    /// The connector's own options (the object under the connector's name).
    pub options: serde_json::Value,
    /// The credential the connector is given (a connection URL, a password), if any.
    pub secret: Option<SecretRef>,
}

/// A duration written as a number and a unit (`30s`, `10m`, `1h`, `500ms`, `2d`).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().ok()?;
    let unit = unit.trim();
    let seconds = duration_seconds(value, (!unit.is_empty()).then_some(unit))?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_written() {
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse_duration("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("45"), Some(Duration::from_secs(45)));
        assert_eq!(parse_duration("ten minutes"), None);
        assert_eq!(parse_duration("5 fortnights"), None);
    }
}
