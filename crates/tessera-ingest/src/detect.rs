//! Personal data found in the values: a column whose name gives nothing away may still hold
//! e-mail addresses. At ingest the accepted rows of the columns a contract does not treat as
//! personal data are sampled and each value tried against a few detectors; the hits go to the
//! metadata store, where the governance policies read them (`tessera_meta.personal_data_detections`).
//!
//! The detectors look for what has a shape: e-mail addresses, phone numbers, IP addresses and
//! payment card numbers (with their Luhn check digit). Person names and street addresses have
//! none a value can be tested for without flagging every product name, so they are left to the
//! name-based policy.

use std::net::IpAddr;
use std::sync::OnceLock;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::DataType;
use regex::Regex;

/// Values sampled per column and batch (the first ones that are not null).
pub const SAMPLED_VALUES: usize = 1000;

/// How often one detector matched the sampled values of one column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectorHits {
    pub column: String,
    /// `email`, `phone`, `ip_address` or `payment_card`.
    pub detector: &'static str,
    pub matched: usize,
    pub sampled: usize,
}

fn email() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$")
            .expect("e-mail pattern")
    })
}

fn phone() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"^\+?[0-9(][0-9 ()./-]{5,}[0-9]$").expect("phone pattern"))
}

/// 13 to 19 digits (spaces or dashes between groups) whose Luhn check digit is right.
fn payment_card(value: &str) -> bool {
    if !value
        .bytes()
        .all(|b| b.is_ascii_digit() || b == b' ' || b == b'-')
    {
        return false;
    }
    let digits: Vec<u32> = value.chars().filter_map(|c| c.to_digit(10)).collect();
    if !(13..=19).contains(&digits.len()) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                let twice = d * 2;
                if twice > 9 { twice - 9 } else { twice }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

fn phone_number(value: &str) -> bool {
    static DATE: OnceLock<Regex> = OnceLock::new();
    let date =
        DATE.get_or_init(|| Regex::new(r"^[0-9]{4}[-/.][0-9]{2}[-/.][0-9]{2}").expect("date"));
    let digits = value.bytes().filter(u8::is_ascii_digit).count();
    (7..=15).contains(&digits)
        && phone().is_match(value)
        && !date.is_match(value)
        && !payment_card(value)
}

/// A detector: its name, and whether a (trimmed) value has the shape it looks for.
type Detector = (&'static str, fn(&str) -> bool);

const DETECTORS: [Detector; 4] = [
    ("email", |v| email().is_match(v)),
    ("ip_address", |v| v.parse::<IpAddr>().is_ok()),
    ("payment_card", payment_card),
    ("phone", phone_number),
];

/// The detector hits on the first [`SAMPLED_VALUES`] non-null values of each text column of
/// `batch` named in `columns`; a column with no hit is left out.
pub fn personal_data_hits(batch: &RecordBatch, columns: &[String]) -> Vec<DetectorHits> {
    let mut hits = Vec::new();
    for name in columns {
        let Some(array) = batch.column_by_name(name) else {
            continue;
        };
        let values: Vec<&str> = match array.data_type() {
            DataType::Utf8 => array
                .as_string::<i32>()
                .iter()
                .flatten()
                .take(SAMPLED_VALUES)
                .collect(),
            DataType::LargeUtf8 => array
                .as_string::<i64>()
                .iter()
                .flatten()
                .take(SAMPLED_VALUES)
                .collect(),
            DataType::Utf8View => array
                .as_string_view()
                .iter()
                .flatten()
                .take(SAMPLED_VALUES)
                .collect(),
            _ => continue,
        };
        if values.is_empty() {
            continue;
        }
        for (detector, matches) in DETECTORS {
            let matched = values.iter().filter(|v| matches(v.trim())).count();
            if matched > 0 {
                hits.push(DetectorHits {
                    column: name.clone(),
                    detector,
                    matched,
                    sampled: values.len(),
                });
            }
        }
    }
    hits
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};

    use super::*;

    fn batch(columns: Vec<(&str, Vec<Option<&str>>)>) -> RecordBatch {
        RecordBatch::try_from_iter(columns.into_iter().map(|(name, values)| {
            (
                name,
                Arc::new(StringArray::from(values)) as arrow::array::ArrayRef,
            )
        }))
        .unwrap()
    }

    #[test]
    fn values_with_the_shape_of_personal_data_are_found() {
        let b = batch(vec![
            (
                "contact",
                vec![
                    Some("ada@example.com"),
                    Some("grace.hopper@navy.example.org"),
                    None,
                    Some("n/a"),
                ],
            ),
            (
                "origin",
                vec![
                    Some("10.0.0.1"),
                    Some("2001:db8::1"),
                    Some("10.0.0.2"),
                    Some("x"),
                ],
            ),
            (
                "card",
                vec![
                    Some("4111 1111 1111 1111"),
                    Some("5500-0000-0000-0004"),
                    Some("1234 5678 9012 3456"),
                    None,
                ],
            ),
            (
                "tel",
                vec![
                    Some("+49 30 1234567"),
                    Some("(030) 123-4567"),
                    Some("12"),
                    Some("2026-11-20"),
                ],
            ),
            (
                "title",
                vec![Some("Sunset over Lisbon"), Some("Blue #4"), None, None],
            ),
        ]);
        let hits = personal_data_hits(
            &b,
            &["contact", "origin", "card", "tel", "title", "missing"].map(String::from),
        );
        let found: Vec<(&str, &str, usize, usize)> = hits
            .iter()
            .map(|h| (h.column.as_str(), h.detector, h.matched, h.sampled))
            .collect();
        assert_eq!(
            found,
            [
                ("contact", "email", 2, 3),
                ("origin", "ip_address", 3, 4),
                ("card", "payment_card", 2, 3),
                ("tel", "phone", 2, 4),
            ]
        );
    }

    #[test]
    fn other_types_and_empty_columns_are_skipped() {
        let b = RecordBatch::try_from_iter([(
            "n",
            Arc::new(Int64Array::from(vec![1, 2])) as arrow::array::ArrayRef,
        )])
        .unwrap();
        assert!(personal_data_hits(&b, &["n".to_string()]).is_empty());
        let empty = batch(vec![("contact", vec![None, None])]);
        assert!(personal_data_hits(&empty, &["contact".to_string()]).is_empty());
    }
}
