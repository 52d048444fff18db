//! A standard file held in memory: its text, its JSON value, and where each field is.

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

use crate::error::{Diagnostic, Result, SpecError};

/// What a document says it is (`kind`, plus the keys of the deprecated DCS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentKind {
    /// ODCS `kind: DataContract`.
    Contract,
    /// ODPS `kind: DataProduct`.
    Product,
    /// Tessera's `kind: Policy` (`apiVersion: tessera/v1`): a governance policy.
    Policy,
    /// Tessera's `kind: GlossaryTerm` (`apiVersion: tessera/v1`): a shared definition.
    GlossaryTerm,
    /// Tessera's `kind: Source` (`apiVersion: tessera/v1`): where a dataset pulls its rows from.
    Source,
}

/// A parsed YAML (or JSON) document, with a map from JSON pointer to source line.
#[derive(Debug, Clone)]
pub struct SpecDocument {
    /// The file name as given, used in every diagnostic.
    pub file: String,
    pub text: String,
    pub value: Value,
    lines: HashMap<String, usize>,
}

impl SpecDocument {
    /// Reads and parses a file.
    pub fn read(path: &Path) -> Result<Self> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| SpecError::Io {
            file: file.clone(),
            reason: e.to_string(),
        })?;
        Self::parse(&file, &text)
    }

    /// Parses YAML text (JSON is YAML). Dates stay strings, as the schemas want; duplicate keys
    /// and non-string keys are errors.
    pub fn parse(file: &str, text: &str) -> Result<Self> {
        let value: Value = serde_yaml_ng::from_str(text).map_err(|e| {
            let line = e.location().map(|l| l.line());
            let message = e.to_string();
            // serde_yaml_ng appends " at line L column C"; the line is already in the prefix.
            let message = match message.find(" at line ") {
                Some(i) if line.is_some() => message[..i].to_string(),
                _ => message,
            };
            SpecError::Invalid(vec![Diagnostic {
                file: file.to_string(),
                line,
                field: String::new(),
                message: format!("not valid YAML: {message}"),
            }])
        })?;
        let mut index = LineIndex::default();
        // The text parsed above, so the event parser succeeds too; lines are best effort anyway.
        let _ = Parser::new_from_str(text).load(&mut index, false);
        if !index.duplicates.is_empty() {
            return Err(SpecError::Invalid(
                index
                    .duplicates
                    .iter()
                    .map(|(pointer, line, first)| Diagnostic {
                        file: file.to_string(),
                        line: Some(*line),
                        field: field_path(pointer),
                        message: format!("duplicate key (first defined on line {first})"),
                    })
                    .collect(),
            ));
        }
        Ok(Self {
            file: file.to_string(),
            text: text.to_string(),
            value,
            lines: index.lines,
        })
    }

    /// What the document declares itself to be.
    pub fn kind(&self) -> std::result::Result<DocumentKind, Diagnostic> {
        match self.value.get("kind").and_then(Value::as_str) {
            Some("DataContract") => Ok(DocumentKind::Contract),
            Some("DataProduct") => Ok(DocumentKind::Product),
            Some("Policy") => Ok(DocumentKind::Policy),
            Some("GlossaryTerm") => Ok(DocumentKind::GlossaryTerm),
            Some("Source") => Ok(DocumentKind::Source),
            _ if self.value.get("dataContractSpecification").is_some() => Err(self.diagnostic(
                "/dataContractSpecification",
                "this is a Data Contract Specification file (deprecated); Tessera reads ODCS v3.1.0 contracts: convert it with `datacontract export --format odcs`",
            )),
            Some(other) => Err(self.diagnostic(
                "/kind",
                format!("unknown kind {other:?}: expected DataContract (ODCS), DataProduct (ODPS), Policy, GlossaryTerm or Source (Tessera)"),
            )),
            None if !self.value.is_object() => Err(self.diagnostic(
                "",
                "expected a mapping with `kind: DataContract` (ODCS) or `kind: DataProduct` (ODPS)",
            )),
            None => Err(self.diagnostic(
                "",
                "missing `kind`: expected DataContract (ODCS) or DataProduct (ODPS)",
            )),
        }
    }

    /// The source line of the value at a JSON pointer, or of its nearest ancestor.
    pub fn line_of(&self, pointer: &str) -> Option<usize> {
        let mut p = pointer;
        loop {
            if let Some(line) = self.lines.get(p) {
                return Some(*line);
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return None,
            }
        }
    }

    /// A diagnostic about the value at a JSON pointer.
    pub fn diagnostic(&self, pointer: &str, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            file: self.file.clone(),
            line: self
                .line_of(pointer)
                .or(if pointer.is_empty() { Some(1) } else { None }),
            field: field_path(pointer),
            message: message.into(),
        }
    }
}

/// `/schema/0/properties/2/name` → `schema[0].properties[2].name`.
pub(crate) fn field_path(pointer: &str) -> String {
    let mut out = String::new();
    for segment in pointer.split('/').skip(1) {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        if !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()) {
            out.push('[');
            out.push_str(&segment);
            out.push(']');
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&segment);
        }
    }
    out
}

pub(crate) fn escape_pointer_segment(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// Walks YAML events and records the line of every key and sequence item by JSON pointer.
#[derive(Default)]
struct LineIndex {
    lines: HashMap<String, usize>,
    stack: Vec<Frame>,
    /// (pointer, line, line of the first definition) of every repeated mapping key.
    duplicates: Vec<(String, usize, usize)>,
}

enum Frame {
    /// A mapping: the pointer of the mapping, and the key whose value comes next (if any).
    Mapping {
        pointer: String,
        key: Option<String>,
    },
    Sequence {
        pointer: String,
        next: usize,
    },
}

impl LineIndex {
    /// Called for every node start; returns the node's pointer, or `None` when the node is a key.
    fn node(&mut self, scalar: Option<&str>, line: usize) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Sequence { pointer, next }) => {
                let p = format!("{pointer}/{next}");
                *next += 1;
                self.lines.entry(p.clone()).or_insert(line);
                Some(p)
            }
            Some(Frame::Mapping { pointer, key }) => match key.take() {
                Some(k) => Some(format!("{pointer}/{}", escape_pointer_segment(&k))),
                None => {
                    let k = scalar.unwrap_or_default().to_string();
                    let p = format!("{pointer}/{}", escape_pointer_segment(&k));
                    match self.lines.get(&p) {
                        Some(first) => self.duplicates.push((p, line, *first)),
                        None => {
                            self.lines.insert(p, line);
                        }
                    }
                    *key = Some(k);
                    None
                }
            },
        }
    }
}

impl MarkedEventReceiver for LineIndex {
    fn on_event(&mut self, event: Event, mark: Marker) {
        let line = mark.line();
        match event {
            Event::Scalar(value, ..) => {
                let _ = self.node(Some(&value), line);
            }
            Event::Alias(_) => {
                let _ = self.node(None, line);
            }
            Event::MappingStart(..) => {
                if let Some(pointer) = self.node(None, line) {
                    self.lines.entry(pointer.clone()).or_insert(line);
                    self.stack.push(Frame::Mapping { pointer, key: None });
                } else {
                    // A complex key: not used by the standards; skip it as an opaque node.
                    self.stack.push(Frame::Mapping {
                        pointer: "/?".into(),
                        key: None,
                    });
                }
            }
            Event::SequenceStart(..) => {
                if let Some(pointer) = self.node(None, line) {
                    self.lines.entry(pointer.clone()).or_insert(line);
                    self.stack.push(Frame::Sequence { pointer, next: 0 });
                } else {
                    self.stack.push(Frame::Sequence {
                        pointer: "/?".into(),
                        next: 0,
                    });
                }
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "apiVersion: v3.1.0\nkind: DataContract\nschema:\n  - name: orders\n    properties:\n      - name: id\n        logicalType: integer\n      - name: placed\n        examples: [2024-01-01]\n";

    #[test]
    fn lines_are_found_by_pointer() {
        let doc = SpecDocument::parse("c.yaml", TEXT).unwrap();
        assert_eq!(doc.line_of("/kind"), Some(2));
        assert_eq!(doc.line_of("/schema/0/name"), Some(4));
        assert_eq!(doc.line_of("/schema/0/properties/1/name"), Some(8));
        assert_eq!(doc.line_of("/schema/0/properties/0/logicalType"), Some(7));
        // A missing field falls back to its parent.
        assert_eq!(doc.line_of("/schema/0/properties/1/nothere"), Some(8));
    }

    #[test]
    fn dates_stay_strings() {
        let doc = SpecDocument::parse("c.yaml", TEXT).unwrap();
        assert_eq!(
            doc.value["schema"][0]["properties"][1]["examples"][0],
            Value::String("2024-01-01".into())
        );
    }

    #[test]
    fn syntax_errors_name_file_and_line() {
        let err = SpecDocument::parse("bad.yaml", "a: 1\nb: [1, 2\nc: 3\n").unwrap_err();
        let d = &err.diagnostics()[0];
        assert_eq!(d.file, "bad.yaml");
        assert!(d.line.is_some(), "{d}");
        assert!(d.message.starts_with("not valid YAML"), "{d}");
        let err = SpecDocument::parse("dup.yaml", "a: 1\nb:\n  c: 1\n  c: 2\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "dup.yaml:4: b.c: duplicate key (first defined on line 3)"
        );
    }

    #[test]
    fn field_paths_read_like_code() {
        assert_eq!(
            field_path("/schema/0/properties/12/name"),
            "schema[0].properties[12].name"
        );
        assert_eq!(field_path(""), "");
        assert_eq!(field_path("/a~1b"), "a/b");
    }
}
