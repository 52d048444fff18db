//! Import of the deprecated Data Contract Specification (DCS 1.x, `dataContractSpecification`)
//! into ODCS v3.1.0, as datacontract-cli does in memory: `info` becomes the top level, the
//! `servers` and `models` maps become lists, fields become properties with a `logicalType`
//! (and a `physicalType` where the DCS type is more precise), field constraints become
//! `logicalTypeOptions`, `enum` becomes an `invalidValues` rule, `quality` rules carry over, and
//! `servicelevels` freshness and retention become SLA properties.

use serde_json::{Map, Value, json};

use crate::document::SpecDocument;
use crate::error::{Diagnostic, Result, SpecError};

/// Whether a parsed document is a DCS file.
pub fn is_dcs(doc: &SpecDocument) -> bool {
    doc.value.get("dataContractSpecification").is_some()
}

/// Converts a DCS document into the text of an equivalent ODCS v3.1.0 contract (YAML).
pub fn dcs_to_odcs(doc: &SpecDocument) -> Result<String> {
    let v = &doc.value;
    let problem =
        |pointer: &str, message: &str| SpecError::Invalid(vec![doc.diagnostic(pointer, message)]);
    let id = v
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| problem("/id", "a DCS contract needs an `id`"))?;
    let info = v.get("info").cloned().unwrap_or_else(|| json!({}));
    let text = |o: &Value, k: &str| o.get(k).and_then(Value::as_str).map(str::to_string);
    let mut out = Map::new();
    out.insert("apiVersion".into(), json!("v3.1.0"));
    out.insert("kind".into(), json!("DataContract"));
    out.insert("id".into(), json!(id));
    if let Some(title) = text(&info, "title") {
        out.insert("name".into(), json!(title));
    }
    out.insert(
        "version".into(),
        json!(text(&info, "version").unwrap_or_else(|| "1.0.0".into())),
    );
    out.insert(
        "status".into(),
        json!(text(&info, "status").unwrap_or_else(|| "active".into())),
    );
    if let Some(d) = text(&info, "description") {
        out.insert("description".into(), json!({ "purpose": d }));
    }
    if let Some(owner) = text(&info, "owner") {
        out.insert("team".into(), json!({ "name": owner }));
    }
    if let Some(servers) = v.get("servers").and_then(Value::as_object) {
        let list: Vec<Value> = servers.iter().map(|(name, s)| server(name, s)).collect();
        out.insert("servers".into(), Value::Array(list));
    }
    let mut schema = Vec::new();
    if let Some(models) = v.get("models").and_then(Value::as_object) {
        for (name, model) in models {
            let mut object = Map::new();
            object.insert("name".into(), json!(name));
            let kind = text(model, "type").unwrap_or_else(|| "table".into());
            object.insert(
                "physicalType".into(),
                json!(if kind == "object" {
                    "table".to_string()
                } else {
                    kind
                }),
            );
            if let Some(d) = text(model, "description") {
                object.insert("description".into(), json!(d));
            }
            let properties: Vec<Value> = model
                .get("fields")
                .and_then(Value::as_object)
                .map(|fields| fields.iter().map(|(n, f)| property(n, f)).collect())
                .unwrap_or_default();
            object.insert("properties".into(), Value::Array(properties));
            if let Some(rules) = model.get("quality").and_then(Value::as_array) {
                object.insert(
                    "quality".into(),
                    Value::Array(rules.iter().map(quality).collect()),
                );
            }
            schema.push(Value::Object(object));
        }
    }
    out.insert("schema".into(), Value::Array(schema));
    let sla = servicelevels(v.get("servicelevels"));
    if !sla.is_empty() {
        out.insert("slaProperties".into(), Value::Array(sla));
    }
    serde_yaml_ng::to_string(&Value::Object(out)).map_err(|e| {
        SpecError::Invalid(vec![Diagnostic {
            file: doc.file.clone(),
            line: None,
            field: String::new(),
            message: format!("cannot write the converted contract: {e}"),
        }])
    })
}

/// A DCS server entry; only the keys ODCS allows for its type are kept.
fn server(name: &str, s: &Value) -> Value {
    let mut out = Map::new();
    out.insert("server".into(), json!(name));
    let kind = s.get("type").and_then(Value::as_str).unwrap_or("custom");
    out.insert("type".into(), json!(kind));
    let keep: &[&str] = match kind {
        "local" => &["path", "format", "description", "environment"],
        "s3" => &[
            "location",
            "format",
            "endpointUrl",
            "description",
            "environment",
        ],
        "postgres" | "mysql" | "sqlserver" => &[
            "host",
            "port",
            "database",
            "schema",
            "description",
            "environment",
        ],
        _ => &[
            "description",
            "environment",
            "location",
            "host",
            "port",
            "database",
            "schema",
            "format",
            "path",
        ],
    };
    for key in keep {
        if let Some(value) = s.get(*key) {
            out.insert((*key).into(), value.clone());
        }
    }
    Value::Object(out)
}

/// A DCS type as ODCS `logicalType` and, where it says more, `physicalType`.
fn types(dcs_type: &str, field: &Value) -> (Option<&'static str>, Option<String>) {
    let precision = |f: &Value| match (
        f.get("precision").and_then(Value::as_u64),
        f.get("scale").and_then(Value::as_u64),
    ) {
        (Some(p), Some(s)) => format!("decimal({p},{s})"),
        (Some(p), None) => format!("decimal({p},0)"),
        _ => "decimal".into(),
    };
    match dcs_type.trim().to_ascii_lowercase().as_str() {
        "string" | "text" => (Some("string"), None),
        "varchar" => (Some("string"), Some("varchar".into())),
        "integer" | "int" => (Some("integer"), Some("int".into())),
        "long" | "bigint" => (Some("integer"), Some("bigint".into())),
        "float" => (Some("number"), Some("float".into())),
        "double" => (Some("number"), Some("double".into())),
        "number" => (Some("number"), None),
        "decimal" | "numeric" => (Some("number"), Some(precision(field))),
        "boolean" => (Some("boolean"), None),
        "date" => (Some("date"), None),
        "timestamp" | "timestamp_tz" => (Some("timestamp"), None),
        "timestamp_ntz" => (Some("timestamp"), Some("timestamp_ntz".into())),
        "time" => (Some("time"), None),
        "bytes" => (None, Some("bytes".into())),
        "array" => (Some("array"), None),
        "object" | "record" | "struct" => (Some("object"), None),
        "map" => (Some("object"), Some("map".into())),
        "null" | "" => (None, None),
        other => (None, Some(other.to_string())),
    }
}

fn property(name: &str, f: &Value) -> Value {
    let mut out = Map::new();
    out.insert("name".into(), json!(name));
    let dcs_type = f.get("type").and_then(Value::as_str).unwrap_or("");
    let (logical, physical) = types(dcs_type, f);
    if let Some(l) = logical {
        out.insert("logicalType".into(), json!(l));
    }
    if let Some(p) = physical {
        out.insert("physicalType".into(), json!(p));
    }
    for key in [
        "description",
        "required",
        "unique",
        "primaryKey",
        "classification",
    ] {
        if let Some(value) = f.get(key) {
            out.insert(key.into(), value.clone());
        }
    }
    if f.get("primary").and_then(Value::as_bool) == Some(true) {
        out.insert("primaryKey".into(), json!(true));
    }
    if f.get("pii").and_then(Value::as_bool) == Some(true) && !out.contains_key("classification") {
        out.insert("classification".into(), json!("pii"));
    }
    let option_keys: &[&str] = match logical {
        Some("string") => &["minLength", "maxLength", "pattern", "format"],
        Some("integer" | "number") => &[
            "minimum",
            "maximum",
            "exclusiveMinimum",
            "exclusiveMaximum",
            "multipleOf",
        ],
        Some("date" | "timestamp" | "time") => &[
            "format",
            "minimum",
            "maximum",
            "exclusiveMinimum",
            "exclusiveMaximum",
        ],
        _ => &[],
    };
    let mut options = Map::new();
    for key in option_keys {
        if let Some(value) = f.get(*key) {
            options.insert((*key).into(), value.clone());
        }
    }
    if !options.is_empty() {
        out.insert("logicalTypeOptions".into(), Value::Object(options));
    }
    let mut rules: Vec<Value> = f
        .get("quality")
        .and_then(Value::as_array)
        .map(|q| q.iter().map(quality).collect())
        .unwrap_or_default();
    if let Some(values) = f.get("enum").and_then(Value::as_array) {
        rules.push(json!({ "metric": "invalidValues", "arguments": { "validValues": values }, "mustBe": 0 }));
    }
    if !rules.is_empty() {
        out.insert("quality".into(), Value::Array(rules));
    }
    match logical {
        Some("array") => {
            if let Some(items) = f.get("items") {
                let mut item = property("element", items);
                if let Value::Object(m) = &mut item {
                    m.remove("name");
                }
                out.insert("items".into(), item);
            }
        }
        Some("object") if dcs_type != "map" => {
            if let Some(fields) = f.get("fields").and_then(Value::as_object) {
                let nested: Vec<Value> = fields.iter().map(|(n, v)| property(n, v)).collect();
                out.insert("properties".into(), Value::Array(nested));
            }
        }
        _ => {}
    }
    Value::Object(out)
}

/// A DCS quality rule: the same shape as ODCS for `sql` (operators and `query`), with `type`
/// kept; other keys ODCS does not know are dropped.
fn quality(rule: &Value) -> Value {
    let mut out = Map::new();
    for key in [
        "type",
        "description",
        "name",
        "query",
        "metric",
        "arguments",
        "dimension",
        "severity",
        "unit",
        "mustBe",
        "mustNotBe",
        "mustBeGreaterThan",
        "mustBeGreaterOrEqualTo",
        "mustBeLessThan",
        "mustBeLessOrEqualTo",
        "mustBeBetween",
        "mustNotBeBetween",
    ] {
        if let Some(value) = rule.get(key) {
            out.insert(key.into(), value.clone());
        }
    }
    // DCS spells the ODCS "OrEqualTo" operators "OrEqualThan" in places.
    for (dcs, odcs) in [
        ("mustBeGreaterThanOrEqualTo", "mustBeGreaterOrEqualTo"),
        ("mustBeLessThanOrEqualTo", "mustBeLessOrEqualTo"),
    ] {
        if let Some(value) = rule.get(dcs) {
            out.insert(odcs.into(), value.clone());
        }
    }
    Value::Object(out)
}

/// DCS `servicelevels` freshness (`threshold: 25h`, `timestampField`) and retention
/// (`period: P1Y` or `1 year`, `timestampField`) as ODCS SLA properties.
fn servicelevels(levels: Option<&Value>) -> Vec<Value> {
    let Some(levels) = levels else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (property, amount_key) in [("freshness", "threshold"), ("retention", "period")] {
        let Some(level) = levels.get(property) else {
            continue;
        };
        let Some((value, unit)) = level
            .get(amount_key)
            .and_then(Value::as_str)
            .and_then(duration)
        else {
            continue;
        };
        let mut p = json!({ "property": property, "value": value, "unit": unit });
        if let Some(field) = level.get("timestampField").and_then(Value::as_str) {
            p["element"] = json!(field);
        }
        out.push(p);
    }
    out
}

/// `25h`, `7d`, `P1Y`, `1 year` → (value, unit).
fn duration(text: &str) -> Option<(f64, &'static str)> {
    let t = text
        .trim()
        .trim_start_matches('P')
        .trim_start_matches('T')
        .to_ascii_lowercase();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (number, unit) = t.split_at(split);
    let value: f64 = number.parse().ok()?;
    let unit = match unit.trim() {
        "s" | "sec" | "second" | "seconds" => "s",
        "m" | "min" | "minute" | "minutes" => "m",
        "h" | "hour" | "hours" => "h",
        "d" | "day" | "days" => "d",
        "w" | "week" | "weeks" => "w",
        "y" | "year" | "years" => "y",
        _ => return None,
    };
    Some((value, unit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dcs_contract_becomes_a_valid_odcs_contract() {
        let dcs = "dataContractSpecification: 1.2.1
id: orders
info:
  title: Orders
  version: 1.2.0
  owner: shop team
servers:
  production:
    type: local
    path: ./data/orders.csv
    format: csv
    delimiter: new_line
models:
  orders:
    fields:
      order_id:
        type: bigint
        required: true
        unique: true
      email:
        type: string
        pii: true
        maxLength: 20
        pattern: ^.+@.+$
      status:
        type: varchar
        enum: [open, shipped]
      amount:
        type: decimal
        precision: 10
        scale: 2
        minimum: 0
      placed_at:
        type: timestamp
    quality:
      - type: sql
        query: SELECT count(*) FROM orders
        mustBeGreaterThan: 0
servicelevels:
  freshness:
    threshold: 25h
    timestampField: orders.placed_at
";
        let doc = SpecDocument::parse("orders.dcs.yaml", dcs).unwrap();
        assert!(is_dcs(&doc));
        let odcs = dcs_to_odcs(&doc).unwrap();
        let contract = crate::load_contract("orders (converted)", &odcs)
            .unwrap_or_else(|e| panic!("{e}\n{odcs}"));
        assert_eq!(
            (contract.id.as_str(), contract.version.as_str()),
            ("orders", "1.2.0")
        );
        let orders = contract.dataset("orders").unwrap();
        let email = orders.column("email").unwrap();
        assert_eq!(email.classification.as_deref(), Some("pii"));
        assert_eq!(email.constraints.max_length, Some(20));
        assert_eq!(
            orders.column("amount").unwrap().physical_type.as_deref(),
            Some("decimal(10,2)")
        );
        assert_eq!(
            orders
                .column("status")
                .unwrap()
                .constraints
                .valid_values
                .as_ref()
                .map(Vec::len),
            Some(2)
        );
        assert_eq!(orders.quality.len(), 2);
        assert_eq!(contract.sla[0].property, "freshness");
        assert!(!odcs.contains("delimiter"), "{odcs}");
    }
}
