//! OpenLineage events other tools send Tessera (`POST /api/v1/lineage`), read as Marquez reads
//! them: a run event (a job's run, its inputs and outputs), a dataset event or a job event.
//!
//! Strictly (the default) an event must also validate against the OpenLineage 2-0-2 JSON
//! Schema. Leniently it need only hold what Marquez itself needs — which lets in what Marquez
//! lets in: events without `schemaURL`, and event times without an offset (read as UTC).

use std::sync::OnceLock;

use jsonschema::Validator;
use serde_json::Value;

const OPENLINEAGE_2_0_2: &str = include_str!("../schemas/openlineage-2-0-2.json");

/// A namespace Marquez takes: letters, digits and `: ; = / _ - . @ +`.
fn namespace_ok(namespace: &str) -> bool {
    !namespace.is_empty()
        && namespace.len() <= 1024
        && namespace
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ":;=/_-.@+".contains(c))
}

/// What is wrong with an event.
#[derive(Debug, Clone, PartialEq)]
pub enum LineageEventError {
    /// It is not an event Tessera can take (422): each problem with where it is.
    Invalid(Vec<String>),
    /// A name Tessera cannot use (400).
    BadName(String),
}

/// Which kind of event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineageEventKind {
    Run,
    Dataset,
    Job,
}

impl LineageEventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LineageEventKind::Run => "run",
            LineageEventKind::Dataset => "dataset",
            LineageEventKind::Job => "job",
        }
    }
}

/// A dataset as an event names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct NamedDataset {
    pub namespace: String,
    pub name: String,
}

/// An event, read.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedLineageEvent {
    pub kind: LineageEventKind,
    /// `START`, `COMPLETE`, … (run events; none when the event leaves it out).
    pub event_type: Option<String>,
    /// RFC 3339, in UTC.
    pub event_time: String,
    /// `(namespace, name)`.
    pub job: Option<(String, String)>,
    pub run_id: Option<String>,
    pub inputs: Vec<NamedDataset>,
    pub outputs: Vec<NamedDataset>,
}

/// The schema of one kind of event (`RunEvent`, `DatasetEvent`, `JobEvent`): the document with
/// its root's `oneOf` narrowed to that kind, so that what is wrong is said of that kind.
fn schema(kind: LineageEventKind) -> &'static Validator {
    static VALIDATORS: OnceLock<[Validator; 3]> = OnceLock::new();
    let validators = VALIDATORS.get_or_init(|| {
        ["RunEvent", "DatasetEvent", "JobEvent"].map(|definition| {
            let mut schema: Value =
                serde_json::from_str(OPENLINEAGE_2_0_2).expect("embedded schema");
            let root = schema.as_object_mut().expect("the schema is an object");
            root.remove("oneOf");
            root.insert("$ref".into(), Value::from(format!("#/$defs/{definition}")));
            jsonschema::draft202012::options()
                .should_validate_formats(true)
                .build(&schema)
                .expect("the OpenLineage schema compiles")
        })
    });
    match kind {
        LineageEventKind::Run => &validators[0],
        LineageEventKind::Dataset => &validators[1],
        LineageEventKind::Job => &validators[2],
    }
}

fn text<'a>(value: &'a Value, pointer: &str, problems: &mut Vec<String>) -> Option<&'a str> {
    match value.pointer(pointer).and_then(Value::as_str) {
        Some(s) if !s.is_empty() => Some(s),
        _ => {
            problems.push(format!("{pointer}: a non-empty string is needed"));
            None
        }
    }
}

fn datasets(
    event: &Value,
    field: &str,
    problems: &mut Vec<String>,
    names: &mut Vec<String>,
) -> Vec<NamedDataset> {
    let mut out = Vec::new();
    for (i, _) in event[field].as_array().into_iter().flatten().enumerate() {
        let at = format!("/{field}/{i}");
        let namespace = text(event, &format!("{at}/namespace"), problems);
        let name = text(event, &format!("{at}/name"), problems);
        if let (Some(namespace), Some(name)) = (namespace, name) {
            names.push(namespace.to_string());
            out.push(NamedDataset {
                namespace: namespace.to_string(),
                name: name.to_string(),
            });
        }
    }
    out
}

/// Reads an event; `lenient` lets in what Marquez lets in beyond the schema.
pub fn read_lineage_event(
    event: &Value,
    lenient: bool,
) -> Result<ReceivedLineageEvent, LineageEventError> {
    let mut problems: Vec<String> = Vec::new();
    if !event.is_object() {
        return Err(LineageEventError::Invalid(vec![
            "an OpenLineage event is a JSON object".into(),
        ]));
    }
    let kind = if event.get("run").is_some() {
        LineageEventKind::Run
    } else if event.get("dataset").is_some() {
        LineageEventKind::Dataset
    } else {
        LineageEventKind::Job
    };
    if !lenient {
        problems.extend(
            schema(kind)
                .iter_errors(event)
                .map(|e| format!("{}: {e}", e.instance_path())),
        );
    }
    let event_time = match event["eventTime"].as_str() {
        None => {
            problems.push("/eventTime: the event's time is needed".into());
            String::new()
        }
        Some(t) => match chrono::DateTime::parse_from_rfc3339(t) {
            Ok(at) => at
                .with_timezone(&chrono::Utc)
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            Err(_) => match chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f") {
                Ok(at) if lenient => at
                    .and_utc()
                    .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                _ => {
                    problems.push(format!(
                        "/eventTime: {t:?} is not a date-time with an offset (e.g. 2026-01-02T03:04:05Z)"
                    ));
                    String::new()
                }
            },
        },
    };
    let mut names: Vec<String> = Vec::new();
    let mut run_id = None;
    if kind == LineageEventKind::Run {
        match text(event, "/run/runId", &mut problems) {
            Some(id) if uuid_like(id) => run_id = Some(id.to_string()),
            Some(id) => problems.push(format!("/run/runId: {id:?} is not a UUID")),
            None => {}
        }
        if event.pointer("/run/facets/parent").is_some() {
            for field in ["run/runId", "job/namespace", "job/name"] {
                text(event, &format!("/run/facets/parent/{field}"), &mut problems);
            }
        }
    }
    let job = if kind == LineageEventKind::Dataset {
        let namespace = text(event, "/dataset/namespace", &mut problems);
        text(event, "/dataset/name", &mut problems);
        if let Some(ns) = namespace {
            names.push(ns.to_string());
        }
        None
    } else {
        let namespace = text(event, "/job/namespace", &mut problems);
        let name = text(event, "/job/name", &mut problems);
        if let Some(ns) = namespace {
            names.push(ns.to_string());
        }
        namespace
            .zip(name)
            .map(|(n, j)| (n.to_string(), j.to_string()))
    };
    let inputs = datasets(event, "inputs", &mut problems, &mut names);
    let outputs = datasets(event, "outputs", &mut problems, &mut names);
    if !problems.is_empty() {
        return Err(LineageEventError::Invalid(problems));
    }
    if let Some(bad) = names.iter().find(|n| !namespace_ok(n)) {
        return Err(LineageEventError::BadName(format!(
            "namespace {bad:?} has characters a namespace may not have (letters, digits and : ; = / _ - . @ +)"
        )));
    }
    Ok(ReceivedLineageEvent {
        kind,
        event_type: event["eventType"].as_str().map(str::to_string),
        event_time,
        job,
        run_id,
        inputs,
        outputs,
    })
}

/// Whether `id` has a UUID's shape (8-4-4-4-12 hexadecimal digits).
fn uuid_like(id: &str) -> bool {
    let parts: Vec<&str> = id.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event() -> Value {
        json!({
            "eventType": "COMPLETE",
            "eventTime": "2020-09-02T15:00:00.000+10:00",
            "run": {"runId": "ab468fb4-4654-4286-9679-59d13d185b19"},
            "job": {"namespace": "grandmas.kitchen", "name": "prepare_apple_filling"},
            "inputs": [{"namespace": "grandmas.kitchen", "name": "apples"}],
            "outputs": [{"namespace": "grandmas.kitchen", "name": "apple.filling"}],
            "producer": "https://github.com/OpenLineage/OpenLineage/blob/v1-0-0/client"
        })
    }

    #[test]
    fn a_marquez_style_event_is_read_leniently_and_refused_strictly_without_its_schema_url() {
        let read = read_lineage_event(&event(), true).unwrap();
        assert_eq!(read.kind, LineageEventKind::Run);
        assert_eq!(read.event_time, "2020-09-02T05:00:00.000000Z");
        assert_eq!(read.outputs[0].name, "apple.filling");
        let Err(LineageEventError::Invalid(problems)) = read_lineage_event(&event(), false) else {
            panic!("refused strictly");
        };
        assert!(
            problems.iter().any(|p| p.contains("schemaURL")),
            "{problems:?}"
        );
    }

    #[test]
    fn what_marquez_refuses_is_refused_with_where() {
        let mut no_run_id = event();
        no_run_id["run"]["runId"] = Value::Null;
        assert_eq!(
            read_lineage_event(&no_run_id, true),
            Err(LineageEventError::Invalid(vec![
                "/run/runId: a non-empty string is needed".into()
            ]))
        );
        let mut empty_parent = event();
        empty_parent["run"]["facets"] =
            json!({"parent": {"run": {}, "job": {"namespace": "n", "name": "j"}}});
        assert!(matches!(
            read_lineage_event(&empty_parent, true),
            Err(LineageEventError::Invalid(p)) if p == ["/run/facets/parent/run/runId: a non-empty string is needed"]
        ));
        let mut emoji = event();
        emoji["job"]["namespace"] = json!("kitchen🍎");
        assert!(matches!(
            read_lineage_event(&emoji, true),
            Err(LineageEventError::BadName(_))
        ));
    }
}
