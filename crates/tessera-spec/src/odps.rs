//! ODPS document → [`Product`]: the product's SQL name, domain, owner and ports.

use std::collections::BTreeSet;

use serde_json::Value;
use tessera_core::{InputPort, Name, OutputPort, Product, SampleQuery, SupportChannel};

use crate::document::SpecDocument;
use crate::error::{Diagnostic, Result, SpecError};
use crate::odcs::{array, description, text};

/// The custom property of an ODPS output port that holds its sample queries (the standard has
/// no field for them).
pub const SAMPLE_QUERIES_PROPERTY: &str = "sampleQueries";

/// A sample query with its place in the descriptor: so that one found not to plan at publish
/// time is reported at its file and line.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleQuerySite {
    /// The output port it belongs to.
    pub port: String,
    pub query: SampleQuery,
    /// JSON pointer of its `sql`, for [`SpecDocument::diagnostic`].
    pub pointer: String,
}

/// Every well-formed sample query of a product descriptor, with its place.
pub fn sample_queries(doc: &SpecDocument) -> Vec<SampleQuerySite> {
    sample_query_sites(doc).0
}

/// The sample queries of every output port, and the problems of those written wrong: the
/// value is a list of `{name, sql, description}`, names unique within their port.
fn sample_query_sites(doc: &SpecDocument) -> (Vec<SampleQuerySite>, Vec<Diagnostic>) {
    let (mut sites, mut problems) = (Vec::new(), Vec::new());
    for (i, port) in array(&doc.value, "outputPorts").iter().enumerate() {
        let port_name = text(port, "name").unwrap_or_default();
        let mut names = BTreeSet::new();
        for (k, property) in array(port, "customProperties").iter().enumerate() {
            if text(property, "property").as_deref() != Some(SAMPLE_QUERIES_PROPERTY) {
                continue;
            }
            let at = format!("/outputPorts/{i}/customProperties/{k}/value");
            let Some(queries) = property.get("value").and_then(Value::as_array) else {
                problems.push(doc.diagnostic(
                    &at,
                    "sampleQueries takes a list of {name, sql, description}",
                ));
                continue;
            };
            for (j, query) in queries.iter().enumerate() {
                let at = format!("{at}/{j}");
                let Some(fields) = query.as_object() else {
                    problems.push(doc.diagnostic(
                        &at,
                        "a sample query is an object with `name`, `sql` and an optional `description`",
                    ));
                    continue;
                };
                for key in fields.keys() {
                    if !["name", "sql", "description"].contains(&key.as_str()) {
                        problems.push(doc.diagnostic(
                            &format!("{at}/{key}"),
                            format!("unknown field `{key}` of a sample query (it has `name`, `sql` and `description`)"),
                        ));
                    }
                }
                let non_empty = |key: &str| text(query, key).filter(|v| !v.trim().is_empty());
                let (name, sql) = (non_empty("name"), non_empty("sql"));
                for (key, value) in [("name", &name), ("sql", &sql)] {
                    if value.is_none() {
                        problems.push(
                            doc.diagnostic(
                                &at,
                                format!("a sample query needs a non-empty `{key}`"),
                            ),
                        );
                    }
                }
                let (Some(name), Some(sql)) = (name, sql) else {
                    continue;
                };
                if !names.insert(name.clone()) {
                    problems.push(doc.diagnostic(
                        &format!("{at}/name"),
                        format!("output port `{port_name}` has two sample queries named `{name}`"),
                    ));
                    continue;
                }
                sites.push(SampleQuerySite {
                    port: port_name.clone(),
                    query: SampleQuery {
                        name,
                        description: text(query, "description"),
                        sql,
                    },
                    pointer: format!("{at}/sql"),
                });
            }
        }
    }
    (sites, problems)
}

/// Converts a validated ODPS document. Tessera needs `domain` and `name` as SQL identifiers,
/// since the product's datasets are queried as `domain.product.dataset`.
pub fn product_from_document(doc: &SpecDocument) -> Result<Product> {
    let v = &doc.value;
    let mut problems = Vec::new();
    let mut name_of = |key: &str| match text(v, key) {
        None => {
            problems.push(doc.diagnostic(
                &format!("/{key}"),
                format!("Tessera needs `{key}`: the product's datasets are queried as domain.product.dataset"),
            ));
            None
        }
        Some(s) => match Name::parse_namespace(&s) {
            Ok(n) => Some(n),
            Err(e) => {
                problems.push(doc.diagnostic(&format!("/{key}"), e.to_string()));
                None
            }
        },
    };
    let domain = name_of("domain");
    let name = name_of("name");
    let (samples, sample_problems) = sample_query_sites(doc);
    problems.extend(sample_problems);
    let output_ports = array(v, "outputPorts")
        .iter()
        .map(|p| {
            let name = text(p, "name").unwrap_or_default();
            OutputPort {
                sample_queries: samples
                    .iter()
                    .filter(|s| s.port == name)
                    .map(|s| s.query.clone())
                    .collect(),
                name,
                version: text(p, "version").unwrap_or_default(),
                contract_id: text(p, "contractId"),
                description: text(p, "description"),
            }
        })
        .collect();
    let input_ports = array(v, "inputPorts")
        .iter()
        .map(|p| InputPort {
            name: text(p, "name").unwrap_or_default(),
            version: text(p, "version").unwrap_or_default(),
            contract_id: text(p, "contractId").unwrap_or_default(),
        })
        .collect();
    let support = array(v, "support")
        .iter()
        .map(|s| SupportChannel {
            channel: text(s, "channel").unwrap_or_default(),
            url: text(s, "url").unwrap_or_default(),
            tool: text(s, "tool"),
        })
        .collect();
    match (domain, name) {
        (Some(domain), Some(name)) if problems.is_empty() => Ok(Product {
            id: text(v, "id").unwrap_or_default(),
            domain,
            name,
            version: text(v, "version"),
            status: text(v, "status").unwrap_or_default(),
            description: description(v),
            owner: v.get("team").and_then(|t| text(t, "name")),
            output_ports,
            input_ports,
            support,
        }),
        _ => Err(SpecError::Invalid(problems)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_need_sql_names() {
        let text = "apiVersion: v1.0.0\nkind: DataProduct\nid: p1\nstatus: active\nname: Customer Data Product\n";
        let doc = SpecDocument::parse("p.yaml", text).unwrap();
        crate::validate(&doc).unwrap();
        let err = product_from_document(&doc).unwrap_err().to_string();
        assert!(
            err.contains("p.yaml:1: domain: Tessera needs `domain`"),
            "{err}"
        );
        assert!(
            err.contains("p.yaml:5: name: invalid name \"Customer Data Product\""),
            "{err}"
        );
    }

    #[test]
    fn reserved_names_are_refused_as_domain_or_product() {
        for reserved in tessera_core::RESERVED_NAMES {
            let text = format!(
                "apiVersion: v1.0.0\nkind: DataProduct\nid: p1\nstatus: active\nname: {reserved}\ndomain: {reserved}\n"
            );
            let doc = SpecDocument::parse("p.yaml", &text).unwrap();
            crate::validate(&doc).unwrap();
            let err = product_from_document(&doc).unwrap_err().to_string();
            for (line, key) in [(5, "name"), (6, "domain")] {
                assert!(
                    err.contains(&format!(
                        "p.yaml:{line}: {key}: invalid name \"{reserved}\": is reserved"
                    )),
                    "{err}"
                );
            }
        }
    }

    #[test]
    fn sample_queries_are_read_from_the_ports_custom_property() {
        let text = "apiVersion: v1.0.0\nkind: DataProduct\nid: p1\nstatus: active\nname: shop\ndomain: sales\noutputPorts:\n  - name: orders\n    version: 1.0.0\n    customProperties:\n      - property: sampleQueries\n        value:\n          - name: revenue\n            description: Revenue so far\n            sql: SELECT sum(amount) FROM sales.shop.orders\n";
        let doc = SpecDocument::parse("p.yaml", text).unwrap();
        crate::validate(&doc).unwrap();
        let p = product_from_document(&doc).unwrap();
        assert_eq!(
            p.output_ports[0].sample_queries,
            vec![SampleQuery {
                name: "revenue".into(),
                description: Some("Revenue so far".into()),
                sql: "SELECT sum(amount) FROM sales.shop.orders".into(),
            }]
        );
        let sites = sample_queries(&doc);
        assert_eq!(doc.line_of(&sites[0].pointer), Some(15));
    }

    #[test]
    fn malformed_sample_queries_are_refused_at_their_line() {
        let text = "apiVersion: v1.0.0\nkind: DataProduct\nid: p1\nstatus: active\nname: shop\ndomain: sales\noutputPorts:\n  - name: orders\n    version: 1.0.0\n    customProperties:\n      - property: sampleQueries\n        value:\n          - name: revenue\n            sql: SELECT 1\n          - name: revenue\n            sql: SELECT 2\n          - name: nothing\n            query: SELECT 3\n";
        let doc = SpecDocument::parse("p.yaml", text).unwrap();
        crate::validate(&doc).unwrap();
        let err = product_from_document(&doc).unwrap_err().to_string();
        assert!(
            err.contains("p.yaml:15: outputPorts[0].customProperties[0].value[1].name: output port `orders` has two sample queries named `revenue`"),
            "{err}"
        );
        assert!(
            err.contains("p.yaml:18: outputPorts[0].customProperties[0].value[2].query: unknown field `query` of a sample query"),
            "{err}"
        );
        assert!(
            err.contains("p.yaml:17: outputPorts[0].customProperties[0].value[2]: a sample query needs a non-empty `sql`"),
            "{err}"
        );
    }

    #[test]
    fn products_convert_with_ports() {
        let text = "apiVersion: v1.0.0\nkind: DataProduct\nid: p1\nstatus: active\nname: engagement\ndomain: artwork_engagement\nteam:\n  name: community\noutputPorts:\n  - name: events\n    version: 1.0.0\n    contractId: events-contract\n";
        let doc = SpecDocument::parse("p.yaml", text).unwrap();
        crate::validate(&doc).unwrap();
        let p = product_from_document(&doc).unwrap();
        assert_eq!(p.domain.as_str(), "artwork_engagement");
        assert_eq!(p.owner.as_deref(), Some("community"));
        assert_eq!(
            p.output_ports[0].contract_id.as_deref(),
            Some("events-contract")
        );
    }
}
